"""``aster-rl walkforward``: K chronological folds x seeds, each trained and tested on its own fold."""

from __future__ import annotations

import argparse
import sys

from aster_rl.config import AppConfig, replace


def register(sub) -> None:
    p = sub.add_parser("walkforward", help="train and test on K chronological folds with several seeds")
    p.add_argument("--folds", type=int, help="number of folds (default: eval.walkforward_folds)")
    p.add_argument("--seeds", type=int, help="seeds per fold (default: eval.walkforward_seeds)")
    p.add_argument("--timesteps", type=int, help="training steps per fold and seed (default: train.total_timesteps)")
    p.add_argument("--timerange", metavar="START-END",
                   help="cut the folds inside this UTC range, e.g. 20250601-20251101 (YYYYMMDD, either side may be empty, "
                   "the end excluded)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: AppConfig) -> int:
    from agents.data import build_dataset
    from agents.run_dir import WALKFORWARD_FILE
    from agents.walkforward import walkforward
    from aster_rl.data.timeframes import parse_timerange

    timerange = parse_timerange(args.timerange) if args.timerange else None
    ev = {}
    if args.folds is not None:
        ev["walkforward_folds"] = args.folds
    if args.seeds is not None:
        ev["walkforward_seeds"] = args.seeds
    tr = {"total_timesteps": args.timesteps} if args.timesteps is not None else {}
    config = replace(config, eval=ev, train=tr)
    dataset = build_dataset(config, progress=sys.stderr.isatty())
    result = walkforward(config, dataset, timerange=timerange)
    print(result.table())
    print(f"results: {result.out_dir / WALKFORWARD_FILE}")
    return 0
