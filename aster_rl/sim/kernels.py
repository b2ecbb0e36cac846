"""Compiled per-bar arithmetic of the accounting core (numba), one loop over the accounts.

:class:`aster_rl.sim.accounting.AccountBook` keeps N accounts as two state matrices, ``F``
(float64, ``(NF, N)``) and ``I`` (int64, ``(NI, N)``), one row per field; the kernels here
read and write them in place. Every caller — ``PerpEnv`` / ``SingleAccount`` (N = 1), the
batched env (N accounts) and the backtester — runs these same compiled functions.

Kernels take few arguments on purpose: a numba call costs about 0.07 µs per array
argument, which matters when one bar of one account costs well under a microsecond.

- ``par`` (float64): the config as numbers (:func:`pack_params`), then the margin brackets
  and the action ladders;
- ``ctl`` (int64): event count, "something happened" flag, episode limits;
- ``EVF``/``EVI``: closed-trade records of the current bar (float and integer fields),
  turned into dicts by ``AccountBook`` only when read.

Everything that one kernel calls lives in this file: numba's on-disk cache is invalidated
by changes to the file of the function it compiled, not by changes in other files.
"""

from __future__ import annotations

import logging
import math
from types import ModuleType
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

_numba: ModuleType | None
try:  # the compiler; without it the same functions run as (slow) Python
    import numba

    _numba = numba
except ImportError:  # pragma: no cover - numba is a declared dependency
    _numba = None
    logger.warning("numba is not installed: the accounting core runs as plain Python (slow)")


def jit(fn=None, *, inline: bool = False):
    """``numba.njit(cache=True)``; without a writable cache location, ``njit`` alone.

    ``inline=True`` inlines the function into its (compiled) callers, which saves the
    call and the reference counting of its array arguments: for the small per-account
    helpers that is most of their cost.
    """
    if fn is None:
        return lambda f: jit(f, inline=inline)
    if _numba is None:  # pragma: no cover
        return fn
    opts: dict[str, Any] = {"error_model": "numpy"}  # IEEE division (inf/nan, as numpy), no zero checks
    if inline:
        opts["inline"] = "always"
    try:
        return _numba.njit(cache=True, **opts)(fn)
    except RuntimeError as e:  # no writable cache directory anywhere: compile on every start
        logger.info("numba cache unavailable for %s (%s); compiling without it", fn.__name__, e)
        return _numba.njit(**opts)(fn)


# ---------------------------------------------------------------------------- layout
# float rows; EQUITY .. SLIPPAGE are adjacent in the order of the env's ``info`` keys, then
# the last step's reward
(
    EQUITY, SIDE, LEV, FEES, FUNDING, SLIPPAGE, REWARD,
    CASH, MARGIN, QTY, ENTRY, STOP, TARGET, LIQ, MMR, MAMT, UPNL, PEAK,
    ENTRY_EQUITY, TRADE_FEES, TRADE_FUNDING, TRADE_SLIP,
    P_LEV, P_STOP_DIST, P_TARGET_DIST,
    TURNOVER_NOW, CLOSED_RETURN_NOW, PREV_EQUITY, MAX_DD, REF_EQUITY,
    DSR_A, DSR_B,
) = range(32)
NF = 32
# int rows
(
    ENTRY_TIME, BARS, PROFILE, P_KIND, P_PROFILE, LIQUIDATIONS, N_TRADES, N_SKIPPED,
    LIQUIDATED_NOW, T_BAR, STEPS, IN_MARKET, QUIET, BANKRUPT, DONE,
) = range(15)
NI = 15
# closed-trade records
EV_LEV, EV_ENTRY, EV_EXIT, EV_QTY, EV_PNL, EV_FEES, EV_FUNDING, EV_SLIP = range(8)
NEVF = 8
EV_ACCOUNT, EV_ENTRY_TIME, EV_EXIT_TIME, EV_SIDE, EV_PROFILE, EV_REASON = range(6)
NEVI = 6
# control words
C_NEV, C_DIRTY, C_LOST, C_EPISODE_LENGTH, C_END = range(5)
NCTL = 8
NO_LIMIT = 1 << 62
# price matrix columns (bars × PX_COLS); the last three are a bar's fill-cost inputs, in the
# order of a cost row (COST_*): the columns PX_HALF_SPREAD .. PX_VOLUME_DAILY of a bar are its cost row
PX_OPEN, PX_HIGH, PX_LOW, PX_CLOSE, PX_VOLUME, PX_FUNDING, PX_ATR, PX_HALF_SPREAD, PX_SIGMA_DAILY, PX_VOLUME_DAILY = range(10)
PX_COLS = 10
# a cost row (what a fill inside a bar pays, see aster_rl.sim.prices): the book's half-spread
# (fraction of the price, 0 without a book), σ_daily, V_daily (quote currency)
COST_HALF_SPREAD, COST_SIGMA_DAILY, COST_VOLUME_DAILY = range(3)
N_COST = 3
# parameters
(
    P_TAKER, P_SLIP_BASE, P_IMPACT, P_MARGIN_FRACTION, P_QTY_STEP, P_TICK, P_MIN_NOTIONAL,
    P_INITIAL, P_MAX_LEV, P_BANKRUPT, P_N_BRACKETS, P_N_LEVERAGES, P_N_PROFILES,
    P_REWARD_KIND, P_DRAWDOWN_PENALTY, P_TURNOVER_PENALTY, P_LIQUIDATION_PENALTY, P_EQUITY_BLOCK,
    P_SPREAD_MULT, P_DSR_ETA, P_EXPOSURE_PENALTY,
) = range(21)
P_TABLES = 21
REWARD_LOG_EQUITY, REWARD_TRADE_OUTCOME, REWARD_DIFF_SHARPE = 0, 1, 2
REWARD_KINDS = {"log_equity": REWARD_LOG_EQUITY, "trade_outcome": REWARD_TRADE_OUTCOME,
                "differential_sharpe": REWARD_DIFF_SHARPE}
