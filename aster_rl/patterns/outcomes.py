"""Trade outcomes of fixed-rule entries, simulated by the accounting core.

For mining, the outcome of "enter ``side`` at the open after bar *t*, exit by the profile"
does not depend on which pattern fired at *t*. So the outcomes of every candidate entry
bar are simulated once per (side, profile) and each candidate pattern then looks its
signals up. The simulation is :class:`aster_rl.sim.accounting.AccountBook` with **one account
per entry bar**, every account stepped through its own bars at once (the core takes one
bar per account), so fees, slippage, funding, stop/target order inside a bar and the
fills are exactly the backtester's:

- decision at the close of bar *t*, market entry at the open of *t + 1* (taker fee,
  slippage against the trader), leverage 1 (the pattern's edge in price terms; leverage
  scales it and only adds liquidation risk);
- stop and target at ``stop_atr`` / ``target_atr`` × ATR(t) from the fill, checked inside
  each bar (the stop counts when both could hit);
- funding settled while the position is held;
- after ``max_hold`` bars still open: a market close decided at that bar's close and
  filled at the next open (reason ``signal``);
- an entry whose trade has not closed by the last bar given has no outcome; it is
  ``pending`` (the position is still open, so a pattern takes no later entry:
  :func:`pattern_entries`).

The **net return** of a trade is its PnL in USD (after fees, slippage and funding) over
the entry notional.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from aster_rl.sim.accounting import BUY, REASONS, SELL, WAIT, AccountBook
from aster_rl.config import EnvConfig, replace
from aster_rl.errors import ConfigError
from aster_rl.sim.prices import PriceArrays

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcomes:
    """Dense per-bar outcomes of entering after each bar (NaN / -1 where there is none)."""

    side: str
    profile: str
    net_return: np.ndarray  # float64, NaN = no closed trade from this bar
    exit_bar: np.ndarray  # int64: the bar in which the trade closed (-1 = none)
    reason: np.ndarray  # int8 index into aster_rl.sim.accounting.REASONS (-1 = none)
    pending: np.ndarray | None = None  # bool: entered, still open at the last bar (None = none)

    @property
    def valid(self) -> np.ndarray:
        return self.exit_bar >= 0

    def reason_name(self, bar: int) -> str | None:
        r = int(self.reason[bar])
        return REASONS[r] if r >= 0 else None


def simulate_entries(
    prices: PriceArrays,
    signal_bars: np.ndarray,
    side: str,
    profile: str,
    env: EnvConfig,
    max_hold: int,
) -> Outcomes:
    """Outcomes of one trade per bar in ``signal_bars`` (each its own account)."""
    if side not in ("long", "short"):
        raise ValueError(f"side must be 'long' or 'short', got {side!r}")
    if profile not in env.exit_profiles:
        raise ConfigError(f"exit profile {profile!r} is not in env.exit_profiles ({sorted(env.exit_profiles)})")
    if max_hold < 1:
        raise ValueError(f"max_hold must be >= 1, got {max_hold}")
    n = len(prices)
    net = np.full(n, np.nan)
    exit_bar = np.full(n, -1, dtype=np.int64)
    reason = np.full(n, -1, dtype=np.int8)
    bars = np.asarray(signal_bars, dtype=np.int64)
    bars = bars[(bars >= 0) & (bars + 1 < n) & (prices.atr[np.clip(bars, 0, max(n - 1, 0))] > 0)] if n else bars[:0]
    if len(bars) == 0:
        return Outcomes(side, profile, net, exit_bar, reason, np.zeros(n, dtype=bool))

    ex = env.exit_profiles[profile]
    profile_index = list(env.exit_profiles).index(profile)
    book = AccountBook(replace(env, max_leverage=max(env.max_leverage, 1)), n=len(bars))
    m = len(bars)
    action = BUY if side == "long" else SELL
    closing = SELL if side == "long" else BUY
    atr = prices.atr[bars]
    book.submit(
        np.full(m, action),
        np.ones(m),
        ex.stop_atr * atr,
        ex.target_atr * atr,
        np.full(m, profile_index),
    )
    ts, o, h, lo, c, cost, fr = (prices.timestamps, prices.open, prices.high, prices.low, prices.close, prices.costs, prices.funding_rate)
    beyond = np.zeros(m, dtype=bool)  # ran past the last bar before closing
    for k in range(max_hold + 1):
        j = bars + 1 + k
        past = j >= n
        if past.any():
            beyond |= past & ((book.side != 0) | (k == 0))
            j = np.minimum(j, n - 1)
        if k == max_hold:  # still open after max_hold bars: market close at this open
            book.submit(np.where(book.side != 0, closing, WAIT), np.ones(m), np.zeros(m), np.zeros(m), np.zeros(m, dtype=np.int64))
        live = ~beyond
        if k > 0 and not (book.side[live] != 0).any() and not book.p_kind.any():
            break
        book.process_bar(ts[j], o[j], h[j], lo[j], c[j], cost[j], np.where(beyond, 0.0, fr[j]))
        for i, trade in book.closed:
            if beyond[i]:
                continue
            b = bars[i]
            notional = trade["qty"] * trade["entry_price"]
            net[b] = trade["pnl_usd"] / notional if notional > 0 else np.nan
            exit_bar[b] = b + 1 + k
            reason[b] = REASONS.index(trade["reason"])
    skipped = int(book.n_skipped.sum())
    if skipped:
        logger.warning("%s/%s: %d entries were below the minimum notional and have no outcome", side, profile, skipped)
    bad = ~np.isfinite(net) & (exit_bar >= 0)
    exit_bar[bad] = -1
    reason[bad] = -1
    pending = np.zeros(n, dtype=bool)
    pending[bars[beyond & (book.n_skipped == 0)]] = True
    return Outcomes(side, profile, net, exit_bar, reason, pending)


def entry_chain(signal_bars: np.ndarray, exit_bar: np.ndarray) -> np.ndarray:
    """The entries one position at a time takes: the first signal, then the first signal at
    or after the bar in which that trade closed (flat at its close), and so on.

    ``signal_bars`` are sorted bars with a valid outcome; ``exit_bar`` is the dense array.
    Returns positions into ``signal_bars``.
    """
    s = np.asarray(signal_bars, dtype=np.int64)
    if len(s) == 0:
        return np.zeros(0, dtype=np.int64)
    nxt = np.searchsorted(s, exit_bar[s], side="left").tolist()
    out = []
    i, m = 0, len(s)
    while i < m:
        out.append(i)
        i = nxt[i]
    return np.asarray(out, dtype=np.int64)


def pattern_entries(signals: np.ndarray, outcomes: Outcomes) -> np.ndarray:
    """The bars whose trades a pattern signalling at ``signals`` (a boolean mask) takes and closes.

    One position at a time (:func:`entry_chain`); a trade still open at the last bar
    (``pending``) keeps the position until the end, so no later signal is taken. The
    trades that closed by any bar *t* are therefore the same whatever follows *t*.
    """
    pending = outcomes.pending if outcomes.pending is not None else np.zeros(len(outcomes.exit_bar), dtype=bool)
    s = np.flatnonzero(np.asarray(signals, dtype=bool) & (outcomes.valid | pending))
    if len(s) == 0:
        return s
    exit_bar = np.where(pending, len(outcomes.exit_bar), outcomes.exit_bar)
    taken = s[entry_chain(s, exit_bar)]
    return taken[outcomes.valid[taken]]
