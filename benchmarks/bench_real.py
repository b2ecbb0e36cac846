"""Real-data benchmark: date-based walk-forward on the shared real 5m data, with the gate's decision per run.

Markets (:mod:`aster_rl.data.real`): ASTER/USDT (2025-09-19 → 2025-11-30, no funding in the
files: taken as zero) and the Binance BTC, ETH, LTC perps (2023-01 → 2024-05, real 8-hourly
funding). Each market is cut into ``eval.walkforward_folds`` chronological blocks, each with
its own train / validation / test dates (:func:`agents.walkforward.walkforward`); every fold
trains ``eval.walkforward_seeds`` seeds. Per run it prints the test dates, the net return
and the excess over ``exposure_matched`` with their intervals, trades per month, mean
exposure, the break-even move per trade beside the move captured, and the deployment gate's
decision (judged on the fold's validation dates, never its test). Per market: the
walk-forward verdict over folds, and how the runs the gate would deploy did on their tests.
Net of fees, calibrated slippage and funding where the data has it.

Settings: ``configs/real.toml``; vary a design choice with ``--set section.key=value``.
Data: ``--data DIR``, else ``$ASTER_REAL_DATA``, else ``../shared/data/real`` beside the
project; skipped (exit 0) when absent.

    .venv/bin/python benchmarks/bench_real.py [--markets ASTER BTC ETH LTC] [--timesteps N] [--set k=v ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from aster_rl.config import AppConfig, load_config, replace
from aster_rl.data.real import CONTRACTS, REAL_MARKETS, real_market
from aster_rl.evaluation.metrics import trade_costs
from aster_rl.paths import project_root, real_data_dir

from agents.data import build_dataset
from agents.evaluate import jsonable
from agents.gate import read_gate
from agents.run_dir import RunDir
from agents.walkforward import walkforward

CONFIG = project_root() / "configs" / "real.toml"
MONTH = pd.Timedelta(days=30.4375)


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
    gate = read_gate(rd)
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


def market_table(name: str, rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = [f"{'fold':>4} {'seed':>4} {'test dates':<23} {'net return [CI]':<31} {'excess/exposure_matched [CI]':<31} "
             f"{'trades/mo':>9} {'expo':>5} {'OOS':>5} {'b-e bps':>8} {'capt bps':>8} gate"]
    for r in rows:
        lines.append(
            f"{r['fold']:>4} {r['seed']:>4} {r['test_first_bar'][:10] + ' .. ' + r['test_last_bar'][:10]:<23} "
            f"{_ci(r['net_ci']):<31} {_ci(r['excess_em']):<31} {r['trades_per_month']:>9.0f} {r['exposure']:>5.0%} {_pct(r['out_of_support']):>5} "
            f"{_bps(r['break_even_bps']):>8} {_bps(r['captured_bps']):>8} {'deploy' if r['deployable'] else 'abstain'}")
    deployed = [r for r in rows if r["deployable"]]
    below = [r for r in deployed if r["net_ci"] and float(r["net_ci"]["high"]) < 0]
    lines.append(f"{name} walk-forward verdict: {summary['verdict']}")
    lines.append(f"{name} gate: deploys {len(deployed)} of {len(rows)} runs; of those, {len(below)} with a test "
                 "net-return interval entirely below flat")
    return "\n".join(lines)


def bench_market(name: str, base: AppConfig, out: Path, data_dir: Path) -> dict[str, Any]:
    market = real_market(name, data_dir)
    cfg = replace(base, env=CONTRACTS[name], train={"name": f"real_{name.lower()}", "checkpoint_dir": str(out)})
    ds = build_dataset(cfg, market=market)
    funding = "real 8-hourly funding" if market.funding is not None else "no funding in the files (taken as zero)"
    print(f"\n== {market.symbol} 5m {ds.index[0]:%Y-%m-%d} .. {ds.index[-1]:%Y-%m-%d}: {len(ds)} bars, "
          f"{ds.matrix.shape[1]} features; {funding}", flush=True)
    started = time.perf_counter()
    result = walkforward(cfg, ds, out_dir=out / f"{name}__walkforward")
    rows = [run_row(r) for r in result.runs]
    print(market_table(name, rows, result.summary))
    print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
    return {"market": name, "symbol": market.symbol, "summary": result.summary, "runs": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markets", nargs="+", default=list(REAL_MARKETS), choices=REAL_MARKETS, metavar="NAME")
    parser.add_argument("--timesteps", type=int, help="PPO steps per run (default: configs/real.toml)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="config override on top of configs/real.toml (repeatable)")
    parser.add_argument("--data", type=Path, default=None, help="real data folder (default: $ASTER_REAL_DATA or ../shared/data/real)")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument("--keep", type=Path, help="keep the runs in this folder (default: a temporary one)")
    args = parser.parse_args()
    data_dir = (args.data or real_data_dir()).resolve()
    if not data_dir.is_dir():
        print(f"skipped: no real data in {data_dir}")
        return 0
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message=".*no funding series.*")
    base = load_config(CONFIG, args.sets)
    if args.timesteps:
        base = replace(base, train={"total_timesteps": args.timesteps})
    print(f"settings: {CONFIG.name}{' + ' + ', '.join(args.sets) if args.sets else ''}; "
          f"{base.eval.walkforward_folds} folds x {base.eval.walkforward_seeds} seeds, {base.train.total_timesteps} steps per run")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        results = [bench_market(name, base, out, data_dir) for name in args.markets]
    if args.json:
        args.json.write_text(json.dumps(jsonable({"settings": args.sets, "timesteps": base.train.total_timesteps,
                                                  "markets": results}), indent=2))
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
