"""The perpetual-futures accounting core: one implementation for the env, the batched env,
the backtester and the paper broker.

:class:`AccountBook` holds N independent isolated-margin accounts as numpy arrays of shape
``(N,)`` and is a small state machine stepped one bar at a time:

1. ``submit(...)`` at a bar's close turns a decision (WAIT / BUY / SELL, leverage, exit
   distances) into a pending order;
2. ``process_bar(...)`` runs the next bar, in this order:

   a. pending orders fill at the bar's **open** (market orders: taker fee + the fill cost below);
   b. funding settling inside the bar is charged or paid on the position held after the
      open, at the open price (the mark; settlements coincide with bar opens), out of the
      isolated margin, which moves the liquidation price;
   c. liquidation, take-profit and stop-loss are checked against the bar's open, then its
      high and low (the rules below);
   d. the account is marked to market at the close (the mark price is the close).

The arithmetic runs in compiled per-account loops (:mod:`aster_rl.sim.kernels`,
numba): one kernel call per bar for all N accounts, whatever N is, so the single env, the
batched env, the backtester and the paper broker run the very same code. The state lives
in two matrices (float64 and int64, one row per field); the attributes below (``cash``,
``side``, ``equity``, …) are views of their rows, so writing ``book.peak[0] = x`` writes
the state. Closed trades are recorded by the kernels as numbers and become dicts only
when :attr:`AccountBook.closed` is read; within a bar they are in account order.

Rules (documented choices):

- Sizing: margin = ``margin_fraction`` × equity, notional = margin × leverage, quantity
  rounded down to ``qty_step``. The leverage is capped by ``max_leverage`` and by the
  margin brackets (the largest leverage whose notional stays inside a bracket allowing
  it). An order whose notional is below ``min_notional_usd`` is skipped and counted.
- Fees: market entries, signal exits, stops and end-of-episode closes pay the taker fee.
  Take-profit fills pay the taker fee too (Aster's ``TAKE_PROFIT_MARKET`` is a market
  order when triggered); the maker fee applies to no fill in this model.
- Fill cost (every market fill but a liquidation's; "slippage" in the records): fill = base ×
  (1 ± c), always against the trader, with the per-side cost fraction

      c = spread_mult · max(price_tick / (2·base), h) + impact_coef · σ_daily · √(qty·base / V_daily)
          + slippage_bps / 1e4

  where ``base`` is the price the fill starts from (the open, the stop or target price, the
  close), ``h`` the order book's half-spread, ``σ_daily`` the daily volatility and ``V_daily``
  the daily traded value in quote currency of the bar's cost row (:mod:`aster_rl.sim.prices`:
  trailing one-day estimates known at the previous bar's close; ``h`` = 0 without a book, so
  the half-spread is half a tick at least). The impact term is the square-root law (Almgren
  et al. 2005; Tóth et al. 2011: ``Y·σ·√(Q/V)`` with Y of order 1; ``impact_coef`` = Y,
  default 1.0), absent when ``V_daily`` is 0. ``slippage_bps`` (default 0) is a fixed extra for
  stress tests: the spread and impact terms are the expected cost. Cost sweeps scale fees,
  ``spread_mult``, ``impact_coef`` and ``slippage_bps`` together
  (:func:`aster_rl.sim.backtest.scale_costs`).
- Liquidation price (one isolated position, Binance style):
  ``LP = (WB − side·Q·EP + MA) / (Q·MMR − side·Q)`` with WB the isolated margin, MA the
  bracket's maintenance amount, side +1 long / −1 short; the bracket is chosen by the
  entry notional. A liquidation is triggered at LP (or at the open when the bar gaps
  through it) and costs the whole isolated margin, as on the venue: the position is
  closed at its bankruptcy price ``EP − side·WB/Q``, without slippage or fee, and the
  trader gets nothing back from that margin (what was left at LP goes to the venue's
  insurance fund). So ``pnl = gross − fees − funding`` holds with ``gross = −WB``, and no
  cost multiplier changes a liquidation's loss.
- Exits, the open first: a bar opening at or beyond the liquidation price liquidates at
  the open; else one opening at or beyond the target fills the target at the open (the
  better price), whatever the rest of the bar does; else one opening at or beyond the
  stop fills the stop at the open (the worse price). Inside the bar: when the stop is
  nearer than the liquidation price and the adverse extreme reaches it, the stop fills at
  the stop price; else an adverse extreme reaching LP liquidates at LP; else a favourable
  extreme reaching the target fills it at the target price. So when stop and target could
  both hit inside one bar (neither at the open), the stop counts.
- Isolated margin: a position never loses more than its margin.
"""

