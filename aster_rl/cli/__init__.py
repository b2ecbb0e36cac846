"""The ``aster-rl`` command: the composition root.

Each command is a noun with a module ``<noun>_cmd.py`` in this package: ``register(subparsers)``
adds its parser (a noun with several actions, e.g. ``data synth|import|download``, gets one
subparser per action) and ``run(args, config) -> int`` runs it. The handlers import heavy or
outer-layer code (``envs``, ``agents``) lazily, inside the command that needs it. This package is the only part of ``aster_rl`` allowed to import
``envs`` and ``agents``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

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
    "tune_cmd",
    "demo_cmd",
    "report_cmd",
    "live_cmd",
    "predictions_cmd",
    "dashboard_cmd",
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


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _os_error_text(e: OSError) -> str:
    where = f": {e.filename}" if e.filename else ""
    return f"{e.strerror or e}{where}"


def main(argv: list[str] | None = None) -> int:
    """Run one command. A failure the user can cause prints one line and returns 2; ``-v`` adds the traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    prefix = f"aster-rl {args.command}"
    try:
        config: AppConfig = load_config(args.config, args.overrides)
        result = args.func(args, config)
    except AsterError as e:
        _report(args, f"{prefix}: error: {_one_line(str(e))}")
        return 2
    except OSError as e:  # a path the user named cannot be read or written
        _report(args, f"{prefix}: error: {_one_line(_os_error_text(e))}")
        return 2
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: still one line, the traceback with -v
        _report(args, f"{prefix}: internal error: {type(e).__name__}: {_one_line(str(e))} (run with -v for the traceback)")
        return 1
    return int(result or 0)


def _report(args, line: str) -> None:
    if args.verbose:
        traceback.print_exc(file=sys.stderr)
    print(line, file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
