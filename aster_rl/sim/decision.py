"""The decision rule: on which bars the policy acts, and when a signal may close a position.

One rule for the training envs (``envs.perp``, ``envs.batched``), the backtester
(:mod:`aster_rl.sim.backtest`) and the live runner, so that training and deployment agree:

- **Decision interval** (``env.decision_every`` = k, default 1): bar t is a decision bar when
  ``(open_ns(t) // timeframe_ns) % k == 0``, keyed on the bar's open time, so a backtest and
  a live session pick the same bars without counting them. On any other bar the side is
  WAIT: no new entry and no signal close; an open position keeps its resting stop and
  target (the accounting core's WAIT holds), which still fire.
- **Target positions** (``env.action_mode = "target"``; default ``"orders"``): the side head
  names the position wanted after the bar: 0 flat, 1 long, 2 short. Flat closes an open
  position (it becomes the closing order, SELL while long, BUY while short) and long/short
  are BUY/SELL (open when flat, hold when already there, close the opposite position: a
  reversal takes two bars, as in order mode). So the default choice is to be flat, where in
  order mode WAIT holds whatever is open. Applied first; the interval and the minimum
  holding time then gate the orders it gives.
- **Minimum holding time** (``env.min_hold_bars`` = m, default 0): a signal that would close
  a position (SELL while long, BUY while short) is refused (WAIT) while the position has
  been held fewer than m bars at the decision bar's close. Bars held = ``(open_ns(t) +
  timeframe_ns - entry_ns) // timeframe_ns``, ``entry_ns`` the open of the bar the entry
  filled in (the accounting core's ``BARS`` counter). Stops, targets and liquidation fire as
  always.

The env masks rather than repeats actions: it still steps one bar per agent step, so the
batched env's accounts keep their own bar phases and episode ends, and env, backtest and live
run the very same bar sequence (tested equal); the cost is that the agent's choices on
non-decision bars have no effect (k - 1 of every k steps carry no action signal).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aster_rl.data.timeframes import timeframe_to_timedelta

WAIT, BUY, SELL = 0, 1, 2


def target_mode(cfg: Any) -> bool:
    """Whether ``cfg`` (an EnvConfig) reads the side head as a target position."""
    return cfg.action_mode == "target"


def target_orders(sides: np.ndarray, position_side: np.ndarray) -> np.ndarray:
    """Target sides (0 flat, 1 long, 2 short) as order sides for positions of sign ``position_side``:
    flat closes an open position, long and short are BUY and SELL. Returns a new array."""
    out = np.array(sides, dtype=np.int64, copy=True)
    pos = np.sign(np.asarray(position_side))
    flat = out == WAIT
    out[flat & (pos > 0)] = SELL
    out[flat & (pos < 0)] = BUY
    return out


def timeframe_ns(timeframe: str) -> int:
    """A bar's length in nanoseconds."""
    return int(timeframe_to_timedelta(timeframe).value)


def is_decision_bar(open_ns: np.ndarray | int, timeframe_ns: int, every: int) -> np.ndarray:
    """True where the bar opening at ``open_ns`` is a decision bar for ``every`` = k."""
    o = np.asarray(open_ns, dtype=np.int64)
    if every <= 1:
        return np.ones(o.shape, dtype=bool)
    return (o // int(timeframe_ns)) % int(every) == 0


def bars_held(open_ns: np.ndarray | int, entry_ns: np.ndarray | int, timeframe_ns: int) -> np.ndarray:
    """Bars a position filled in the bar opening at ``entry_ns`` has been held at the close of the bar opening at ``open_ns``."""
    return (np.asarray(open_ns, dtype=np.int64) + int(timeframe_ns) - np.asarray(entry_ns, dtype=np.int64)) // int(timeframe_ns)


def gate_sides(
    sides: np.ndarray,
    open_ns: np.ndarray,
    timeframe_ns: int,
    every: int,
    min_hold_bars: int,
    position_side: np.ndarray,
    entry_ns: np.ndarray,
    target: bool = False,
) -> np.ndarray:
    """The sides (0 WAIT, 1 BUY, 2 SELL) the rule lets through: ``target`` sides turned into orders
    first (:func:`target_orders`), then WAIT on non-decision bars and for a signal close of a position
    held fewer than ``min_hold_bars`` bars; ``position_side`` is the sign of the open position (0 flat).
    Returns a new array."""
    out = target_orders(sides, position_side) if target else np.array(sides, dtype=np.int64, copy=True)
    if every > 1:
        out[~is_decision_bar(open_ns, timeframe_ns, every)] = WAIT
    if min_hold_bars > 0:
        pos = np.sign(np.asarray(position_side))
        closing = ((pos > 0) & (out == SELL)) | ((pos < 0) & (out == BUY))
        young = bars_held(open_ns, entry_ns, timeframe_ns) < int(min_hold_bars)
        out[closing & young] = WAIT
    return out


def gate_side(side: int, open_ns: int, timeframe_ns: int, every: int, min_hold_bars: int,
              position_side: int, entry_ns: int, target: bool = False) -> int:
    """:func:`gate_sides` for one decision."""
    if not rule_active(every, min_hold_bars, target):
        return int(side)
    return int(gate_sides(np.array([side]), np.array([open_ns]), timeframe_ns, every, min_hold_bars,
                          np.array([position_side]), np.array([entry_ns]), target)[0])


def rule_active(every: int, min_hold_bars: int, target: bool = False) -> bool:
    """Whether the rule can change anything (k > 1, a minimum holding time or target positions)."""
    return every > 1 or min_hold_bars > 0 or target


def gate_actions(actions: np.ndarray, book, timestamps: np.ndarray, timeframe_ns: int, t_bar: np.ndarray) -> np.ndarray:
    """Flat (side, leverage index, profile index) actions of ``book``'s accounts, deciding at bars
    ``t_bar``, under the rule of ``book.cfg`` (a copy; ``actions`` itself unchanged, as when the rule is off)."""
    cfg = book.cfg
    if not rule_active(cfg.decision_every, cfg.min_hold_bars, target_mode(cfg)):
        return actions
    out = np.array(actions, dtype=np.int64, copy=True)
    open_ns = np.asarray(timestamps, dtype=np.int64)[np.asarray(t_bar, dtype=np.int64)]
    out[0::3] = gate_sides(out[0::3], open_ns, timeframe_ns, cfg.decision_every, cfg.min_hold_bars,
                           book.side, book.entry_time, target_mode(cfg))
    return out



def broker_position(broker: Any) -> tuple[int, int]:
    """(sign of the open position, open time in ns of the bar its entry filled in) of a live broker;
    (0, 0) when flat. Reads the paper broker's account book or the position the real broker tracks."""
    side = int(broker.position_side)
    if side == 0:
        return 0, 0
    book = getattr(broker, "book", None)
    if book is not None:
        return side, int(book.entry_time[0])
    trade = getattr(broker, "trade", None)
    return side, int(trade.get("entry_time", 0)) if isinstance(trade, dict) else 0
