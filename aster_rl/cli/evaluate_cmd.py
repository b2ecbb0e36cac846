"""``aster-rl evaluate RUN``: the trained policy on the test split (or a later time range) beside the baselines.

``aster-rl evaluate --ensemble RUN RUN [RUN...]``: seed runs of one design acting as one policy
(:mod:`agents.ensemble`), judged the same way on their shared test split; the report is printed,
not saved.
"""

from __future__ import annotations

import argparse
from aster_rl.config import AppConfig


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a trained run on its test split against the baselines")
    p.add_argument("run", nargs="?", help="a run directory, or 'latest'")
    p.add_argument("--ensemble", nargs="+", metavar="RUN",
                   help="instead of RUN: two or more runs trained alike with different seeds, acting as one policy "
                   "(the mean of their action heads, WAIT when they disagree)")
    p.add_argument("--agreement", type=int, metavar="N",
                   help="with --ensemble: members that must pick the ensemble's side, else WAIT (default: a strict majority)")
    p.add_argument("--model", choices=("best", "last"), default="best",
                   help="which checkpoint: the best on validation (by train.select_by; default) or the last one")
    p.add_argument(
        "--timerange", metavar="START-END",
        help="evaluate on the bars in this UTC range instead of the test split, e.g. 20251101-20251201 (YYYYMMDD, "
        "either side may be empty, the end excluded); refused unless its first bar comes after every bar the run "
        "trained or was validated on (the features may look back before it). The report goes to RUN/eval_START-END/",
    )
    p.add_argument("--trust-run", action="store_true", help="load a run saved in the older pickled format (runs code stored in it: only for runs you made)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: AppConfig) -> int:
    from agents.evaluate import evaluate_run
    from agents.run_dir import RunDir
    from aster_rl.data.timeframes import parse_timerange
    from aster_rl.errors import ConfigError

    if (args.run is None) == (args.ensemble is None):
        raise ConfigError("give one RUN or --ensemble RUN RUN [RUN...]" + (", not both" if args.run else ""))
    if args.agreement is not None and args.ensemble is None:
        raise ConfigError(f"--agreement {args.agreement}: only with --ensemble")
    timerange = parse_timerange(args.timerange) if args.timerange else None
    if args.ensemble is not None:
        from agents.ensemble import evaluate_ensemble

        report = evaluate_ensemble(args.ensemble, config, which=args.model, agreement=args.agreement,
                                   trust_run=args.trust_run, timerange=timerange)
        print(f"ensemble of {len(args.ensemble)} runs: {', '.join(args.ensemble)}")
        print(report.table())
        return 0
    report = evaluate_run(args.run, config, which=args.model, trust_run=args.trust_run, timerange=timerange)
    print(report.table())
    if report.run_dir is not None:
        rd = RunDir(report.run_dir)
        ev = rd.eval if timerange is None else rd.eval_range(str(timerange))
        print(f"results: {ev.path} ({ev.results.name}, {ev.equity('<name>').name}, {ev.trades('<name>').name})")
    return 0
