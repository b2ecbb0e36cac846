"""The shared real data (``aster_rl.paths.real_data_dir()``) as market bundles.

- ``ASTER``: ``ASTERUSDT_5m.csv`` (Binance perp candles, 2025-09-19 → 2025-11-30) with the
  ``BTCUSDT_5m.csv`` / ``ETHUSDT_5m.csv`` companions. These files hold no funding: funding
  is taken as zero there, and results on them say so.
- ``BTC``, ``ETH``, ``LTC``: freqtrade's Binance USDⓈ-M files under ``binance-futures/``
  (5m candles 2023-01 → 2024-05, read as they are), with their real 8-hourly funding
  (``*-8h-funding_rate.feather``: freqtrade keeps the rate in ``open``; settlement stamps
  carry milliseconds of jitter and are snapped to the grid) and the BTC / ETH futures as
  companions.

Every candle file goes through the importer's checks (:func:`read_candle_file`). Each
market comes with its contract's price tick and quantity step (:data:`CONTRACTS`), which the
cost model's half-spread floor and the order rounding use, and its funding interval
(:data:`FUNDING_HOURS`), for the clock tentacle: :func:`contract_settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from aster_rl.data.download import snap_funding_times
from aster_rl.data.importer import read_candle_file
from aster_rl.data.market import MarketBundle
from aster_rl.errors import DataError
from aster_rl.paths import real_data_dir

FUTURES = "binance-futures"
# exchange filters of each perp (Binance USDⓈ-M PRICE_FILTER tickSize / LOT_SIZE stepSize)
CONTRACTS: dict[str, dict[str, Any]] = {
    "ASTER": {"price_tick": 0.0001, "qty_step": 0.01},
    "BTC": {"price_tick": 0.1, "qty_step": 0.001},
    "ETH": {"price_tick": 0.01, "qty_step": 0.001},
    "LTC": {"price_tick": 0.01, "qty_step": 0.001},
}
# hours between funding settlements (the clock tentacle reads the series' spacing when there is one;
# the ASTER files carry no funding, and the ASTER perp settles every 4 hours)
FUNDING_HOURS = {"ASTER": 4.0, "BTC": 8.0, "ETH": 8.0, "LTC": 8.0}
REAL_MARKETS = tuple(CONTRACTS)


def contract_settings(name: str) -> dict[str, dict[str, Any]]:
    """The config sections a shared real market fixes: its tick and step (``env``), its funding interval
    (``features``); for ``aster_rl.config.replace(config, **contract_settings(name))``."""
    key = name.upper()
    if key not in CONTRACTS:
        raise DataError(f"real market {name!r}: expected one of {', '.join(REAL_MARKETS)}")
    return {"env": dict(CONTRACTS[key]), "features": {"funding_interval_hours": FUNDING_HOURS[key]}}


def _candles(path: Path, symbol: str) -> pd.DataFrame:
    return read_candle_file(path, symbol=symbol, timeframe="5m").candles


def read_freqtrade_funding(path: Path) -> pd.DataFrame:
    """A freqtrade ``*-funding_rate.feather`` file as the bundle's ``funding`` frame
    (``funding_rate`` per settlement, settlement times snapped to the funding grid)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    raw = pd.read_feather(path)
    if "date" not in raw.columns or "open" not in raw.columns:
        raise DataError(f"{path}: expected freqtrade's funding columns 'date' and 'open' (the rate)")
    times = snap_funding_times(pd.DatetimeIndex(pd.to_datetime(raw["date"], utc=True)), what=str(path))
    rate = pd.to_numeric(raw["open"], errors="coerce").to_numpy(dtype=float)
    funding = pd.DataFrame({"funding_rate": rate}, index=times)
    if funding["funding_rate"].isna().any() or not funding.index.is_unique:
        raise DataError(f"{path}: missing rates or repeated settlement times")
    return funding.sort_index()


def real_market(name: str, data_dir: str | Path | None = None) -> MarketBundle:
    """The shared real market ``name`` (one of :data:`REAL_MARKETS`) with its companions."""
    key = name.upper()
    if key not in CONTRACTS:
        raise DataError(f"real market {name!r}: expected one of {', '.join(REAL_MARKETS)}")
    root = Path(data_dir) if data_dir is not None else real_data_dir()
    if not root.is_dir():
        raise DataError(f"{root}: no real data folder (set ASTER_REAL_DATA or place ../shared beside the project)")
    if key == "ASTER":
        candles = _candles(root / "ASTERUSDT_5m.csv", "ASTER/USDT:USDT")
        end = candles.index[-1]
        btc, eth = (_candles(root / f"{c}USDT_5m.csv", f"{c}/USDT:USDT").loc[:end] for c in ("BTC", "ETH"))
        return MarketBundle(symbol="ASTER/USDT:USDT", timeframe="5m", candles=candles, btc=btc, eth=eth)
    futures = root / FUTURES

    def perp(coin: str) -> pd.DataFrame:
        return _candles(futures / f"{coin}_USDT_USDT-5m-futures.feather", f"{coin}/USDT:USDT")

    candles = perp(key)
    funding = read_freqtrade_funding(futures / f"{key}_USDT_USDT-8h-funding_rate.feather")
    end = candles.index[-1]
    btc = candles if key == "BTC" else perp("BTC").loc[:end]
    eth = candles if key == "ETH" else perp("ETH").loc[:end]
    return MarketBundle(symbol=f"{key}/USDT:USDT", timeframe="5m", candles=candles, funding=funding, btc=btc, eth=eth)
