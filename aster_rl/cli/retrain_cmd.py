"""``aster-rl retrain --from RUN``: resume PPO on newer data; promote only if it beats the champion and passes the
deployment gate on the hold-out."""

from __future__ import annotations

import argparse
import sys

from aster_rl.config import AppConfig


def register(sub) -> None:
    p = sub.add_parser("retrain", help="continue training a run on newer stored data; promote it only if it beats the champion and is deployable")
    p.add_argument("--from", dest="run", required=True, help="the champion: a run directory, 'latest' or 'champion'")
    p.add_argument("--timesteps", type=int, help="environment steps to continue for (default: train.total_timesteps)")
    p.add_argument("--holdout", type=float, default=0.15, help="share of the newest bars held out for the comparison (default 0.15)")
    p.add_argument("--model", choices=("best", "last"), default="best", help="which checkpoint of the champion to resume")
    p.add_argument("--trust-run", action="store_true", help="load a run saved in the older pickled format (runs code stored in it: only for runs you made)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: AppConfig) -> int:
    from agents.retrain import retrain
    from agents.run_dir import RunDir

    d = retrain(config, args.run, timesteps=args.timesteps, holdout_fraction=args.holdout, which=args.model,
                progress_bar=config.train.progress_bar and sys.stderr.isatty(), trust_run=args.trust_run)
    print(f"champion:   {d.champion}")
    print(f"challenger: {d.challenger}")
    for name, m in (("champion", d.champion_metrics), ("challenger", d.challenger_metrics)):
        print(f"  {name:10} net PnL {m['net_pnl_usd']:+10.2f} USD  return {m['net_return']:+.2%}  trades {m['trades']:.0f}  "
              f"win rate {m['win_rate']:.0%}")
    print(("PROMOTED: " if d.promoted else "kept the champion: ") + d.reason)
    print(f"gate recorded in {RunDir(d.challenger).gate}")
    print(f"decision recorded in {RunDir(d.challenger).retrain_decision}")
    return 0
