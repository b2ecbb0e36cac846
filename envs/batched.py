"""``BatchedPerpEnv``: N independent ``PerpEnv`` accounts stepped in one numpy call per step,
as a stable-baselines3 ``VecEnv``.

Every account has its own bar index, episode start and random generator; the mechanics
are the same :class:`aster_rl.accounting.AccountBook` the single env uses, so env ``i``
gives exactly what ``PerpEnv`` reset with ``seed + i`` gives for the same actions.
Finished accounts are reset automatically, SB3 style: the returned observation is the
new episode's first one and ``info["terminal_observation"]`` holds the last one.

``infos`` is a lazy sequence: each env's dict (the same keys as ``PerpEnv``'s) is built
only when it is read, so stepping 1,024 accounts does not build 1,024 dicts per step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env import VecEnv

from aster_rl.accounting import AccountBook
from aster_rl.config import EnvConfig
from aster_rl.observation import N_ACCOUNT, book_state
from aster_rl.prices import PriceArrays
from envs.perp import check_inputs
from envs.rewards import step_rewards

logger = logging.getLogger(__name__)


class LazyInfos(Sequence):
    """Per-env info dicts built on access from a snapshot of the step's arrays."""

    __slots__ = ("_cols", "_position", "_extra", "_n")

    def __init__(self, cols: dict[str, np.ndarray], position: np.ndarray, extra: dict[int, dict[str, Any]]):
        self._cols = cols
        self._position = position
        self._extra = extra
        self._n = len(position)

    def __len__(self) -> int:
        return self._n

    def _one(self, i: int) -> dict[str, Any]:
        c = self._cols
        info = {
            "equity": float(c["equity"][i]),
            "position": int(self._position[i]),
            "leverage": float(c["leverage"][i]),
            "fees": float(c["fees"][i]),
            "funding": float(c["funding"][i]),
            "slippage": float(c["slippage"][i]),
        }
        extra = self._extra.get(i)
        if extra:
            info.update(extra)
        return info

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._one(k) for k in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(i)
        return self._one(i)