from __future__ import annotations

import logging
import weakref
from typing import NamedTuple

import numpy as np

from aster_rl.config import EnvConfig, revalidated
from aster_rl.errors import ConfigError, DataError
from aster_rl.sim import kernels as K
from aster_rl.sim.kernels import (
    BUY,
    CLOSE,
    NONE,
    OPEN_LONG,
    OPEN_SHORT,
    R_END,
    R_LIQUIDATION,
    R_SIGNAL,
    R_STOP,
    R_TARGET,
    REASONS,
    SELL,
    WAIT,
    liquidation_price,
)
from aster_rl.sim.prices import PriceArrays

__all__ = [
    "BUY", "CLOSE", "NONE", "OPEN_LONG", "OPEN_SHORT", "REASONS", "R_END", "R_LIQUIDATION", "R_SIGNAL", "R_STOP",
    "R_TARGET", "SELL", "TRADE_KEYS", "WAIT", "AccountBook", "EnvInputs", "SingleAccount", "check_env_inputs",
    "liquidation_price", "price_matrix", "trade_records", "validate_env_config",
]

logger = logging.getLogger(__name__)

TRADE_KEYS = (
    "entry_time",
    "exit_time",
    "side",
    "leverage",
    "profile",
    "entry_price",
    "exit_price",
    "qty",
    "pnl_usd",
    "fees_usd",
    "funding_usd",
    "reason",
)
_FLOAT_ROWS = {
    "cash": K.CASH, "margin": K.MARGIN, "side": K.SIDE, "qty": K.QTY, "entry": K.ENTRY, "lev": K.LEV,
    "stop": K.STOP, "target": K.TARGET, "liq": K.LIQ, "mmr": K.MMR, "mamt": K.MAMT,
    "entry_equity": K.ENTRY_EQUITY, "trade_fees": K.TRADE_FEES, "trade_funding": K.TRADE_FUNDING,
    "trade_slip": K.TRADE_SLIP, "p_lev": K.P_LEV, "p_stop_dist": K.P_STOP_DIST, "p_target_dist": K.P_TARGET_DIST,
    "equity": K.EQUITY, "upnl": K.UPNL, "peak": K.PEAK, "fees": K.FEES, "funding": K.FUNDING,
    "slippage": K.SLIPPAGE, "turnover_now": K.TURNOVER_NOW, "closed_return_now": K.CLOSED_RETURN_NOW,
    "prev_equity": K.PREV_EQUITY, "max_drawdown": K.MAX_DD, "ref_equity": K.REF_EQUITY,
    "dsr_a": K.DSR_A, "dsr_b": K.DSR_B,
}
_INT_ROWS = {
    "entry_time": K.ENTRY_TIME, "bars": K.BARS, "profile": K.PROFILE, "p_kind": K.P_KIND,
    "p_profile": K.P_PROFILE, "liquidations": K.LIQUIDATIONS, "n_trades": K.N_TRADES, "n_skipped": K.N_SKIPPED,
    "t_bar": K.T_BAR, "steps": K.STEPS, "in_market": K.IN_MARKET,
}


