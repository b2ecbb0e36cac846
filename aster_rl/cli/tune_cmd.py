"""``aster-rl tune``: an Optuna study of the settings that matter, on shared storage (:mod:`agents.tune`).

One machine: ``aster-rl tune --storage URL --study NAME --trials N --workers K``; more
machines: the same command with the same ``--storage`` and ``--study`` joins the study.
``--status`` prints the study's state. The storage URL may come from ``$ASTER_TUNE_STORAGE``;
it is printed with its password hidden.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aster_rl.config import AppConfig, replace


def register(sub) -> None:
    p = sub.add_parser("tune", help="tune PPO and reward settings on validation with an Optuna study (workers share one storage)")
    p.add_argument("--storage", metavar="URL",
                   help="the study's database, e.g. postgresql+psycopg://user@host/optuna (default: $ASTER_TUNE_STORAGE); "
                   "SQLite serves one worker at a time")
    p.add_argument("--study", metavar="NAME", required=True, help="the study's name (runs go to <checkpoint_dir>/tune/NAME/)")
    p.add_argument("--trials", type=int, default=20, help="finished trials the study needs (default: 20)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default: 1)")
    p.add_argument("--timerange", metavar="START-END", help="train and validate inside this UTC range (as for train)")
    p.add_argument("--params", metavar="KEY,KEY", help="tune only these settings (default: all; see --status for the names)")
    p.add_argument("--sampler", default="tpe", choices=("tpe", "random", "grid"), help="Optuna sampler (default: tpe)")
    p.add_argument("--pruner", default="median", choices=("median", "none"), help="prune on validation (default: median)")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed (default: 0)")
    p.add_argument("--timesteps", type=int, help="training steps per trial (default: train.total_timesteps)")
    p.add_argument("--out", metavar="FILE", help="where the best configuration goes (default: <checkpoint_dir>/tune/NAME/best.toml)")
    p.add_argument("--heartbeat", type=int, default=10, metavar="S", help="a running trial's worker beats every S seconds (default: 10)")
    p.add_argument("--grace", type=int, default=60, metavar="S",
                   help="a trial not heard from for S seconds is failed and queued again (default: 60)")
    p.add_argument("--status", action="store_true", help="print the study's state and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: AppConfig) -> int:
    from agents.tune import SPACE, TuneSpec, load_study, status_table, storage_url, tune
    from aster_rl.data.timeframes import parse_timerange
    from aster_rl.storage import display_url

    url = storage_url(args.storage)
    if args.status:
        print(status_table(load_study(url, args.study)))
        print("tuned settings: " + ", ".join(p.key for p in SPACE))
        return 0
    if args.timesteps is not None:
        config = replace(config, train={"total_timesteps": args.timesteps})
    spec = TuneSpec(
        config=config, storage=url, study=args.study, trials=args.trials,
        params=tuple(k.strip() for k in args.params.split(",") if k.strip()) if args.params else (),
        timerange=parse_timerange(args.timerange) if args.timerange else None,
        sampler=args.sampler, pruner=args.pruner, seed=args.seed, heartbeat_s=args.heartbeat, grace_s=args.grace,
    )
    print(f"study {spec.study} in {display_url(url)}: {spec.trials} trials, {args.workers} worker(s) here", file=sys.stderr)
    result = tune(spec, args.workers, out=Path(args.out) if args.out else None)
    print(result.table)
    if result.best_config is not None:
        print(f"best configuration ({result.finished} trials recorded as train.trials): {result.best_config}")
        print(f"next: aster-rl --config {result.best_config} train")
    return 0
