"""The dashboard's read-only queries: what a live session looks like, as JSON-able dicts.

Everything is read through a :class:`~aster_rl.storage.Database` opened ``read_only`` (the
store functions of :mod:`aster_rl.storage.live_store` and the candle repository); the one
write the dashboard makes, a command row, goes through a separate writer handle
(:meth:`DashboardStore.add_command`), so no other row can be written from here.

Figures shown are the ledger's own: the win rate and P&L of closed trades (after fees,
funding and slippage, as the runner recorded them), the realized equity (the starting
equity plus closed trades), buy-and-hold over the same span from the stored closes, and the
share of decisions whose reasoning says they lay outside the run's training support. The parity
report (the backtester's decisions on the session's bars) comes from a function the command
gives (:mod:`agents.parity`): this room loads no run itself.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aster_rl.config import DataConfig
from aster_rl.data.timeframes import timeframe_to_timedelta
from aster_rl.storage import Database, live_store, load_candles

RECENT = 10  # decisions in the live view
CHART_BARS = 300  # candles in the live chart
OUTSIDE_SUPPORT = "outside the training support"
CLOSED = ("win", "loss")


def clean(value: Any) -> Any:
    """``value`` with NaN / inf as None and numpy scalars as Python ones (JSON-able)."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as JSON-able dicts."""
    return [clean(r) for r in frame.to_dict(orient="records")]


@dataclass(frozen=True)
class Market:
    """Which candles the sessions trade: replay sessions read ``data.source``, live ones the exchange's."""

    source: str
    exchange_id: str
    symbol: str
    timeframe: str

    @classmethod
    def of(cls, data: DataConfig) -> Market:
        return cls(data.source, data.exchange_id, data.symbol, data.timeframe)

    def source_for(self, mode: str | None) -> str:
        return self.source if mode == "replay" else self.exchange_id


