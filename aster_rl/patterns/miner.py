"""The pattern miner: bounded enumeration, backtests through the accounting core, honest selection.

Procedure, on a **training range** only (features and prices of those bars; a trade must
close inside the range to count):

1. **Conditions.** For each selected column: ``>=`` at the upper quantiles and ``<=`` at
   the lower quantiles of its training-range values (thresholds rounded to three
   significant digits so that names are faithful); a column with at most
   ``CATEGORICAL_MAX`` distinct integer values (regime state, cycle phase) gets ``==``
   for each value instead. Conditions holding on fewer than ``min_trades`` bars are dropped.
2. **Candidates.** Conjunctions of 1 … ``max_conditions`` conditions on distinct columns,
   level by level (a conjunction is only extended while it still has ``min_trades``
   bars), at most ``max_candidates`` conjunctions, each tried with every side and every
   exit profile.
3. **Backtest.** The outcome of entering after every bar is simulated once per (side,
   profile) by :func:`~aster_rl.patterns.outcomes.simulate_entries` (the accounting core:
   next-open entries, taker fees, slippage, funding, ATR stop/target, ``max_hold_bars``).
   A candidate trades one position at a time (:func:`~aster_rl.patterns.outcomes.pattern_entries`):
   signals while a trade is open are skipped, so its trades do not overlap, and a trade
   still open at the range's end takes the position to the end. Candidates
   with fewer than ``min_trades`` trades are not evaluated.
4. **p-value: random entry times, same count, range, side and profile**
   (:func:`shift_pvalue`). The null hypothesis is that the pattern's entries are no
   better than entries at other times of the same range. Its trades are compared with
   ``permutations`` circular shifts of its own entry bars (every entry moved by the
   same offset of at least ``MIN_SHIFT_BARS`` bars, or a quarter of a shorter range,
   wrapping inside the range), which
   keep the entry count and their clustering in time; the standard error is the larger
   of the shifted means' spread and the pattern's own ``s / sqrt(k)``, and the one-sided
   p-value is the normal tail of ``z = (mean_pattern - mean_shifted) / se``. A Monte
   Carlo rank p-value cannot go below ``1 / (permutations + 1)``, while
   Benjamini–Hochberg over *m* candidates needs p-values near ``fdr / m`` (≈ 1e-5 for
   thousands of candidates), hence the normal tail. Comparing with other entry times of
   the same range (rather than with zero) means a range that simply trended does not
   make every long pattern look good. For the kept patterns, a Monte Carlo permutation
   p-value of the Welch statistic against random entry sets of the same size
   (:func:`permutation_pvalue`) is reported beside it as a check.
5. **Selection.** *Naive*: p < ``NAIVE_ALPHA`` (0.05), expectancy after costs > 0.
   *Corrected*: Benjamini–Hochberg at ``fdr`` over all evaluated candidates, and
   expectancy after costs > 0. The library keeps the corrected list.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from aster_rl.config import EnvConfig, PatternsConfig
from aster_rl.errors import DataError
from aster_rl.patterns.language import Condition, Pattern
from aster_rl.patterns.outcomes import Outcomes, pattern_entries, simulate_entries
from aster_rl.patterns.stats import PatternStats, compute_stats
from aster_rl.sim.prices import PriceArrays

logger = logging.getLogger(__name__)

NAIVE_ALPHA = 0.05
CATEGORICAL_MAX = 8
MIN_SHIFT_BARS = 288  # circular shifts move entries by at least this many bars
UPPER_QUANTILES: tuple[float, ...] = (0.75, 0.9, 0.95, 0.99)
LOWER_QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25)
DEFAULT_COLUMNS: tuple[str, ...] = (
    "market_volume_ratio",
    "orderflow_taker_buy_ratio",
    "indicators_rsi_14",
    "indicators_bb_pband",
    "market_return_12",
    "price_history_dip_288",
    "whales_skew_sum_12",
    "market_funding_rate_bps",
    "multi_timeframe_alignment",
    "regime_state",
)

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class MinedPattern:
    pattern: Pattern
    stats: PatternStats
    t_stat: float
    p_value: float
    signal_bars: np.ndarray  # bars (positions in the mined frame) whose trades were taken
    exit_bars: np.ndarray
    net_returns: np.ndarray
    reasons: np.ndarray
    p_permutation: float | None = None

    @property
    def name(self) -> str:
        return self.pattern.name


@dataclass
class MiningResult:
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    enumerated: int  # condition conjunctions tried
    evaluated: int  # (conjunction, side, profile) candidates backtested with >= min_trades trades
    naive: list[MinedPattern] = field(default_factory=list)
    corrected: list[MinedPattern] = field(default_factory=list)
    bh_threshold: float = 0.0  # the largest p-value BH accepted (0 when none)
    seconds: float = 0.0
    index: pd.DatetimeIndex | None = None  # the bars of the mined range
    outcomes_until: pd.Timestamp | None = None  # the bar in which the latest outcome used closed

    @property
    def candidates_per_second(self) -> float:
        return self.evaluated / self.seconds if self.seconds > 0 else math.inf

    def trades_frame(self, mined: MinedPattern) -> pd.DataFrame:
        """The pattern's training trades: signal time, exit bar time, net return, reason."""
        from aster_rl.sim.accounting import REASONS

        idx = self.index
        return pd.DataFrame(
            {
                "signal_time": idx[mined.signal_bars] if idx is not None else mined.signal_bars,
                "exit_time": idx[mined.exit_bars] if idx is not None else mined.exit_bars,
                "net_return": mined.net_returns,
                "reason": [REASONS[int(r)] for r in mined.reasons],
            }
        )


