"""``aster-rl report``: execute the notebooks and write a rendered copy (HTML + PNG figures).

For people who will not open Jupyter: ``reports/<notebook>.html`` (self-contained, images
inlined), ``reports/figures/<notebook>_<figure>.png`` and the executed notebooks in
``reports/notebooks/``. The quickstart (the whole loop on a small market) trains its own run
with its own database in a new temporary folder; the other notebooks read the configured
checkpoints and database.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from aster_rl.config import AppConfig
from aster_rl.errors import DataError

NOTEBOOK_NAMES = ("quickstart", "evaluate", "tentacles", "live", "research")
DEFAULT_NOTEBOOKS = NOTEBOOK_NAMES[:4]  # research reads the shared real data and trains for long: on request


def register(sub) -> None:
    p = sub.add_parser("report", help="execute the notebooks (quickstart, evaluate, tentacles, live; research on request) "
                                      "and write HTML pages and PNG figures")
    p.add_argument("--run", help="a run directory (default: the newest run under train.checkpoint_dir, "
                                 "or a tiny run trained now when there is none)")
    p.add_argument("--out", default="reports", help="output directory (default: reports/)")
    p.add_argument("--notebooks", nargs="+", choices=NOTEBOOK_NAMES, default=list(DEFAULT_NOTEBOOKS),
                   help="which notebooks (default: all but research, which needs the shared real data and trains "
                        "a run and a walk-forward on it: minutes to an hour)")
    p.add_argument("--timeout", type=float, default=1_800, help="seconds allowed per notebook cell (default 1800)")
    p.add_argument("--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
                   help="an extra notebook parameter as a Python literal, e.g. --param range_bars=288 (repeatable)")
    p.set_defaults(func=run)


def parse_params(items: list[str]) -> dict:
    import ast

    out = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise DataError(f"--param {item!r}: expected NAME=VALUE, e.g. range_bars=288")
        try:
            out[name.strip()] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            out[name.strip()] = raw.strip()
    return out


def notebook_parameters(name: str, args, config: AppConfig) -> dict:
    if name in ("quickstart", "research"):  # train their own runs, with their own database, in a new temporary folder
        return {"checkpoint_dir": None, "data_dir": None}
    common = {"checkpoint_dir": str(config.train.checkpoint_dir), "data_dir": str(config.data.data_dir), "run": args.run}
    if name == "live":
        common["database_url"] = config.data.database_url
    return common


def run(args: argparse.Namespace, config: AppConfig) -> int:
    from nbclient.exceptions import CellExecutionError

    from agents.notebooks import NOTEBOOK_DIR, execute_notebook, render_html, save_images

    out = Path(args.out)
    extra = parse_params(args.params)
    for name in args.notebooks:
        started = time.perf_counter()
        params = {**notebook_parameters(name, args, config), **extra}
        source = NOTEBOOK_DIR / f"{name}.ipynb"
        if not source.exists():
            raise DataError(f"notebook {source} does not exist")
        executed = out / "notebooks" / f"{name}.ipynb"
        try:
            nb = execute_notebook(source, params, executed, timeout=args.timeout, cwd=Path.cwd())
        except CellExecutionError as e:
            last = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise DataError(f"notebook {name} failed: {last} (the partly executed copy is {executed})") from None
        html = render_html(nb, out / f"{name}.html")
        figures = save_images(nb, out / "figures", prefix=f"{name}_")
        print(f"{name}: {html} and {len(figures)} figures in {out / 'figures'} ({time.perf_counter() - started:.0f} s)")
    return 0
