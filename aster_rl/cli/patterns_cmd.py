"""``aster-rl patterns mine|list|show NAME``: the pattern miner and library."""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from aster_rl.config import AppConfig
from aster_rl.data.timeframes import parse_timerange, parse_utc_time
from aster_rl.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

TOP = 10


def register(sub) -> None:
    patterns = sub.add_parser("patterns", help="mine the pattern library, list it, or show one pattern with its trades")
    actions = patterns.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser(
        "mine",
        help="mine the training range for patterns and write the pattern library to the database",
        description="Enumerate candidate patterns (conjunctions of feature conditions, with a side and an exit "
        "profile), backtest each on the training range through the accounting core, and keep those that hold "
        "up after a Benjamini-Hochberg correction at patterns.fdr. Prints how many pass the naive test "
        "(p < 0.05) and how many survive the correction. The range defaults to the training split a "
        "`train` run with this configuration uses (after the feature warm-up, train.train_fraction of the "
        "usable bars); --end (or the end of --timerange) may not pass its last bar, and a trade must close inside the range.",
    )
    p.add_argument("--start", metavar="TIME", help="first bar of the range (UTC; default: the training split's first)")
    p.add_argument("--end", metavar="TIME", help="last bar of the range (UTC; default and latest: the training split's last)")
    p.add_argument("--timerange", metavar="START-END",
                   help="the range in freqtrade's syntax instead of --start/--end, e.g. 20250301-20250320 (YYYYMMDD, either "
                   "side may be empty, the end excluded); it must end inside the training split")
    p.add_argument("--naive", action="store_true", help="store the uncorrected (p < 0.05) list instead (for comparison only)")
    p.add_argument("--max-candidates", type=int, default=20_000, help="bound on the condition conjunctions tried")
    actions.add_parser("list", help="list the pattern library as a table")
    q = actions.add_parser(
        "show",
        help="show one pattern with its statistics, history and trades",
        description="`aster-rl patterns show NAME` (or the row number from `aster-rl patterns list`) shows one "
        "pattern with its statistics, history and trades.",
    )
    q.add_argument("name", help="pattern name (quoted) or row number from `aster-rl patterns list`")
    patterns.set_defaults(func=run)


def run(args: argparse.Namespace, config: AppConfig) -> int:
    return ACTIONS[args.action](args, config)


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "inf" if x is not None and x > 0 else "-"
    return f"{x:.1%}" if pct else f"{x:.2f}"


