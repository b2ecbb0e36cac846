"""``aster-rl config show``: print the resolved configuration (never any secret)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from aster_rl.config import AppConfig, load_secrets, to_toml


def register(sub) -> None:
    p = sub.add_parser("config", help="show the resolved configuration")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("show", help="print the resolved configuration as TOML")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: AppConfig) -> int:
    return ACTIONS[args.action](args, config)


def show(args: argparse.Namespace, config: AppConfig) -> int:
    print(to_toml(config), end="")
    secrets = load_secrets()
    print(f"# secrets from the environment: private key {'set (hidden)' if secrets.has_trading_keys else 'not set'}")
    return 0


ACTIONS: dict[str, Callable[[argparse.Namespace, AppConfig], int]] = {"show": show}
