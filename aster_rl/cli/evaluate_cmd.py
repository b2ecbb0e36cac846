"""``aster-rl evaluate RUN``: the trained policy on the test split beside the baselines."""

from __future__ import annotations

from aster_rl.config import AppConfig


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a trained run on its test split against the baselines")
    p.add_argument("run", help="a run directory, or 'latest'")
    p.add_argument("--model", choices=("best", "last"), default="best",
                   help="which checkpoint: best by validation net PnL (default) or the last one")
    p.add_argument("--trust-run", action="store_true", help="load a run saved in the older pickled format (runs code stored in it: only for runs you made)")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args, config: AppConfig) -> int:
    from agents.evaluate import evaluate_run

    report = evaluate_run(args.run, config, which=args.model, trust_run=args.trust_run)
    print(report.table())
    print(f"results: {report.run_dir / 'eval'} (results.json, equity_<name>.csv, trades_<name>.csv)")
    return 0