DSR_CLIP = 10.0  # |differential Sharpe ratio| cap: it grows as 1/sqrt(B) after long flat stretches
_EPS = 1e-12

# order kinds, actions and close reasons: defined here only (the compiled code needs them as
# module-level constants); aster_rl.sim.accounting re-exports them
NONE, OPEN_LONG, OPEN_SHORT, CLOSE = 0, 1, -1, 2
WAIT, BUY, SELL = 0, 1, 2
R_TARGET, R_STOP, R_LIQUIDATION, R_SIGNAL, R_END = 0, 1, 2, 3, 4
REASONS = ("target", "stop", "liquidation", "signal", "end")  # indexed by the R_* codes
# bits of a step kernel's return code (OR over the accounts); events count from bit 8
ST_DIRTY, ST_BANKRUPT, ST_DONE, ST_ACTIVE = 1, 2, 4, 8
ST_EVENTS_SHIFT = 8

QTY_EPS = 1e-9
N_ACCOUNT = 6
BARS_SCALE = 1.0 / math.log1p(1000.0)


def pack_params(cfg) -> np.ndarray:
    """The config as the ``par`` vector the kernels read."""
    brackets = cfg.brackets
    profiles = list(cfg.exit_profiles.values())
    head = np.zeros(P_TABLES)
    head[P_TAKER] = cfg.taker_fee_rate
    head[P_SLIP_BASE] = float(cfg.slippage_bps) * 1e-4
    head[P_IMPACT] = cfg.impact_coef
    head[P_SPREAD_MULT] = cfg.spread_mult
    head[P_MARGIN_FRACTION] = cfg.margin_fraction
    head[P_QTY_STEP] = cfg.qty_step
    head[P_TICK] = cfg.price_tick
    head[P_MIN_NOTIONAL] = cfg.min_notional_usd
    head[P_INITIAL] = cfg.initial_equity_usd
    head[P_MAX_LEV] = float(cfg.max_leverage)
    head[P_BANKRUPT] = cfg.bankruptcy_fraction * cfg.initial_equity_usd
    head[P_N_BRACKETS] = len(brackets)
    head[P_N_LEVERAGES] = len(cfg.leverages)
    head[P_N_PROFILES] = len(profiles)
    if cfg.reward not in REWARD_KINDS:  # pragma: no cover - pydantic restricts the literal
        raise ValueError(f"env.reward = {cfg.reward!r}: expected one of {sorted(REWARD_KINDS)}")
    head[P_REWARD_KIND] = REWARD_KINDS[cfg.reward]
    head[P_DRAWDOWN_PENALTY] = cfg.drawdown_penalty
    head[P_TURNOVER_PENALTY] = cfg.turnover_penalty
    head[P_LIQUIDATION_PENALTY] = cfg.liquidation_penalty
    head[P_DSR_ETA] = cfg.dsr_eta
    head[P_EXPOSURE_PENALTY] = cfg.exposure_penalty
    head[P_EQUITY_BLOCK] = cfg.episode_length  # the equity-change observation's reference restarts every block
    tables = (
        [b.notional_cap_usd for b in brackets],
        [min(b.max_leverage, cfg.max_leverage) for b in brackets],
        [b.maintenance_margin_rate for b in brackets],
        [b.maintenance_amount_usd for b in brackets],
        [float(x) for x in cfg.leverages],
        [p.stop_atr for p in profiles],
        [p.target_atr for p in profiles],
    )
    return np.concatenate([head] + [np.asarray(t, dtype=np.float64) for t in tables])


