"""The ``aster-rl`` command: the composition root.

Each subcommand lives in a module of this package with ``register(subparsers)``; the
handlers import heavy or outer-layer code (``envs``, ``agents``) lazily, inside the
command that needs it. This package is the only part of ``aster_rl`` allowed to import
``envs`` and ``agents``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from aster_rl.config import AppConfig, load_config
from aster_rl.errors import AsterError

logger = logging.getLogger(__name__)

# Explicit list, in help order: module name inside aster_rl.cli
COMMAND_MODULES = (
    "config_cmd",
    "db_cmd",
    "data_cmd",
    "features_cmd",
    "brain_cmd",
    "patterns_cmd",
    "train_cmd",
    "evaluate_cmd",
    "backtest_cmd",
    "walkforward_cmd",
    "demo_cmd",
    "report_cmd",
    "live_cmd",
    "predictions_cmd",
    "retrain_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aster-rl",
        description="Reinforcement-learning agent for the ASTER/USDT perpetual: data, features, training, evaluation, live.",
    )
    parser.add_argument("--config", metavar="PATH", help="TOML configuration file (defaults < file < --set)")
    parser.add_argument(
        "--set", dest="overrides", metavar="SECTION.KEY=VALUE", action="append", default=[],
        help="override one configuration value, e.g. --set train.learning_rate=1e-4 (repeatable)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"aster_rl.cli.{name}").register(sub)
    return parser


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        config: AppConfig = load_config(args.config, args.overrides)
        result = args.func(args, config)
    except AsterError as e:
        print(f"aster-rl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"aster-rl {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
