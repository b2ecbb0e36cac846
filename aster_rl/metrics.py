"""Performance metrics of an equity curve and a list of trades: pure numpy, no I/O.

Conventions:

- ``equity`` is the account value at each bar's close (USD), the first value being the
  starting equity. Bar returns are ``equity[t] / equity[t-1] - 1``.
- Sharpe and Sortino are annualized from bar returns with ``periods_per_year`` (for 5m
  bars, ``365 * 288``), with a zero risk-free rate. A curve with zero variance has a
  Sharpe of 0 (not infinity): a flat account is no evidence of skill.
- Drawdowns are positive fractions: 0.2 means the equity fell 20% below its running peak.
- Confidence intervals come from the stationary bootstrap (Politis & Romano 1994) of bar
  returns, which keeps the short-range dependence of returns inside resampled blocks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

SECONDS_PER_YEAR = 365.0 * 24 * 3600


def periods_per_year(bar_seconds: float) -> float:
    """Bars in a (365-day, crypto trades every day) year: 5m bars -> 105,120."""
    if bar_seconds <= 0:
        raise ValueError(f"bar_seconds must be positive, got {bar_seconds}")
    return SECONDS_PER_YEAR / bar_seconds


def bar_returns(equity: Sequence[float] | np.ndarray) -> np.ndarray:
    eq = np.asarray(equity, dtype=float)
    if eq.ndim != 1:
        raise ValueError("equity must be one-dimensional")
    if len(eq) < 2:
        return np.zeros(0)
    prev = eq[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(prev > 0, eq[1:] / np.where(prev > 0, prev, 1.0) - 1.0, 0.0)
    return r


def total_return(equity: Sequence[float] | np.ndarray) -> float:
    eq = np.asarray(equity, dtype=float)
    if len(eq) < 2 or eq[0] <= 0:
        return 0.0
    return float(eq[-1] / eq[0] - 1.0)


def compound(returns: np.ndarray) -> float:
    """Total return of a sequence of bar returns."""
    r = np.asarray(returns, dtype=float)
    return float(np.prod(1.0 + r) - 1.0) if len(r) else 0.0


def sharpe(returns: np.ndarray, periods: float) -> float:
    r = np.asarray(returns, dtype=float)
    if len(r) < 2:
        return 0.0
    sd = r.std(ddof=1)
    if not np.isfinite(sd) or sd <= 1e-15:
        return 0.0
    return float(r.mean() / sd * math.sqrt(periods))


def sortino(returns: np.ndarray, periods: float) -> float:
    """Mean return over the downside deviation ``sqrt(mean(min(r, 0)^2))``, annualized."""
    r = np.asarray(returns, dtype=float)
    if len(r) < 2:
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if downside <= 1e-15:
        return 0.0
    return float(r.mean() / downside * math.sqrt(periods))


def drawdown(equity: Sequence[float] | np.ndarray) -> np.ndarray:
    """Drawdown at each bar as a positive fraction of the running peak."""
    eq = np.asarray(equity, dtype=float)
    if len(eq) == 0:
        return np.zeros(0)
    peak = np.maximum.accumulate(eq)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, 1.0 - eq / np.where(peak > 0, peak, 1.0), 0.0)
    return dd


def max_drawdown(equity: Sequence[float] | np.ndarray) -> float:
    dd = drawdown(equity)
    return float(dd.max()) if len(dd) else 0.0


def annualized_return(total: float, n_bars: int, periods: float) -> float:
    """Geometric annualization of ``total`` earned over ``n_bars`` bars."""
    if n_bars <= 0:
        return 0.0
    if total <= -1.0:
        return -1.0
    return float((1.0 + total) ** (periods / n_bars) - 1.0)


def calmar(total: float, max_dd: float, n_bars: int, periods: float) -> float:
    """Annualized return over the maximum drawdown; 0 when there was no drawdown."""
    if max_dd <= 1e-12:
        return 0.0
    return float(annualized_return(total, n_bars, periods) / max_dd)


@dataclass(frozen=True)
class TradeStats:
    n_trades: int
    win_rate: float
    profit_factor: float
    expectancy: float  # mean net PnL per trade, USD
    avg_win: float
    avg_loss: float
    gross_profit: float
    gross_loss: float


def trade_stats(pnl_usd: Sequence[float] | np.ndarray) -> TradeStats:
    """Win rate, profit factor (gross profit / gross loss) and expectancy of net trade PnLs.

    A trade with PnL exactly 0 counts as neither a win nor a loss, but it counts in the
    number of trades. Profit factor is ``inf`` with wins and no losses, 0 with no wins.
    """
    p = np.asarray(pnl_usd, dtype=float)
    n = len(p)
    if n == 0:
        return TradeStats(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    wins, losses = p[p > 0], p[p < 0]
    gp, gl = float(wins.sum()), float(-losses.sum())
    pf = gp / gl if gl > 0 else (math.inf if gp > 0 else 0.0)
    return TradeStats(
        n_trades=n,
        win_rate=float(len(wins) / n),
        profit_factor=float(pf),
        expectancy=float(p.mean()),
        avg_win=float(wins.mean()) if len(wins) else 0.0,
        avg_loss=float(losses.mean()) if len(losses) else 0.0,
        gross_profit=gp,
        gross_loss=gl,
    )


# ---------------------------------------------------------------- bootstrap

def stationary_bootstrap_indices(n: int, mean_block: float, samples: int, rng: np.random.Generator) -> np.ndarray:
    """``samples`` x ``n`` indices of the stationary bootstrap with geometric block lengths.

    Each resample starts at a uniform position; at every step it either continues the
    current block (probability ``1 - 1/mean_block``) or jumps to a new uniform position.
    Indices wrap around the end (the circular version).
    """
    if n <= 0:
        return np.zeros((samples, 0), dtype=np.int64)
    p = 1.0 / max(1.0, float(mean_block))
    idx = np.empty((samples, n), dtype=np.int64)
    idx[:, 0] = rng.integers(0, n, samples)
    jumps = rng.random((samples, n)) < p
    fresh = rng.integers(0, n, (samples, n))
    for t in range(1, n):
        idx[:, t] = np.where(jumps[:, t], fresh[:, t], (idx[:, t - 1] + 1) % n)
    return idx


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    confidence: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "confidence": self.confidence}


def bootstrap_ci(
    returns: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    samples: int = 1_000,
    block: float = 288,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile interval of ``statistic`` (applied row-wise to a (samples, n) array).

    The block length is capped at a quarter of the series so short series still mix.
    """
    r = np.asarray(returns, dtype=float)
    point = float(statistic(r[None, :])[0]) if len(r) else 0.0
    if len(r) < 2:
        return Interval(point, point, point, confidence)
    rng = np.random.default_rng(seed)
    block = min(float(block), max(1.0, len(r) / 4))
    # in chunks, to keep memory bounded for long series
    stats = []
    chunk = max(1, int(2_000_000 // max(1, len(r))))
    done = 0
    while done < samples:
        k = min(chunk, samples - done)
        idx = stationary_bootstrap_indices(len(r), block, k, rng)
        stats.append(statistic(r[idx]))
        done += k
    values = np.concatenate(stats)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return Interval(point, float(low), float(high), confidence)


def _rows_total_return(r: np.ndarray) -> np.ndarray:
    return np.prod(1.0 + r, axis=1) - 1.0


def _rows_sharpe(periods: float) -> Callable[[np.ndarray], np.ndarray]:
    def stat(r: np.ndarray) -> np.ndarray:
        if r.shape[1] < 2:
            return np.zeros(r.shape[0])
        sd = r.std(axis=1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(sd > 1e-15, r.mean(axis=1) / np.where(sd > 1e-15, sd, 1.0), 0.0)
        return s * math.sqrt(periods)

    return stat


def return_ci(returns: np.ndarray, **kw) -> Interval:
    """Bootstrap interval of the compounded total return."""
    return bootstrap_ci(returns, _rows_total_return, **kw)


def sharpe_ci(returns: np.ndarray, periods: float, **kw) -> Interval:
    """Bootstrap interval of the annualized Sharpe ratio."""
    return bootstrap_ci(returns, _rows_sharpe(periods), **kw)


def mean_ci(values: Sequence[float] | np.ndarray, *, samples: int = 2_000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap of the mean of independent values (e.g. one per walk-forward fold)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return Interval(0.0, 0.0, 0.0, confidence)
    if len(v) == 1:
        return Interval(float(v[0]), float(v[0]), float(v[0]), confidence)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), (samples, len(v)))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(float(v.mean()), float(low), float(high), confidence)


# ---------------------------------------------------------------- one summary

def summarize(
    equity: Sequence[float] | np.ndarray,
    trade_pnl_usd: Sequence[float] | np.ndarray = (),
    *,
    periods: float,
    exposure: float = 0.0,
    avg_leverage: float = 0.0,
    liquidations: int = 0,
    fees_usd: float = 0.0,
    funding_usd: float = 0.0,
    slippage_usd: float = 0.0,
) -> dict[str, float]:
    """Every headline metric of one backtest as a flat dict (JSON-ready; inf becomes a string later)."""
    eq = np.asarray(equity, dtype=float)
    r = bar_returns(eq)
    tot = total_return(eq)
    mdd = max_drawdown(eq)
    ts = trade_stats(trade_pnl_usd)
    start = float(eq[0]) if len(eq) else 0.0
    return {
        "net_return": tot,
        "net_pnl_usd": float(eq[-1] - eq[0]) if len(eq) else 0.0,
        "final_equity_usd": float(eq[-1]) if len(eq) else 0.0,
        "start_equity_usd": start,
        "sharpe": sharpe(r, periods),
        "sortino": sortino(r, periods),
        "max_drawdown": mdd,
        "calmar": calmar(tot, mdd, len(r), periods),
        "win_rate": ts.win_rate,
        "profit_factor": ts.profit_factor,
        "expectancy_usd": ts.expectancy,
        "trades": float(ts.n_trades),
        "exposure": float(exposure),
        "avg_leverage": float(avg_leverage),
        "liquidations": float(liquidations),
        "fees_usd": float(fees_usd),
        "funding_usd": float(funding_usd),
        "slippage_usd": float(slippage_usd),
        "bars": float(len(eq)),
    }
