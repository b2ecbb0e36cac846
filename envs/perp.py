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
The mechanics live in :class:`aster_rl.sim.accounting.AccountBook` (shared with the batched
env, the backtester and the paper broker): one compiled kernel call per step advances the
account and writes the next observation; ``info`` on a step where nothing happens (a
WAIT while flat) is a copy of the previous one.
"""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from aster_rl.sim import kernels as K
from aster_rl.sim.accounting import SingleAccount, validate_env_config
from aster_rl.config import EnvConfig
from aster_rl.errors import ConfigError, DataError
from aster_rl.sim.observation import N_ACCOUNT
from aster_rl.sim.prices import PriceArrays

logger = logging.getLogger(__name__)

_INT64 = np.dtype(np.int64)
_INFO_KEYS = ("equity", "position", "leverage", "fees", "funding", "slippage")


def step_info(equity: float, position: float, leverage: float, fees: float, funding: float, slippage: float) -> dict[str, Any]:
    """The small ``info`` dict every step carries (cumulative episode costs in USD)."""
    return {
        "equity": equity,
        "position": int(position),
        "leverage": leverage,
        "fees": fees,
        "funding": funding,
        "slippage": slippage,
    }


def latest_start(first_t: int, end: int, episode_length: int) -> int:
    """The last bar an episode may start at so that it fits before ``end``."""
    return max(first_t, end - 1 - episode_length)


def as_actions(action, n: int) -> np.ndarray:
    """``action`` as a flat contiguous int64 array of ``3 * n`` entries (no copy when it is one)."""
    a = action
    if a.__class__ is not np.ndarray or a.dtype != _INT64 or a.ndim != 1:
        a = np.ascontiguousarray(np.asarray(action).astype(np.int64, copy=False).reshape(-1))
    if a.shape[0] != 3 * n:
        raise ValueError(f"action {np.asarray(action).tolist()}: expected {n} × (side, leverage index, profile index)")
    return a

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
        raise DataError(f"prices: expected aster_rl.sim.prices.PriceArrays, got {type(prices).__name__}")
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
        self._obs_dim = self.n_features + N_ACCOUNT
        self.book.set_episode_limits(self.episode_length, self._end)
        self._px = self.account._px
        # equity, side, leverage, fees, funding, slippage and the step's reward, in one view
        self._info_row = self.book.F[K.EQUITY : K.REWARD + 1, 0]

    # ------------------------------------------------------------------ helpers
    def _latest_start(self) -> int:
        return latest_start(self._first_t, self._end, self.episode_length)

    def _obs(self, t: int) -> np.ndarray:
        return self.account.observation(self.features, t)

    def _info(self) -> dict[str, Any]:
        return self._info_and_reward()[0]

    def _info_and_reward(self) -> tuple[dict[str, Any], float]:
        *values, reward = self._info_row.tolist()
        return step_info(*values), reward

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
        self.book.t_bar[0] = t0
        return self._obs(t0), self._info()

    def step(self, action):
        if self._done:
            raise RuntimeError("PerpEnv.step called after the episode ended; call reset()")
        if action.__class__ is not np.ndarray or action.dtype != _INT64 or action.shape != (3,):
            action = as_actions(action, 1)
        obs = np.empty(self._obs_dim, dtype=np.float32)
        code = self.book.step(self._ts, self._px, action, self.features, obs)
        self._t += 1
        info, reward = self._info_and_reward()
        terminated = bool(code & K.ST_BANKRUPT)
        truncated = not terminated and bool(code & K.ST_DONE)
        if code >> K.ST_EVENTS_SHIFT:
            info["closed_trades"] = [trade for _, trade in self.book.closed]
        if terminated or truncated:
            self._done = True
            info["episode_stats"] = self.account.episode_stats()
        return obs, reward, terminated, truncated, info

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