# ---------------------------------------------------------------- conditions


def _round_sig(x: float, digits: int = 3) -> float:
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(round(x, digits - 1 - int(math.floor(math.log10(abs(x))))))


def conditions_for(values: np.ndarray, column: str, min_support: int) -> list[Condition]:
    """Quantile (or categorical) conditions on one column's training values."""
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    if len(finite) == 0:
        return []
    uniq = np.unique(finite)
    out: list[Condition] = []
    if len(uniq) <= CATEGORICAL_MAX and np.all(uniq == np.round(uniq)):
        if len(uniq) > 1:
            out = [Condition(column, "==", float(u)) for u in uniq]
    else:
        for q in UPPER_QUANTILES:
            out.append(Condition(column, ">=", _round_sig(float(np.quantile(finite, q)))))
        for q in LOWER_QUANTILES:
            out.append(Condition(column, "<=", _round_sig(float(np.quantile(finite, q)))))
    seen: set[Condition] = set()
    kept = []
    n = len(v)
    for c in out:
        if c in seen:
            continue
        seen.add(c)
        support = int(c.mask(v).sum())
        if support >= min_support and support < n:
            kept.append(c)
    return kept


Conjunction = tuple[tuple[Condition, ...], np.ndarray]  # conditions, the bars where all hold


def enumerate_conjunctions(
    masks: dict[Condition, np.ndarray], max_conditions: int, min_support: int, max_candidates: int
) -> list[Conjunction]:
    """Conjunctions on distinct columns, level by level, pruned by support, at most ``max_candidates``."""
    conds = sorted(masks)
    level: list[Conjunction] = [((c,), masks[c]) for c in conds]
    out = list(level[:max_candidates])
    for _ in range(2, max_conditions + 1):
        nxt: list[Conjunction] = []
        for combo, mask in level:
            last = combo[-1]
            used = {c.column for c in combo}
            for c in conds:
                if c <= last or c.column in used:
                    continue
                m = mask & masks[c]
                if int(m.sum()) >= min_support:
                    nxt.append(((*combo, c), m))
                    if len(out) + len(nxt) >= max_candidates:
                        break
            if len(out) + len(nxt) >= max_candidates:
                break
        out.extend(nxt)
        level = nxt
        if len(out) >= max_candidates or not level:
            break
    return out[:max_candidates]