# ---------------------------------------------------------------------------- arithmetic
def liquidation_price(side, qty, entry_price, wallet_balance, mmr, maint_amount):
    """Binance-style isolated liquidation price of one position (floats or arrays).

    ``LP = (WB − side·Q·EP + MA) / (Q·MMR − side·Q)``; a long at 1x gives LP <= 0 (never).
    """
    return (wallet_balance - side * qty * entry_price + maint_amount) / (qty * mmr - side * qty)


_liq_price = jit(liquidation_price, inline=True)


@jit(inline=True)
def _allowed_leverage(par, margin):
    nb = int(par[P_N_BRACKETS])
    m = max(margin, 1e-12)
    best = -np.inf
    for b in range(nb):
        v = min(par[P_TABLES + nb + b], par[P_TABLES + b] / m)
        if v > best:
            best = v
    return best


@jit(inline=True)
def _slip_frac(par, qty, base, half_spread, sigma_daily, volume_daily):
    """The cost of one market fill of ``qty`` at ``base`` as a fraction of ``base`` (the rule is
    in :mod:`aster_rl.sim.accounting`): fixed slippage + half-spread + square-root impact."""
    spread = par[P_SPREAD_MULT] * max(par[P_TICK] / (2.0 * base), half_spread)
    impact = par[P_IMPACT] * sigma_daily * math.sqrt(qty * base / volume_daily) if volume_daily > 0 else 0.0
    return par[P_SLIP_BASE] + spread + impact


@jit(inline=True)
def _intended(side, action):
    if side == 0:
        if action == BUY:
            return OPEN_LONG
        if action == SELL:
            return OPEN_SHORT
        return NONE
    if (side > 0 and action == SELL) or (side < 0 and action == BUY):
        return CLOSE
    return NONE


@jit(inline=True)
def _submit_one(F, I, i, action, lev, stop_dist, target_dist, profile):  # noqa: E741
    I[P_KIND, i] = _intended(F[SIDE, i], action)
    F[P_LEV, i] = lev
    F[P_STOP_DIST, i] = stop_dist
    F[P_TARGET_DIST, i] = target_dist
    I[P_PROFILE, i] = profile


@jit(inline=True)
def _clear_bar_flags(F, I, i):  # noqa: E741
    I[LIQUIDATED_NOW, i] = 0
    F[TURNOVER_NOW, i] = 0.0
    F[CLOSED_RETURN_NOW, i] = 0.0