def validate_env_config(cfg: EnvConfig) -> None:
    """``cfg`` validated again by pydantic, where all its rules live: a config built past validation
    (``model_copy(update=...)``, ``model_construct``) gets the one-line ConfigError a bad file gets."""
    if not isinstance(cfg, EnvConfig):
        raise ConfigError(f"env config: expected an EnvConfig, got {type(cfg).__name__}")
    revalidated(cfg, "env config")


class EnvInputs(NamedTuple):
    """Validated inputs of an account stepped over a feature matrix (:func:`check_env_inputs`)."""

    features: np.ndarray  # float32, C-contiguous, all finite
    first: int  # the first decision bar: ``start`` moved to the first bar with a positive ATR
    end: int  # one past the last bar
    episode_length: int


def check_env_inputs(
    features: np.ndarray,
    prices: PriceArrays,
    cfg: EnvConfig,
    start: int = 0,
    end: int | None = None,
    episode_length: int | None = None,
) -> EnvInputs:
    """The one check of what the envs and the backtester step over: the config, the feature matrix
    (numbers, finite, one row per bar) and the bar range; a one-line DataError/ConfigError naming it."""
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
    return EnvInputs(feats, first, end, length)


def _f64(x, n: int) -> np.ndarray:
    """``x`` as a contiguous float64 array of shape (n,) (no copy when it already is one)."""
    if type(x) is np.ndarray and x.dtype == np.float64 and x.shape == (n,) and x.flags.c_contiguous:
        return x
    return np.ascontiguousarray(np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)))


