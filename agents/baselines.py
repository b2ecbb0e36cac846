"""Baseline policies the agent must beat, each a callable ``policy(obs) -> action``.

They are run through the same backtester, with the same costs, on the same split as the
agent. Actions are ``(side, leverage index, exit-profile index)`` with side 0 WAIT,
1 BUY, 2 SELL (WAIT keeps an open position; BUY while short closes the short): orders, so
each baseline trades on its account settings in order mode (:func:`order_config`) even when
the agent reads its side head as target positions.

- ``flat``: never trades.
- ``buy_and_hold``: all equity long at 1x from the first bar to the last: one entry at
  the first fill, no stop, no target, closed at the last bar; it pays one entry and one
  exit (fee and slippage) and every funding payment. It trades on its own account
  settings (:func:`holding_config`), not the agent's margin fraction and exit profiles.
- ``exposure_matched``: the same holding scaled to a signed exposure (the agent's mean
  net notional / equity): long or short ``|x|`` times the equity from the first bar to
  the last, so taking the market's direction with leverage is not counted as skill.
- ``random``: enters long or short at random with a per-bar probability tuned so that its
  traded notional matches the agent's, with the agent's leverage (as traded, after the
  margin brackets) and profile mix; averaged over several seeds.
- ``rule_brain``: the seed's rule-based brain: long when the regime trends up and the
  timeframes agree bullish, short when it trends down and they agree bearish, no new
  longs in the bear phase of the BTC cycle; exit profile and leverage from the strategy
  tentacle (its low leverage band, capped by the env's ladder).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from aster_rl.config import EnvConfig, ExitProfile, replace

logger = logging.getLogger(__name__)

WAIT, BUY, SELL = 0, 1, 2
PolicyFn = Callable[[np.ndarray], np.ndarray]

STRATEGY_PROFILES = ("scalp", "swing", "position")
BEAR_PHASE = 4  # btc_cycle_phase of the bear market
NO_EXIT_ATR = 1e12  # a stop / target this many ATRs away is never reached
MIN_EXPOSURE = 1e-6  # a holding smaller than this (x equity) is flat


def _action(side: int, lev_idx: int, prof_idx: int) -> np.ndarray:
    return np.array([side, lev_idx, prof_idx], dtype=np.int64)


def leverage_index(cfg: EnvConfig, leverage: float) -> int:
    """Ladder index of the largest leverage <= ``leverage`` (the smallest rung if none is)."""
    ladder = np.asarray(cfg.leverages, dtype=float)
    ok = np.flatnonzero(ladder <= leverage + 1e-9)
    if len(ok) == 0:
        return int(np.argmin(ladder))
    return int(ok[np.argmax(ladder[ok])])


def order_config(cfg: EnvConfig) -> EnvConfig:
    """``cfg`` with the side read as orders (the baselines' actions), whatever the agent's ``env.action_mode``."""
    return cfg if cfg.action_mode == "orders" else replace(cfg, action_mode="orders")


def flat_policy(cfg: EnvConfig) -> PolicyFn:
    def policy(obs: np.ndarray) -> np.ndarray:
        return _action(WAIT, 0, 0)

    return policy


@dataclass(frozen=True)
class Baseline:
    """A baseline policy and the account settings it trades with."""

    policy: PolicyFn
    env: EnvConfig


def holding_config(cfg: EnvConfig, exposure: float = 1.0) -> EnvConfig:
    """``cfg``'s market and costs for an account holding ``|exposure|`` x equity in notional.

    One leverage rung, ``ceil(|exposure|)``, with margin fraction ``|exposure| / rung`` (so
    1.0 is all equity at 1x; the entry shrinks by what the entry fee needs), and one exit
    profile whose stop and target are never reached. It holds to the last bar: no
    bankruptcy stop (a 1x holding that loses 90% rides on, like the market).
    """
    x = abs(float(exposure))
    if not (math.isfinite(x) and x >= MIN_EXPOSURE):
        raise ValueError(f"exposure = {exposure}: a holding needs a finite |exposure| >= {MIN_EXPOSURE}")
    lev = max(1, math.ceil(x - 1e-9))
    return replace(
        order_config(cfg),
        leverages=(lev,),
        max_leverage=max(cfg.max_leverage, lev),
        margin_fraction=min(1.0, x / lev),
        exit_profiles={"hold": ExitProfile(stop_atr=NO_EXIT_ATR, target_atr=NO_EXIT_ATR)},
        bankruptcy_fraction=0.0,
    )


def hold_policy(side: int) -> PolicyFn:
    """``side`` (BUY or SELL) on every bar: it opens at the first fill and then holds (BUY while long holds).

    Only a liquidation (possible above 1x) ends the holding early; it is then reopened.
    """
    act = _action(side, 0, 0)

    def policy(obs: np.ndarray) -> np.ndarray:
        return act

    return policy


def holding(cfg: EnvConfig, exposure: float) -> Baseline:
    """Buy-and-hold scaled to a signed ``exposure`` (notional / equity); flat when it is ~0."""
    if abs(exposure) < MIN_EXPOSURE:
        return Baseline(flat_policy(cfg), cfg)
    return Baseline(hold_policy(BUY if exposure > 0 else SELL), holding_config(cfg, exposure))


def buy_and_hold(cfg: EnvConfig) -> Baseline:
    """All equity long at 1x from the first bar to the last."""
    return holding(cfg, 1.0)


def random_policy(
    cfg: EnvConfig,
    entry_probability: float,
    seed: int,
    leverage_weights: Sequence[float] | None = None,
    profile_weights: Sequence[float] | None = None,
) -> PolicyFn:
    """BUY or SELL with probability ``entry_probability`` per bar, else WAIT."""
    rng = np.random.default_rng(seed)
    n_lev, n_prof = len(cfg.leverages), len(cfg.exit_profiles)
    lw = _normalized(leverage_weights, n_lev)
    pw = _normalized(profile_weights, n_prof)

    def policy(obs: np.ndarray) -> np.ndarray:
        if rng.random() >= entry_probability:
            return _action(WAIT, 0, 0)
        side = BUY if rng.random() < 0.5 else SELL
        return _action(side, int(rng.choice(n_lev, p=lw)), int(rng.choice(n_prof, p=pw)))

    return policy


def _normalized(weights: Sequence[float] | None, n: int) -> np.ndarray:
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,) or w.sum() <= 0:
        return np.full(n, 1.0 / n)
    return w / w.sum()


def rule_brain_policy(cfg: EnvConfig, columns: Sequence[str], alignment_threshold: float = 0.5) -> PolicyFn:
    """The seed's rule on the observation's feature columns (which come first in ``obs``)."""
    cols = list(columns)

    def col(name: str) -> int | None:
        return cols.index(name) if name in cols else None

    i_regime, i_align = col("regime_state"), col("multi_timeframe_alignment")
    i_profile, i_lev = col("strategy_profile"), col("strategy_leverage_low")
    i_phase = col("btc_cycle_phase")
    if i_regime is None or i_align is None:
        logger.warning("rule brain: no regime_state / multi_timeframe_alignment columns; it will never trade")
    names = list(cfg.exit_profiles)
    default_prof = names.index("swing") if "swing" in names else 0

    def policy(obs: np.ndarray) -> np.ndarray:
        if i_regime is None or i_align is None:
            return _action(WAIT, 0, 0)
        regime = int(round(float(obs[i_regime])))
        align = float(obs[i_align])
        if regime == 1 and align >= alignment_threshold:
            side = BUY
            if i_phase is not None and int(round(float(obs[i_phase]))) == BEAR_PHASE:
                side = WAIT
        elif regime == 2 and align <= -alignment_threshold:
            side = SELL
        else:
            return _action(WAIT, 0, 0)
        prof = default_prof
        if i_profile is not None:
            k = int(round(float(obs[i_profile])))
            if 0 <= k < len(STRATEGY_PROFILES) and STRATEGY_PROFILES[k] in names:
                prof = names.index(STRATEGY_PROFILES[k])
        lev = float(obs[i_lev]) if i_lev is not None else 1.0
        return _action(side, leverage_index(cfg, max(lev, 1.0)), prof)

    return policy