@jit(inline=True)
def _open_one(F, I, par, ctl, i, o, hs, sig, vd, ts):  # noqa: E741
    side = 1.0 if I[P_KIND, i] == OPEN_LONG else -1.0
    taker = par[P_TAKER]
    step = par[P_QTY_STEP]
    equity = F[CASH, i]  # flat accounts: equity is the cash
    budget = par[P_MARGIN_FRACTION] * equity
    lev = min(min(F[P_LEV, i], par[P_MAX_LEV]), _allowed_leverage(par, budget))
    qty = np.floor(budget * lev / o / step + QTY_EPS) * step
    slip = _slip_frac(par, qty, o, hs, sig, vd)
    fill = o * (1.0 + side * slip)
    fee = taker * qty * fill
    margin = qty * fill / lev
    if margin + fee > equity:  # margin_fraction near 1: shrink to what the cash can carry
        qty = np.floor(equity / (fill * (1.0 / lev + taker)) / step) * step
        fee = taker * qty * fill
        margin = qty * fill / lev
    if not (qty > 0 and qty * o >= par[P_MIN_NOTIONAL]):
        I[N_SKIPPED, i] += 1
        return
    notional = qty * fill
    nb = int(par[P_N_BRACKETS])
    b = 0
    while b < nb - 1 and par[P_TABLES + b] < notional:
        b += 1
    mmr = par[P_TABLES + 2 * nb + b]
    ma = par[P_TABLES + 3 * nb + b]
    slip_usd = qty * abs(fill - o)
    tick = par[P_TICK]
    F[CASH, i] = equity - margin - fee
    F[MARGIN, i] = margin
    F[SIDE, i] = side
    F[QTY, i] = qty
    F[ENTRY, i] = fill
    F[LEV, i] = lev
    F[MMR, i] = mmr
    F[MAMT, i] = ma
    F[LIQ, i] = _liq_price(side, qty, fill, margin, mmr, ma)
    F[STOP, i] = max(np.rint((fill - side * F[P_STOP_DIST, i]) / tick) * tick, tick)
    F[TARGET, i] = max(np.rint((fill + side * F[P_TARGET_DIST, i]) / tick) * tick, tick)
    I[PROFILE, i] = I[P_PROFILE, i]
    I[ENTRY_TIME, i] = ts
    F[ENTRY_EQUITY, i] = equity
    I[BARS, i] = 0
    F[TRADE_FEES, i] = fee
    F[TRADE_FUNDING, i] = 0.0
    F[TRADE_SLIP, i] = slip_usd
    F[FEES, i] += fee
    F[SLIPPAGE, i] += slip_usd
    F[TURNOVER_NOW, i] += notional
    ctl[C_DIRTY] = 1


@jit(inline=True)
def _close_one(F, I, par, ctl, i, base, hs, sig, vd, ts, reason, slip, EVF, EVI):  # noqa: E741
    s = F[SIDE, i]
    qty = F[QTY, i]
    if reason == R_LIQUIDATION:  # the venue closes at the bankruptcy price: the whole margin is lost
        base = F[ENTRY, i] - s * F[MARGIN, i] / qty
    if slip:
        fill = base * (1.0 - s * _slip_frac(par, qty, base, hs, sig, vd))
    else:
        fill = base
    gross = s * qty * (fill - F[ENTRY, i])
    remaining = max(F[MARGIN, i] + gross, 0.0)  # isolated: never lose more than the margin
    if reason == R_LIQUIDATION:
        fee = 0.0
        remaining = 0.0
        I[LIQUIDATIONS, i] += 1
        I[LIQUIDATED_NOW, i] = 1
    else:
        fee = par[P_TAKER] * qty * fill
    payout = remaining - fee
    slip_usd = qty * abs(fill - base)
    F[CASH, i] += payout
    F[FEES, i] += fee
    F[SLIPPAGE, i] += slip_usd
    F[TRADE_FEES, i] += fee
    F[TRADE_SLIP, i] += slip_usd
    F[TURNOVER_NOW, i] += qty * fill
    I[N_TRADES, i] += 1
    ctl[C_DIRTY] = 1
    pnl = F[CASH, i] - F[ENTRY_EQUITY, i]
    F[CLOSED_RETURN_NOW, i] += pnl / F[ENTRY_EQUITY, i]
    k = ctl[C_NEV]
    if k < EVI.shape[0]:
        ctl[C_NEV] = k + 1
        EVI[k, EV_ACCOUNT] = i
        EVI[k, EV_ENTRY_TIME] = I[ENTRY_TIME, i]
        EVI[k, EV_EXIT_TIME] = ts
        EVI[k, EV_SIDE] = 1 if s > 0 else -1
        EVI[k, EV_PROFILE] = I[PROFILE, i]
        EVI[k, EV_REASON] = reason
        EVF[k, EV_LEV] = F[LEV, i]
        EVF[k, EV_ENTRY] = F[ENTRY, i]
        EVF[k, EV_EXIT] = fill
        EVF[k, EV_QTY] = qty
        EVF[k, EV_PNL] = pnl
        EVF[k, EV_FEES] = F[TRADE_FEES, i]
        EVF[k, EV_FUNDING] = F[TRADE_FUNDING, i]
        EVF[k, EV_SLIP] = F[TRADE_SLIP, i]
    else:
        ctl[C_LOST] += 1
    F[MARGIN, i] = 0.0
    F[SIDE, i] = 0.0
    F[QTY, i] = 0.0
    F[ENTRY, i] = 0.0
    F[LEV, i] = 0.0
    F[STOP, i] = 0.0
    F[TARGET, i] = 0.0
    F[LIQ, i] = 0.0
    I[BARS, i] = 0


