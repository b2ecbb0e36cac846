"""``PerpEnv``: one isolated-margin account on the ASTER/USDT perpetual, as a Gymnasium env.

Timing (no look-ahead): the observation at bar ``t`` is the feature row ``t`` (known at
bar t's close) plus the account state marked at t's close. The action chosen after
seeing it is an order that fills at bar ``t + 1``'s **open** (taker fee, slippage);
funding settling inside bar ``t + 1`` is charged, stop / target / liquidation are checked
against bar ``t + 1``'s high and low, and the account is marked at its close, which is
where the next observation stands.

Action ``MultiDiscrete([3, len(leverages), len(exit_profiles)])``:

- side: 0 WAIT, 1 BUY, 2 SELL, as order sides. BUY while flat opens a long, BUY while
  long holds, BUY while short **closes the short and stays flat** (no reversal in one
  step: reversing takes a second BUY, which keeps turnover deliberate). SELL mirrors it.
- leverage index into ``cfg.leverages`` (capped by ``max_leverage`` and the brackets);
- exit profile index into ``cfg.exit_profiles``: stop = entry ∓ stop_atr × ATR(t),
  target = entry ± target_atr × ATR(t), with ATR at the decision bar.

Leverage and profile only matter when the step opens a position.

Episodes start at a random bar in ``[start, end - 1 - episode_length]`` (``start`` is the
feature warm-up; it is moved forward to the first bar with a positive ATR), last
``episode_length`` steps, are ``truncated`` at that length or at the data's end and
``terminated`` when equity falls below ``bankruptcy_fraction × initial_equity_usd``.
An open position at the episode's end is closed at the last close (reason ``"end"``).
The mechanics live in :class:`aster_rl.accounting.AccountBook` (shared with the batched
env, the backtester and the paper broker).
"""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from aster_rl.accounting import SingleAccount, validate_env_config
from aster_rl.config import EnvConfig
from aster_rl.errors import ConfigError, DataError
from aster_rl.observation import N_ACCOUNT
from aster_rl.prices import PriceArrays
from envs.rewards import step_rewards

logger = logging.getLogger(__name__)

def check_inputs(
    features: np.ndarray,
    prices: PriceArrays,
    cfg: EnvConfig,
    start: int,
    end: int | None,
    episode_length: int | None,
) -> tuple[np.ndarray, int, int, int]:
    """Validate the env's inputs; return (float32 features, first decision bar, end, length)."""
    if not isinstance(cfg, EnvConfig):
        raise ConfigError(f"cfg: expected an EnvConfig, got {type(cfg).__name__}")
    validate_env_config(cfg)
    if not isinstance(prices, PriceArrays):
        raise DataError(f"prices: expected aster_rl.prices.PriceArrays, got {type(prices).__name__}")
    feats = np.asarray(features)
    if feats.ndim != 2 or feats.shape[0] == 0 or feats.shape[1] == 0:
        raise DataError(f"features: expected a non-empty 2-D matrix (bars × features), got shape {feats.shape}")
    if not np.issubdtype(feats.dtype, np.number):
        raise DataError(f"features: expected numbers, got dtype {feats.dtype}")
    feats = np.ascontiguousarray(feats, dtype=np.float32)
    finite = np.isfinite(feats)
    if not finite.all():
        rows, cols = np.nonzero(~finite)
        raise DataError(
            f"features: {len(rows)} NaN/inf values, first at row {int(rows[0])}, column {int(cols[0])}; "
            "fill or drop them before building the env"
        )
    if len(feats) != len(prices):
        raise DataError(f"features: {len(feats)} rows but prices has {len(prices)} bars; they must match")
    n = len(prices)
    end = n if end is None else int(end)
    if not 0 < end <= n:
        raise DataError(f"end = {end}: must be in 1..{n}")
    start = int(start)
    if start < 0:
        raise DataError(f"start = {start}: must be >= 0")
    positive = np.flatnonzero(prices.atr[start:end] > 0)
    first = start + int(positive[0]) if len(positive) else end
    if first >= end - 1:
        raise DataError(
            f"start = {start}, end = {end}: need at least two bars with a positive ATR after the warm-up "
            f"(first positive ATR at bar {first})"
        )
    length = cfg.episode_length if episode_length is None else int(episode_length)
    if length <= 0:
        raise ConfigError(f"episode_length = {length}: must be > 0")
    return feats, first, end, length