def _costs(x, n: int) -> np.ndarray:
    """``x`` (cost rows, see :mod:`aster_rl.sim.prices`) as a contiguous float64 array of shape (n, N_COST)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape[-1:] != (K.N_COST,):
        raise ValueError(f"cost rows: expected shape ({n}, {K.N_COST}) or ({K.N_COST},), got {arr.shape}")
    return np.ascontiguousarray(np.broadcast_to(arr, (n, K.N_COST)))


def _i64(x, n: int) -> np.ndarray:
    if type(x) is np.ndarray and x.dtype == np.int64 and x.shape == (n,) and x.flags.c_contiguous:
        return x
    return np.ascontiguousarray(np.broadcast_to(np.asarray(x, dtype=np.int64), (n,)))


def trade_records(ev_i: np.ndarray, ev_f: np.ndarray, profile_names) -> list[tuple[int, dict]]:
    """``(account, trade dict)`` of closed-trade records written by the kernels (records of
    account -1 were dropped by a reset)."""
    out = []
    for (i, t_in, t_out, side, prof, reason), (lev, entry, exit_, qty, pnl, fees, funding, slip) in zip(
        ev_i.tolist(), ev_f.tolist()
    ):
        if i < 0:
            continue
        out.append(
            (
                i,
                {
                    "entry_time": t_in,
                    "exit_time": t_out,
                    "side": "long" if side > 0 else "short",
                    "leverage": lev,
                    "profile": profile_names[prof],
                    "entry_price": entry,
                    "exit_price": exit_,
                    "qty": qty,
                    "pnl_usd": pnl,
                    "fees_usd": fees,
                    "funding_usd": funding,
                    "slippage_usd": slip,
                    "reason": REASONS[reason],
                },
            )
        )
    return out


_PRICE_MATRICES: dict[int, np.ndarray] = {}


def price_matrix(prices) -> np.ndarray:
    """The bars of a :class:`~aster_rl.sim.prices.PriceArrays` as one ``(bars, PX_COLS)`` float64
    matrix (open, high, low, close, volume, funding rate, ATR, then the cost row: half-spread,
    sigma_daily, volume_daily), built once per ``prices`` object."""
    key = id(prices)
    px = _PRICE_MATRICES.get(key)
    if px is None:
        px = np.zeros((len(prices), K.PX_COLS), dtype=np.float64)
        for col, arr in (
            (K.PX_OPEN, prices.open), (K.PX_HIGH, prices.high), (K.PX_LOW, prices.low), (K.PX_CLOSE, prices.close),
            (K.PX_VOLUME, prices.volume), (K.PX_FUNDING, prices.funding_rate), (K.PX_ATR, prices.atr),
        ):
            px[:, col] = arr
        px[:, K.PX_HALF_SPREAD : K.PX_HALF_SPREAD + K.N_COST] = prices.costs
        px.setflags(write=False)
        _PRICE_MATRICES[key] = px
        weakref.finalize(prices, _PRICE_MATRICES.pop, key, None)
    return px


class AccountBook:
    """N isolated-margin accounts, one position at most each, stepped bar by bar."""

    # views of the state's rows, shape (N,) (see _FLOAT_ROWS and _INT_ROWS)
    cash: np.ndarray
    margin: np.ndarray
    side: np.ndarray
    qty: np.ndarray
    entry: np.ndarray
    lev: np.ndarray
    stop: np.ndarray
    target: np.ndarray
    liq: np.ndarray
    mmr: np.ndarray
    mamt: np.ndarray
    entry_equity: np.ndarray
    trade_fees: np.ndarray
    trade_funding: np.ndarray
    trade_slip: np.ndarray
    p_lev: np.ndarray
    p_stop_dist: np.ndarray
    p_target_dist: np.ndarray
    equity: np.ndarray
    upnl: np.ndarray
    peak: np.ndarray
    fees: np.ndarray
    funding: np.ndarray
    slippage: np.ndarray
    turnover_now: np.ndarray
    closed_return_now: np.ndarray
    prev_equity: np.ndarray
    max_drawdown: np.ndarray
    ref_equity: np.ndarray
    dsr_a: np.ndarray
    dsr_b: np.ndarray
    entry_time: np.ndarray
    bars: np.ndarray
    profile: np.ndarray
    p_kind: np.ndarray
    p_profile: np.ndarray
    liquidations: np.ndarray
    n_trades: np.ndarray
    n_skipped: np.ndarray
    t_bar: np.ndarray
    steps: np.ndarray
    in_market: np.ndarray

    def __init__(self, cfg: EnvConfig, n: int = 1):
        validate_env_config(cfg)
        if n < 1:
            raise ValueError(f"AccountBook: n = {n}, need at least one account")
        self.cfg = cfg
        self.n = n
        self.initial = float(cfg.initial_equity_usd)
        self.profile_names = tuple(cfg.exit_profiles)
        self.params = K.pack_params(cfg)
        # the state: one row per field (the attributes are views of these rows)
        self.F = np.zeros((K.NF, n), dtype=np.float64)
        self.I = np.zeros((K.NI, n), dtype=np.int64)
        for name, row in _FLOAT_ROWS.items():
            setattr(self, name, self.F[row])
        for name, row in _INT_ROWS.items():
            setattr(self, name, self.I[row])
        # control words and the closed-trade records of the current bar (at most one per account)
        self.ctl = np.zeros(K.NCTL, dtype=np.int64)
        self.ctl[K.C_EPISODE_LENGTH] = K.NO_LIMIT
        self.ctl[K.C_END] = K.NO_LIMIT
        self.ev_f = np.zeros((2 * n + 2, K.NEVF), dtype=np.float64)
        self.ev_i = np.zeros((2 * n + 2, K.NEVI), dtype=np.int64)
        self._closed: list[tuple[int, dict]] = []
        self._n_built = 0
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self, idx: np.ndarray | slice | None = None) -> None:
        """Fresh accounts (all, or those at ``idx``) holding the initial equity; their trades
        leave :attr:`closed`."""
        if idx is None:
            idx = slice(None)
        n_ev = int(self.ctl[K.C_NEV])
        if self._closed or n_ev > self._n_built:
            gone = np.zeros(self.n, dtype=bool)
            gone[idx] = True
            if self._closed:
                self._closed = [(i, tr) for i, tr in self._closed if not gone[i]]
            if n_ev > self._n_built:
                acc = self.ev_i[self._n_built : n_ev, K.EV_ACCOUNT]
                acc[(acc >= 0) & gone[np.maximum(acc, 0)]] = -1  # records of reset accounts are skipped
        self.F[:, idx] = 0.0
        self.I[:, idx] = 0
        for row in (K.CASH, K.EQUITY, K.PEAK, K.PREV_EQUITY, K.REF_EQUITY):
            self.F[row, idx] = self.initial

    @property
    def liquidated_now(self) -> np.ndarray:
        """Accounts liquidated in the last bar (bool, shape (N,))."""
        return self.I[K.LIQUIDATED_NOW] != 0

    @property
    def dirty(self) -> bool:
        """Something happened in the last bar (an order filled or a position closed)."""
        return bool(self.ctl[K.C_DIRTY])

    @dirty.setter
    def dirty(self, value: bool) -> None:
        self.ctl[K.C_DIRTY] = int(bool(value))

    @property
    def closed(self) -> list[tuple[int, dict]]:
        """``(account, trade)`` for each trade closed in the last bar (and by
        :meth:`close_positions` since); ``trade`` has the :data:`TRADE_KEYS` and
        ``slippage_usd``."""
        n_ev = int(self.ctl[K.C_NEV])
        if n_ev > self._n_built:
            self._build_trades(n_ev)
        return self._closed

    @closed.setter
    def closed(self, value: list) -> None:
        self._closed = list(value)
        self._n_built = int(self.ctl[K.C_NEV])

    def _build_trades(self, n_ev: int) -> None:
        if self.ctl[K.C_LOST]:
            raise RuntimeError(f"AccountBook: {int(self.ctl[K.C_LOST])} closed trades did not fit the record buffer")
        a = self._n_built
        self._closed.extend(trade_records(self.ev_i[a:n_ev], self.ev_f[a:n_ev], self.profile_names))
        self._n_built = n_ev

    def set_episode_limits(self, episode_length: int | None, end: int | None) -> None:
        """For :func:`~aster_rl.sim.kernels.step_accounts`: an account's episode ends
        after ``episode_length`` steps or at bar ``end - 1`` (None: no limit)."""
        self.ctl[K.C_EPISODE_LENGTH] = K.NO_LIMIT if episode_length is None else int(episode_length)
        self.ctl[K.C_END] = K.NO_LIMIT if end is None else int(end)

    def allowed_leverage(self, margin: np.ndarray) -> np.ndarray:
        """The largest leverage the brackets allow for a position posting ``margin``."""
        margin = np.ascontiguousarray(np.atleast_1d(np.asarray(margin, dtype=np.float64)))
        out = np.empty(margin.shape[0])
        K.allowed_leverage_all(self.params, margin, out)
        return out

    def intended_orders(self, side_action: np.ndarray) -> np.ndarray:
        """Order kind per account for WAIT/BUY/SELL given the current position.

        BUY while short closes the short (and stays flat); BUY while flat opens a long;
        BUY while long holds. SELL mirrors it.
        """
        kind = np.zeros(self.n, dtype=np.int64)
        K.intended_all(self.side, _i64(side_action, self.n), kind)
        return kind

    def submit(
        self,
        side_action: np.ndarray,
        leverage: np.ndarray,
        stop_dist: np.ndarray,
        target_dist: np.ndarray,
        profile: np.ndarray,
    ) -> None:
        """Decide at a bar's close: orders fill at the next ``process_bar``'s open.

        ``stop_dist``/``target_dist`` are price distances (exit profile ATR multiples × ATR at
        the decision bar); leverage is capped by config at fill time.
        """
        n = self.n
        K.submit_all(
            self.F, self.I, _i64(side_action, n), _f64(leverage, n), _f64(stop_dist, n), _f64(target_dist, n),
            _i64(profile, n),
        )

    # ------------------------------------------------------------------ bar
    def begin_bar(self) -> None:
        """Forget what happened in the previous bar (``process_bar`` does it too)."""
        K.begin_bar_all(self.F, self.I, self.ctl)
        self._closed = []
        self._n_built = 0

    def process_bar(self, ts, o, h, l, c, cost, funding_rate) -> None:  # noqa: E741
        """Run one bar for every account (arrays of shape (N,): each account's own bar; ``cost`` its
        cost row, shape (N, N_COST) or one row for all, e.g. ``prices.costs[t]``)."""
        n = self.n
        self._closed = []
        self._n_built = 0
        K.process_bar_all(
            self.F, self.I, self.params, self.ctl, _i64(ts, n), _f64(o, n), _f64(h, n), _f64(l, n), _f64(c, n),
            _costs(cost, n), _f64(funding_rate, n), self.ev_f, self.ev_i,
        )

    def close_positions(self, idx, price, cost, ts, reason: int = R_END) -> None:
        """Close the open positions among ``idx`` at ``price`` (market order, paying the cost row
        ``cost``), e.g. at an episode's last close; the equity is marked again at that price."""
        idx = np.ascontiguousarray(np.atleast_1d(np.asarray(idx, dtype=np.int64)))
        m = idx.shape[0]
        if m and (idx.min() < -self.n or idx.max() >= self.n):
            raise IndexError(f"close_positions: account index out of range 0..{self.n - 1}")
        idx = idx % self.n
        K.close_at(
            self.F, self.I, self.params, self.ctl, idx, _f64(price, m), _costs(cost, m), _i64(ts, m), int(reason),
            self.ev_f, self.ev_i,
        )

    def exits_at(self, idx, price, cost, ts) -> None:
        """Between bars: the exit rules above for the open positions among ``idx`` at one traded
        ``price`` (a bar whose open, high and low are that price); call :meth:`begin_bar` first."""
        idx = np.ascontiguousarray(np.atleast_1d(np.asarray(idx, dtype=np.int64))) % self.n
        m = idx.shape[0]
        K.exits_at(self.F, self.I, self.params, self.ctl, idx, _f64(price, m), _costs(cost, m), _i64(ts, m), self.ev_f, self.ev_i)

    def step(self, ts: np.ndarray, px: np.ndarray, actions: np.ndarray, features: np.ndarray, out: np.ndarray) -> int:
        """One env step for every account from its bar ``t_bar`` (see
        :func:`~aster_rl.sim.kernels.step_accounts`): ``ts`` and ``px`` are the bars
        (timestamps and :func:`price_matrix`), ``actions`` a flat int64 array of (side, leverage
        index, profile index) per account, ``out`` the flat float32 observations (empty for
        none). Returns the kernel's code (``ST_*`` bits and the closed-trade count)."""
        self._closed = []
        self._n_built = 0
        code = K.step_accounts(self.F, self.I, self.params, self.ctl, ts, px, actions, features, out,
                               self.ev_f, self.ev_i)
        if code < 0:
            i = -code - 1
            raise ValueError(
                f"account {i}: action {actions[3 * i : 3 * i + 3].tolist()}: expected side in 0..2, "
                f"leverage index in 0..{int(self.params[K.P_N_LEVERAGES]) - 1}, "
                f"profile index in 0..{int(self.params[K.P_N_PROFILES]) - 1}"
            )
        return code

    def episode_stats(self, i: int = 0) -> dict:
        """Account ``i``'s episode so far (steps counted by the step kernel)."""
        F, I = self.F, self.I  # noqa: E741
        eq = float(F[K.EQUITY, i])
        return {
            "equity": eq,
            "return": eq / self.cfg.initial_equity_usd - 1.0,
            "max_drawdown": float(F[K.MAX_DD, i]),
            "n_trades": int(I[K.N_TRADES, i]),
            "time_in_market": int(I[K.IN_MARKET, i]) / max(int(I[K.STEPS, i]), 1),
            "fees": float(F[K.FEES, i]),
            "funding": float(F[K.FUNDING, i]),
            "slippage": float(F[K.SLIPPAGE, i]),
            "liquidations": int(I[K.LIQUIDATIONS, i]),
            "skipped_orders": int(I[K.N_SKIPPED, i]),
        }


