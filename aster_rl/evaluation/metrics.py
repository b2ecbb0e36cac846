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
- Skill is measured as excess: :func:`excess_ci` is a paired block bootstrap of the
  per-bar log-return difference between a strategy and a benchmark over the same bars.
- :func:`deflated_sharpe` is the probability that the true Sharpe ratio exceeds the best
  one expected by luck from the number of trials that led to the result.
- Walk-forward folds are few and independent: :func:`t_interval` (Student t on K - 1
  degrees of freedom) aggregates them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

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


CALMAR_MIN_DAYS = 30.0


def calmar(total: float, max_dd: float, n_bars: int, periods: float, min_days: float = CALMAR_MIN_DAYS) -> float:
    """Annualized return over the maximum drawdown; 0 when there was no drawdown.

    NaN (reported as n/a) for a period shorter than ``min_days``: annualizing a few days'
    return compounds it into a meaningless number.
    """
    if n_bars <= 0 or n_bars / periods * 365.0 < min_days:
        return math.nan
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


def trade_costs(entry_price: np.ndarray, qty: np.ndarray, pnl_usd: np.ndarray, fees_usd: np.ndarray,
                funding_usd: np.ndarray, slippage_usd: np.ndarray) -> dict[str, float]:
    """Per trade, as a share of its entry notional (means over trades, in basis points):
    ``break_even_bps``, the move a trade must capture to pay its fees, slippage and funding,
    and ``captured_bps``, the move it captured before them (``pnl + fees + funding + slippage``:
    the fill prices carry the slippage). NaN without trades."""
    notional = np.abs(np.asarray(qty, dtype=float) * np.asarray(entry_price, dtype=float))
    ok = notional > 0
    if not ok.any():
        return {"break_even_bps": math.nan, "captured_bps": math.nan}
    costs = (np.asarray(fees_usd, dtype=float) + np.asarray(funding_usd, dtype=float)
             + np.asarray(slippage_usd, dtype=float))[ok]
    gross = np.asarray(pnl_usd, dtype=float)[ok] + costs
    return {"break_even_bps": float(np.mean(costs / notional[ok]) * 1e4),
            "captured_bps": float(np.mean(gross / notional[ok]) * 1e4)}


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


