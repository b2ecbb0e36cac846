"""``aster-rl predictions``: the newest logged decisions with the running win rate and PnL."""

from __future__ import annotations

import argparse
import math

from aster_rl.config import AppConfig


def register(sub) -> None:
    p = sub.add_parser("predictions", help="list recent live/paper/replay decisions with the running win rate and PnL")
    p.add_argument("--session", help="only this runner session")
    p.add_argument("--run", dest="run_id", help="only decisions of this run (its directory name)")
    p.add_argument("--limit", type=int, default=20, help="how many of the newest decisions to list (default 20)")
    p.add_argument("--all", action="store_true", help="include WAIT/HOLD decisions (default: trades, exits and refusals)")
    p.set_defaults(func=run)


def _num(x, fmt: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def run(args: argparse.Namespace, config: AppConfig) -> int:
    import pandas as pd

    from aster_rl.errors import ConfigError
    from aster_rl.storage import Database, live_store

    if args.limit <= 0:
        raise ConfigError(f"--limit {args.limit}: must be a positive number")
    db = Database.from_config(config.data)
    db.init_schema()
    frame = live_store.predictions(db, session_id=args.session, run_id=args.run_id)
    if frame.empty:
        print("no predictions logged yet (run `aster-rl live run --run RUN --replay` or `aster-rl live run --run RUN`)")
        return 0
    shown = frame if args.all else frame[~frame["status"].isin(["wait", "hold"])]
    shown = shown.tail(args.limit)
    print(f"{'time (UTC)':16} {'side':4} {'lev':>3} {'profile':8} {'entry':>10} {'stop':>10} {'target':>10} {'conf':>5} "
          f"{'status':8} {'pnl':>9} {'exit':11} {'win%':>5} {'total pnl':>10}")
    for r in shown.itertuples():
        when = pd.Timestamp(int(r.ts), unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")
        print(f"{when:16} {r.side:4} {r.leverage:>3} {r.profile or '-'!s:8} {_num(r.entry_price, '10.4f')} "
              f"{_num(r.stop_price, '10.4f')} {_num(r.target_price, '10.4f')} {_num(r.confidence, '5.2f')} {r.status:8} "
              f"{_num(r.pnl_usd, '+9.2f')} {r.exit_reason or '-'!s:11} {_num(r.running_win_rate * 100 if r.running_win_rate == r.running_win_rate else None, '5.1f')} "
              f"{r.running_pnl_usd:+10.2f}")
    closed = frame[frame["status"].isin(["win", "loss"])]
    n = len(closed)
    wins = int((closed["status"] == "win").sum())
    print(f"{len(frame)} decisions; {n} closed trades, {wins} won ({wins / n:.0%})" if n else f"{len(frame)} decisions; no closed trades yet",
          end="")
    print(f"; PnL after costs {closed['pnl_usd'].sum():+.2f} USD" if n else "")
    return 0
