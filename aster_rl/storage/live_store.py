"""Persistence of the live runner: predictions and their outcomes, orders, state, risk events,
and the session lease.

The runner writes everything a bar produced in ONE transaction (:func:`record_bar`)
*before* it acts on it (sends orders), so a crash never loses a decision and a restart
finds every order it may have sent by its client order id.

One runner per session: :func:`acquire_lease` gives the session to one runner (another
one is refused, named by pid and host); the holder renews it in every bar's transaction
(a renewal that finds the lease taken over fails that transaction: the runner stops);
a lease not renewed for its timeout (a crashed runner) may be taken over.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import delete, select, update

from aster_rl.errors import AsterError, StorageError
from aster_rl.storage import pattern_store
from aster_rl.storage.database import Database
from aster_rl.storage.models import LiveCommand, LiveLease, LiveOrder, LiveState, Prediction, RiskEvent

logger = logging.getLogger(__name__)

PREDICTION_FIELDS = {c.name for c in Prediction.__table__.columns} - {"id"}
ORDER_FIELDS = {c.name for c in LiveOrder.__table__.columns}
CLOSED_STATUSES = ("win", "loss")
COMMANDS = ("pause", "resume", "flatten", "stop")  # what a live session can be asked to do
COMMAND_FIELDS = [c.name for c in LiveCommand.__table__.columns]


def _now_ms() -> int:
    return int(time.time() * 1000)


class LeaseHeld(AsterError):
    """Another runner holds the session's lease."""


class LeaseLost(AsterError):
    """This runner's lease was taken over: another runner now trades the session."""


@dataclass(frozen=True)
class Lease:
    session_id: str
    token: str
    pid: int
    host: str
    timeout_s: float


def _holder(row: LiveLease, now_ms: int) -> str:
    age_s = max(0.0, (now_ms - int(row.renewed_at)) / 1000)
    return (f"pid {row.pid} on host {row.host}, lease renewed {age_s:.0f} s ago "
            f"(it expires {row.timeout_s:g} s after its last renewal)")


def acquire_lease(
    db: Database, session_id: str, *, timeout_s: float, now_ms: int | None = None, pid: int | None = None,
    host: str | None = None,
) -> Lease:
    """Take the session for this runner; :class:`LeaseHeld` names the holder of a live lease.

    An expired lease (not renewed for the holder's timeout) is taken over, by a compare-and-swap
    on its renewal time, so of two runners taking it over at once only one succeeds."""
    db.ensure_checked()
    now = _now_ms() if now_ms is None else int(now_ms)
    lease = Lease(session_id, uuid.uuid4().hex, os.getpid() if pid is None else int(pid),
                  socket.gethostname() if host is None else host, float(timeout_s))
    values = {"token": lease.token, "pid": lease.pid, "host": lease.host, "acquired_at": now, "renewed_at": now,
              "timeout_s": lease.timeout_s}
    for attempt in (1, 2):
        inserting = False
        try:
            with db.session() as s:
                row = s.get(LiveLease, session_id)
                if row is None:
                    inserting = True
                    s.add(LiveLease(session_id=session_id, **values))
                    s.flush()
                    return lease
                if (now - int(row.renewed_at)) / 1000 <= float(row.timeout_s):
                    raise LeaseHeld(f"session {session_id!r} is run by another runner: {_holder(row, now)}; "
                                    f"stop it (`aster-rl live stop`) or use another --session")
                taken = s.connection().execute(  # a Core UPDATE: its CursorResult counts the rows taken
                    update(LiveLease)
                    .where(LiveLease.session_id == session_id, LiveLease.token == row.token,
                           LiveLease.renewed_at == row.renewed_at)
                    .values(**values)
                ).rowcount
                if taken != 1:
                    raise LeaseHeld(f"session {session_id!r}: another runner took over its expired lease just now")
                logger.warning("session %s: taking over the expired lease of %s", session_id, _holder(row, now))
                return lease
        except StorageError:
            if not (inserting and attempt == 1):  # a runner inserted it first: read who (second pass)
                raise
    raise LeaseHeld(f"session {session_id!r}: another runner is taking it at this moment; try again")