_NO_FEATURES = np.zeros((1, 0), dtype=np.float32)
_NO_OBS = np.zeros(0, dtype=np.float32)


class SingleAccount:
    """One account stepped bar by bar over :class:`~aster_rl.sim.prices.PriceArrays`: the loop
    shared by ``PerpEnv``, the backtester and the paper broker.

    ``advance(t, side, lev_i, prof_i, last)`` decides at bar ``t``'s close and runs bar
    ``t + 1``; with ``last`` (or on bankruptcy) an open position is closed at bar
    ``t + 1``'s close with reason ``"end"``. Returns True when the account went bankrupt.

    ``book``: carry on an existing account (e.g. over a longer price buffer) instead of a
    fresh one.
    """

    def __init__(self, cfg: EnvConfig, prices, book: AccountBook | None = None) -> None:
        self.cfg = cfg
        self.prices = prices
        self._ts = prices.timestamps
        self._px = price_matrix(prices)
        self._act = np.zeros(3, dtype=np.int64)
        self._zero = np.zeros(1, dtype=np.int64)
        self._t_buf = np.zeros(1, dtype=np.int64)
        self.book = AccountBook(cfg, 1) if book is None else book

    def reset(self) -> None:
        self.book.reset()

    # per-episode counters live in the book's state (the step kernel keeps them)
    @property
    def steps(self) -> int:
        return int(self.book.I[K.STEPS, 0])

    @property
    def in_market(self) -> int:
        return int(self.book.I[K.IN_MARKET, 0])

    @property
    def max_drawdown(self) -> float:
        return float(self.book.F[K.MAX_DD, 0])

    @property
    def prev_equity(self) -> float:
        """Equity before the last ``advance``."""
        return float(self.book.F[K.PREV_EQUITY, 0])

    @property
    def quiet(self) -> bool:
        """The last ``advance`` was a WAIT while flat (nothing could happen)."""
        return bool(self.book.I[K.QUIET, 0])

    def advance(self, t: int, side_a: int, lev_i: int, prof_i: int, last: bool) -> bool:
        a = self._act
        a[0] = side_a
        a[1] = lev_i
        a[2] = prof_i
        I = self.book.I  # noqa: E741
        I[K.T_BAR, 0] = t
        I[K.DONE, 0] = 1 if last else 0
        code = self.step(a, _NO_FEATURES, _NO_OBS)
        return bool(code & K.ST_BANKRUPT)

    def step(self, action: np.ndarray, features: np.ndarray, out: np.ndarray) -> int:
        """The step kernel for this account from bar ``book.t_bar[0]`` with ``action`` (int64,
        shape (3,)); the observation at the next bar goes to ``out`` (float32, empty for
        none). Returns the kernel's code (``accounting_kernels.ST_*`` bits, trade count)."""
        return self.book.step(self._ts, self._px, action, features, out)

    def episode_stats(self) -> dict:
        return self.book.episode_stats(0)

    def observation(self, features: np.ndarray, t: int) -> np.ndarray:
        """The observation at bar ``t``'s close: feature row ``t`` + this account's state."""
        row = features[t]
        nf = row.shape[0]
        out = np.empty(nf + K.N_ACCOUNT, dtype=np.float32)
        out[:nf] = row
        self._t_buf[0] = t
        b = self.book
        K.observe(b.F, b.I, b.params, self._px, _NO_FEATURES, self._zero, self._t_buf, out[nf:])
        return out