@jit(inline=True)
def _exits_one(F, I, par, ctl, i, ts, o, h, l, hs, sig, vd, EVF, EVI):  # noqa: E741
    """Liquidation / target / stop of account ``i`` in one bar: the open decides first (rules
    in :mod:`aster_rl.sim.accounting`)."""
    s = F[SIDE, i]
    adverse = l if s > 0 else h
    favour = h if s > 0 else l
    stop = F[STOP, i]
    target = F[TARGET, i]
    liq = F[LIQ, i]
    stop_hit = s * (adverse - stop) <= 0
    tgt_hit = s * (favour - target) >= 0
    liq_valid = liq > 0
    liq_gap = liq_valid and s * (o - liq) <= 0
    liq_hit = liq_valid and s * (adverse - liq) <= 0
    stop_nearer = (not liq_valid) or s * (stop - liq) > 0
    if liq_gap:
        _close_one(F, I, par, ctl, i, o, hs, sig, vd, ts, R_LIQUIDATION, False, EVF, EVI)
    elif s * (o - target) >= 0:  # opened at or past the target: it fills there, whatever follows
        _close_one(F, I, par, ctl, i, o, hs, sig, vd, ts, R_TARGET, True, EVF, EVI)
    elif liq_hit and not (stop_hit and stop_nearer):
        _close_one(F, I, par, ctl, i, liq, hs, sig, vd, ts, R_LIQUIDATION, False, EVF, EVI)
    elif stop_hit:
        base = o if s * (o - stop) <= 0 else stop
        _close_one(F, I, par, ctl, i, base, hs, sig, vd, ts, R_STOP, True, EVF, EVI)
    elif tgt_hit:
        _close_one(F, I, par, ctl, i, target, hs, sig, vd, ts, R_TARGET, True, EVF, EVI)


@jit(inline=True)
def _bar_one(F, I, par, ctl, i, ts, o, h, l, c, hs, sig, vd, fr, EVF, EVI):  # noqa: E741
    """One bar of account ``i``: pending order at the open, funding, exits, mark."""
    kind = I[P_KIND, i]
    if kind != NONE:
        if kind == CLOSE:
            if F[SIDE, i] != 0:
                _close_one(F, I, par, ctl, i, o, hs, sig, vd, ts, R_SIGNAL, True, EVF, EVI)
        elif F[SIDE, i] == 0:
            _open_one(F, I, par, ctl, i, o, hs, sig, vd, ts)
        I[P_KIND, i] = NONE
    s = F[SIDE, i]
    if s != 0:
        if fr != 0:
            amount = s * F[QTY, i] * o * fr
            F[MARGIN, i] -= amount
            F[TRADE_FUNDING, i] += amount
            F[FUNDING, i] += amount
            F[LIQ, i] = _liq_price(s, F[QTY, i], F[ENTRY, i], F[MARGIN, i], F[MMR, i], F[MAMT, i])
        _exits_one(F, I, par, ctl, i, ts, o, h, l, hs, sig, vd, EVF, EVI)
    s = F[SIDE, i]
    F[UPNL, i] = s * F[QTY, i] * (c - F[ENTRY, i])
    F[EQUITY, i] = F[CASH, i] + F[MARGIN, i] + F[UPNL, i]
    if F[EQUITY, i] > F[PEAK, i]:
        F[PEAK, i] = F[EQUITY, i]
    if s != 0:
        I[BARS, i] += 1


@jit(inline=True)
def _differential_sharpe(F, i, eta, prev_equity, equity):
    """Moody & Saffell's differential Sharpe ratio of account ``i``'s step return R = equity / prev - 1
    (net of every cost), then the moving moments A += eta (R - A), B += eta (R^2 - B) (rows DSR_A, DSR_B).

    D = (B dA - A dB / 2) / (B - A^2)^(3/2) with dA = R - A, dB = R^2 - B, the moments before this step;
    0 while B - A^2 is not positive (the first step of an episode), clipped to +-DSR_CLIP."""
    r = equity / max(prev_equity, _EPS) - 1.0
    a = F[DSR_A, i]
    b = F[DSR_B, i]
    da = r - a
    db = r * r - b
    var = b - a * a
    d = 0.0
    if var > _EPS * _EPS:
        d = (b * da - 0.5 * a * db) / (var * np.sqrt(var))
        d = min(max(d, -DSR_CLIP), DSR_CLIP)
    F[DSR_A, i] = a + eta * da
    F[DSR_B, i] = b + eta * db
    return d