def _renew(s: Any, lease: Lease, now_ms: int) -> None:
    renewed = s.execute(
        update(LiveLease)
        .where(LiveLease.session_id == lease.session_id, LiveLease.token == lease.token)
        .values(renewed_at=int(now_ms))
        .execution_options(synchronize_session=False)
    ).rowcount
    if renewed != 1:
        row = s.get(LiveLease, lease.session_id)
        holder = _holder(row, now_ms) if row is not None else "nobody (the lease was released)"
        raise LeaseLost(f"session {lease.session_id!r}: this runner's lease was taken over; it is now held by {holder}")


def renew_lease(db: Database, lease: Lease, now_ms: int | None = None) -> None:
    """Renew ``lease`` (:class:`LeaseLost` when another runner took it over)."""
    db.ensure_checked()
    with db.session() as s:
        _renew(s, lease, _now_ms() if now_ms is None else now_ms)


def release_lease(db: Database, lease: Lease) -> None:
    """Give the session up (only if this runner still holds it)."""
    db.ensure_checked()
    with db.session() as s:
        s.execute(delete(LiveLease).where(LiveLease.session_id == lease.session_id, LiveLease.token == lease.token))


def lease_of(db: Database, session_id: str) -> dict[str, Any] | None:
    """The session's lease row as a dict, or None."""
    db.ensure_checked()
    with db.session() as s:
        row = s.get(LiveLease, session_id)
        return None if row is None else {c.name: getattr(row, c.name) for c in LiveLease.__table__.columns}


def _check_fields(row: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(row) - allowed)
    if unknown:
        raise ValueError(f"{what}: unknown field(s) {unknown}")


def prediction_id_at(db: Database, session_id: str, ts_ms: int) -> int | None:
    """The id of the session's prediction for the bar closing at ``ts_ms`` (None if there is none)."""
    db.ensure_checked()
    with db.session() as s:
        return s.scalar(select(Prediction.id).where(Prediction.session_id == session_id, Prediction.ts == int(ts_ms)))


def record_bar(
    db: Database,
    session_id: str,
    *,
    state: dict[str, Any],
    prediction: dict[str, Any] | None = None,
    outcomes: Sequence[dict[str, Any]] = (),
    orders: Sequence[dict[str, Any]] = (),
    risk_events: Sequence[dict[str, Any]] = (),
    lease: Lease | None = None,
    now_ms: int | None = None,
) -> int | None:
    """Store one bar's work atomically; returns the new prediction's id.

    With ``lease``, the session's lease is renewed in the same transaction; if another runner
    took it over, nothing is stored and :class:`LeaseLost` is raised.

    ``outcomes`` are ``{"prediction_id": id, ...fields}`` updates of earlier predictions; an
    outcome may carry ``risk_note`` (text added once to the prediction's ``risk``, e.g. the
    exchange's message for a rejected entry) and ``pattern_update`` (``net_return``, ``regime``, ``phase``, ``cfg``): when it
    closes a prediction that names a library pattern, that pattern's statistics and status
    are updated here, once (see :func:`_update_pattern`);
    ``orders`` get the new prediction's id unless they name one. A prediction that already
    exists for (session, ts) is not stored twice: its id is returned.
    """
    db.ensure_checked()
    now = _now_ms() if now_ms is None else int(now_ms)
    with db.session() as s:
        if lease is not None:
            _renew(s, lease, now)
        pred_id = None
        if prediction is not None:
            _check_fields(prediction, PREDICTION_FIELDS, "prediction")
            pred_id = s.scalar(
                select(Prediction.id).where(Prediction.session_id == session_id, Prediction.ts == int(prediction["ts"]))
            )
            if pred_id is None:
                new = Prediction(**{**prediction, "session_id": session_id})
                s.add(new)
                s.flush()
                pred_id = int(new.id)
        for out in outcomes:
            fields = dict(out)
            pid = fields.pop("prediction_id", None)
            pattern_update = fields.pop("pattern_update", None)
            risk_note = fields.pop("risk_note", None)
            if pid is None:
                logger.warning("session %s: a closed trade has no prediction to attach to: %s", session_id, fields)
                continue
            _check_fields(fields, PREDICTION_FIELDS, "outcome")
            row = s.get(Prediction, int(pid))
            if row is None:
                logger.warning("session %s: prediction %s of a closed trade is missing", session_id, pid)
                continue
            was_closed = row.status in CLOSED_STATUSES
            for key, value in fields.items():
                setattr(row, key, value)
            if risk_note and risk_note not in (row.risk or ""):
                row.risk = f"{row.risk}; {risk_note}" if row.risk else risk_note
            if pattern_update is not None and row.pattern and not was_closed and row.status in CLOSED_STATUSES:
                _update_pattern(s, session_id, row, row.pattern, pattern_update)
        for order in orders:
            _check_fields(order, ORDER_FIELDS, "order")
            if s.get(LiveOrder, order["client_order_id"]) is not None:
                continue
            values = {"prediction_id": pred_id, "status": "new", "updated_at": now, "session_id": session_id, **order}
            s.add(LiveOrder(**values))
        for ev in risk_events:
            s.add(RiskEvent(session_id=session_id, ts=int(ev["ts"]), rule=ev["rule"], action=ev["action"], reason=ev["reason"]))
        live = s.get(LiveState, session_id)
        if live is None:
            s.add(LiveState(session_id=session_id, state=state, updated_at=now))
        else:
            live.state = state
            live.updated_at = now
    return pred_id


