"""The synthetic ASTER market: the embedded default when no exchange is reachable.

:func:`synthesize` turns a :class:`~aster_rl.config.SynthConfig` into a
:class:`~aster_rl.data.market.MarketBundle` (candles, funding, large trades, book snapshots,
BTC/ETH companions). It is seeded and deterministic, vectorized numpy throughout, and
calibrated on the real ASTER 5m candles (heavy tails, clustered volatility,
volume that moves with ``|return|``).

The price model (per bar, calibrated at 5m; other timeframes scale by time)
----------------------------------------------------------------------------
- Regimes: a Markov chain over runs of bars, ``trend_up``, ``trend_down``, ``range``,
  ``volatile`` (mean run ~1.5 days); in planted mode trends add a drift of
  ``cfg.trend_drift`` per 5m bar (a momentum effect a policy may also learn; ``0`` leaves
  the signal as the only planted edge), ``range`` calms and ``volatile`` doubles the
  volatility. Trend directions lean against the trend drift accumulated so far, so the
  price stays near its start over months.
- Shocks: standardized Student-t (3 degrees of freedom).
- Volatility: EGARCH-like log-volatility driven by the previous bars' ``|shock|``
  (a fast and a slow memory) times the regime's multiplier.
- The noise part of the log price reverts very weakly (60-day time constant) to the
  start, which keeps ASTER near ~1 USDT and BTC/ETH in their ranges.
- Volume (USD) rises with volatility and with the bar's ``|shock|``; trade counts
  follow volume; the taker-buy share is ``0.5 + 0.2 tanh(z / 2)`` plus small noise
  (``z`` = the bar's standardized return), so it stays in about [0.28, 0.72].

The planted edge (other code relies on this exact description)
--------------------------------------------------------------
- **Signal bars**: every bar at position >= ``SIGNAL_WARMUP_BARS`` (300) is a signal
  bar with probability ``cfg.signal_rate`` (default 1%), independently; its direction is
  long or short with probability 1/2 each.
- **What a signal bar shows** (in both modes): ``volume >= 4 x`` the larger of the
  medians of the previous 20 and the previous 288 bars' volume (the factor is drawn
  in [4, 8], so it is always >= 3x both); ``taker_buy_volume / volume`` drawn in
  [0.78, 0.92] for a long signal and [0.08, 0.22] for a short one; the bar's own
  return (before any drift of an earlier signal) has the signal's sign and is at least
  one current standard deviation; 2-5 extra whale trades (>= $20k) on the signal's side
  and the book leans the same way.
- **The drift**: in ``edge == "planted"`` mode each signal independently pays off with
  probability ``cfg.edge_probability`` (default 0.75). If it does, each of the next
  ``cfg.edge_horizon`` bars (default 24, bars ``t+1 .. t+24``) gets
  ``direction * log(1 + cfg.edge_drift) / horizon`` added to its log return, so
  ``close[t+24] / close[t]`` gains ``cfg.edge_drift`` (default +2.5%) in the signal's
  direction over what it would otherwise be. Otherwise nothing is added.
- **Null mode** (``edge == "null"``): no predictable drift at all. The same seed gives
  the same regimes, signal bars, spikes, taker flows, trade counts, sides and sizes and
  book depths, but neither the signals nor the trend regimes ever drift: the log price
  is driven by zero-mean shocks only (apart from the very weak 60-day reversion below).
  Prices (and what is read off them: OHLC, trade and book prices, funding, quote
  volume) differ from planted mode by the drifts only (:func:`planted_drift`).
- **Identifiability**: outside signal bars a taker share >= 0.75 or <= 0.25 is rare,
  and together with a 3x volume spike practically absent, so "volume >= 3x its
  recent median and taker share >= 0.75 (<= 0.25)" marks the long (short) signals.
  :func:`planted_signals` returns the truth without building the market.

Other sources
-------------
- Funding every 4 h at 00:00, 04:00, ... UTC (index = settlement time): a premium that
  follows the log return of the 4 h before settlement, turned into a rate like real
  perps do (interest 0.005% plus the premium outside a +-0.01% band, capped at
  +-0.2%); typical values lie between about -0.02% and +0.005%. ``mark_price`` is the
  price at settlement (the close of the last bar before it).
- Trades: only the large ones (>= ~$1k), more of them in high-volume bars, the taker
  side drawn with the bar's taker-buy share, timestamps inside their bar; ``trade_id``
  is ``bar open (unix s) * 1000 + rank in the bar``, unique and stable.
- Book: one snapshot per bar at ``open + timeframe - 1 s`` around the bar's close; its
  imbalance follows the *current* bar's taker flow (never later returns).
- BTC and ETH: correlated with ASTER's shocks (corr ~0.5; BTC-ETH ~0.84) at 0.22 and
  0.35 of its volatility, starting near 85k and 2.2k; they never see the planted drift.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from aster_rl.config import SynthConfig, replace
from aster_rl.errors import ConfigError
from aster_rl.data.market import MarketBundle
from aster_rl.data.timeframes import timeframe_to_timedelta

logger = logging.getLogger(__name__)

SIGNAL_WARMUP_BARS = 300
SIGNAL_MEDIAN_WINDOWS = (20, 288)
SIGNAL_VOLUME_FACTOR = (4.0, 8.0)
LONG_SHARE = (0.78, 0.92)

_BASE_MINUTES = 5.0
_SIGMA_5M = 0.006  # baseline per-bar volatility of log returns at 5m
_T_DF = 3.0
_VOLUME_USD_5M = 1.5e6  # median USD volume per 5m bar
_REGIME_DRIFT_SIGN = np.array([1.0, -1.0, 0.0, 0.0])  # times cfg.trend_drift per 5m bar
_REGIME_VOL_MULT = np.array([1.0, 1.1, 0.6, 2.0])
_REGIME_MEAN_RUN_5M = 430.0
_REVERSION_BARS_5M = 60 * 288
_STREAMS = ("regimes", "shocks", "signals", "candles", "trades", "book", "funding", "companions")


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children)}


def _ar1(shocks: np.ndarray, phi: float) -> np.ndarray:
    """``x[t] = phi * x[t-1] + shocks[t]`` (``x[-1] = 0``), vectorized in blocks."""
    n = len(shocks)
    if n == 0 or phi == 0.0:
        return shocks.astype(float)
    block = max(1, min(n, int(12.0 / -np.log(phi))))  # keeps phi**-block below e**12
    n_blocks = -(-n // block)
    padded = np.zeros(n_blocks * block)
    padded[:n] = shocks
    powers = phi ** np.arange(block)
    local = np.cumsum(padded.reshape(n_blocks, block) / powers, axis=1) * powers
    carry = np.empty(n_blocks)
    state, phi_block = 0.0, phi**block
    for b in range(n_blocks):
        carry[b] = state
        state = local[b, -1] + phi_block * state
    return (local + carry[:, None] * (phi * powers)[None, :]).ravel()[:n]


def _std_t(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_t(_T_DF, n) * np.sqrt((_T_DF - 2.0) / _T_DF)


def _regime_path(rng: np.random.Generator, n: int, scale: float, trend_drift: float) -> np.ndarray:
    """Regime code per bar: persistent runs; trend direction leans against the drift so far."""
    mean_run = max(2.0, _REGIME_MEAN_RUN_5M / scale)
    n_runs = int(n / mean_run * 3) + 8
    lengths = rng.geometric(1.0 / mean_run, n_runs)
    kinds = rng.random(n_runs)
    coin = rng.random(n_runs)
    codes = np.empty(n_runs, dtype=np.int8)
    drift_so_far = 0.0
    for i in range(n_runs):
        kind = int(kinds[i] * 3)  # 0 trend, 1 range, 2 volatile
        if kind == 0:
            p_up = 1.0 / (1.0 + np.exp(drift_so_far / 0.3))
            code = 0 if coin[i] < p_up else 1
        else:
            code = kind + 1
        codes[i] = code
        drift_so_far += _REGIME_DRIFT_SIGN[code] * trend_drift * scale * lengths[i]
        if lengths[: i + 1].sum() >= n:
            break
    path = np.repeat(codes[: i + 1], lengths[: i + 1])
    if len(path) < n:
        path = np.concatenate((path, np.full(n - len(path), path[-1] if len(path) else 2, dtype=np.int8)))
    return path[:n]


def _signal_draws(cfg: SynthConfig, rng: np.random.Generator, n: int) -> pd.DataFrame:
    """All signal randomness, drawn at full length so modes and probabilities never shift it."""
    u_signal, u_dir, u_pay, factor, share = rng.random((5, n))
    whales = rng.integers(2, 6, n)
    bars = np.flatnonzero(u_signal < cfg.signal_rate)
    bars = bars[bars >= SIGNAL_WARMUP_BARS]
    direction = np.where(u_dir[bars] < 0.5, 1, -1)
    pays = u_pay[bars] < cfg.edge_probability
    lo, hi = LONG_SHARE
    long_share = lo + (hi - lo) * share[bars]
    return pd.DataFrame(
        {
            "bar": bars,
            "direction": direction.astype(np.int8),
            "pays": pays,
            "drifts": pays & (cfg.edge == "planted"),
            "volume_factor": SIGNAL_VOLUME_FACTOR[0] + (SIGNAL_VOLUME_FACTOR[1] - SIGNAL_VOLUME_FACTOR[0]) * factor[bars],
            "taker_share": np.where(direction > 0, long_share, 1.0 - long_share),
            "extra_whales": whales[bars],
        }
    )


def _bar_index(cfg: SynthConfig, n: int, timeframe: str) -> pd.DatetimeIndex:
    try:
        start = pd.Timestamp(cfg.start)
    except (ValueError, TypeError):
        raise ConfigError(f"synth.start {cfg.start!r}: not a date/time; use e.g. '2025-03-01'") from None
    start = start.tz_localize("UTC") if start.tz is None else start.tz_convert("UTC")
    return pd.date_range(start, periods=n, freq=timeframe_to_timedelta(timeframe), name="timestamp").as_unit("ns")


def _spike_volumes(volume: np.ndarray, bars: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Raise ``volume`` at ``bars`` to ``factor`` x the larger median of the previous 20 / 288 bars.

    Repeated until it holds for the final volumes (a spike can sit in a later signal's window).
    """
    volume = volume.copy()
    if len(bars) == 0:
        return volume
    for _ in range(50):
        medians = [
            np.median(np.lib.stride_tricks.sliding_window_view(volume, w)[bars - w], axis=1)
            for w in SIGNAL_MEDIAN_WINDOWS
        ]
        floor = factor * np.maximum(*medians)
        low = volume[bars] < floor
        if not low.any():
            break
        volume[bars[low]] = floor[low]
    return volume