class BatchedPerpEnv(VecEnv):
    """N perpetual-futures accounts over one feature matrix; see the module docstring."""

    def __init__(
        self,
        features: np.ndarray,
        prices: PriceArrays,
        cfg: EnvConfig | None = None,
        n_envs: int = 1,
        *,
        start: int = 0,
        end: int | None = None,
        episode_length: int | None = None,
        random_start: bool = True,
        seed: int | None = None,
    ):
        cfg = EnvConfig() if cfg is None else cfg
        feats, self._first_t, self._end, self.episode_length = check_inputs(
            features, prices, cfg, start, end, episode_length
        )
        if int(n_envs) < 1:
            raise ValueError(f"n_envs = {n_envs}: need at least one env")
        n = int(n_envs)
        self.cfg = cfg
        self.prices = prices
        self.random_start = bool(random_start)
        self.render_mode = None
        self.n_features = feats.shape[1]
        # features padded with the account columns: one gather builds the whole observation
        self._feats_ext = np.zeros((len(feats), self.n_features + N_ACCOUNT), dtype=np.float32)
        self._feats_ext[:, : self.n_features] = feats
        self._feats_ext[:, self.n_features + 4] = 1.0  # flat: liquidation distance 1
        obs_space = spaces.Box(-np.inf, np.inf, (self.n_features + N_ACCOUNT,), np.float32)
        act_space = spaces.MultiDiscrete([3, len(cfg.leverages), len(cfg.exit_profiles)])
        super().__init__(n, obs_space, act_space)
        self.book = AccountBook(cfg, n)
        self._lev = np.asarray(cfg.leverages, dtype=np.float64)
        profiles = list(cfg.exit_profiles.values())
        self._stop_atr = np.array([p.stop_atr for p in profiles])
        self._target_atr = np.array([p.target_atr for p in profiles])
        self._bankrupt = cfg.bankruptcy_fraction * cfg.initial_equity_usd
        self._t = np.full(n, self._first_t, dtype=np.int64)
        self._steps = np.zeros(n, dtype=np.int64)
        self._max_dd = np.zeros(n)
        self._in_market = np.zeros(n, dtype=np.int64)
        self._state = np.zeros((n, N_ACCOUNT), dtype=np.float32)
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._actions = np.zeros((n, 3), dtype=np.int64)
        p = prices
        self._ts, self._o, self._h, self._l, self._c = p.timestamps, p.open, p.high, p.low, p.close
        self._v, self._fr, self._atr = p.volume, p.funding_rate, p.atr
        if seed is not None:
            self.seed(seed)

    # ------------------------------------------------------------------ resets
    def _draw_start(self, i: int, seed: int | None) -> int:
        if seed is not None or self._rngs[i] is None:
            self._rngs[i], _ = seeding.np_random(seed)
        latest = max(self._first_t, self._end - 1 - self.episode_length)
        if self.random_start and latest > self._first_t:
            return int(self._rngs[i].integers(self._first_t, latest + 1))
        return self._first_t

    def _reset_envs(self, idx: np.ndarray, seeds: list[int | None]) -> None:
        for i, s in zip(idx.tolist(), seeds):
            self._t[i] = self._draw_start(i, s)
        self.book.reset(idx)
        self._steps[idx] = 0
        self._max_dd[idx] = 0.0
        self._in_market[idx] = 0

    def reset(self) -> np.ndarray:
        idx = np.arange(self.num_envs)
        self._reset_envs(idx, list(self._seeds))
        self._reset_seeds()
        self._reset_options()
        obs = self._feats_ext[self._t]
        self.reset_infos = [self._flat_info() for _ in range(self.num_envs)]
        return obs

    def _flat_info(self) -> dict[str, Any]:
        return {
            "equity": float(self.cfg.initial_equity_usd),
            "position": 0,
            "leverage": 0.0,
            "fees": 0.0,
            "funding": 0.0,
            "slippage": 0.0,
        }

    # ------------------------------------------------------------------ step
    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs, 3)

    def step_wait(self):
        a = self._actions
        book = self.book
        t = self._t
        atr = self._atr[t]
        prof = a[:, 2]
        book.submit(a[:, 0], self._lev[a[:, 1]], self._stop_atr[prof] * atr, self._target_atr[prof] * atr, prof)
        t1 = t + 1
        prev_equity = book.equity.copy()
        book.process_bar(
            self._ts[t1], self._o[t1], self._h[t1], self._l[t1], self._c[t1], self._v[t1], self._fr[t1]
        )
        self._t = t1
        self._steps += 1
        equity = book.equity
        terminated = equity < self._bankrupt
        truncated = ~terminated & ((self._steps >= self.episode_length) | (t1 >= self._end - 1))
        done = terminated | truncated
        any_done = bool(done.any())
        if any_done:
            d = np.flatnonzero(done)
            td = t1[d]
            book.close_positions(d, self._c[td], self._v[td], self._ts[td])
        self._in_market += (book.side != 0) | (book.turnover_now > 0)
        np.maximum(book.peak, equity, out=book.peak)
        np.maximum(self._max_dd, 1.0 - equity / book.peak, out=self._max_dd)
        reward = step_rewards(
            self.cfg, prev_equity, equity, book.peak, book.closed_return_now, book.turnover_now, book.liquidated_now
        ).astype(np.float32)
        obs = self._feats_ext[t1]
        obs[:, self.n_features :] = book_state(book, self._c[t1], self.cfg.initial_equity_usd, out=self._state)
        extra: dict[int, dict[str, Any]] = {}
        for i, trade in book.closed:
            extra.setdefault(i, {}).setdefault("closed_trades", []).append(trade)
        cols = {
            "equity": equity.copy(),
            "leverage": book.lev.copy(),
            "fees": book.fees.copy(),
            "funding": book.funding.copy(),
            "slippage": book.slippage.copy(),
        }
        position = book.side.copy()
        if any_done:
            for i in d.tolist():
                e = extra.setdefault(i, {})
                e["episode_stats"] = self._episode_stats(i)
                e["terminal_observation"] = obs[i].copy()
                e["TimeLimit.truncated"] = bool(truncated[i])
            self._reset_envs(d, [None] * len(d))
            obs[d] = self._feats_ext[self._t[d]]
        return obs, reward, done, LazyInfos(cols, position, extra)

    def _episode_stats(self, i: int) -> dict[str, Any]:
        b = self.book
        eq = float(b.equity[i])
        return {
            "equity": eq,
            "return": eq / self.cfg.initial_equity_usd - 1.0,
            "max_drawdown": float(self._max_dd[i]),
            "n_trades": int(b.n_trades[i]),
            "time_in_market": int(self._in_market[i]) / max(int(self._steps[i]), 1),
            "fees": float(b.fees[i]),
            "funding": float(b.funding[i]),
            "slippage": float(b.slippage[i]),
            "liquidations": int(b.liquidations[i]),
            "skipped_orders": int(b.n_skipped[i]),
        }

    def action_masks(self) -> np.ndarray:
        """(N, 3 + n_leverage + n_profile) valid choices, as ``PerpEnv.action_masks`` per env."""
        b = self.book
        side = b.side
        sides = np.stack([np.ones(self.num_envs, dtype=bool), side <= 0, side >= 0], axis=1)
        allowed = np.minimum(b.allowed_leverage(self.cfg.margin_fraction * b.equity), self.cfg.max_leverage)
        levs = self._lev[None, :] <= allowed[:, None]
        levs[:, 0] = True
        profs = np.ones((self.num_envs, len(self._stop_atr)), dtype=bool)
        return np.concatenate((sides, levs, profs), axis=1)

    # ------------------------------------------------------------------ VecEnv plumbing
    def close(self) -> None:
        return None

    def seed(self, seed: int | None = None):
        return super().seed(seed)

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        idx = self._indices(indices)
        if method_name == "action_masks":
            masks = self.action_masks()
            return [masks[i] for i in idx]
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in idx]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def render(self, mode: str | None = None):
        return None

    def get_images(self):
        return [None] * self.num_envs