def log_returns(equity: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per-bar log returns ``log(equity[t] / equity[t-1])`` (0 where the previous equity is not positive)."""
    return np.log1p(bar_returns(equity))


def _rows_total_log_growth(d: np.ndarray) -> np.ndarray:
    return np.expm1(d.sum(axis=1))


def excess_ci(returns: np.ndarray, benchmark_returns: np.ndarray, **kw) -> Interval:
    """Paired block-bootstrap interval of a strategy's growth over a benchmark's on the same bars.

    With per-bar simple returns ``r`` (strategy) and ``b`` (benchmark) the statistic is
    ``exp(sum_t [log(1 + r_t) - log(1 + b_t)]) - 1``: how much more (or less) the
    strategy's equity grew than the benchmark's, as a fraction. The resampled blocks are
    the same for both series (a stationary, circular block bootstrap of the per-bar
    difference), so what they share (the market's move) cancels in every resample and
    the interval measures the difference alone. Keywords as :func:`bootstrap_ci`.
    """
    return bootstrap_ci(_paired_log_excess(returns, benchmark_returns), _rows_total_log_growth, **kw)


def excess_growth(returns: np.ndarray, benchmark_returns: np.ndarray) -> float:
    """The estimate of :func:`excess_ci` alone (no resampling): ``exp(sum_t [log(1 + r_t) - log(1 + b_t)]) - 1``."""
    return float(_rows_total_log_growth(_paired_log_excess(returns, benchmark_returns)[None, :])[0])


def information_ratio(returns: np.ndarray, benchmark_returns: np.ndarray, periods: float) -> float:
    """Annualized Sharpe ratio of the per-bar log excess ``log(1 + r_t) - log(1 + b_t)`` (0 without variation):
    how steadily, not how much, a strategy outgrew its benchmark. Scale-free (a larger position
    grows the excess and its noise alike); exposure that adds only noise lowers it."""
    return sharpe(_paired_log_excess(returns, benchmark_returns), periods)


def _paired_log_excess(returns: np.ndarray, benchmark_returns: np.ndarray) -> np.ndarray:
    r = np.asarray(returns, dtype=float)
    b = np.asarray(benchmark_returns, dtype=float)
    if r.shape != b.shape:
        raise ValueError(f"excess_ci: {r.shape} strategy returns but {b.shape} benchmark returns; they must be paired")
    return np.log1p(r) - np.log1p(b)


# ---------------------------------------------------------------- deflated Sharpe ratio

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum of ``n_trials`` Sharpe estimates whose true value is 0 (Bailey & López de Prado 2014).

    ``E[max SR] ~ sqrt(V) * ((1 - g) * Phi^-1(1 - 1/N) + g * Phi^-1(1 - 1/(N e)))`` with
    ``g`` the Euler-Mascheroni constant and ``V`` the variance of the Sharpe estimates
    across trials. One trial: 0.
    """
    n = int(n_trials)
    if n <= 1 or sharpe_variance <= 0:
        return 0.0
    return float(math.sqrt(sharpe_variance) * ((1 - EULER_GAMMA) * _N.inv_cdf(1 - 1 / n)
                                               + EULER_GAMMA * _N.inv_cdf(1 - 1 / (n * math.e))))


def probabilistic_sharpe(returns: np.ndarray, benchmark_sharpe: float = 0.0) -> float:
    """Probability that the true per-bar Sharpe ratio exceeds ``benchmark_sharpe`` (Bailey & López de Prado 2012).

    ``PSR = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2))`` with ``SR``
    the per-bar (not annualized) Sharpe ratio of ``T`` returns, ``g3`` their skewness and
    ``g4`` their kurtosis (3 for a normal law). NaN for fewer than 3 returns or none that vary.
    """
    r = np.asarray(returns, dtype=float)
    t = len(r)
    if t < 3:
        return math.nan
    sd = r.std(ddof=1)
    if not np.isfinite(sd) or sd <= 1e-15:
        return math.nan
    sr = r.mean() / sd
    z = (r - r.mean()) / r.std(ddof=0)
    skew = float(np.mean(z**3))
    kurt = float(np.mean(z**4))
    denom = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2
    denom = max(denom, 1e-12)
    return float(_N.cdf((sr - benchmark_sharpe) * math.sqrt(t - 1) / math.sqrt(denom)))


def deflated_sharpe(returns: np.ndarray, n_trials: int = 1, sharpe_variance: float | None = None) -> float:
    """The deflated Sharpe ratio (Bailey & López de Prado 2014): PSR against the expected maximum Sharpe of N trials.

    ``DSR = PSR(SR*)`` with ``SR* = expected_max_sharpe(N, V)`` (per bar). ``V``, the
    variance of the Sharpe estimates across the trials, defaults to ``1 / (T - 1)``, the
    variance of one Sharpe estimate from ``T`` returns when the true Sharpe is 0 (the
    trials' own Sharpe ratios are not kept). With one trial it is ``PSR(0)``. A value
    near 1 says the Sharpe ratio is unlikely to be the luck of the best of N tries.
    """
    r = np.asarray(returns, dtype=float)
    if len(r) < 3:
        return math.nan
    v = 1.0 / (len(r) - 1) if sharpe_variance is None else float(sharpe_variance)
    return probabilistic_sharpe(r, expected_max_sharpe(n_trials, v))


# ---------------------------------------------------------------- few independent values (walk-forward folds)

def student_t_cdf(x: float, df: int) -> float:
    """CDF of Student's t with an integer number of degrees of freedom (closed form, Abramowitz & Stegun 26.7.3-4)."""
    nu = int(df)
    if nu < 1:
        raise ValueError(f"degrees of freedom = {df}: must be >= 1")
    theta = math.atan(abs(x) / math.sqrt(nu))
    s, c = math.sin(theta), math.cos(theta)
    if nu % 2 == 1:
        total, term = 0.0, c
        for k in range(1, (nu - 1) // 2 + 1):
            if k > 1:
                term *= (2 * k - 2) / (2 * k - 1) * c * c
            total += term
        a = 2.0 / math.pi * (theta + s * total) if nu > 1 else 2.0 * theta / math.pi
    else:
        total, term = 1.0, 1.0
        for k in range(1, nu // 2):
            term *= (2 * k - 1) / (2 * k) * c * c
            total += term
        a = s * total
    return 0.5 + 0.5 * a if x >= 0 else 0.5 - 0.5 * a


def student_t_ppf(p: float, df: int) -> float:
    """Quantile of Student's t (bisection on :func:`student_t_cdf`)."""
    if not 0 < p < 1:
        raise ValueError(f"p = {p}: must lie in (0, 1)")
    if p < 0.5:
        return -student_t_ppf(1 - p, df)
    lo, hi = 0.0, 1.0
    while student_t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Interval:
    """Student-t interval of the mean of ``K`` independent values: ``mean +- t(K-1) * sd / sqrt(K)``.

    Fewer than two values give no interval: low = -inf, high = +inf.
    """
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return Interval(0.0, -math.inf, math.inf, confidence)
    mean = float(v.mean())
    if len(v) < 2:
        return Interval(mean, -math.inf, math.inf, confidence)
    half = student_t_ppf(0.5 + confidence / 2, len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return Interval(mean, mean - half, mean + half, confidence)


# ---------------------------------------------------------------- one summary

def summarize(
    equity: Sequence[float] | np.ndarray,
    trade_pnl_usd: Sequence[float] | np.ndarray = (),
    *,
    periods: float,
    exposure: float = 0.0,
    net_exposure: float = 0.0,
    gross_exposure: float = 0.0,
    avg_leverage: float = 0.0,
    liquidations: int = 0,
    fees_usd: float = 0.0,
    funding_usd: float = 0.0,
    slippage_usd: float = 0.0,
    trials: int = 1,
) -> dict[str, float]:
    """Every headline metric of one backtest as a flat dict (JSON-ready; inf becomes a string later).

    ``exposure`` is the share of bars in the market; ``net_exposure`` / ``gross_exposure``
    the mean signed / absolute position notional over equity; ``trials`` the number of
    tries that led to this result, which deflates the Sharpe ratio.
    """
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
        "deflated_sharpe": deflated_sharpe(r, trials),
        "trials": float(trials),
        "sortino": sortino(r, periods),
        "max_drawdown": mdd,
        "calmar": calmar(tot, mdd, len(r), periods),
        "win_rate": ts.win_rate,
        "profit_factor": ts.profit_factor,
        "expectancy_usd": ts.expectancy,
        "trades": float(ts.n_trades),
        "exposure": float(exposure),
        "net_exposure": float(net_exposure),
        "gross_exposure": float(gross_exposure),
        "avg_leverage": float(avg_leverage),
        "liquidations": float(liquidations),
        "fees_usd": float(fees_usd),
        "funding_usd": float(funding_usd),
        "slippage_usd": float(slippage_usd),
        "bars": float(len(eq)),
    }