def _update_pattern(s: Any, session_id: str, row: Prediction, pattern: str, update: dict[str, Any]) -> None:
    """The closed trade of ``row`` into the statistics of the pattern it matched (same transaction).

    Called only when the prediction turns from not closed into win / loss, so each trade
    counts once however often its outcome is written (restarts, reconciliation)."""
    entry = pattern_store.apply_outcome(
        s, update["cfg"], pattern, float(update["net_return"]), update.get("regime"), update.get("phase"),
        ts_ms=int(row.closed_at) if row.closed_at is not None else None,
    )
    if entry is None:
        logger.warning("session %s: pattern %r of prediction %s is no longer in the library; its outcome is not counted",
                       session_id, pattern, row.id)


def load_state(db: Database, session_id: str) -> dict[str, Any] | None:
    db.ensure_checked()
    with db.session() as s:
        row = s.get(LiveState, session_id)
        return None if row is None else dict(row.state)


def pending_prediction_ids(db: Database, session_id: str) -> list[int]:
    """Ids of the session's entries still ``pending`` (decided, neither filled nor resolved)."""
    db.ensure_checked()
    with db.session() as s:
        return [int(i) for i in s.scalars(
            select(Prediction.id).where(Prediction.session_id == session_id, Prediction.status == "pending").order_by(Prediction.id)
        )]


def update_order(db: Database, client_order_id: str, **fields: Any) -> None:
    """Record what the exchange said about an order (status, exchange id, fill)."""
    _check_fields(fields, ORDER_FIELDS, "order update")
    db.ensure_checked()
    with db.session() as s:
        row = s.get(LiveOrder, client_order_id)
        if row is None:
            raise KeyError(f"order {client_order_id} was never recorded")
        for key, value in fields.items():
            setattr(row, key, value)
        row.updated_at = _now_ms()


def orders(db: Database, session_id: str, statuses: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    db.ensure_checked()
    with db.session() as s:
        stmt = select(LiveOrder).where(LiveOrder.session_id == session_id)
        if statuses:
            stmt = stmt.where(LiveOrder.status.in_(statuses))
        return [{c: getattr(o, c) for c in ORDER_FIELDS} for o in s.scalars(stmt.order_by(LiveOrder.ts, LiveOrder.client_order_id))]


def risk_events(db: Database, session_id: str | None = None) -> pd.DataFrame:
    db.ensure_checked()
    with db.session() as s:
        stmt = select(RiskEvent).order_by(RiskEvent.id)
        if session_id is not None:
            stmt = stmt.where(RiskEvent.session_id == session_id)
        rows = [(e.ts, e.session_id, e.rule, e.action, e.reason) for e in s.scalars(stmt)]
    return pd.DataFrame(rows, columns=["ts", "session_id", "rule", "action", "reason"])


def predictions(
    db: Database, *, session_id: str | None = None, run_id: str | None = None, limit: int | None = None
) -> pd.DataFrame:
    """Predictions (newest last), with the running win rate and cumulative PnL of closed trades."""
    db.ensure_checked()
    cols = [
        "id", "ts", "session_id", "mode", "run_id", "model_version", "side", "leverage", "profile", "entry_price",
        "stop_price", "target_price", "confidence", "value_estimate", "status", "pnl_usd", "exit_reason", "fees_usd",
        "funding_usd", "closed_at", "exit_price", "risk", "reasoning",
    ]
    with db.session() as s:
        stmt = select(*[getattr(Prediction, c) for c in cols])
        if session_id is not None:
            stmt = stmt.where(Prediction.session_id == session_id)
        if run_id is not None:
            stmt = stmt.where(Prediction.run_id == run_id)
        stmt = stmt.order_by(Prediction.ts.desc(), Prediction.id.desc())
        if limit is not None:
            stmt = stmt.limit(int(limit))
        rows = s.execute(stmt).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=cols).iloc[::-1].reset_index(drop=True)
    closed = frame["status"].isin(CLOSED_STATUSES)
    wins = (frame["status"] == "win").cumsum()
    n_closed = closed.cumsum()
    frame["running_win_rate"] = (wins / n_closed.where(n_closed > 0)).astype(float)
    frame["running_pnl_usd"] = frame["pnl_usd"].where(closed, 0.0).fillna(0.0).cumsum()
    return frame


