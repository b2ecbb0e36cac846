"""Synthesis speed and calibration: the synthetic market beside the real ASTER candles.

Prints bars/s for synthesizing one year of 5m bars (the whole bundle: candles, funding,
trades, book, BTC/ETH), then a table of :func:`aster_rl.data.synthetic.market_summary` for
synthetic 5m and 15m markets of the same length as the real data, next to the real ASTER
5m and 15m candles in ``../shared/data/real`` (columns skipped when the files are absent).
Target: >= 200k bars/s.

    .venv/bin/python benchmarks/bench_synth.py [--seeds 7 11] [--real-dir PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from aster_rl.config import SynthConfig
from aster_rl.data.synthetic import market_summary, synthesize
from aster_rl.data.timeframes import resample_candles

TARGET_BARS_PER_S = 200_000
YEAR_5M = 365 * 288
DEFAULT_REAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def load_real(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    frame = pd.read_csv(path)
    frame.index = pd.to_datetime(frame.pop("timestamp"), unit="ms", utc=True)
    return frame


def time_synthesis(n_bars: int, repeats: int = 3) -> float:
    best = float("inf")
    for seed in range(repeats):
        t0 = time.perf_counter()
        synthesize(SynthConfig(seed=seed, n_bars=n_bars))
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11])
    parser.add_argument("--real-dir", type=Path, default=DEFAULT_REAL_DIR)
    args = parser.parse_args()

    synthesize(SynthConfig(n_bars=1_000))  # warm-up (imports, first allocations)
    seconds = time_synthesis(YEAR_5M)
    rate = YEAR_5M / seconds
    verdict = "meets" if rate >= TARGET_BARS_PER_S else "BELOW"
    print(f"synthesis: {YEAR_5M:,} 5m bars (one year, full bundle) in {seconds:.3f} s = {rate:,.0f} bars/s "
          f"({verdict} the {TARGET_BARS_PER_S:,} bars/s target)")

    columns: dict[str, dict[str, float]] = {}
    real_5m = load_real(args.real_dir / "ASTERUSDT_5m.csv")
    real_15m = load_real(args.real_dir / "ASTERUSDT_15m.csv")
    n_5m = len(real_5m) if real_5m is not None else 72 * 288
    for seed in args.seeds:
        candles = synthesize(SynthConfig(seed=seed, n_bars=n_5m)).candles
        columns[f"synth 5m s{seed}"] = market_summary(candles)
        columns[f"synth 15m s{seed}"] = market_summary(resample_candles(candles, "5m", "15m"))
    if real_5m is not None:
        columns["real 5m"] = market_summary(real_5m)
    if real_15m is not None:
        columns["real 15m"] = market_summary(real_15m)
    if real_5m is None and real_15m is None:
        print(f"(no real ASTER data in {args.real_dir}; synthetic columns only)")

    table = pd.DataFrame(columns)
    print(f"\nmarket_summary, {n_5m:,} 5m bars per synthetic market (same span as the real data):")
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print(table)
    if real_5m is not None:
        print("\nratio synthetic / real (5m, mean over seeds):")
        synth = table[[c for c in table.columns if c.startswith("synth 5m")]].mean(axis=1)
        print((synth / table["real 5m"]).map("{:.2f}".format).to_string())


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