@jit(inline=True)
def _reward(kind, dd_pen, to_pen, liq_pen, prev_equity, equity, peak, closed_return, turnover, liquidated, dsr,
            ex_pen, exposure):
    """One account's step reward: the one copy of the reward rule (documented on ``envs.perp.PerpEnv``)."""
    if kind == REWARD_LOG_EQUITY:
        r = np.log(max(equity, _EPS) / max(prev_equity, _EPS))
    elif kind == REWARD_DIFF_SHARPE:
        r = dsr
    else:
        r = closed_return
    if dd_pen != 0:
        r -= dd_pen * (1.0 - equity / max(peak, _EPS))
    if to_pen != 0:
        r -= to_pen * turnover / max(prev_equity, _EPS)
    if liq_pen != 0:
        r -= liq_pen * liquidated
    if ex_pen != 0:
        r -= ex_pen * exposure
    return r


@jit(inline=True)
def _state_into(F, I, par, i, mark, out, o):  # noqa: E741
    """The six account-state columns of account ``i`` (see ``aster_rl.sim.observation``)."""
    side = F[SIDE, i]
    held = side != 0
    margin = F[MARGIN, i]
    liq = F[LIQ, i]
    out[o] = side
    out[o + 1] = F[LEV, i] / par[P_MAX_LEV]
    out[o + 2] = F[UPNL, i] / margin if held and margin > 0 else 0.0
    out[o + 3] = np.log1p(float(I[BARS, i])) * BARS_SCALE
    dist = abs(mark - liq) / mark if held and liq > 0 else 1.0
    out[o + 4] = min(max(dist, 0.0), 1.0)
    out[o + 5] = np.log(max(F[EQUITY, i], 1e-12) / F[REF_EQUITY, i])


# ---------------------------------------------------------------------------- kernels
@jit
def submit_all(F, I, actions, lev, stop_dist, target_dist, profile):  # noqa: E741
    for i in range(F.shape[1]):
        _submit_one(F, I, i, actions[i], lev[i], stop_dist[i], target_dist[i], profile[i])


@jit
def process_bar_all(F, I, par, ctl, ts, o, h, l, c, cost, fr, EVF, EVI):  # noqa: E741
    """One bar for every account (arrays of shape (N,): each account's own bar; ``cost``
    (N, N_COST): each account's cost row)."""
    ctl[C_NEV] = 0
    ctl[C_DIRTY] = 0
    for i in range(F.shape[1]):
        _clear_bar_flags(F, I, i)
        _bar_one(
            F, I, par, ctl, i, ts[i], o[i], h[i], l[i], c[i], cost[i, COST_HALF_SPREAD], cost[i, COST_SIGMA_DAILY],
            cost[i, COST_VOLUME_DAILY], fr[i], EVF, EVI,
        )


@jit
def begin_bar_all(F, I, ctl):  # noqa: E741
    ctl[C_NEV] = 0
    ctl[C_DIRTY] = 0
    for i in range(F.shape[1]):
        _clear_bar_flags(F, I, i)


@jit
def close_at(F, I, par, ctl, idx, price, cost, ts, reason, EVF, EVI):  # noqa: E741
    """Market-close the open positions among ``idx``; their equity becomes the cash."""
    for k in range(idx.shape[0]):
        i = idx[k]
        if F[SIDE, i] != 0:
            _close_one(
                F, I, par, ctl, i, price[k], cost[k, COST_HALF_SPREAD], cost[k, COST_SIGMA_DAILY],
                cost[k, COST_VOLUME_DAILY], ts[k], reason, True, EVF, EVI,
            )
            F[EQUITY, i] = F[CASH, i]
            F[UPNL, i] = 0.0


@jit
def exits_at(F, I, par, ctl, idx, price, cost, ts, EVF, EVI):  # noqa: E741
    """The bar's exit rule (liquidation, target, stop) for the open positions among ``idx`` at
    one traded price between bars: a bar whose open, high and low are that price."""
    for k in range(idx.shape[0]):
        i = idx[k]
        if F[SIDE, i] != 0:
            p = price[k]
            _exits_one(
                F, I, par, ctl, i, ts[k], p, p, p, cost[k, COST_HALF_SPREAD], cost[k, COST_SIGMA_DAILY],
                cost[k, COST_VOLUME_DAILY], EVF, EVI,
            )
            if F[SIDE, i] == 0:
                F[EQUITY, i] = F[CASH, i]
                F[UPNL, i] = 0.0