# ---------------------------------------------------------------- statistics


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def welch_pvalue(r: np.ndarray, pop_mean: float, pop_var: float, pop_n: int) -> tuple[float, float]:
    """One-sided (pattern better than random entries) Welch statistic and its normal p-value."""
    k = len(r)
    if k < 2:
        return 0.0, 1.0
    var = float(np.var(r, ddof=1))
    se = math.sqrt(var / k + pop_var / max(pop_n, 1))
    if se <= 0:
        return 0.0, 1.0
    t = (float(np.mean(r)) - pop_mean) / se
    return t, _normal_sf(t)


def shift_pvalue(
    r: np.ndarray, taken: np.ndarray, net_return: np.ndarray, first_bar: int, offsets: np.ndarray
) -> tuple[float, float]:
    """One-sided z and p of the pattern's mean net return against circular shifts of its entries.

    Every entry bar moves by the same offset (wrapping inside ``[first_bar, n)``), so the
    shifted entry sets keep the pattern's count and its clustering in time; their mean
    outcomes form the null (random entry times, same range, side and profile). The
    standard error is the larger of the shifts' spread and the pattern's own
    ``s / sqrt(k)``; the p-value is the normal tail of ``z``.
    """
    k = len(r)
    n = len(net_return)
    span = n - first_bar
    if k < 2 or span <= 1 or len(offsets) < 2:
        return 0.0, 1.0
    shifted = first_bar + (taken[None, :] - first_bar + offsets[:, None]) % span
    vals = net_return[shifted]
    ok = np.isfinite(vals)
    counts = ok.sum(axis=1)
    means = np.where(ok, vals, 0.0).sum(axis=1) / np.maximum(counts, 1)
    means = means[counts > 0]
    if len(means) < 2:
        return 0.0, 1.0
    se = max(float(np.std(means, ddof=1)), float(np.std(r, ddof=1)) / math.sqrt(k))
    if se <= 0:
        return 0.0, 1.0
    z = (float(np.mean(r)) - float(np.mean(means))) / se
    return z, _normal_sf(z)


def permutation_pvalue(r: np.ndarray, population: np.ndarray, permutations: int, rng: np.random.Generator) -> float:
    """Monte Carlo p-value of the Welch statistic against ``permutations`` random entry sets
    of the same size drawn without replacement from ``population`` (the range's entries)."""
    k = len(r)
    pop = np.asarray(population, dtype=float)
    if k < 2 or len(pop) <= k:
        return 1.0
    mu, var, n = float(pop.mean()), float(pop.var()), len(pop)
    t_obs, _ = welch_pvalue(r, mu, var, n)
    draws = np.stack([rng.choice(n, size=k, replace=False) for _ in range(permutations)])
    sample = pop[draws]
    se = np.sqrt(sample.var(axis=1, ddof=1) / k + var / n)
    t_null = (sample.mean(axis=1) - mu) / np.where(se > 0, se, np.inf)
    return float((1 + np.sum(t_null >= t_obs)) / (permutations + 1))


