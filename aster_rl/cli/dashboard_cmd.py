"""``aster-rl dashboard``: serve the live dashboard on http://127.0.0.1:5001 (see :mod:`aster_rl.dashboard`).

One process, read-only on the configured database (``data.database_url``, else the SQLite
file under ``data.data_dir``): it never imports a broker and never touches the runner. Its
only write is a command row (pause / resume / flatten / stop) that a runner acts on at
its next bar, posted with the token this command makes at every start; the terminal shows
only the path of the file holding it (mode 0600, under ``data.data_dir``). Bound to
127.0.0.1 unless ``--allow-remote``, which also makes every ``/api`` route need the token.
"""

from __future__ import annotations

import argparse
import functools
import socket
from typing import Any

from aster_rl.config import AppConfig

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(sub) -> None:
    p = sub.add_parser(
        "dashboard", help="serve the live dashboard (price, decisions, position, guard, runs; read-only, controls with a token)",
        description="Serves the live dashboard on http://HOST:PORT/ from the configured database, read-only. The controls "
        "(pause, resume, flatten, stop) need the token written at start-up to a 0600 file under data.data_dir: paste it "
        "into the page's Controls tab (kept in that browser tab only). Needs the dashboard extra: pip install -e '.[dashboard]'.",
    )
    p.add_argument("--port", type=int, default=5001, help="TCP port (default 5001)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need --allow-remote)")
    p.add_argument("--allow-remote", action="store_true",
                   help="serve other addresses and Host names; every API route then needs the token (use TLS in front of it)")
    p.set_defaults(func=run)


def run_listing(checkpoint_dir: Any) -> list[dict[str, Any]]:
    """The stored runs, newest first, with their gate line and saved evaluations (read-only)."""
    from agents.gate import gate_status
    from agents.run_dir import RunDir
    from aster_rl.errors import AsterError

    out = []
    for rd in RunDir.all(checkpoint_dir)[:200]:
        try:
            gate = gate_status(rd).removeprefix("gate: ")
        except AsterError as e:
            gate = f"unreadable: {e}"
        evals = sorted(p.name for p in rd.path.iterdir() if p.is_dir() and (p / "results.json").is_file())
        out.append({"name": rd.name, "created_at": rd.created_at(), "gate": gate, "evaluations": evals})
    return out


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise OSError(e.errno, f"cannot serve on {host}:{port}: {e.strerror} (choose another --port)") from None


def run(args: argparse.Namespace, config: AppConfig) -> int:
    from aster_rl.errors import ConfigError

    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: must be between 1 and 65535")
    if args.host not in LOOPBACK and not args.allow_remote:
        raise ConfigError(f"--host {args.host}: serving beyond this machine needs --allow-remote (every API route then needs the token)")
    try:
        import uvicorn

        from aster_rl.dashboard.app import create_app
    except ImportError as e:
        raise ConfigError(f"the dashboard needs the dashboard extra ({e.name} is missing): pip install -e '.[dashboard]'") from None
    from aster_rl.dashboard.auth import new_token, write_token
    from aster_rl.dashboard.queries import DashboardStore, Market
    from aster_rl.live.risk import live_settings
    from aster_rl.storage import Database

    url = config.data.resolved_database_url()
    reader = Database(url, read_only=True)
    reader.check_schema()
    writer = Database(url)  # commands only (DashboardStore.add_command)
    checkpoint_dir = config.train.checkpoint_dir

    @functools.cache
    def gate_of(run_name: str) -> str | None:
        return next((r["gate"] for r in run_listing(checkpoint_dir) if r["name"] == run_name), None)

    def parity_of(session_id: str) -> dict[str, Any]:
        from agents.parity import session_parity

        return session_parity(config, reader, session_id, wait_outside_support=live_settings(config).wait_outside_support)

    store = DashboardStore(reader, Market.of(config.data), writer=writer, initial_equity_usd=config.env.initial_equity_usd,
                           gate_of=gate_of, runs=lambda: run_listing(checkpoint_dir), kill_file=live_settings(config).kill_file,
                           parity=parity_of)
    _check_port_free(args.host, args.port)
    token = new_token()
    token_file = write_token(config.data.data_dir, token)
    app = create_app(store, token=token, allow_remote=args.allow_remote)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"dashboard: http://{shown}:{args.port}/  ({reader.display_url}, read-only); controls need the token in {token_file}",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
