"""``aster-rl config show``: print the resolved configuration (never any secret)."""

from __future__ import annotations

from aster_rl.config import AppConfig, load_secrets, to_toml


def register(sub) -> None:
    p = sub.add_parser("config", help="show the resolved configuration")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    csub.required = True
    show = csub.add_parser("show", help="print the resolved configuration as TOML")
    show.set_defaults(func=show_config)


def show_config(args, config: AppConfig) -> int:
    print(to_toml(config), end="")
    secrets = load_secrets()
    print(f"# secrets from the environment: private key {'set (hidden)' if secrets.has_trading_keys else 'not set'}")
    return 0