def benjamini_hochberg(p_values: Sequence[float], fdr: float) -> tuple[np.ndarray, float]:
    """Which hypotheses BH rejects at ``fdr`` and the largest p-value rejected (0 if none)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return np.zeros(0, dtype=bool), 0.0
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    ok = ranked <= fdr * np.arange(1, m + 1) / m
    if not ok.any():
        return np.zeros(m, dtype=bool), 0.0
    k = int(np.flatnonzero(ok)[-1])
    cutoff = float(ranked[k])
    reject = np.zeros(m, dtype=bool)
    reject[order[: k + 1]] = True
    return reject, cutoff


# ---------------------------------------------------------------- mining


def _labels(frame: pd.DataFrame, column: str, kind: str) -> np.ndarray | None:
    if column not in frame.columns:
        return None
    v = frame[column].to_numpy(dtype=float)
    out = np.empty(len(v), dtype=object)
    if kind == "regime":
        from aster_rl.features.tentacles.regime import STATE_NAMES as names
    else:
        from aster_rl.features.tentacles.btc_cycle import PHASES as names
    for i, x in enumerate(v):
        out[i] = names[int(x)] if np.isfinite(x) and 0 <= int(x) < len(names) else None
    return out


def mine(
    frame: pd.DataFrame,
    prices: PriceArrays,
    cfg: PatternsConfig,
    env: EnvConfig,
    *,
    columns: Sequence[str] | None = None,
    first_bar: int = 0,
    profiles: Sequence[str] | None = None,
    sides: Sequence[str] = ("long", "short"),
    max_candidates: int = 20_000,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> MiningResult:
    """Mine ``frame`` (features of the training range) against ``prices`` (the same bars).

    ``first_bar``: bars before it (feature warm-up) neither give signals nor thresholds.
    ``columns``: the feature columns conditions may use (default :data:`DEFAULT_COLUMNS`,
    those present). See the module docstring for the procedure.
    """
    t0 = time.perf_counter()
    if len(frame) != len(prices):
        raise DataError(f"mine: {len(frame)} feature rows but {len(prices)} price bars; pass the same range")
    n = len(frame)
    if n - first_bar < 2 * cfg.min_trades:
        raise DataError(f"mine: {n - first_bar} bars after the warm-up; need more than {2 * cfg.min_trades}")
    use = _mining_columns(frame, columns)
    profiles = tuple(profiles) if profiles is not None else tuple(env.exit_profiles)

    eligible = np.zeros(n, dtype=bool)
    eligible[first_bar:] = True
    masks = _condition_masks(frame, use, eligible, first_bar, cfg.min_trades)
    combos = enumerate_conjunctions(masks, cfg.max_conditions, cfg.min_trades, max_candidates)
    logger.info("%d conditions on %d columns, %d conjunctions", len(masks), len(use), len(combos))

    outcomes = {
        (side, prof): simulate_entries(prices, np.flatnonzero(eligible), side, prof, env, cfg.max_hold_bars)
        for side in sides
        for prof in profiles
    }
    span = n - first_bar
    min_shift = min(MIN_SHIFT_BARS, span // 4)
    offsets = np.random.default_rng(seed).integers(min_shift, span - min_shift + 1, size=cfg.permutations)
    rows = _test_candidates(combos, outcomes, cfg.min_trades, first_bar, offsets, progress)
    naive, corrected, cutoff = _select(rows, outcomes, eligible, frame, cfg, seed)

    last_exit = max((int(o.exit_bar.max()) for o in outcomes.values()), default=-1)
    dated = isinstance(frame.index, pd.DatetimeIndex)
    result = MiningResult(
        start=frame.index[first_bar] if dated else None,
        end=frame.index[-1] if dated else None,
        enumerated=len(combos),
        evaluated=len(rows),
        naive=naive,
        corrected=corrected,
        bh_threshold=cutoff,
        seconds=time.perf_counter() - t0,
        index=frame.index if dated else None,
        outcomes_until=frame.index[last_exit] if dated and last_exit >= 0 else None,
    )
    logger.info(
        "mined %d candidates in %.1f s: %d naive (p < %.2f), %d after Benjamini-Hochberg at %.2f",
        result.evaluated, result.seconds, len(naive), NAIVE_ALPHA, len(corrected), cfg.fdr,
    )
    return result


def _mining_columns(frame: pd.DataFrame, columns: Sequence[str] | None) -> list[str]:
    """The feature columns conditions may use: ``columns`` (all must be there) or the defaults present."""
    wanted = tuple(columns) if columns is not None else DEFAULT_COLUMNS
    use = [c for c in wanted if c in frame.columns]
    missing = [c for c in wanted if c not in frame.columns]
    if columns is not None and missing:
        raise DataError(f"mine: feature columns {missing} are missing (available: {len(frame.columns)} columns)")
    if missing:
        logger.info("mining without the absent default columns %s", missing)
    if not use:
        raise DataError("mine: none of the mining columns are in the feature frame")
    return use


def _condition_masks(
    frame: pd.DataFrame, use: Sequence[str], eligible: np.ndarray, first_bar: int, min_trades: int
) -> dict[Condition, np.ndarray]:
    """Every single condition on ``use`` (thresholds from the eligible bars) -> the eligible bars it holds on."""
    masks: dict[Condition, np.ndarray] = {}
    for col in use:
        values = frame[col].to_numpy(dtype=float)
        train_values = np.where(eligible, values, np.nan)
        for cond in conditions_for(train_values[first_bar:], col, min_trades):
            masks[cond] = cond.mask(values) & eligible
    return masks


_Candidate = tuple[Pattern, np.ndarray, np.ndarray, float, float]  # pattern, entries, net returns, t, p


def _test_candidates(
    combos: Sequence[Conjunction],
    outcomes: dict[tuple[str, str], Outcomes],
    min_trades: int,
    first_bar: int,
    offsets: np.ndarray,
    progress: ProgressFn | None,
) -> list[_Candidate]:
    """Each conjunction under each (side, profile) with at least ``min_trades`` trades, with its shift test."""
    rows: list[_Candidate] = []
    total = len(combos)
    for done, (combo, mask) in enumerate(combos, 1):
        for (side, prof), o in outcomes.items():
            if int((mask & o.valid).sum()) < min_trades:
                continue
            taken = pattern_entries(mask, o)
            if len(taken) < min_trades:
                continue
            r = o.net_return[taken]
            t, p = shift_pvalue(r, taken, o.net_return, first_bar, offsets)
            rows.append((Pattern(combo, side, prof), taken, r, t, p))
        if progress is not None:
            progress(done, total)
    return rows


def _select(
    rows: Sequence[_Candidate],
    outcomes: dict[tuple[str, str], Outcomes],
    eligible: np.ndarray,
    frame: pd.DataFrame,
    cfg: PatternsConfig,
    seed: int,
) -> tuple[list[MinedPattern], list[MinedPattern], float]:
    """The profitable candidates naively significant (p < NAIVE_ALPHA) and those BH keeps at
    ``cfg.fdr`` (with a permutation p-value against all entries of their side and profile),
    each sorted by t-statistic, and the BH p-value cutoff."""
    reject, cutoff = benjamini_hochberg([row[4] for row in rows], cfg.fdr)
    regimes = _labels(frame, "regime_state", "regime")
    phases = _labels(frame, "btc_cycle_phase", "phase")
    naive: list[MinedPattern] = []
    corrected: list[MinedPattern] = []
    rng = np.random.default_rng(seed)
    for i, (pattern, taken, r, t, p) in enumerate(rows):
        if not float(r.mean()) > 0 or (p >= NAIVE_ALPHA and not reject[i]):
            continue
        o = outcomes[(pattern.side, pattern.profile)]
        stats = compute_stats(
            r,
            regimes[taken] if regimes is not None else None,
            phases[taken] if phases is not None else None,
        )
        p_permutation = None
        if reject[i]:
            population = o.net_return[o.valid & eligible]
            p_permutation = permutation_pvalue(r, population, cfg.permutations, rng)
        mined = MinedPattern(pattern, stats, t, p, taken, o.exit_bar[taken], r, o.reason[taken], p_permutation=p_permutation)
        if reject[i]:
            corrected.append(mined)
        if p < NAIVE_ALPHA:
            naive.append(mined)
    naive.sort(key=lambda m: -m.t_stat)
    corrected.sort(key=lambda m: -m.t_stat)
    return naive, corrected, cutoff


def replay(
    patterns: Sequence[Pattern], frame: pd.DataFrame, prices: PriceArrays, cfg: PatternsConfig, env: EnvConfig, *, first_bar: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The trades known patterns take on ``frame`` / ``prices`` (one range, as :func:`mine` backtests
    them): per pattern name, its signal bars, exit bars and net returns (positions in the range)."""
    if len(frame) != len(prices):
        raise DataError(f"replay: {len(frame)} feature rows but {len(prices)} price bars; pass the same range")
    eligible = np.zeros(len(frame), dtype=bool)
    eligible[first_bar:] = True
    cache: dict[tuple[str, str], Outcomes] = {}
    out = {}
    for p in patterns:
        key = (p.side, p.profile)
        if key not in cache:
            cache[key] = simulate_entries(prices, np.flatnonzero(eligible), p.side, p.profile, env, cfg.max_hold_bars)
        o = cache[key]
        taken = pattern_entries(p.matches(frame) & eligible, o)
        out[p.name] = (taken, o.exit_bar[taken], o.net_return[taken])
    return out