class DashboardStore:
    """Read-only views of the live tables; commands through ``writer`` only."""

    def __init__(
        self,
        reader: Database,
        market: Market,
        *,
        writer: Database | None = None,
        initial_equity_usd: float = 10_000.0,
        gate_of: Callable[[str], str | None] | None = None,
        runs: Callable[[], list[dict[str, Any]]] | None = None,
        kill_file: Any = None,
        parity: Callable[[str], dict[str, Any]] | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.market = market
        self.initial_equity_usd = float(initial_equity_usd)
        self.gate_of = gate_of
        self.list_runs = runs
        self.kill_file = kill_file
        self.parity_of = parity  # session -> the backtester's replay of its bars (agents.parity, given by the command)
        self._parity: dict[str, tuple[Any, dict[str, Any]]] = {}  # session -> (its last bar, the report)
        self._parity_lock = threading.Lock()
        self.bar_ms = int(timeframe_to_timedelta(market.timeframe).total_seconds() * 1000)

    # ------------------------------------------------------------ sessions
    def sessions(self) -> list[dict[str, Any]]:
        return live_store.sessions(self.reader)

    def session_or_newest(self, session_id: str | None) -> str | None:
        """``session_id``, or the session written most recently (None when there is none)."""
        if session_id:
            return session_id
        rows = self.sessions()
        return str(rows[0]["session_id"]) if rows else None

    def mark(self, session_id: str | None) -> int:
        """When the session's state was last written (epoch ms; 0 when never): the stream's event id."""
        if not session_id:
            return 0
        return next((int(r["updated_at"]) for r in self.sessions() if r["session_id"] == session_id), 0)

    # ------------------------------------------------------------ the live view
    def predictions(self, session_id: str | None) -> pd.DataFrame:
        return live_store.predictions(self.reader, session_id=session_id)

    def snapshot(self, session_id: str | None) -> dict[str, Any]:
        """Everything the live view shows for ``session_id`` (the newest session when None)."""
        session = self.session_or_newest(session_id)
        now_ms = int(time.time() * 1000)
        if session is None:
            return {"session_id": None, "server_ms": now_ms, "sessions": []}
        state = live_store.load_state(self.reader, session) or {}
        preds = self.predictions(session)
        mode = state.get("mode") or (str(preds["mode"].iloc[-1]) if len(preds) and preds["mode"].iloc[-1] else None)
        run = state.get("run_id") or (str(preds["run_id"].iloc[-1]) if len(preds) else None)
        last = records(preds.tail(1))
        decision = last[0] if last else None
        lease = live_store.lease_of(self.reader, session)
        candles = self.candles(mode, state.get("last_bar_ts"))
        last_close = float(candles["close"].iloc[-1]) if len(candles) else None
        events = live_store.risk_events(self.reader, session).tail(20)
        return clean({
            "session_id": session,
            "server_ms": now_ms,
            "sessions": self.sessions(),
            "mode": mode,
            "run_id": run,
            "gate": self.gate_of(run) if self.gate_of is not None and run else None,
            "updated_at": self.mark(session),
            "last_bar_ts": state.get("last_bar_ts"),  # open time of the last processed bar, epoch ms
            "bar_ms": self.bar_ms,
            "paused": bool(state.get("paused", False)),
            "equity": state.get("equity"),
            "day_start_equity": state.get("day_start_equity"),
            "lease": lease,
            "kill_file": str(self.kill_file) if self.kill_file is not None and _exists(self.kill_file) else None,
            "decision": decision,
            "readings": readings(state, decision),
            "effects": effects(state),
            "position": self.position(preds, last_close),
            "recent": records(preds.tail(RECENT).iloc[::-1]),
            "totals": totals(preds),
            "support": support(state),
            "risk_events": records(events.iloc[::-1]),
            "commands": live_store.commands(self.reader, session, limit=10),
            "candles": candle_rows(candles),
            "markers": markers(preds),
            "decision_series": decision_series(preds, candles, self.bar_ms),
        })

    def candles(self, mode: str | None, last_bar_ts: Any, bars: int = CHART_BARS) -> pd.DataFrame:
        """The newest ``bars`` candles up to the session's last processed bar (never past it)."""
        if last_bar_ts is None:
            return pd.DataFrame(columns=["open", "high", "low", "close", "volume"])
        end = pd.Timestamp(int(last_bar_ts), unit="ms", tz="UTC")
        start = end - pd.Timedelta(milliseconds=self.bar_ms * (bars - 1))
        m = self.market
        return load_candles(self.reader, m.source_for(mode), m.symbol, m.timeframe, start, end)

    @staticmethod
    def position(preds: pd.DataFrame, last_close: float | None) -> dict[str, Any] | None:
        """The open trade (its prediction row) with its move since entry at the last close."""
        open_rows = preds[preds["status"] == "open"]
        if open_rows.empty:
            return None
        row = records(open_rows.tail(1))[0]
        sign = 1.0 if row["side"] == "BUY" else -1.0
        entry, stop = row.get("entry_price"), row.get("stop_price")
        if last_close and entry:
            move = sign * (last_close / entry - 1.0)
            row["last_close"] = last_close
            row["move_pct"] = 100 * move
            row["margin_pct"] = 100 * move * float(row.get("leverage") or 1)  # on the isolated margin, before costs
            # an isolated position loses its whole margin near a 1 / leverage adverse move (maintenance margin aside)
            row["liquidation_distance_pct"] = 100 * (1.0 / float(row.get("leverage") or 1) + move)
        if last_close and stop:
            row["stop_distance_pct"] = 100 * sign * (last_close / stop - 1.0)
        return row

    # ------------------------------------------------------------ other views
    def ledger(self, session_id: str | None, *, side: str | None = None, status: str | None = None,
               since_ms: int | None = None, limit: int = 500) -> pd.DataFrame:
        """The prediction ledger, newest first, filtered."""
        frame = self.predictions(session_id)
        if side:
            frame = frame[frame["side"] == side.upper()]
        if status:
            frame = frame[frame["status"] == status]
        if since_ms is not None:
            frame = frame[frame["ts"] >= since_ms]
        return frame.iloc[::-1].head(int(limit))

    def risk(self, session_id: str | None) -> list[dict[str, Any]]:
        return records(live_store.risk_events(self.reader, session_id).iloc[::-1])

    def performance(self, session_id: str | None) -> dict[str, Any]:
        """Realized equity, buy-and-hold over the same span, drawdown, daily P&L and calibration."""
        session = self.session_or_newest(session_id)
        preds = self.predictions(session)
        if session is None or preds.empty:
            return {"session_id": session, "equity": [], "buy_and_hold": [], "drawdown": [], "daily": [], "calibration": None}
        e0 = self.initial_equity_usd
        closed = preds[preds["status"].isin(CLOSED)].sort_values("closed_at")
        times = [int(preds["ts"].iloc[0]), *closed["closed_at"].astype("int64").tolist()]
        equity = e0 + np.concatenate([[0.0], np.cumsum(closed["pnl_usd"].to_numpy(dtype=float))])
        peak = np.maximum.accumulate(equity)
        state = live_store.load_state(self.reader, session) or {}
        mode = state.get("mode") or preds["mode"].iloc[-1]
        first = pd.Timestamp(int(preds["ts"].iloc[0]), unit="ms", tz="UTC")
        last = pd.Timestamp(int(state.get("last_bar_ts") or preds["ts"].iloc[-1]), unit="ms", tz="UTC")
        m = self.market
        bh = load_candles(self.reader, m.source_for(mode), m.symbol, m.timeframe, first, last)
        step = max(1, len(bh) // 1000)
        bh_points = [{"t": int(t.value // 1_000_000), "v": e0 * float(c) / float(bh["close"].iloc[0])}
                     for t, c in bh["close"].iloc[::step].items()] if len(bh) else []
        days = pd.to_datetime(closed["closed_at"], unit="ms", utc=True).dt.strftime("%Y-%m-%d")
        daily = closed.groupby(days.to_numpy())["pnl_usd"].sum()
        return clean({
            "session_id": session,
            "initial_equity_usd": e0,
            "equity": [{"t": t, "v": v} for t, v in zip(times, equity.tolist())],
            "drawdown": [{"t": t, "v": 100 * (v / p - 1.0)} for t, v, p in zip(times, equity.tolist(), peak.tolist())],
            "buy_and_hold": bh_points,
            "daily": [{"day": d, "pnl_usd": float(v)} for d, v in daily.items()],
            "calibration": calibration(closed),
        })

    def parity(self, session_id: str | None) -> dict[str, Any] | None:
        """The session's decisions against the backtester's on the same bars (None without a parity
        function); computed on request, kept until the session processes another bar."""
        session = self.session_or_newest(session_id)
        if self.parity_of is None or session is None:
            return None
        last = (live_store.load_state(self.reader, session) or {}).get("last_bar_ts")
        with self._parity_lock:  # one computation at a time: it loads a run and replays the bars
            cached = self._parity.get(session)
            if cached is not None and cached[0] == last:
                return cached[1]
            report = clean(self.parity_of(session))
            self._parity[session] = (last, report)
            return report

    def runs(self) -> list[dict[str, Any]]:
        return clean(self.list_runs()) if self.list_runs is not None else []

    # ------------------------------------------------------------ the one write
    def add_command(self, session_id: str, command: str) -> dict[str, Any]:
        """Store a command row through the writer handle; returns the row."""
        if self.writer is None:
            raise PermissionError("this dashboard has no command writer")
        cid = live_store.add_command(self.writer, session_id, command)
        row = next(c for c in live_store.commands(self.writer, session_id, limit=20) if c["id"] == cid)
        return clean(row)


def _exists(path: Any) -> bool:
    return Path(path).exists()


def totals(preds: pd.DataFrame) -> dict[str, Any]:
    """Closed trades, wins, win rate, P&L, fees and funding over the session; decisions outside the support."""
    closed = preds[preds["status"].isin(CLOSED)]
    n, wins = len(closed), int((closed["status"] == "win").sum())
    decisions = len(preds)
    outside = int(preds["reasoning"].fillna("").str.contains(OUTSIDE_SUPPORT, regex=False).sum()) if decisions else 0
    return {
        "decisions": decisions,
        "closed_trades": n,
        "wins": wins,
        "win_rate": wins / n if n else None,
        "pnl_usd": float(closed["pnl_usd"].sum()) if n else 0.0,
        "fees_usd": float(closed["fees_usd"].fillna(0).sum()) if n else 0.0,
        "funding_usd": float(closed["funding_usd"].fillna(0).sum()) if n else 0.0,
        "outside_support_share": outside / decisions if decisions else None,
    }


def readings(state: dict[str, Any], decision: dict[str, Any] | None) -> list[dict[str, str]]:
    """The last decision's reading per tentacle (the runner's state), else its reasoning's parts."""
    stored = state.get("readings")
    if isinstance(stored, dict) and stored:
        return [{"tentacle": str(k), "text": str(v)} for k, v in stored.items()]
    text = (decision or {}).get("reasoning") or ""
    return [{"tentacle": "", "text": t} for t in text.split("; ") if t]


def effects(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Why the last decision: how far each tentacle moved P(side) (the runner's state), largest first."""
    stored = state.get("effects")
    if not isinstance(stored, dict):
        return []
    rows = [{"tentacle": str(k), "effect": float(v)} for k, v in stored.items() if isinstance(v, (int, float))]
    return sorted(rows, key=lambda r: -abs(r["effect"]))


def support(state: dict[str, Any]) -> dict[str, Any] | None:
    """The runner's own out-of-support count (bars it checked since it started), with the share."""
    counts = state.get("support")
    if not isinstance(counts, dict) or not counts.get("bars"):
        return None
    return {**counts, "share": counts["outside_bars"] / counts["bars"]}


def candle_rows(candles: pd.DataFrame) -> list[dict[str, Any]]:
    """Candles for the chart: time in seconds (the chart's unit), OHLC."""
    if candles.empty:
        return []
    t = (candles.index.as_unit("ns").asi8 // 1_000_000_000).tolist()
    return [{"time": int(s), "open": float(o), "high": float(h), "low": float(lo), "close": float(c)}
            for s, o, h, lo, c in zip(t, candles["open"], candles["high"], candles["low"], candles["close"])]


def markers(preds: pd.DataFrame, limit: int = 200) -> list[dict[str, Any]]:
    """Fill markers: each entry at its fill time and price, each exit at its close, newest ``limit``."""
    out: list[dict[str, Any]] = []
    filled = preds[preds["status"].isin((*CLOSED, "open")) & preds["entry_price"].notna()].tail(limit)
    for r in filled.itertuples():
        out.append({"t": int(r.ts), "kind": "entry", "side": r.side, "price": float(r.entry_price), "id": int(r.id)})
        if r.status in CLOSED and r.closed_at == r.closed_at and r.closed_at is not None:
            out.append({"t": int(r.closed_at), "kind": "exit", "side": r.side, "price": clean(r.exit_price), "id": int(r.id),
                        "pnl_usd": clean(r.pnl_usd)})
    return out


def decision_series(preds: pd.DataFrame, candles: pd.DataFrame, bar_ms: int) -> list[dict[str, Any]]:
    """Per decision in the chart's span: the decided bar's open time (seconds), side, P(side), value."""
    if candles.empty or preds.empty:
        return []
    first_ms = int(candles.index[0].value // 1_000_000)
    rows = preds[preds["ts"] - bar_ms >= first_ms]
    return [{"time": int((ts - bar_ms) // 1000), "side": side, "p": clean(p), "value": clean(v)}
            for ts, side, p, v in zip(rows["ts"], rows["side"], rows["confidence"], rows["value_estimate"])]


def calibration(closed: pd.DataFrame, bins: int = 5) -> dict[str, Any] | None:
    """Reliability of P(side) against the closed trades' wins: per bin the mean P(side), the win
    share and the count, and the expected calibration error (count-weighted |win share - P|)."""
    rows = closed[closed["confidence"].notna()]
    if rows.empty:
        return None
    p = rows["confidence"].to_numpy(dtype=float)
    won = (rows["status"] == "win").to_numpy(dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if not mask.any():
            continue
        mean_p, share = float(p[mask].mean()), float(won[mask].mean())
        ece += mask.sum() / len(p) * abs(share - mean_p)
        out.append({"low": float(edges[b]), "high": float(edges[b + 1]), "mean_p": mean_p, "win_share": share, "n": int(mask.sum())})
    return {"bins": out, "ece": float(ece), "trades": len(p), "brier": float(np.mean((p - won) ** 2))}