def _ohlc(open0: float, log_ret: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    close = open0 * np.exp(np.cumsum(log_ret))
    open_ = np.empty_like(close)
    open_[0] = open0
    open_[1:] = close[:-1]
    wick_up, wick_dn = np.abs(rng.standard_normal((2, len(close)))) * 0.6 * sigma
    high = np.maximum(open_, close) * np.exp(wick_up)
    low = np.minimum(open_, close) * np.exp(-wick_dn)
    return open_, high, low, close


def _companion(
    rng: np.random.Generator, index: pd.DatetimeIndex, z: np.ndarray, sigma: np.ndarray,
    vol_ratio: float, price0: float, volume_usd: float, scale: float,
) -> pd.DataFrame:
    n = len(index)
    s = sigma * vol_ratio
    noise = _ar1(s * z, 1.0 - 1.0 / max(2.0, _REVERSION_BARS_5M / scale))
    log_ret = np.diff(noise, prepend=0.0)
    open_, high, low, close = _ohlc(price0, log_ret, s, rng)
    vol_usd = volume_usd * scale * np.exp(0.8 * np.log(sigma / (_SIGMA_5M * np.sqrt(scale))) + 0.25 * np.minimum(np.abs(z), 6)
                                          + 0.3 * rng.standard_normal(n))
    volume = vol_usd / close
    share = np.clip(0.5 + 0.2 * np.tanh(z / 2.0) + 0.025 * rng.standard_normal(n), 0.05, 0.95)
    return pd.DataFrame(
        {
            "open": open_, "high": high, "low": low, "close": close, "volume": volume,
            "quote_volume": vol_usd, "trades": np.maximum(1.0, np.round(vol_usd / (2_000 * np.exp(0.15 * rng.standard_normal(n))))),
            "taker_buy_volume": volume * share,
        },
        index=index,
    )


def _returns(cfg: SynthConfig, rng: dict[str, np.random.Generator], n: int, scale: float,
             signals: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shocks ``z``, volatility, the undrifted log returns and the log returns with the edge."""
    regimes = _regime_path(rng["regimes"], n, scale, cfg.trend_drift)
    z = _std_t(rng["shocks"], n)
    zc = np.minimum(np.abs(z), 6.0) - 0.72  # centred |shock| (E|z| ~ 0.72 for the standardized t3)
    prev = np.concatenate(([0.0], zc[:-1]))
    phi_fast, phi_slow = 0.96**scale, 0.9985**scale
    log_vol = _ar1(0.11 * prev, phi_fast) + _ar1(0.012 * prev + 0.012 * rng["shocks"].standard_normal(n), phi_slow)
    sigma = _SIGMA_5M * np.sqrt(scale) * _REGIME_VOL_MULT[regimes] * np.exp(log_vol)
    noise = _ar1(sigma * z, 1.0 - 1.0 / max(2.0, _REVERSION_BARS_5M / scale))
    base_ret = np.diff(noise, prepend=0.0)
    sb, sdir = signals["bar"].to_numpy(), signals["direction"].to_numpy()
    base_ret[sb] = sdir * np.maximum(np.abs(base_ret[sb]), sigma[sb])  # a signal bar moves its own way
    if cfg.edge == "null":
        return z, sigma, base_ret, base_ret.copy()
    edge = _REGIME_DRIFT_SIGN[regimes] * cfg.trend_drift * scale
    drifting = signals[signals["drifts"]]
    per_bar = np.log1p(cfg.edge_drift) / cfg.edge_horizon
    for bar, direction in zip(drifting["bar"].to_numpy(), drifting["direction"].to_numpy()):
        edge[bar + 1 : bar + 1 + cfg.edge_horizon] += direction * per_bar
    return z, sigma, base_ret, base_ret + edge


def planted_drift(cfg: SynthConfig, n_bars: int | None = None, timeframe: str = "5m") -> np.ndarray:
    """Per-bar log-return drift that planted mode adds over null mode (trend regimes + signals)."""
    n = int(cfg.n_bars if n_bars is None else n_bars)
    scale = timeframe_to_timedelta(timeframe) / pd.Timedelta(minutes=_BASE_MINUTES)
    rng = _streams(cfg.seed)
    signals = _signal_draws(replace(cfg, edge="planted"), rng["signals"], n)
    planted = replace(cfg, edge="planted")
    _, _, base_ret, log_ret = _returns(planted, rng, n, scale, signals)
    return log_ret - base_ret


def _aster_candles(rng: np.random.Generator, index: pd.DatetimeIndex, sigma: np.ndarray, base_ret: np.ndarray,
                   log_ret: np.ndarray, signals: pd.DataFrame, scale: float) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """ASTER candles, plus the bars' undrifted USD volume and taker-buy share."""
    n = len(index)
    open_, high, low, close = _ohlc(1.0, log_ret, sigma, rng)
    zr = base_ret / sigma
    rel_vol = np.log(sigma / (_SIGMA_5M * np.sqrt(scale)))
    vol_usd = _VOLUME_USD_5M * scale * np.exp(0.9 * rel_vol + 0.3 * np.minimum(np.abs(zr), 8) + 0.35 * rng.standard_normal(n))
    share = np.clip(0.5 + 0.2 * np.tanh(zr / 2.0) + 0.025 * rng.standard_normal(n), 0.05, 0.95)
    avg_trade_usd = 350.0 * np.exp(0.15 * rng.standard_normal(n))
    base_close = np.exp(np.cumsum(base_ret))  # volumes in units of the undrifted price: same in both modes
    sb = signals["bar"].to_numpy()
    volume = _spike_volumes(vol_usd / base_close, sb, signals["volume_factor"].to_numpy())
    share[sb] = signals["taker_share"].to_numpy()
    vol_usd = volume * base_close
    candles = pd.DataFrame(
        {
            "open": open_, "high": high, "low": low, "close": close, "volume": volume,
            "quote_volume": volume * (high + low + close) / 3.0,
            "trades": np.maximum(1.0, np.round(vol_usd / avg_trade_usd)),
            "taker_buy_volume": volume * share,
        },
        index=index,
    )
    return candles, vol_usd, share


def synthesize_with_truth(
    cfg: SynthConfig, timeframe: str = "5m", symbol: str = "ASTER/USDT:USDT"
) -> tuple[MarketBundle, pd.DataFrame]:
    """The synthetic market and its planted signals (see :func:`planted_signals`)."""
    n = int(cfg.n_bars)
    step = timeframe_to_timedelta(timeframe)
    scale = step / pd.Timedelta(minutes=_BASE_MINUTES)
    index = _bar_index(cfg, n, timeframe)
    rng = _streams(cfg.seed)
    signals = _signal_draws(cfg, rng["signals"], n)
    z, sigma, base_ret, log_ret = _returns(cfg, rng, n, scale, signals)
    candles, vol_usd, share = _aster_candles(rng["candles"], index, sigma, base_ret, log_ret, signals, scale)
    close = candles["close"].to_numpy()

    crng = rng["companions"]
    w_btc, w_eth = crng.standard_normal((2, n))
    zb = 0.5 * z + np.sqrt(0.75) * w_btc  # corr(ASTER, BTC) = 0.5
    ze = 0.5 * z + 0.681 * w_btc + 0.535 * w_eth  # corr(ASTER, ETH) = 0.5, corr(BTC, ETH) = 0.84
    bundle = MarketBundle(
        symbol=symbol,
        timeframe=timeframe,
        candles=candles,
        funding=_funding(rng["funding"], index, step, close, candles["open"].to_numpy()),
        trades=_trades(rng["trades"], index, step, candles, vol_usd, share, signals),
        book=_book(rng["book"], index, step, close, sigma, share, scale),
        btc=_companion(crng, index, np.clip(zb, -12, 12), sigma, 0.22, 85_000.0, 4e7, scale),
        eth=_companion(crng, index, np.clip(ze, -12, 12), sigma, 0.35, 2_200.0, 2.5e7, scale),
    )
    signals = signals.assign(timestamp=index[signals["bar"].to_numpy()]).set_index("timestamp")
    logger.info("synthesized %d %s bars of %s (%s edge, %d signal bars)", n, timeframe, symbol, cfg.edge, len(signals))
    return bundle, signals


def _funding(rng: np.random.Generator, index: pd.DatetimeIndex, step: pd.Timedelta,
             close: np.ndarray, open_: np.ndarray) -> pd.DataFrame:
    """4-hourly funding following the premium of the 4 h before each settlement."""
    end = index[-1] + step
    times = pd.date_range(index[0].ceil("4h"), end, freq="4h", inclusive="left", name="timestamp")
    times = times[times <= index[-1] + step - pd.Timedelta(milliseconds=1)]
    k = ((times - index[0]) // step).to_numpy().astype(np.int64)  # the bar containing the settlement
    last_closed = k - 1
    lookback = max(1, int(pd.Timedelta(hours=4) / step))
    log_close = np.log(close)
    now = np.where(last_closed >= 0, log_close[np.maximum(last_closed, 0)], np.log(open_[0]))
    before_idx = last_closed - lookback
    then = np.where(before_idx >= 0, log_close[np.maximum(before_idx, 0)], np.log(open_[0]))
    drift = now - then
    premium = -1.2e-4 + 3e-4 * np.tanh(drift / 0.04) + 5e-5 * rng.standard_normal(len(times))
    interest = 5e-5
    rate = np.clip(premium + np.clip(interest - premium, -1e-4, 1e-4), -2e-3, 2e-3)
    return pd.DataFrame({"funding_rate": rate, "mark_price": np.exp(now)}, index=times)


def _trades(rng: np.random.Generator, index: pd.DatetimeIndex, step: pd.Timedelta,
            candles: pd.DataFrame, vol_usd: np.ndarray, share: np.ndarray, signals: pd.DataFrame) -> pd.DataFrame:
    """Large trades only: count follows USD volume, the side the bar's taker share."""
    n = len(index)
    lam = np.minimum(60.0, 1.5 * (vol_usd / np.median(vol_usd)) ** 0.9)
    counts = rng.poisson(lam)
    extra = np.zeros(n, dtype=np.int64)
    extra[signals["bar"].to_numpy()] = signals["extra_whales"].to_numpy()
    total = counts + extra
    bars = np.repeat(np.arange(n), total)
    m = len(bars)
    frac = rng.random(m)
    u_side = rng.random(m)
    notional = 1_000.0 * (1.0 + rng.pareto(1.3, m))
    notional = np.minimum(notional, 2e6)
    # the extra whale prints are the last ones of their bar's block
    first_of_bar = np.repeat(np.cumsum(total) - total, total)
    is_extra = (np.arange(m) - first_of_bar) >= np.repeat(counts, total)
    buy = u_side < share[bars]
    sig_dir = np.zeros(n, dtype=np.int8)
    sig_dir[signals["bar"].to_numpy()] = signals["direction"].to_numpy()
    buy = np.where(is_extra, sig_dir[bars] > 0, buy)
    notional = np.where(is_extra, np.maximum(notional, 20_000.0 * (1.0 + frac)), notional)
    o, h, low, c = (candles[col].to_numpy()[bars] for col in ("open", "high", "low", "close"))
    order = np.lexsort((frac, bars))
    bars, frac, buy, notional = bars[order], frac[order], buy[order], notional[order]
    o, h, low, c = o[order], h[order], low[order], c[order]
    price = np.clip(o + (c - o) * frac + 0.25 * (h - low) * rng.standard_normal(m), low, h)
    step_ns = int(step / pd.Timedelta(1, "ns"))
    open_ns = index.as_unit("ns").asi8
    ts = open_ns[bars] + (frac * (step_ns - 1_000_000)).astype(np.int64)
    ts = ts - ts % 1_000_000  # whole milliseconds, still inside the bar
    return pd.DataFrame(
        {
            "trade_id": open_ns[bars] // 1_000_000_000 * 1_000 + (np.arange(m) - first_of_bar[order]),
            "price": price,
            "amount": notional / price,
            "side": np.where(buy, "buy", "sell"),
            "notional_usd": notional,
        },
        index=pd.DatetimeIndex(ts, tz="UTC", name="timestamp").as_unit("ns"),
    )


def _book(rng: np.random.Generator, index: pd.DatetimeIndex, step: pd.Timedelta, close: np.ndarray,
          sigma: np.ndarray, share: np.ndarray, scale: float) -> pd.DataFrame:
    """One snapshot per bar, one second before its close; imbalance follows the bar's flow."""
    n = len(index)
    calm = _SIGMA_5M * np.sqrt(scale) / sigma
    half_spread = close * 1e-4 * (0.5 + 1.5 / np.sqrt(calm)) / 2.0
    depth = 4e5 * np.sqrt(np.minimum(calm, 4.0)) * np.exp(0.3 * rng.standard_normal(n))
    imbalance = np.clip(0.5 + 0.6 * (share - 0.5) + 0.05 * rng.standard_normal(n), 0.05, 0.95)
    bid, ask = depth * imbalance, depth * (1.0 - imbalance)
    big_bid, big_ask = rng.uniform(0.05, 0.3, (2, n))
    return pd.DataFrame(
        {
            "best_bid": close - half_spread,
            "best_ask": close + half_spread,
            "bid_depth_usd": bid,
            "ask_depth_usd": ask,
            "largest_bid_usd": bid * big_bid * (1.0 + imbalance),
            "largest_ask_usd": ask * big_ask * (2.0 - imbalance),
        },
        index=index + step - pd.Timedelta(seconds=1),
    )


def synthesize(cfg: SynthConfig, timeframe: str = "5m", symbol: str = "ASTER/USDT:USDT") -> MarketBundle:
    """A seeded synthetic market for ``symbol`` at ``timeframe`` (see the module docstring)."""
    return synthesize_with_truth(cfg, timeframe, symbol)[0]


def planted_signals(cfg: SynthConfig, n_bars: int | None = None, timeframe: str = "5m") -> pd.DataFrame:
    """The signal bars of ``cfg``'s market without building it.

    Indexed by bar open time; columns ``bar`` (position), ``direction`` (+1 long, -1
    short), ``pays`` (the coin flip), ``drifts`` (``pays`` and planted mode),
    ``volume_factor``, ``taker_share``, ``extra_whales``.
    """
    n = int(cfg.n_bars if n_bars is None else n_bars)
    signals = _signal_draws(cfg, _streams(cfg.seed)["signals"], n)
    index = _bar_index(cfg, n, timeframe)
    return signals.assign(timestamp=index[signals["bar"].to_numpy()]).set_index("timestamp")


def market_summary(candles: pd.DataFrame) -> dict[str, float]:
    """Calibration statistics of a candle frame (log returns of close)."""
    close = candles["close"].astype(float)
    log_ret = np.log(close).diff().dropna()
    daily = np.log(close.resample("1D").last().dropna()).diff().dropna()
    abs_ret = log_ret.abs()
    volume = candles["volume"].astype(float).loc[log_ret.index]
    days = (candles.index[-1] - candles.index[0]) / pd.Timedelta(days=1) if len(candles) > 1 else 0.0
    return {
        "daily_volatility": float(daily.std()),
        "excess_kurtosis": float(log_ret.kurt()),
        "abs_return_autocorr_1": float(abs_ret.autocorr(1)),
        "volume_abs_return_corr": float(np.corrcoef(volume, abs_ret)[0, 1]) if len(abs_ret) > 1 else float("nan"),
        "bars_per_day": float(len(candles) / days) if days > 0 else float("nan"),
    }