class PerpEnv(gym.Env[np.ndarray, np.ndarray]):
    """One perpetual-futures account over a feature matrix; see the module docstring."""

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        features: np.ndarray,
        prices: PriceArrays,
        cfg: EnvConfig | None = None,
        *,
        start: int = 0,
        end: int | None = None,
        episode_length: int | None = None,
        random_start: bool = True,
        render_mode: str | None = None,
    ):
        cfg = EnvConfig() if cfg is None else cfg
        self.features, self._first_t, self._end, self.episode_length = check_inputs(
            features, prices, cfg, start, end, episode_length
        )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode = {render_mode!r}: expected None or 'ansi'")
        self.render_mode = render_mode
        self.cfg = cfg
        self.prices = prices
        self.random_start = bool(random_start)
        self.n_features = self.features.shape[1]
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.n_features + N_ACCOUNT,), np.float32)
        self.action_space = spaces.MultiDiscrete([3, len(cfg.leverages), len(cfg.exit_profiles)])
        self.account = SingleAccount(cfg, prices)
        self.book = self.account.book
        self._lev = self.account._lev
        self._n_profiles = len(cfg.exit_profiles)
        self._initial = float(cfg.initial_equity_usd)
        self._t = self._first_t
        self._t0 = self._first_t
        self._done = False
        self._ts, self._c = prices.timestamps, prices.close
        self._prev = np.zeros(1)

    # ------------------------------------------------------------------ helpers
    def _latest_start(self) -> int:
        return max(self._first_t, self._end - 1 - self.episode_length)

    def _obs(self, t: int) -> np.ndarray:
        return self.account.observation(self.features, t)

    def _info(self) -> dict[str, Any]:
        b = self.book
        return {
            "equity": float(b.equity[0]),
            "position": int(b.side[0]),
            "leverage": float(b.lev[0]),
            "fees": float(b.fees[0]),
            "funding": float(b.funding[0]),
            "slippage": float(b.slippage[0]),
        }

    def episode_stats(self) -> dict[str, Any]:
        return self.account.episode_stats()

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        latest = self._latest_start()
        if options and "start" in options:
            t0 = int(options["start"])
            if not self._first_t <= t0 < self._end - 1:
                raise ValueError(f"options['start'] = {t0}: must be in {self._first_t}..{self._end - 2}")
        elif self.random_start and latest > self._first_t:
            t0 = int(self.np_random.integers(self._first_t, latest + 1))
        else:
            t0 = self._first_t
        self._t0 = self._t = t0
        self._done = False
        self.account.reset()
        return self._obs(t0), self._info()

    def step(self, action):
        if self._done:
            raise RuntimeError("PerpEnv.step called after the episode ended; call reset()")
        acc = self.account
        book = self.book
        t1 = self._t + 1
        terminated = acc.advance(
            self._t, int(action[0]), int(action[1]), int(action[2]),
            acc.steps + 1 >= self.episode_length or t1 >= self._end - 1,
        )
        self._t = t1
        truncated = (not terminated) and (acc.steps >= self.episode_length or t1 >= self._end - 1)
        if acc.quiet and not book.dirty and not self.cfg.drawdown_penalty and book.equity[0] == acc.prev_equity:
            reward = 0.0
        else:
            self._prev[0] = acc.prev_equity
            reward = float(
                step_rewards(
                    self.cfg, self._prev, book.equity, book.peak,
                    book.closed_return_now, book.turnover_now, book.liquidated_now,
                )[0]
            )
        info = self._info()
        if book.closed:
            info["closed_trades"] = [trade for _, trade in book.closed]
        if terminated or truncated:
            self._done = True
            info["episode_stats"] = acc.episode_stats()
        return self._obs(t1), reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """Valid choices, concatenated per action dimension (sb3-contrib MaskablePPO style).

        BUY is masked while long and SELL while short (they would be WAIT); leverages the
        brackets cannot carry for the current equity are masked (the first stays valid).
        """
        book = self.book
        side = book.side[0]
        sides = np.array([True, side <= 0, side >= 0])
        allowed = book.allowed_leverage(np.array([book.cfg.margin_fraction * book.equity[0]]))[0]
        levs = self._lev <= min(allowed, self.cfg.max_leverage)
        levs[0] = True
        profs = np.ones(self._n_profiles, dtype=bool)
        return np.concatenate((sides, levs, profs))

    def render(self):
        if self.render_mode != "ansi":
            return None
        b = self.book
        t = self._t
        pos = {1: "LONG", -1: "SHORT", 0: "FLAT"}[int(b.side[0])]
        import pandas as pd

        when = pd.Timestamp(int(self._ts[t]), tz="UTC")
        line = (
            f"{when:%Y-%m-%d %H:%M} close={self._c[t]:.4f} {pos}"
            f" lev={b.lev[0]:g} equity={b.equity[0]:.2f} fees={b.fees[0]:.2f}"
            f" funding={b.funding[0]:.2f} trades={int(b.n_trades[0])}"
        )
        if b.side[0] != 0:
            line += f" entry={b.entry[0]:.4f} stop={b.stop[0]:.4f} target={b.target[0]:.4f} liq={b.liq[0]:.4f}"
        return line + "\n"

    def close(self) -> None:
        return None
