"""``aster-rl brain``: the master-brain report for the newest stored bar (or ``--at TIME``)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any


from aster_rl.config import AppConfig
from aster_rl.data.timeframes import parse_utc_time
from aster_rl.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser(
        "brain",
        help="print the master-brain report: every tentacle's reading for one bar",
        description="Load the market from the database, compute the tentacles and print, for the newest bar "
        "or --at TIME, every tentacle's reading, the strategy suggestion, the regime, the cycle phase and "
        "the multi-timeframe alignment. --json writes the same as a machine-readable context file. With --run, the "
        "policy's decision (WAIT, with the columns, when the bar lies outside its training support) and the run's "
        "deployment gate.",
    )
    p.add_argument("--at", metavar="TIME", help="report on the newest bar opening at or before TIME (UTC), e.g. 2025-04-01T12:00")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")
    p.add_argument("--run", metavar="RUN_DIR", help="a training run directory: add its policy's decision to the report")
    p.add_argument("--ensemble", nargs="+", metavar="RUN_DIR",
                   help="instead of --run: two or more seed runs of one design, decided as one ensemble "
                   "(WAIT, saying so, when fewer than a majority pick its side)")
    p.add_argument("--trust-run", action="store_true", help="load a run saved in the older pickled format (runs code stored in it: only for runs you made)")
    p.set_defaults(func=run)


def policy_decision(run_dir: Path | list[str] | None, market: Any, features: Any, report: Any, config: AppConfig,
                    trust_run: bool = False) -> Any:
    """Hook for the policy's decision (a ``BrainDecision``) from the checkpoint in ``run_dir`` (or the
    ensemble of the runs it lists).

    Returns None when there is no checkpoint to ask; the report then says
    "no policy checkpoint given".
    """
    if run_dir is None:
        return None
    from agents.decision import brain_decision
    from aster_rl.features.brain import BrainDecision

    row = int(features.index.get_loc(report.time))
    d = brain_decision(run_dir, market, features, row, trust_run=trust_run)
    keys = ("side", "leverage", "profile", "entry", "stop", "target", "confidence", "reasoning", "side_probabilities",
            "leverage_probability", "profile_probability", "entropy", "support")
    return BrainDecision(**{k: d[k] for k in keys})


def run(args: argparse.Namespace, config: AppConfig) -> int:
    from aster_rl.features.brain import brain_report
    from aster_rl.features.pipeline import build_features
    from aster_rl.storage import Database, load_market

    at = parse_utc_time(args.at, "--at") if args.at else None
    db = Database.from_config(config.data)
    market = load_market(db, config.data, end=at)
    if len(market.candles) == 0:
        raise DataError(
            f"no {config.data.symbol} {config.data.timeframe} candles from source {config.data.source!r} "
            f"in {db.display_url}" + (f" up to {at}" if at is not None else "")
            + "; run `aster-rl data synth` or `aster-rl data download` first"
        )
    features = build_features(market, config.features)
    report = brain_report(market, features, at, config.features)
    if args.run and args.ensemble:
        raise ConfigError("give --run RUN_DIR or --ensemble RUN_DIR RUN_DIR..., not both")
    run_dir = Path(args.run) if args.run else None
    runs = [Path(r) for r in args.ensemble] if args.ensemble else ([run_dir] if run_dir else [])
    decision = policy_decision(list(args.ensemble) if args.ensemble else run_dir, market, features, report, config,
                               trust_run=args.trust_run)
    report = report.with_decision(decision)
    print(report.to_text())
    if runs:
        from agents.gate import gate_status

        for r in runs:  # an ensemble is not judged as one here: each member's own gate
            print(gate_status(r))
    if decision is None and not runs:
        logger.info("no policy checkpoint given (use --run RUN_DIR)")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        print(f"wrote {path}")
    return 0