@jit
def allowed_leverage_all(par, margin, out):
    for k in range(margin.shape[0]):
        out[k] = _allowed_leverage(par, margin[k])


@jit
def intended_all(side, actions, out):
    for i in range(side.shape[0]):
        out[i] = _intended(side[i], actions[i])


@jit
def account_state_arrays(side, lev, max_lev, upnl, margin, bars, mark, liq, equity, start_equity, out):
    """:func:`aster_rl.sim.observation.account_state` over arrays of shape (N,)."""
    for i in range(side.shape[0]):
        held = side[i] != 0
        out[i, 0] = side[i]
        out[i, 1] = lev[i] / max_lev
        out[i, 2] = upnl[i] / margin[i] if held and margin[i] > 0 else 0.0
        out[i, 3] = np.log1p(bars[i]) * BARS_SCALE
        dist = abs(mark[i] - liq[i]) / mark[i] if held and liq[i] > 0 else 1.0
        out[i, 4] = min(max(dist, 0.0), 1.0)
        out[i, 5] = np.log(max(equity[i], 1e-12) / start_equity[i])


@jit
def observe(F, I, par, px, feats, idx, t, out):  # noqa: E741
    """Observation rows for the accounts ``idx`` at bars ``t``: feature row + account state,
    written to ``out`` (flat, row ``k`` at ``k * width``); ``feats`` may have 0 columns."""
    nf = feats.shape[1]
    width = nf + N_ACCOUNT
    for k in range(idx.shape[0]):
        i = idx[k]
        tk = t[k]
        o = k * width
        for j in range(nf):
            out[o + j] = feats[tk, j]
        _state_into(F, I, par, i, px[tk, PX_CLOSE], out, o + nf)


@jit(inline=True)
def _first_bad_action(actions, n, n_lev, n_prof):
    """The first account whose (side, leverage index, profile index) is out of range, or -1."""
    for i in range(n):
        a0 = actions[3 * i]
        a1 = actions[3 * i + 1]
        a2 = actions[3 * i + 2]
        if a0 < 0 or a0 > 2 or a1 < 0 or a1 >= n_lev or a2 < 0 or a2 >= n_prof:
            return i
    return -1


