"""``BatchedPerpEnv``: N independent ``PerpEnv`` accounts stepped in one numpy call per step,
as a stable-baselines3 ``VecEnv``.

Every account has its own bar index, episode start and random generator; the mechanics
are the same :class:`aster_rl.sim.accounting.AccountBook` the single env uses, so env ``i``
gives exactly what ``PerpEnv`` reset with ``seed + i`` gives for the same actions.
Finished accounts are reset automatically, SB3 style: the returned observation is the
new episode's first one and ``info["terminal_observation"]`` holds the last one.

``segments=[(start, end), ...]`` restricts episodes to several bar ranges of one matrix (the
markets of a pooled dataset laid end to end): each episode starts in one segment, drawn with
probability proportional to its number of start bars, and ends before that segment's end,
so no episode crosses from one segment into the next.

One step is one compiled kernel call for all accounts (the one ``PerpEnv`` makes with
N = 1): orders, bars, episode ends and the observations written into a fresh array.
``infos`` is a lazy sequence: each env's dict (the same keys as ``PerpEnv``'s) is built
only when it is read, so stepping 1,024 accounts does not build 1,024 dicts per step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env import VecEnv

from aster_rl.config import EnvConfig
from aster_rl.errors import DataError
from aster_rl.sim import kernels as K
from aster_rl.sim.accounting import AccountBook, check_env_inputs, price_matrix, trade_records
from aster_rl.sim.decision import gate_actions, rule_active, target_mode, timeframe_ns
from aster_rl.sim.observation import N_ACCOUNT
from aster_rl.sim.prices import PriceArrays
from envs.perp import as_actions, latest_start, step_info
from envs.spaces import action_masks, action_space, observation_space

logger = logging.getLogger(__name__)


class LazyInfos(Sequence):
    """Per-env info dicts built on access from a snapshot of the step's arrays."""

    __slots__ = ("_by_env", "_cols", "_events", "_extra", "_n", "_names")

    def __init__(
        self,
        cols: np.ndarray,
        extra: dict[int, dict[str, Any]],
        events: tuple[np.ndarray, np.ndarray] | None = None,
        profile_names: tuple[str, ...] = (),
    ):
        """``cols``: (6, N) rows equity, position, leverage, fees, funding, slippage;
        ``events``: the step's closed-trade records (``AccountBook.ev_i``/``ev_f`` rows)."""
        self._cols = cols
        self._extra = extra
        self._n = cols.shape[1]
        self._events = events
        self._names = profile_names
        self._by_env: dict[int, list[int]] | None = None

    def _closed_trades(self, i: int) -> list[dict[str, Any]] | None:
        if self._events is None:
            return None
        if self._by_env is None:
            self._by_env = {}
            for k, env in enumerate(self._events[0][:, K.EV_ACCOUNT].tolist()):
                self._by_env.setdefault(env, []).append(k)
        rows = self._by_env.get(i)
        if not rows:
            return None
        ev_i, ev_f = self._events
        return [trade for _, trade in trade_records(ev_i[rows], ev_f[rows], self._names)]

    def __len__(self) -> int:
        return self._n

    def _one(self, i: int) -> dict[str, Any]:
        info = step_info(*self._cols[:, i].tolist())
        trades = self._closed_trades(i)
        if trades:
            info["closed_trades"] = trades
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
        segments: Sequence[tuple[int, int]] | None = None,
    ):
        cfg = EnvConfig() if cfg is None else cfg
        feats, self._first_t, self._end, self.episode_length = check_env_inputs(
            features, prices, cfg, start, end, episode_length
        )
        self._starts = None if segments is None else self._start_ranges(feats, prices, cfg, int(start), segments)
        if int(n_envs) < 1:
            raise ValueError(f"n_envs = {n_envs}: need at least one env")
        n = int(n_envs)
        self.cfg = cfg
        self.prices = prices
        self.random_start = bool(random_start)
        self.render_mode = None
        self.n_features = feats.shape[1]
        self.features = feats
        self._obs_dim = self.n_features + N_ACCOUNT
        super().__init__(n, observation_space(self.n_features), action_space(cfg))
        self.book = book = AccountBook(cfg, n)
        book.set_episode_limits(self.episode_length, self._end)
        # per-env bar index and episode counters are rows of the book's state
        self._t = book.t_bar
        self._t[:] = self._first_t
        self._steps = book.steps
        self._max_dd = book.max_drawdown
        self._in_market = book.in_market
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._actions = np.zeros(3 * n, dtype=np.int64)
        self._px = price_matrix(prices)
        self._ts = prices.timestamps
        self._gated = rule_active(cfg.decision_every, cfg.min_hold_bars, target_mode(cfg))
        self._tf_ns = timeframe_ns(prices.timeframe)
        if seed is not None:
            self.seed(seed)

    # ------------------------------------------------------------------ resets
    def _start_ranges(self, feats: np.ndarray, prices: PriceArrays, cfg: EnvConfig, start: int,
                      segments: Sequence[tuple[int, int]]) -> np.ndarray:
        """(first, latest) start bar of each segment, each checked to lie inside ``[start, end)``
        and to hold more than one episode."""
        rows = []
        for a, b in segments:
            if not start <= a < b <= self._end:
                raise DataError(f"segment {a}..{b}: must lie inside the env's bars {start}..{self._end}")
            _, first, _, _ = check_env_inputs(feats, prices, cfg, a, b, self.episode_length)
            if b - 1 - first < self.episode_length:
                raise DataError(f"segment {a}..{b}: {b - first} bars from its first bar {first}, not more than one "
                                f"episode ({self.episode_length})")
            rows.append((first, latest_start(first, b, self.episode_length)))
        if not rows:
            raise DataError("segments: none given")
        return np.array(rows, dtype=np.int64)

    def _draw_start(self, i: int, seed: int | None) -> int:
        rng = self._rngs[i]
        if seed is not None or rng is None:
            rng, _ = seeding.np_random(seed)
            self._rngs[i] = rng
        if self._starts is not None:
            first, latest = self._starts[:, 0], self._starts[:, 1]
            if not self.random_start:
                return int(first[0])
            cum = np.cumsum(latest - first + 1)
            k = int(rng.integers(0, int(cum[-1])))  # one of all the segments' start bars
            j = int(np.searchsorted(cum, k, side="right"))
            return int(latest[j] - (cum[j] - 1 - k))
        latest_t = latest_start(self._first_t, self._end, self.episode_length)
        if self.random_start and latest_t > self._first_t:
            return int(rng.integers(self._first_t, latest_t + 1))
        return self._first_t

    def _reset_envs(self, idx: np.ndarray, seeds: list[int | None]) -> None:
        starts = [self._draw_start(i, s) for i, s in zip(idx.tolist(), seeds)]
        self.book.reset(idx)  # zeroes the bar index and the episode counters too
        self._t[idx] = starts

    def _observe(self, idx: np.ndarray) -> np.ndarray:
        """Observations (len(idx), obs_dim) of the envs ``idx`` at their current bars."""
        b = self.book
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        out = np.empty((len(idx), self._obs_dim), dtype=np.float32)
        K.observe(b.F, b.I, b.params, self._px, self.features, idx, self._t[idx], out.reshape(-1))
        return out

    def reset(self) -> np.ndarray:
        idx = np.arange(self.num_envs)
        self._reset_envs(idx, list(self._seeds))
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [self._flat_info() for _ in range(self.num_envs)]
        return self._observe(idx)

    def _flat_info(self) -> dict[str, Any]:
        return step_info(float(self.cfg.initial_equity_usd), 0, 0.0, 0.0, 0.0, 0.0)

    # ------------------------------------------------------------------ step
    def step_async(self, actions: np.ndarray) -> None:
        self._actions = as_actions(actions, self.num_envs)
        if self._gated:  # the decision rule (aster_rl.sim.decision), on a copy of the agent's actions
            self._actions = gate_actions(self._actions, self.book, self._ts, self._tf_ns, self._t)

    def step_wait(self):
        book = self.book
        n = self.num_envs
        obs = np.empty((n, self._obs_dim), dtype=np.float32)
        code = book.step(self._ts, self._px, self._actions, self.features, obs.reshape(-1))
        reward = book.F[K.REWARD].astype(np.float32)
        done = book.I[K.DONE] != 0
        extra: dict[int, dict[str, Any]] = {}
        n_ev = code >> K.ST_EVENTS_SHIFT
        events = (book.ev_i[:n_ev].copy(), book.ev_f[:n_ev].copy()) if n_ev else None
        cols = book.F[K.EQUITY : K.SLIPPAGE + 1].copy()
        if code & K.ST_DONE:
            d = np.flatnonzero(done)
            bankrupt = book.I[K.BANKRUPT]
            for i in d.tolist():
                e = extra.setdefault(i, {})
                e["episode_stats"] = self._episode_stats(i)
                e["terminal_observation"] = obs[i].copy()
                e["TimeLimit.truncated"] = not bankrupt[i]
            self._reset_envs(d, [None] * len(d))
            obs[d] = self._observe(d)
        return obs, reward, done, LazyInfos(cols, extra, events, book.profile_names)

    def _episode_stats(self, i: int) -> dict[str, Any]:
        return self.book.episode_stats(i)

    def set_exposure_penalty(self, value: float) -> None:
        """Charge ``value × notional / equity`` per bar held from the next step on (a training schedule)."""
        if not value >= 0:
            raise ValueError(f"exposure_penalty = {value}: must be 0 or more")
        self.book.params[K.P_EXPOSURE_PENALTY] = float(value)

    def action_masks(self) -> np.ndarray:
        """(N, 3 + n_leverage + n_profile) valid choices (see :func:`envs.spaces.action_masks`)."""
        return action_masks(self.book)

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
