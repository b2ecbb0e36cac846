"""Real-data benchmark: date-based walk-forward on the shared real 5m data, with the gate's decision per run.

Markets (:mod:`aster_rl.data.real`): ASTER/USDT (2025-09-19 → 2025-11-30, no funding in the
files: taken as zero) and the Binance BTC, ETH, LTC perps (2023-01 → 2024-05, real 8-hourly
funding). Each market is cut into ``eval.walkforward_folds`` chronological blocks, each with
its own train / validation / test dates (:func:`agents.walkforward.walkforward`); every fold
trains ``eval.walkforward_seeds`` seeds. Per run it prints the test dates, the net return
and the excess over ``exposure_matched`` with their intervals, trades per month, mean
exposure, the break-even move per trade beside the move captured, and the deployment gate's
decision (judged on the fold's validation dates, never its test). Per market: the
walk-forward verdict over folds, and how the runs the gate would deploy did on their tests.
With ``--ensemble`` each fold's seeds are also judged as one ensemble (a row per fold labelled
``ens``, with its own verdict over the folds and its gate's decisions).
Net of fees, calibrated slippage and funding where the data has it.

Settings: ``configs/real.toml``; vary a design choice with ``--set section.key=value``.
Data: ``--data DIR``, else ``$ASTER_REAL_DATA``, else ``../shared/data/real`` beside the
project; skipped (exit 0) when absent.

    .venv/bin/python benchmarks/bench_real.py [--markets ASTER BTC ETH LTC] [--timesteps N] [--set k=v ...] [--ensemble] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from aster_rl.data.real import REAL_MARKETS

from agents.evaluate import jsonable
from agents.research import REAL_CONFIG, add_real_arguments, real_settings, walkforward_market



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markets", nargs="+", default=list(REAL_MARKETS), choices=REAL_MARKETS, metavar="NAME")
    add_real_arguments(parser, "PPO steps per run (default: configs/real.toml)")
    parser.add_argument("--ensemble", action="store_true",
                        help="also judge each fold's seeds as one ensemble (its rows labelled ens, its own verdict)")
    args = parser.parse_args()
    settings = real_settings(args)
    if settings is None:
        return 0
    data_dir, base = settings
    print(f"settings: {REAL_CONFIG.name}{' + ' + ', '.join(args.sets) if args.sets else ''}; "
          f"{base.eval.walkforward_folds} folds x {base.eval.walkforward_seeds} seeds, {base.train.total_timesteps} steps per run")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        results = [walkforward_market(name, base, out, data_dir, ensemble=args.ensemble,
                                      echo=lambda line: print(line, flush=True)) for name in args.markets]
    if args.json:
        args.json.write_text(json.dumps(jsonable({"settings": args.sets, "timesteps": base.train.total_timesteps,
                                                  "ensemble": args.ensemble, "markets": results}), indent=2))
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
