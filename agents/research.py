"""Walk-forward on the shared real markets, as rows and a table (``benchmarks/bench_real.py`` and
``notebooks/research.ipynb``), optionally with each fold's seed ensemble as a row of its own.

For each (fold, seed) run of :func:`agents.walkforward.walkforward`: the test dates, the net
return and the excess over ``exposure_matched`` with their intervals, trades per month, mean
exposure, the out-of-support share, the break-even move per trade beside the move captured
(:func:`aster_rl.evaluation.metrics.trade_costs`), and the deployment gate's decision (judged
on the fold's validation dates, never its test).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from aster_rl.config import AppConfig, load_config, replace
from aster_rl.data.real import CONTRACTS, contract_settings, real_market
from aster_rl.data.timeframes import TimeRange
from aster_rl.paths import project_root, real_data_dir
from aster_rl.evaluation.metrics import trade_costs

from agents.data import build_dataset
from agents.gate import read_gate
from agents.run_dir import RunDir
from agents.walkforward import ENSEMBLE_SEED, walkforward

MONTH = pd.Timedelta(days=30.4375)
REAL_CONFIG = project_root() / "configs" / "real.toml"


def add_real_arguments(parser: argparse.ArgumentParser, timesteps_help: str) -> None:
    """The real-data benchmarks' shared options: ``--timesteps --set --data --json --keep``."""
    parser.add_argument("--timesteps", type=int, help=timesteps_help)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="config override on top of configs/real.toml (repeatable)")
    parser.add_argument("--data", type=Path, default=None, help="real data folder (default: $ASTER_REAL_DATA or ../shared/data/real)")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument("--keep", type=Path, help="keep the runs in this folder (default: a temporary one)")


def real_settings(args: argparse.Namespace) -> tuple[Path, AppConfig] | None:
    """The data folder and ``configs/real.toml`` with ``--set`` and ``--timesteps`` applied; None (after
    saying so) when the folder is missing."""
    data_dir = (args.data or real_data_dir()).resolve()
    if not data_dir.is_dir():
        print(f"skipped: no real data in {data_dir}")
        return None
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message=".*no funding series.*")
    base = load_config(REAL_CONFIG, args.sets)
    if args.timesteps:
        base = replace(base, train={"total_timesteps": args.timesteps})
    return data_dir, base


def real_config(base: AppConfig, name: str, checkpoint_dir: str | Path) -> AppConfig:
    """``base`` for the shared real market ``name``: its contract's settings, runs named after it."""
    return replace(base, **contract_settings(name),
                   train={"name": f"real_{name.lower()}", "checkpoint_dir": str(checkpoint_dir)})


def run_row(run: dict[str, Any]) -> dict[str, Any]:
    """One walk-forward run with its test intervals, trade economics and gate decision."""
    rd = RunDir(run["run_dir"])
    results = json.loads(rd.eval.results.read_text())
    agent = results["agent"]
    trades = pd.read_csv(rd.eval.trades("agent"))
    first, last = pd.Timestamp(run["test_first_bar"]), pd.Timestamp(run["test_last_bar"])
    months = max((last - first) / MONTH, 1e-9)
    costs = trade_costs(*(trades[c].to_numpy() if len(trades) else [] for c in
                          ("entry_price", "qty", "pnl_usd", "fees_usd", "funding_usd", "slippage_usd")))
    gate = read_gate(rd)  # a fold ensemble's folder holds its gate record too
    return {
        "fold": run["fold"], "seed": run["seed"], "test_first_bar": run["test_first_bar"], "test_last_bar": run["test_last_bar"],
        "net_return": agent["metrics"]["net_return"], "net_ci": agent.get("ci_net_return"),
        "excess_em": results["excess"].get("exposure_matched"), "excess_flat": results["excess"].get("flat"),
        "edge": bool(results["flags"].get("edge", False)),
        "trades_per_month": agent["metrics"]["trades"] / months, "exposure": agent["metrics"]["exposure"],
        "funding_usd": agent["metrics"]["funding_usd"], **costs,
        "out_of_support": (results.get("support") or {}).get("share"),
        "deployable": bool(gate and gate.deployable), "gate": gate.line() if gate else "no gate record",
    }


def _ci(ci: dict[str, Any] | None) -> str:
    return "n/a" if not ci else f"{float(ci['estimate']):+.2%} [{float(ci['low']):+.2%}, {float(ci['high']):+.2%}]"


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(float(x)) else f"{float(x):.0%}"


def _bps(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:+.1f}"


def _gate_count(rows: list[dict[str, Any]], what: str) -> str:
    deployed = [r for r in rows if r["deployable"]]
    below = [r for r in deployed if r["net_ci"] and float(r["net_ci"]["high"]) < 0]
    return (f"deploys {len(deployed)} of {len(rows)} {what}; of those, {len(below)} with a test "
            "net-return interval entirely below flat")