def mine(args: argparse.Namespace, config: AppConfig) -> int:
    from agents.data import PATTERN_LIBRARY, build_dataset, mine_library
    from agents.train import default_splits
    from aster_rl.config import replace
    from aster_rl.progress import progress
    from aster_rl.storage import Database
    from aster_rl.storage.pattern_store import save_library

    if args.timerange and (args.start or args.end):
        raise ConfigError(f"--timerange {args.timerange} names the whole range: give it or --start/--end, not both")
    timerange = parse_timerange(args.timerange) if args.timerange else None
    start = parse_utc_time(args.start, "--start") if args.start else None
    end = parse_utc_time(args.end, "--end") if args.end else None
    # the training run's dataset and splits; the library's own columns play no part in mining
    mining = replace(config, features={"tentacles": [t for t in config.features.tentacles if t != PATTERN_LIBRARY]})
    dataset = build_dataset(mining)
    splits = default_splits(config, dataset)
    index = dataset.index
    last_train = index[splits.train.end - 1]
    if timerange is not None:
        lo, hi = timerange.bar_span(index)
        past = hi > splits.train.end
    else:
        lo = splits.train.start if start is None else int(index.searchsorted(start, side="left"))
        hi = splits.train.end if end is None else int(index.searchsorted(end, side="right"))
        past = end is not None and end > last_train
    if past:
        named = f"--timerange {timerange}: ends" if timerange is not None else f"--end {args.end}:"
        raise DataError(
            f"{named} past the training split's last bar {last_train} (train.train_fraction="
            f"{config.train.train_fraction:g}); a library mined past it would learn from validation and test bars"
        )
    if lo >= hi:  # --start at or after the end (a time range is never empty here)
        raise DataError(f"--start {args.start}: not before the end of the mining range {index[hi - 1] if hi else end}")
    db = Database.from_config(config.data)
    db.init_schema()
    bar = progress(total=1, desc="mining")

    def tick(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        if done % 50 == 0 or done == total:
            bar.refresh()

    library, result = mine_library(config, dataset, lo, hi, naive=args.naive, max_candidates=args.max_candidates, progress=tick)
    bar.close()
    chosen = result.naive if args.naive else result.corrected
    save_library(db, library, replace_all=True)
    print(f"training range {result.start} .. {result.end} (outcomes closed by {result.outcomes_until}; the training split "
          f"ends {last_train}): {result.enumerated} conjunctions, {result.evaluated} candidates "
          f"backtested in {result.seconds:.1f} s ({result.candidates_per_second:.0f}/s)")
    print(f"naive (p < 0.05, expectancy > 0): {len(result.naive)} patterns")
    print(f"corrected (Benjamini-Hochberg at {config.patterns.fdr:g}): {len(result.corrected)} patterns")
    print(f"wrote {len(library)} {'naive' if args.naive else 'corrected'} patterns to {db.display_url}")
    for m in chosen[:TOP]:
        s = m.stats
        print(f"  {m.name}  trades {s.trades}  win {s.win_rate:.0%} (≥ {s.win_rate_lower_bound:.0%})  "
              f"PF {_fmt(s.profit_factor)}  exp {s.expectancy * 1e4:.1f} bps  p {m.p_value:.2g}  "
              f"{library.get(m.name).status}")
    return 0


def _library(config: AppConfig) -> tuple[Any, Any]:
    from aster_rl.storage import Database
    from aster_rl.storage.pattern_store import load_library

    db = Database.from_config(config.data)
    return db, load_library(db, config.patterns)


def list_library(args: argparse.Namespace, config: AppConfig) -> int:
    db, library = _library(config)
    entries = list(library)
    if not entries:
        print(f"the pattern library in {db.display_url} is empty; run `aster-rl patterns mine`")
        return 0
    print(f"{'#':>3}  {'status':9} {'trades':>6} {'win':>6} {'win lb':>6} {'PF':>5} {'exp bps':>8}  name")
    for i, e in enumerate(entries, 1):
        s = e.stats
        print(f"{i:>3}  {e.status!s:9} {s.trades:>6} {s.win_rate:>6.1%} {s.win_rate_lower_bound:>6.1%} "
              f"{_fmt(s.profit_factor):>5} {s.expectancy * 1e4:>8.1f}  {e.name}")
    return 0


def show(args: argparse.Namespace, config: AppConfig) -> int:
    from aster_rl.storage.pattern_store import pattern_trades

    db, library = _library(config)
    entries = list(library)
    name = args.name
    if name.isdigit() and 1 <= int(name) <= len(entries):
        name = entries[int(name) - 1].name
    e = library.get(name)
    s = e.stats
    print(e.name)
    print(f"  status {e.status}; side {e.pattern.side}; exit profile {e.pattern.profile}")
    print("  conditions: " + "; ".join(f"{c.column} {c.op} {c.threshold:g}" for c in e.pattern.conditions))
    print(f"  trades {s.trades} (wins {s.wins}, losses {s.losses}); win rate {s.win_rate:.1%}, Wilson lower bound "
          f"{s.win_rate_lower_bound:.1%}")
    print(f"  avg win {s.avg_win:.3%}, avg loss {s.avg_loss:.3%}, profit factor {_fmt(s.profit_factor)}, "
          f"expectancy {s.expectancy:.3%} per trade after costs")
    print(f"  best regime {s.best_regime or '-'}; best cycle phase {s.best_cycle_phase or '-'}")
    for key in ("selection", "p_value", "p_permutation", "trained_from", "trained_until", "outcomes_until"):
        if e.meta.get(key) is not None:
            print(f"  {key.replace('_', ' ')}: {e.meta[key]}")
    print("  history: " + ", ".join(f"{pd.Timestamp(h.ts_ms, unit='ms', tz='UTC'):%Y-%m-%d %H:%M} {h.event}" for h in e.history))
    training, live = pattern_trades(db, e.name)
    print(f"  training trades ({len(training)}):")
    for entry, exit_reason, net, regime in training:
        print(f"    {entry}  exit {exit_reason}  {net:+.3%}  {regime}")
    print(f"  live/paper trades ({len(live)}):")
    for t in live:
        counted = f"  net {t['net_return']:+.3%}" if t.get("net_return") is not None else ""
        print(f"    {pd.Timestamp(t['ts'], unit='ms', tz='UTC')}  {t['side']}  {t['status']}  pnl {t['pnl_usd']}{counted}  {t['exit_reason']}")
    return 0


ACTIONS: dict[str, Callable[[argparse.Namespace, AppConfig], int]] = {"mine": mine, "list": list_library, "show": show}
