"""``aster-rl walkforward``: K chronological folds x seeds, each trained and tested on its own fold.

With ``--storage`` (or ``--workers``) the (fold, seed) jobs are fanned out through a study
storage shared with ``aster-rl tune``: ``--workers K`` processes here, and the same command
on other machines with the same ``--storage`` takes jobs too; after a kill it resumes.
With ``--ensemble`` each fold's seeds are also judged as one ensemble (:mod:`agents.ensemble`),
rows of their own with their own verdict (fanned out: once every job has finished, from the
run directories, which must then be reachable from the machine that aggregates).
"""

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
    p.add_argument("--storage", metavar="URL",
                   help="fan the (fold, seed) jobs out through this study database, e.g. postgresql+psycopg://user@host/optuna "
                   "(default with --workers: $ASTER_TUNE_STORAGE); the same command elsewhere joins, and resumes after a kill")
    p.add_argument("--workers", type=int, help="worker processes on this machine for the fanned-out jobs (default: 1)")
    p.add_argument("--ensemble", action="store_true",
                   help="also judge each fold's seeds as one ensemble (mean of their action heads, WAIT when they disagree): "
                   "its test rows (seed ens), its gate verdict on the fold's validation split, its own verdict over the folds")
    p.add_argument("--heartbeat", type=int, default=10, metavar="S", help="a running job's worker beats every S seconds (default: 10)")
    p.add_argument("--grace", type=int, default=60, metavar="S",
                   help="a job not heard from for S seconds is failed and queued again (default: 60)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: AppConfig) -> int:
    from agents.data import build_dataset
    from agents.run_dir import WALKFORWARD_FILE
    from agents.walkforward import check_ensemble, walkforward
    from aster_rl.data.timeframes import parse_timerange
    from aster_rl.errors import ConfigError

    timerange = parse_timerange(args.timerange) if args.timerange else None
    ev = {}
    if args.folds is not None:
        ev["walkforward_folds"] = args.folds
    if args.seeds is not None:
        ev["walkforward_seeds"] = args.seeds
    tr = {"total_timesteps": args.timesteps} if args.timesteps is not None else {}
    config = replace(config, eval=ev, train=tr)
    fan_out = args.storage is not None or args.workers is not None
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: give at least 1")
    if args.ensemble:
        check_ensemble(config)  # before the data is built
    if fan_out and not 1 <= args.heartbeat < args.grace:
        raise ConfigError(f"--heartbeat {args.heartbeat} / --grace {args.grace}: need 1 <= heartbeat < grace (seconds)")
    dataset = build_dataset(config, progress=sys.stderr.isatty())
    if fan_out:
        from agents.tune import storage_url
        from agents.walkforward import FanoutSpec, walkforward_fanout
        from aster_rl.storage import display_url

        spec = FanoutSpec(config=config, storage=storage_url(args.storage), timerange=timerange,
                          heartbeat_s=args.heartbeat, grace_s=args.grace)
        print(f"walk-forward jobs: study {spec.study} in {display_url(spec.storage)}, {args.workers or 1} worker(s) here",
              file=sys.stderr)
        result = walkforward_fanout(spec, dataset, workers=args.workers or 1, ensemble=args.ensemble)
    else:
        result = walkforward(config, dataset, timerange=timerange, ensemble=args.ensemble)
    print(result.table())
    print(f"results: {result.out_dir / WALKFORWARD_FILE}")
    return 0