@jit
def step_accounts(F, I, par, ctl, ts, px, actions, feats, obs, EVF, EVI):  # noqa: E741
    """One env step for every account, at its own bar ``I[T_BAR]``.

    Account ``i`` decides ``actions[3i : 3i + 3]`` (side, leverage index, profile index) at
    the close of bar ``t``, runs bar ``t + 1`` (a WAIT while flat skips the bar's arithmetic:
    nothing can happen), counts the step and, when it went bankrupt (equity below
    ``par[P_BANKRUPT]``) or the episode ends (``ctl`` limits, or the ``DONE`` row set to 1
    beforehand to force it), closes its position at bar ``t + 1``'s close with reason
    ``end``. Then it updates peak and drawdown, writes the step's reward to the ``REWARD``
    row and, when ``obs`` is not empty, the observation at bar ``t + 1`` (``feats`` row +
    account state) to ``obs[i * width:]``.

    Returns ``-(i + 1)`` for an invalid action of account ``i`` (nothing is changed), else
    the OR of the accounts' ``ST_*`` bits plus the closed-trade count << ``ST_EVENTS_SHIFT``.
    """
    n = F.shape[1]
    n_lev = int(par[P_N_LEVERAGES])
    n_prof = int(par[P_N_PROFILES])
    bad = _first_bad_action(actions, n, n_lev, n_prof)
    if bad >= 0:
        return -(bad + 1)
    nb = int(par[P_N_BRACKETS])
    lev_at = P_TABLES + 4 * nb
    stop_at = lev_at + n_lev
    target_at = stop_at + n_prof
    episode_length = ctl[C_EPISODE_LENGTH]
    end = ctl[C_END]
    bankrupt_below = par[P_BANKRUPT]
    kind = int(par[P_REWARD_KIND])
    dd_pen = par[P_DRAWDOWN_PENALTY]
    to_pen = par[P_TURNOVER_PENALTY]
    liq_pen = par[P_LIQUIDATION_PENALTY]
    dsr_eta = par[P_DSR_ETA]
    ex_pen = par[P_EXPOSURE_PENALTY]
    block = max(int(par[P_EQUITY_BLOCK]), 1)
    nf = feats.shape[1]
    width = nf + N_ACCOUNT
    write_obs = obs.shape[0] > 0
    ctl[C_NEV] = 0
    ctl[C_DIRTY] = 0
    flags = 0
    for i in range(n):
        t = I[T_BAR, i]
        t1 = t + 1
        F[PREV_EQUITY, i] = F[EQUITY, i]
        _clear_bar_flags(F, I, i)
        side_a = actions[3 * i]
        quiet = side_a == WAIT and F[SIDE, i] == 0
        I[QUIET, i] = 1 if quiet else 0
        if not quiet:  # flat and waiting: nothing can happen to the account in this bar
            flags |= ST_ACTIVE
            a2 = actions[3 * i + 2]
            atr = px[t, PX_ATR]
            _submit_one(
                F, I, i, side_a, par[lev_at + actions[3 * i + 1]], par[stop_at + a2] * atr,
                par[target_at + a2] * atr, a2,
            )
            _bar_one(
                F, I, par, ctl, i, ts[t1], px[t1, PX_OPEN], px[t1, PX_HIGH], px[t1, PX_LOW],
                px[t1, PX_CLOSE], px[t1, PX_HALF_SPREAD], px[t1, PX_SIGMA_DAILY], px[t1, PX_VOLUME_DAILY],
                px[t1, PX_FUNDING], EVF, EVI,
            )
        I[T_BAR, i] = t1
        I[STEPS, i] += 1
        equity = F[EQUITY, i]
        bankrupt = equity < bankrupt_below
        last = I[DONE, i] != 0 or I[STEPS, i] >= episode_length or t1 >= end - 1
        if (bankrupt or last) and F[SIDE, i] != 0:
            _close_one(
                F, I, par, ctl, i, px[t1, PX_CLOSE], px[t1, PX_HALF_SPREAD], px[t1, PX_SIGMA_DAILY],
                px[t1, PX_VOLUME_DAILY], ts[t1], R_END, True, EVF, EVI,
            )
            F[EQUITY, i] = F[CASH, i]
            F[UPNL, i] = 0.0
            equity = F[EQUITY, i]
        if F[SIDE, i] != 0 or F[TURNOVER_NOW, i] > 0:
            I[IN_MARKET, i] += 1
        if equity > F[PEAK, i]:
            F[PEAK, i] = equity
        dd = 1.0 - equity / F[PEAK, i]
        if dd > F[MAX_DD, i]:
            F[MAX_DD, i] = dd
        dsr = _differential_sharpe(F, i, dsr_eta, F[PREV_EQUITY, i], equity) if kind == REWARD_DIFF_SHARPE else 0.0
        # gross exposure held through the bar's close: notional at the close / equity
        exposure = F[QTY, i] * px[t1, PX_CLOSE] / max(equity, _EPS) if ex_pen != 0 and F[SIDE, i] != 0 else 0.0
        F[REWARD, i] = _reward(
            kind, dd_pen, to_pen, liq_pen, F[PREV_EQUITY, i], equity, F[PEAK, i], F[CLOSED_RETURN_NOW, i],
            F[TURNOVER_NOW, i], I[LIQUIDATED_NOW, i], dsr, ex_pen, exposure,
        )
        if I[STEPS, i] % block == 0:  # a new block of episode_length steps: the equity reference moves here
            F[REF_EQUITY, i] = equity
        I[BANKRUPT, i] = 1 if bankrupt else 0
        I[DONE, i] = 1 if (bankrupt or last) else 0
        if bankrupt:
            flags |= ST_BANKRUPT
        if bankrupt or last:
            flags |= ST_DONE
    if write_obs:  # a second pass: independent row copies overlap their memory loads
        for i in range(n):
            t1 = I[T_BAR, i]
            o = i * width
            for j in range(nf):  # (an explicit loop: numba's slice copy is several times slower)
                obs[o + j] = feats[t1, j]
            _state_into(F, I, par, i, px[t1, PX_CLOSE], obs, o + nf)
    if ctl[C_DIRTY]:
        flags |= ST_DIRTY
    return flags | (ctl[C_NEV] << ST_EVENTS_SHIFT)
