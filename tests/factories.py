"""Small seeded synthetic candles and market bundles for tests (``from factories import make_market``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from aster_rl.data.market import MarketBundle
from aster_rl.data.timeframes import timeframe_to_timedelta

START = pd.Timestamp("2025-03-01", tz="UTC")


def make_candles(n: int, seed: int = 0, timeframe: str = "5m", start: pd.Timestamp = START, price: float = 1.0) -> pd.DataFrame:
    """Random-walk OHLCV with quote volume, trade counts and taker-buy volume."""
    rng = np.random.default_rng(seed)
    step = timeframe_to_timedelta(timeframe)
    index = pd.date_range(start, periods=n, freq=step, tz="UTC")
    vol = 0.004 * np.exp(0.3 * np.cumsum(rng.normal(0, 0.05, n)))
    rets = rng.standard_t(4, n) * vol
    close = price * np.exp(np.cumsum(rets))
    open_ = np.concatenate(([price], close[:-1]))
    spread = np.abs(rng.normal(0, 1, (2, n))) * vol * close
    high = np.maximum(open_, close) + spread[0]
    low = np.maximum(np.minimum(open_, close) - spread[1], 1e-9)
    volume = rng.lognormal(10, 0.6, n) * (1 + 5 * (rng.random(n) < 0.02))
    trades = np.maximum(1, np.round(volume / rng.lognormal(6, 0.3, n)))
    taker_buy = volume * rng.beta(5, 5, n)
    return pd.DataFrame(
        {
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "quote_volume": volume * close,
            "trades": trades,
            "taker_buy_volume": taker_buy,
        },
        index=index,
    )


def make_market(
    n: int,
    seed: int = 0,
    timeframe: str = "5m",
    with_trades: bool = True,
    with_book: bool = True,
    with_funding: bool = True,
    with_macro: bool = True,
    start: pd.Timestamp = START,
) -> MarketBundle:
    """A bundle with every source the tentacles may read (each one can be left out)."""
    rng = np.random.default_rng(seed + 1_000)
    candles = make_candles(n, seed, timeframe, start)
    step = timeframe_to_timedelta(timeframe)
    end = candles.index[-1] + step
    funding = trades = book = btc = eth = None
    if with_funding:
        times = pd.date_range(start.ceil("4h"), end, freq="4h", tz="UTC", inclusive="left")
        funding = pd.DataFrame({"funding_rate": rng.normal(1e-4, 2e-4, len(times))}, index=times)
    if with_trades:
        k = max(1, n * 6)
        offsets = np.sort(rng.random(k)) * (end - start).total_seconds()
        times = (start + pd.to_timedelta(offsets, unit="s")).floor("ms")
        pos = np.searchsorted(candles.index, times, side="right") - 1
        price = candles["close"].to_numpy()[np.clip(pos, 0, n - 1)]
        notional = rng.lognormal(7, 1.4, k)
        trades = pd.DataFrame(
            {"price": price, "amount": notional / price, "side": np.where(rng.random(k) < 0.5, "buy", "sell")},
            index=pd.DatetimeIndex(times, tz="UTC"),
        )
    if with_book:
        k = max(1, n * 2)
        offsets = np.sort(rng.random(k)) * (end - start).total_seconds()
        times = pd.DatetimeIndex(start + pd.to_timedelta(offsets, unit="s")).floor("ms")
        pos = np.searchsorted(candles.index, times, side="right") - 1
        mid = candles["close"].to_numpy()[np.clip(pos, 0, n - 1)]
        half = mid * rng.uniform(1e-4, 1e-3, k)
        bid_depth, ask_depth = rng.lognormal(11, 0.5, (2, k))
        book = pd.DataFrame(
            {
                "best_bid": mid - half,
                "best_ask": mid + half,
                "bid_depth_usd": bid_depth,
                "ask_depth_usd": ask_depth,
                "largest_bid_usd": bid_depth * rng.uniform(0.02, 0.4, k),
                "largest_ask_usd": ask_depth * rng.uniform(0.02, 0.4, k),
            },
            index=times,
        )
    if with_macro:
        btc = make_candles(n, seed + 1, timeframe, start, price=60_000.0)
        eth = make_candles(n, seed + 2, timeframe, start, price=3_000.0)
    return MarketBundle("ASTER/USDT:USDT", timeframe, candles, funding, trades, book, btc, eth)