def walkforward_table(name: str, rows: list[dict[str, Any]], summary: dict[str, Any],
                      ensembles: list[dict[str, Any]] | None = None, ensemble_summary: dict[str, Any] | None = None) -> str:
    """The runs' rows (each fold's ensemble row, seed ``ens``, after its seeds), the walk-forward verdict and
    the gate's deployments; the ensembles' own verdict and deployments when given."""
    lines = [f"{'fold':>4} {'seed':>4} {'test dates':<23} {'net return [CI]':<31} {'excess/exposure_matched [CI]':<31} "
             f"{'trades/mo':>9} {'expo':>5} {'OOS':>5} {'b-e bps':>8} {'capt bps':>8} gate"]
    ensembles = ensembles or []
    for r in sorted(rows + ensembles, key=lambda r: (r["fold"], r["seed"] == ENSEMBLE_SEED)):  # a fold's ens last
        lines.append(
            f"{r['fold']:>4} {r['seed']:>4} {r['test_first_bar'][:10] + ' .. ' + r['test_last_bar'][:10]:<23} "
            f"{_ci(r['net_ci']):<31} {_ci(r['excess_em']):<31} {r['trades_per_month']:>9.0f} {r['exposure']:>5.0%} {_pct(r['out_of_support']):>5} "
            f"{_bps(r['break_even_bps']):>8} {_bps(r['captured_bps']):>8} {'deploy' if r['deployable'] else 'abstain'}")
    lines.append(f"{name} walk-forward verdict: {summary['verdict']}")
    lines.append(f"{name} gate: {_gate_count(rows, 'runs')}")
    if ensembles and ensemble_summary:
        lines.append(f"{name} ensemble walk-forward verdict: {ensemble_summary['verdict']}")
        lines.append(f"{name} ensemble gate: {_gate_count(ensembles, 'fold ensembles')}")
        lines += [f"{name} fold {r['fold']} ensemble gate: {r['gate']}" for r in ensembles]
    return "\n".join(lines)


def walkforward_market(name: str, base: AppConfig, out: Path, data_dir: Path | None = None, *,
                       timerange: TimeRange | None = None, dataset: Any = None, ensemble: bool = False,
                       echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Walk-forward on the shared real market ``name`` (runs under ``out``; folds cut inside ``timerange``):
    its summary, rows and table, each step announced through ``echo``. ``dataset``: the market's, when built.
    ``ensemble``: each fold's seeds also as one ensemble, with its own rows and verdict."""
    cfg = real_config(base, name, out)
    ds = dataset if dataset is not None else build_dataset(cfg, market=real_market(name, data_dir))
    market = ds.market
    funding = "real 8-hourly funding" if market.funding is not None else "no funding in the files (taken as zero)"
    echo(f"\n== {market.symbol} 5m {ds.index[0]:%Y-%m-%d} .. {ds.index[-1]:%Y-%m-%d}: {len(ds)} bars, "
          f"{ds.matrix.shape[1]} features; {funding}")
    started = time.perf_counter()
    result = walkforward(cfg, ds, out_dir=out / f"{name}__walkforward", timerange=timerange, ensemble=ensemble)
    rows = [run_row(r) for r in result.runs]
    ens_rows = [run_row(r) for r in result.ensembles]
    table = walkforward_table(name, rows, result.summary, ens_rows, result.ensemble_summary)
    echo(table)
    seconds = time.perf_counter() - started
    echo(f"{name}: {seconds:.0f} s")
    out_rows: dict[str, Any] = {"market": name, "symbol": market.symbol, "summary": result.summary, "runs": rows,
                                "table": table, "out_dir": str(result.out_dir), "seconds": seconds}
    if ensemble:
        out_rows.update(ensemble_summary=result.ensemble_summary, ensembles=ens_rows)
    return out_rows




def walkforward_intervals(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Each run's test net return and excess over ``exposure_matched`` with their intervals, as
    :func:`aster_rl.evaluation.reporting.interval_frame` shapes them (for :func:`agents.plots.intervals`)."""
    out = []
    for r in rows:
        for stat, ci in (("net_return", r["net_ci"]), ("excess_over_exposure_matched", r["excess_em"])):
            if ci:
                out.append({"strategy": f"fold {r['fold']} seed {r['seed']}", "statistic": stat,
                            **{k: float(ci[k]) for k in ("estimate", "low", "high", "confidence")}})
    return pd.DataFrame(out, columns=["strategy", "statistic", "estimate", "low", "high", "confidence"])


def shared_overview(data_dir: Path | None = None) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """The shared real markets at a glance (bars, dates, funding) and their closes."""
    rows, closes = [], {}
    for name in CONTRACTS:
        m = real_market(name, data_dir)
        f = m.funding["funding_rate"] if m.funding is not None else None
        rows.append({
            "market": m.symbol, "bars": len(m), "first bar": m.candles.index[0], "last bar": m.candles.index[-1],
            "move": m.candles["close"].iloc[-1] / m.candles["close"].iloc[0] - 1,
            "funding settlements": 0 if f is None else len(f),
            "mean funding per settlement": math.nan if f is None else float(f.mean()),
            "share of settlements longs paid": math.nan if f is None else float((f > 0).mean()),
        })
        closes[name] = m.candles["close"]
    return pd.DataFrame(rows).set_index("market"), closes
