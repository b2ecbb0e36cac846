"""The straightforward numpy accounting core, kept only as a test oracle.

The package's :mod:`aster_rl.sim.accounting` runs the same rules in compiled per-account loops;
``test_accounting_reference.py`` checks both give the same numbers on random action
sequences. Fancy-indexed numpy arithmetic over the accounts where something happens.
"""

from __future__ import annotations

import logging
import math

import numpy as np

# the shared vocabulary (action and trade codes) and configuration checks are not what the oracle re-derives
from aster_rl.sim.accounting import (  # noqa: F401
    BUY, CLOSE, NONE, OPEN_LONG, OPEN_SHORT, R_END, R_LIQUIDATION, R_SIGNAL, R_STOP, R_TARGET, REASONS, SELL,
    TRADE_KEYS, WAIT, validate_env_config,
)
from aster_rl.config import EnvConfig

logger = logging.getLogger(__name__)

_ACCOUNT_COLUMNS = (
    "account_side",
    "account_leverage",
    "account_upnl",
    "account_bars_in_trade",
    "account_liq_distance",
    "account_equity_change",
)
N_ACCOUNT = len(_ACCOUNT_COLUMNS)
_BARS_SCALE = 1.0 / math.log1p(1000.0)


def account_state(
    side,
    leverage,
    max_leverage: float,
    upnl,
    margin,
    bars_in_trade,
    mark,
    liq_price,
    equity,
    start_equity,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Account state of N accounts as an ``(N, N_ACCOUNT)`` float32 array (inputs of shape (N,))."""
    side = np.asarray(side, dtype=np.float64)
    n = side.shape[0]
    if out is None:
        out = np.empty((n, N_ACCOUNT), dtype=np.float32)
    held = side != 0
    margin = np.asarray(margin, dtype=np.float64)
    mark = np.asarray(mark, dtype=np.float64)
    liq = np.asarray(liq_price, dtype=np.float64)
    out[:, 0] = side
    out[:, 1] = np.asarray(leverage, dtype=np.float64) / float(max_leverage)
    out[:, 2] = np.divide(upnl, margin, out=np.zeros(n), where=held & (margin > 0))
    out[:, 3] = np.log1p(np.asarray(bars_in_trade, dtype=np.float64)) * _BARS_SCALE
    dist = np.divide(np.abs(mark - liq), mark, out=np.ones(n), where=held & (liq > 0))
    out[:, 4] = np.clip(dist, 0.0, 1.0)
    eq = np.maximum(np.asarray(equity, dtype=np.float64), 1e-12)
    out[:, 5] = np.log(eq / np.asarray(start_equity, dtype=np.float64))
    return out


def book_state(book, mark, start_equity, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`account_state` read from an :class:`aster_rl.sim.accounting.AccountBook`."""
    return account_state(
        book.side,
        book.lev,
        book.cfg.max_leverage,
        book.upnl,
        book.margin,
        book.bars,
        mark,
        book.liq,
        book.equity,
        start_equity,
        out=out,
    )



_QTY_EPS = 1e-9


def liquidation_price(side, qty, entry_price, wallet_balance, mmr, maint_amount):
    """Binance-style isolated liquidation price of one position (floats or arrays).

    ``LP = (WB − side·Q·EP + MA) / (Q·MMR − side·Q)``; a long at 1x gives LP <= 0 (never).
    """
    return (wallet_balance - side * qty * entry_price + maint_amount) / (qty * mmr - side * qty)


class AccountBook:
    """N isolated-margin accounts, one position at most each, stepped bar by bar."""

    def __init__(self, cfg: EnvConfig, n: int = 1):
        validate_env_config(cfg)
        if n < 1:
            raise ValueError(f"AccountBook: n = {n}, need at least one account")
        self.cfg = cfg
        self.n = n
        self.taker = float(cfg.taker_fee_rate)
        self.maker = float(cfg.maker_fee_rate)
        self.slip_base = float(cfg.slippage_bps) * 1e-4
        self.impact = float(cfg.impact_coef)
        self.spread_mult = float(cfg.spread_mult)
        self.mf = float(cfg.margin_fraction)
        self.step_q = float(cfg.qty_step)
        self.tick = float(cfg.price_tick)
        self.min_notional = float(cfg.min_notional_usd)
        self.initial = float(cfg.initial_equity_usd)
        self.caps = np.array([b.notional_cap_usd for b in cfg.brackets], dtype=np.float64)
        self.br_lev = np.array([min(b.max_leverage, cfg.max_leverage) for b in cfg.brackets], dtype=np.float64)
        self.br_mmr = np.array([b.maintenance_margin_rate for b in cfg.brackets], dtype=np.float64)
        self.br_ma = np.array([b.maintenance_amount_usd for b in cfg.brackets], dtype=np.float64)
        self.profile_names = tuple(cfg.exit_profiles)
        f8 = lambda: np.zeros(n, dtype=np.float64)  # noqa: E731
        i8 = lambda: np.zeros(n, dtype=np.int64)  # noqa: E731
        # position state
        self.cash, self.margin, self.side, self.qty, self.entry = f8(), f8(), f8(), f8(), f8()
        self.lev, self.stop, self.target, self.liq = f8(), f8(), f8(), f8()
        self.mmr, self.mamt = f8(), f8()
        self.entry_time, self.bars, self.profile = i8(), i8(), i8()
        self.entry_equity, self.trade_fees, self.trade_funding, self.trade_slip = f8(), f8(), f8(), f8()
        # pending order (decided at a close, filled at the next open)
        self.p_kind, self.p_profile = i8(), i8()
        self.p_lev, self.p_stop_dist, self.p_target_dist = f8(), f8(), f8()
        # marks and running totals (per episode)
        self.equity, self.upnl, self.peak = f8(), f8(), f8()
        self.fees, self.funding, self.slippage = f8(), f8(), f8()
        self.liquidations, self.n_trades, self.n_skipped = i8(), i8(), i8()
        # what happened in the last bar
        self.liquidated_now = np.zeros(n, dtype=bool)
        self.turnover_now = f8()
        self.closed_return_now = f8()  # sum of pnl_usd / equity at entry of trades closed in the bar
        self.closed: list[tuple[int, dict]] = []
        self.dirty = False  # something happened in the last bar (the per-bar flags are set)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self, idx: np.ndarray | slice | None = None) -> None:
        """Fresh accounts (all, or those at ``idx``) holding the initial equity."""
        if idx is None:
            idx = slice(None)
        for arr in (
            self.margin, self.side, self.qty, self.entry, self.lev, self.stop, self.target, self.liq,
            self.mmr, self.mamt, self.entry_time, self.bars, self.profile, self.entry_equity,
            self.trade_fees, self.trade_funding, self.trade_slip, self.p_kind, self.p_profile, self.p_lev,
            self.p_stop_dist, self.p_target_dist, self.upnl, self.fees, self.funding, self.slippage,
            self.liquidations, self.n_trades, self.n_skipped, self.turnover_now, self.closed_return_now,
        ):
            arr[idx] = 0
        self.liquidated_now[idx] = False
        if self.closed:
            gone = np.zeros(self.n, dtype=bool)
            gone[idx] = True
            self.closed = [(i, tr) for i, tr in self.closed if not gone[i]]
        self.cash[idx] = self.initial
        self.equity[idx] = self.initial
        self.peak[idx] = self.initial

    def allowed_leverage(self, margin: np.ndarray) -> np.ndarray:
        """The largest leverage the brackets allow for a position posting ``margin``."""
        margin = np.maximum(np.asarray(margin, dtype=np.float64), 1e-12)
        return np.minimum(self.br_lev[None, :], self.caps[None, :] / margin[:, None]).max(axis=1)

    def intended_orders(self, side_action: np.ndarray) -> np.ndarray:
        """Order kind per account for WAIT/BUY/SELL given the current position.

        BUY while short closes the short (and stays flat); BUY while flat opens a long;
        BUY while long holds. SELL mirrors it.
        """
        a = np.asarray(side_action)
        s = self.side
        kind = np.zeros(self.n, dtype=np.int64)
        flat = s == 0
        kind[flat & (a == BUY)] = OPEN_LONG
        kind[flat & (a == SELL)] = OPEN_SHORT
        kind[((s > 0) & (a == SELL)) | ((s < 0) & (a == BUY))] = CLOSE
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
        self.p_kind[:] = self.intended_orders(side_action)
        self.p_lev[:] = leverage
        self.p_stop_dist[:] = stop_dist
        self.p_target_dist[:] = target_dist
        self.p_profile[:] = profile

    # ------------------------------------------------------------------ bar
    def begin_bar(self) -> None:
        """Forget what happened in the previous bar (``process_bar`` calls it)."""
        self.dirty = False
        self.closed = []
        self.liquidated_now[:] = False
        self.turnover_now[:] = 0.0
        self.closed_return_now[:] = 0.0

    def process_bar(self, ts, o, h, l, c, cost, funding_rate) -> None:  # noqa: E741
        """Run one bar for every account (arrays of shape (N,): each account's own bar; ``cost``
        (N, 3): half-spread, sigma_daily, volume_daily)."""
        self.begin_bar()
        v = np.broadcast_to(np.asarray(cost, dtype=np.float64), (self.n, 3))
        kind = self.p_kind
        if kind.any():
            pending = np.flatnonzero(kind)
            k = kind[pending]
            cl = pending[k == CLOSE]
            cl = cl[self.side[cl] != 0]
            if len(cl):
                self._close(cl, o[cl], v[cl], ts[cl], R_SIGNAL, slip=True)
            op = pending[(k == OPEN_LONG) | (k == OPEN_SHORT)]
            op = op[self.side[op] == 0]
            if len(op):
                self._open(op, o[op], v[op], ts[op])
            kind[pending] = NONE
        held = self.side != 0
        if held.any():
            fr = funding_rate
            fmask = held & (fr != 0)
            if fmask.any():
                fi = np.flatnonzero(fmask)
                amount = self.side[fi] * self.qty[fi] * o[fi] * fr[fi]
                self.margin[fi] -= amount
                self.trade_funding[fi] += amount
                self.funding[fi] += amount
                self.liq[fi] = liquidation_price(
                    self.side[fi], self.qty[fi], self.entry[fi], self.margin[fi], self.mmr[fi], self.mamt[fi]
                )
            self._exits(np.flatnonzero(held), ts, o, h, l, v)
        self._mark(c)

    def _mark(self, c) -> None:
        s = self.side
        np.multiply(s * self.qty, c - self.entry, out=self.upnl)
        np.add(self.cash + self.margin, self.upnl, out=self.equity)
        np.maximum(self.peak, self.equity, out=self.peak)
        self.bars += s != 0

    def _open(self, idx, o, v, ts) -> None:  # v: cost rows (k, 3)
        side = np.where(self.p_kind[idx] == OPEN_LONG, 1.0, -1.0)
        equity = self.cash[idx]  # flat accounts: equity is the cash
        budget = self.mf * equity
        lev = np.minimum(np.minimum(self.p_lev[idx], float(self.cfg.max_leverage)), self.allowed_leverage(budget))
        qty = np.floor(budget * lev / o / self.step_q + _QTY_EPS) * self.step_q
        slip = self._slip_frac(qty, o, v)
        fill = o * (1.0 + side * slip)
        fee = self.taker * qty * fill
        margin = qty * fill / lev
        over = margin + fee > equity
        if over.any():  # margin_fraction near 1: shrink to what the cash can carry
            fit = np.floor(equity / (fill * (1.0 / lev + self.taker)) / self.step_q) * self.step_q
            qty = np.where(over, fit, qty)
            fee = self.taker * qty * fill
            margin = qty * fill / lev
        ok = (qty > 0) & (qty * o >= self.min_notional)
        if not ok.all():
            self.n_skipped[idx[~ok]] += 1
            if not ok.any():
                return
            idx, side, lev, qty, fill, fee, margin, o, ts, equity = (
                a[ok] for a in (idx, side, lev, qty, fill, fee, margin, o, ts, equity)
            )
        notional = qty * fill
        b = np.minimum(np.searchsorted(self.caps, notional, side="left"), len(self.caps) - 1)
        mmr, ma = self.br_mmr[b], self.br_ma[b]
        slip_usd = qty * np.abs(fill - o)
        self.cash[idx] = equity - margin - fee
        self.margin[idx] = margin
        self.side[idx] = side
        self.qty[idx] = qty
        self.entry[idx] = fill
        self.lev[idx] = lev
        self.mmr[idx] = mmr
        self.mamt[idx] = ma
        self.liq[idx] = liquidation_price(side, qty, fill, margin, mmr, ma)
        tick = self.tick
        self.stop[idx] = np.maximum(np.round((fill - side * self.p_stop_dist[idx]) / tick) * tick, tick)
        self.target[idx] = np.maximum(np.round((fill + side * self.p_target_dist[idx]) / tick) * tick, tick)
        self.profile[idx] = self.p_profile[idx]
        self.entry_time[idx] = ts
        self.entry_equity[idx] = equity
        self.bars[idx] = 0
        self.trade_fees[idx] = fee
        self.trade_funding[idx] = 0.0
        self.trade_slip[idx] = slip_usd
        self.fees[idx] += fee
        self.slippage[idx] += slip_usd
        self.turnover_now[idx] += notional
        self.dirty = True

    def _slip_frac(self, qty, base, v):
        """slippage_bps + spread_mult·max(tick/(2·base), half-spread) + Y·σ_daily·√(qty·base/V_daily)."""
        base = np.asarray(base, dtype=np.float64)
        hs, sigma, vol = v[:, 0], v[:, 1], v[:, 2]
        spread = self.spread_mult * np.maximum(self.tick / (2.0 * base), hs)
        ratio = np.divide(qty * base, vol, out=np.zeros_like(qty), where=vol > 0)
        with np.errstate(invalid="ignore"):  # an order of an account with negative cash: skipped after sizing
            impact = np.where(vol > 0, self.impact * sigma * np.sqrt(ratio), 0.0)
        return self.slip_base + spread + impact

    def _exits(self, idx, ts, o, h, l, v) -> None:  # noqa: E741
        s = self.side[idx]
        oo, hh, ll = o[idx], h[idx], l[idx]
        adverse = np.where(s > 0, ll, hh)
        favour = np.where(s > 0, hh, ll)
        stop, target, liq = self.stop[idx], self.target[idx], self.liq[idx]
        stop_hit = s * (adverse - stop) <= 0
        tgt_hit = s * (favour - target) >= 0
        liq_valid = liq > 0
        liq_gap = liq_valid & (s * (oo - liq) <= 0)
        liq_hit = liq_valid & (s * (adverse - liq) <= 0)
        stop_nearer = ~liq_valid | (s * (stop - liq) > 0)
        tgt_gap = ~liq_gap & (s * (oo - target) >= 0)  # opened at or past the target
        liq_now = liq_gap | (~tgt_gap & liq_hit & ~(stop_hit & stop_nearer))
        stop_now = ~liq_now & ~tgt_gap & stop_hit
        tgt_now = ~liq_now & (tgt_gap | (~stop_hit & tgt_hit))
        if liq_now.any():
            w = liq_now
            j = idx[w]
            base = np.where(liq_gap[w], oo[w], liq[w])
            self._close(j, base, v[j], ts[j], R_LIQUIDATION, slip=False)
        if stop_now.any():
            w = stop_now
            j = idx[w]
            base = np.where(s[w] * (oo[w] - stop[w]) <= 0, oo[w], stop[w])
            self._close(j, base, v[j], ts[j], R_STOP, slip=True)
        if tgt_now.any():
            w = tgt_now
            j = idx[w]
            base = np.where(s[w] * (oo[w] - target[w]) >= 0, oo[w], target[w])
            self._close(j, base, v[j], ts[j], R_TARGET, slip=True)

    def close_positions(self, idx, price, v, ts, reason: int = R_END) -> None:
        """Close the open positions among ``idx`` at ``price`` (market order), e.g. at an
        episode's last close; the equity is marked again at that price."""
        idx = np.asarray(idx, dtype=np.int64)
        price = np.broadcast_to(np.asarray(price, dtype=np.float64), idx.shape)
        v = np.broadcast_to(np.asarray(v, dtype=np.float64), (*idx.shape, 3))
        ts = np.broadcast_to(np.asarray(ts, dtype=np.int64), idx.shape)
        open_ = self.side[idx] != 0
        if open_.any():
            self._close(idx[open_], price[open_], v[open_], ts[open_], reason, slip=True)
            j = idx[open_]
            self.equity[j] = self.cash[j]
            self.upnl[j] = 0.0

    def _close(self, idx, base, v, ts, reason: int, *, slip: bool) -> None:
        s = self.side[idx]
        qty = self.qty[idx]
        if reason == R_LIQUIDATION:  # closed at the bankruptcy price: the whole margin is lost
            base = self.entry[idx] - s * self.margin[idx] / qty
        if slip:
            fill = base * (1.0 - s * self._slip_frac(qty, base, v))
        else:
            fill = np.asarray(base, dtype=np.float64)
        gross = s * qty * (fill - self.entry[idx])
        margin = self.margin[idx]
        remaining = np.maximum(margin + gross, 0.0)  # isolated: never lose more than the margin
        if reason == R_LIQUIDATION:
            fee = np.zeros_like(remaining)
            payout = np.zeros_like(remaining)
            self.liquidations[idx] += 1
            self.liquidated_now[idx] = True
        else:
            fee = self.taker * qty * fill
            payout = remaining - fee
        slip_usd = qty * np.abs(fill - base)
        self.cash[idx] += payout
        self.fees[idx] += fee
        self.slippage[idx] += slip_usd
        self.trade_fees[idx] += fee
        self.trade_slip[idx] += slip_usd
        self.turnover_now[idx] += qty * fill
        self.n_trades[idx] += 1
        self.dirty = True
        pnl = self.cash[idx] - self.entry_equity[idx]
        self.closed_return_now[idx] += pnl / self.entry_equity[idx]
        reason_name = REASONS[reason]
        names = self.profile_names
        for k, i in enumerate(idx.tolist()):
            self.closed.append(
                (
                    i,
                    {
                        "entry_time": int(self.entry_time[i]),
                        "exit_time": int(ts[k]),
                        "side": "long" if s[k] > 0 else "short",
                        "leverage": float(self.lev[i]),
                        "profile": names[int(self.profile[i])],
                        "entry_price": float(self.entry[i]),
                        "exit_price": float(fill[k]),
                        "qty": float(qty[k]),
                        "pnl_usd": float(pnl[k]),
                        "fees_usd": float(self.trade_fees[i]),
                        "funding_usd": float(self.trade_funding[i]),
                        "slippage_usd": float(self.trade_slip[i]),
                        "reason": reason_name,
                    },
                )
            )
        for arr in (self.margin, self.side, self.qty, self.entry, self.lev, self.stop, self.target, self.liq):
            arr[idx] = 0.0
        self.bars[idx] = 0


class SingleAccount:
    """One account stepped bar by bar over :class:`~aster_rl.sim.prices.PriceArrays`: the loop
    shared by ``PerpEnv``, the backtester and the paper broker.

    ``advance(t, side, lev_i, prof_i, last)`` decides at bar ``t``'s close and runs bar
    ``t + 1``; with ``last`` (or on bankruptcy) an open position is closed at bar
    ``t + 1``'s close with reason ``"end"``. Returns True when the account went bankrupt.
    """

    def __init__(self, cfg: EnvConfig, prices) -> None:
        self.cfg = cfg
        self.book = AccountBook(cfg, 1)
        self.prices = prices
        p = prices
        self._ts, self._o, self._h, self._l, self._c = p.timestamps, p.open, p.high, p.low, p.close
        self._v, self._fr, self._atr = p.costs, p.funding_rate, p.atr
        self._lev = np.asarray(cfg.leverages, dtype=np.float64)
        profiles = list(cfg.exit_profiles.values())
        self._stop_atr = np.array([q.stop_atr for q in profiles])
        self._target_atr = np.array([q.target_atr for q in profiles])
        self._bankrupt = cfg.bankruptcy_fraction * cfg.initial_equity_usd
        self._a_side = np.zeros(1, dtype=np.int64)
        self._a_lev = np.zeros(1)
        self._a_stop = np.zeros(1)
        self._a_target = np.zeros(1)
        self._a_prof = np.zeros(1, dtype=np.int64)
        self._zero = np.zeros(1, dtype=np.int64)
        self._flat_state = None
        self.reset()

    def rebind(self, prices) -> None:
        """Read bars from ``prices`` from now on (the live runner's growing price buffer);
        the account's state is kept. ``prices`` must hold the same bars at the same indices."""
        self.prices = prices
        p = prices
        self._ts, self._o, self._h, self._l, self._c = p.timestamps, p.open, p.high, p.low, p.close
        self._v, self._fr, self._atr = p.costs, p.funding_rate, p.atr

    def reset(self) -> None:
        self.book.reset()
        self.steps = 0
        self.max_drawdown = 0.0
        self.in_market = 0
        self.prev_equity = float(self.cfg.initial_equity_usd)
        self.quiet = True

    def advance(self, t: int, side_a: int, lev_i: int, prof_i: int, last: bool) -> bool:
        book = self.book
        t1 = t + 1
        self.prev_equity = float(book.equity[0])
        quiet = side_a == WAIT and book.side[0] == 0
        self.quiet = quiet
        if quiet:  # flat and waiting: nothing can happen to the account in this bar
            if book.dirty:
                book.begin_bar()
        else:
            atr = self._atr[t]
            self._a_side[0] = side_a
            self._a_lev[0] = self._lev[lev_i]
            self._a_stop[0] = self._stop_atr[prof_i] * atr
            self._a_target[0] = self._target_atr[prof_i] * atr
            self._a_prof[0] = prof_i
            book.submit(self._a_side, self._a_lev, self._a_stop, self._a_target, self._a_prof)
            s = slice(t1, t1 + 1)
            book.process_bar(self._ts[s], self._o[s], self._h[s], self._l[s], self._c[s], self._v[s], self._fr[s])
        self.steps += 1
        equity = float(book.equity[0])
        bankrupt = equity < self._bankrupt
        if (bankrupt or last) and book.side[0] != 0:
            book.close_positions(self._zero, self._c[t1], self._v[t1], self._ts[t1], R_END)
            equity = float(book.equity[0])
        if book.side[0] != 0 or book.turnover_now[0] > 0:
            self.in_market += 1
        peak = float(book.peak[0])
        if equity > peak:
            book.peak[0] = peak = equity
        dd = 1.0 - equity / peak
        if dd > self.max_drawdown:
            self.max_drawdown = dd
        return bankrupt

    def episode_stats(self) -> dict:
        b = self.book
        eq = float(b.equity[0])
        return {
            "equity": eq,
            "return": eq / self.cfg.initial_equity_usd - 1.0,
            "max_drawdown": float(self.max_drawdown),
            "n_trades": int(b.n_trades[0]),
            "time_in_market": self.in_market / max(self.steps, 1),
            "fees": float(b.fees[0]),
            "funding": float(b.funding[0]),
            "slippage": float(b.slippage[0]),
            "liquidations": int(b.liquidations[0]),
            "skipped_orders": int(b.n_skipped[0]),
        }

    def observation(self, features: np.ndarray, t: int) -> np.ndarray:
        """The observation at bar ``t``'s close: feature row ``t`` + this account's state."""
        
        book = self.book
        if book.side[0] == 0 and book.equity[0] == self.cfg.initial_equity_usd:
            if self._flat_state is None:
                self._flat_state = np.zeros(N_ACCOUNT, dtype=np.float32)
                self._flat_state[4] = 1.0
            state = self._flat_state
        else:
            state = book_state(book, self._c[t : t + 1], self.cfg.initial_equity_usd)[0]
        return np.concatenate((features[t], state), dtype=np.float32, casting="same_kind")


_EPS = 1e-12


def step_rewards(cfg, prev_equity, equity, peak, closed_return, turnover, liquidated, exposure=0.0):
    """The numpy reward of the step kernel (documented on ``envs.perp.PerpEnv``); ``exposure`` is the
    gross notional / equity held through the step's close."""
    if cfg.reward == "log_equity":
        r = np.log(np.maximum(equity, _EPS) / np.maximum(prev_equity, _EPS))
    else:
        r = np.array(closed_return, dtype=np.float64)
    if cfg.drawdown_penalty:
        r -= cfg.drawdown_penalty * (1.0 - equity / np.maximum(peak, _EPS))
    if cfg.turnover_penalty:
        r -= cfg.turnover_penalty * turnover / np.maximum(prev_equity, _EPS)
    if cfg.liquidation_penalty:
        r -= cfg.liquidation_penalty * liquidated
    if cfg.exposure_penalty:
        r -= cfg.exposure_penalty * exposure
    return r
