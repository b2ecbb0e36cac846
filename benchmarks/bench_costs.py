"""Per-side cost of a market order on the real ASTER/USDT 5m candles, by month: the old rule
(1 bp + 0.1 × qty / the bar's volume) beside the accounting core's fill cost (half-spread +
Y·σ_daily·√(Q / V_daily), default config; see :mod:`aster_rl.sim.accounting`).

The new figures are measured through the core: one account per bar buys ``$size`` at the bar's
open and the cost is ``entry / open − 1``. Skipped (exit 0) when the data folder is absent.

    .venv/bin/python benchmarks/bench_costs.py [--months 2025-10 2025-11] [--sizes 3800 20000]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from aster_rl.config import EnvConfig, replace
from aster_rl.paths import real_data_dir
from aster_rl.sim.accounting import BUY, AccountBook
from aster_rl.sim.prices import PriceArrays

OLD_SLIPPAGE_BPS, OLD_IMPACT_COEF = 1.0, 0.1  # the rule before the square-root law
CUT = pd.Timestamp("2025-12-01", tz="UTC")  # nothing later is read


def load(path) -> PriceArrays:
    df = pd.read_csv(path)
    df.index = pd.to_datetime(df["timestamp"], unit="ms", utc=True)
    df = df[df.index < CUT]
    ts = df.index.as_unit("ns").asi8
    cols = [df[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")]
    return PriceArrays.from_arrays(*cols, timestamps=ts, timeframe="5m")


def new_cost(prices: PriceArrays, bars: np.ndarray, size: float, cfg: EnvConfig) -> np.ndarray:
    """Per-side cost fraction of a ``size`` USD buy at each bar's open, from the core's fills."""
    cfg = replace(cfg, initial_equity_usd=size, margin_fraction=0.5, leverages=(2,), min_notional_usd=0.0,
                  taker_fee_rate=0.0, maker_fee_rate=0.0)
    n = len(bars)
    book = AccountBook(cfg, n)
    book.submit(np.full(n, BUY), np.full(n, 2.0), np.full(n, 1e9), np.full(n, 1e9), np.zeros(n, dtype=np.int64))
    o = prices.open[bars]
    book.process_bar(prices.timestamps[bars], o, prices.high[bars], prices.low[bars], prices.close[bars],
                     prices.costs[bars], np.zeros(n))
    assert (book.side == 1).all()
    return book.entry / o - 1.0


def old_cost(prices: PriceArrays, bars: np.ndarray, size: float) -> np.ndarray:
    qty = size / prices.open[bars]
    vol = prices.volume[bars]
    return OLD_SLIPPAGE_BPS * 1e-4 + np.where(vol > 0, OLD_IMPACT_COEF * qty / np.where(vol > 0, vol, 1.0), 0.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--months", nargs="+", default=["2025-10", "2025-11"])
    ap.add_argument("--sizes", nargs="+", type=float, default=[3_800.0, 20_000.0])
    args = ap.parse_args(argv)
    path = real_data_dir() / "ASTERUSDT_5m.csv"
    if not path.exists():
        print(f"skipped: {path} not found")
        return 0
    prices = load(path)
    cfg = EnvConfig()
    print(f"new rule: impact_coef (Y) {cfg.impact_coef}, spread_mult {cfg.spread_mult}, slippage_bps "
          f"{cfg.slippage_bps}, price_tick {cfg.price_tick}, no book (half a tick); one-day trailing sigma and volume")
    times = pd.to_datetime(prices.timestamps, utc=True)
    for month in args.months:
        lo = pd.Timestamp(month + "-01", tz="UTC")
        hi = lo + pd.offsets.MonthBegin(1)
        if hi > CUT:
            raise SystemExit(f"{month}: past {CUT.date()}, the last data read here")
        bars = np.flatnonzero((times >= lo) & (times < hi))
        sig, vd, px = (np.median(a[bars]) for a in (prices.sigma_daily, prices.volume_daily, prices.open))
        print(f"{month}: {len(bars)} bars; median sigma_daily {sig:.4f}, V_daily ${vd / 1e6:.1f}M, price {px:.4f}, "
              f"half a tick {0.5e4 * cfg.price_tick / px:.2f} bps")
        for size in args.sizes:
            old = old_cost(prices, bars, size) * 1e4
            new = new_cost(prices, bars, size, cfg) * 1e4
            print(f"  ${size:>8,.0f}  old median {np.median(old):6.2f} bps (p10 {np.percentile(old, 10):5.2f}, "
                  f"p90 {np.percentile(old, 90):6.2f})   new median {np.median(new):6.2f} bps "
                  f"(p10 {np.percentile(new, 10):5.2f}, p90 {np.percentile(new, 90):6.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