def add_orders(db: Database, session_id: str, orders: list[dict[str, Any]]) -> None:
    """Store orders a broker makes up itself (a re-sized stop, a close) before it sends them;
    an order already stored is left as it is."""
    db.ensure_checked()
    now = _now_ms()
    with db.session() as s:
        for order in orders:
            _check_fields(order, ORDER_FIELDS, "order")
            if s.get(LiveOrder, order["client_order_id"]) is None:
                s.add(LiveOrder(**{"status": "new", "updated_at": now, "session_id": session_id, **order}))


def add_risk_events(db: Database, session_id: str, events: list[dict[str, Any]]) -> None:
    """Store risk events a broker raised (``ts``, ``rule``, ``action``, ``reason``)."""
    db.ensure_checked()
    with db.session() as s:
        for ev in events:
            s.add(RiskEvent(session_id=session_id, ts=int(ev["ts"]), rule=ev["rule"], action=ev["action"], reason=ev["reason"]))


# ------------------------------------------------------------ sessions and commands

def sessions(db: Database) -> list[dict[str, Any]]:
    """Every session with stored state: ``session_id``, ``updated_at`` (epoch ms), newest first."""
    db.ensure_checked()
    with db.session() as s:
        rows = s.execute(select(LiveState.session_id, LiveState.updated_at).order_by(LiveState.updated_at.desc())).all()
    return [{"session_id": r[0], "updated_at": int(r[1])} for r in rows]


def add_command(db: Database, session_id: str, command: str, *, source: str = "dashboard", now_ms: int | None = None) -> int:
    """Store a control request for ``session_id`` (one of :data:`COMMANDS`); returns its id."""
    if command not in COMMANDS:
        raise ValueError(f"command {command!r}: use one of {', '.join(COMMANDS)}")
    db.ensure_checked()
    with db.session() as s:
        row = LiveCommand(session_id=session_id, command=command, source=source, status="new",
                          requested_at=_now_ms() if now_ms is None else int(now_ms))
        s.add(row)
        s.flush()
        return int(row.id)


def open_commands(db: Database, session_id: str) -> list[dict[str, Any]]:
    """The session's commands not handled yet, oldest first."""
    db.ensure_checked()
    with db.session() as s:
        stmt = select(LiveCommand).where(LiveCommand.session_id == session_id, LiveCommand.status == "new").order_by(LiveCommand.id)
        return [{c: getattr(r, c) for c in COMMAND_FIELDS} for r in s.scalars(stmt)]


def finish_command(db: Database, command_id: int, status: str, note: str, *, now_ms: int | None = None) -> None:
    """Record what the runner did with a command (``done`` / ``refused`` / ``failed``) and why."""
    db.ensure_checked()
    with db.session() as s:
        row = s.get(LiveCommand, int(command_id))
        if row is None:
            raise KeyError(f"command {command_id} was never recorded")
        row.status, row.note = status, note
        row.handled_at = _now_ms() if now_ms is None else int(now_ms)


def commands(db: Database, session_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest commands (of one session), newest first."""
    db.ensure_checked()
    with db.session() as s:
        stmt = select(LiveCommand).order_by(LiveCommand.id.desc()).limit(int(limit))
        if session_id is not None:
            stmt = stmt.where(LiveCommand.session_id == session_id)
        return [{c: getattr(r, c) for c in COMMAND_FIELDS} for r in s.scalars(stmt)]
