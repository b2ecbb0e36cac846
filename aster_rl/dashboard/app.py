"""The dashboard's web app: one origin for the page and its API, live updates by server-sent events.

Routes (JSON unless said): ``/`` the page; ``/static/*`` its ES modules, CSS and the vendored
chart library; ``GET /api/sessions``, ``/api/snapshot``, ``/api/predictions`` (and
``/api/predictions.csv``), ``/api/performance``, ``/api/risk``, ``/api/runs``, ``/api/parity`` (the session's decisions
against the backtester's on the same bars; 404 when this dashboard has no parity function,
422 naming the problem when the run or the bars are missing); ``GET
/api/stream``: server-sent events, ``snapshot`` (the live view, when the session's state
changed) and ``tick`` (the server's clock, every ``poll_s``), each with the id of the state
it reflects (the state's write time, epoch ms); a client that reconnects with
``Last-Event-ID`` gets the snapshot again only if the state changed since. ``POST
/api/commands``: ``{"session_id", "command"}`` with ``Authorization: Bearer <token>``,
stored as a command row that the runner acts on at its next bar.

Safety: bound to 127.0.0.1 by the command unless ``--allow-remote``; without it, a request
whose ``Host`` is not localhost / 127.0.0.1 / [::1] is refused (DNS rebinding); with it, every
``/api`` route needs the token (the page shell and its static files hold no data). Every
response carries ``Content-Security-Policy: default-src 'self'``; there is no CORS.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aster_rl.dashboard.auth import bearer_ok, local_host
from aster_rl.dashboard.queries import DashboardStore, records
from aster_rl.errors import AsterError, StorageError

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
LEDGER_CSV_COLUMNS = [
    "id", "ts", "session_id", "mode", "run_id", "side", "leverage", "profile", "entry_price", "stop_price", "target_price",
    "confidence", "value_estimate", "status", "pnl_usd", "exit_reason", "fees_usd", "funding_usd", "closed_at", "exit_price",
    "running_win_rate", "running_pnl_usd", "risk", "reasoning",
]


class CommandIn(BaseModel):
    session_id: str
    command: Literal["pause", "resume", "flatten", "stop"]


class Guard:
    """ASGI middleware: the Host check, the token on ``/api`` when remote, the security headers."""

    def __init__(self, app: ASGIApp, *, token: str, allow_remote: bool) -> None:
        self.app = app
        self.token = token
        self.allow_remote = allow_remote

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope.get("path", "")
        if not self.allow_remote and not local_host(headers.get("host")):
            await _plain(400, "this dashboard answers only to localhost, 127.0.0.1 or [::1] (start it with --allow-remote "
                              "to serve other names)", scope, receive, send)
            return
        if self.allow_remote and path.startswith("/api") and not bearer_ok(headers.get("authorization"), self.token):
            await _plain(401, "the dashboard token is required (Authorization: Bearer <token>)", scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                         (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]
                if path.startswith("/api"):
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, with_headers)


async def _plain(status: int, text: str, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse({"detail": text}, status_code=status, headers={"content-security-policy": CSP})
    await response(scope, receive, send)


def create_app(store: DashboardStore, *, token: str, allow_remote: bool = False, poll_s: float = 0.25) -> FastAPI:
    """The dashboard over ``store`` (read-only queries; commands through its writer)."""
    app = FastAPI(title="aster_rl dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(Guard, token=token, allow_remote=allow_remote)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(StorageError)
    async def storage_error(_request: Request, e: StorageError) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=503)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    _views(app, store)
    _stream(app, store, poll_s)
    _commands(app, store, token)
    return app


def _views(app: FastAPI, store: DashboardStore) -> None:
    """The read-only JSON (and CSV) views."""

    @app.get("/api/sessions")
    def sessions() -> list[dict[str, Any]]:
        return store.sessions()

    @app.get("/api/snapshot")
    def snapshot(session: str | None = None) -> dict[str, Any]:
        return store.snapshot(session)

    @app.get("/api/predictions")
    def predictions(session: str | None = None, side: str | None = None, status: str | None = None,
                    limit: int = 500) -> list[dict[str, Any]]:
        return records(store.ledger(store.session_or_newest(session), side=side, status=status, limit=min(limit, 100_000)))

    @app.get("/api/predictions.csv")
    def predictions_csv(session: str | None = None, side: str | None = None, status: str | None = None) -> Response:
        frame = store.ledger(store.session_or_newest(session), side=side, status=status, limit=10**9)
        buffer = io.StringIO()
        frame[[c for c in LEDGER_CSV_COLUMNS if c in frame.columns]].to_csv(buffer, index=False)
        return Response(buffer.getvalue(), media_type="text/csv",
                        headers={"content-disposition": 'attachment; filename="predictions.csv"'})

    @app.get("/api/performance")
    def performance(session: str | None = None) -> dict[str, Any]:
        return store.performance(session)

    @app.get("/api/risk")
    def risk(session: str | None = None) -> list[dict[str, Any]]:
        return store.risk(store.session_or_newest(session))

    @app.get("/api/runs")
    def runs() -> list[dict[str, Any]]:
        return store.runs()

    @app.get("/api/parity")
    def parity(session: str | None = None) -> dict[str, Any]:
        if store.parity_of is None:
            raise HTTPException(404, "this dashboard cannot replay sessions (no parity function)")
        try:
            report = store.parity(session)
        except StorageError:
            raise
        except AsterError as e:
            raise HTTPException(422, str(e)) from None
        if report is None:
            raise HTTPException(404, "no live session yet")
        return report


def _commands(app: FastAPI, store: DashboardStore, token: str) -> None:
    """``POST /api/commands``: always with the token, for a session that exists."""

    @app.post("/api/commands")
    def command(body: CommandIn, request: Request) -> dict[str, Any]:
        if not bearer_ok(request.headers.get("authorization"), token):
            raise HTTPException(401, "the dashboard token is required (Authorization: Bearer <token>)")
        if not any(s["session_id"] == body.session_id for s in store.sessions()):
            raise HTTPException(404, f"no live session {body.session_id!r}")
        row = store.add_command(body.session_id, body.command)
        logger.info("command %s for session %s stored (id %s)", body.command, body.session_id, row["id"])
        return row


def _stream(app: FastAPI, store: DashboardStore, poll_s: float) -> None:
    """``GET /api/stream``: a snapshot when the session's state changed, else a tick, every ``poll_s``."""

    @app.get("/api/stream")
    async def stream(request: Request, session: str | None = None) -> EventSourceResponse:
        last_id = request.headers.get("last-event-id")
        sent = int(last_id) if last_id and last_id.isdigit() else None

        async def events() -> AsyncIterator[ServerSentEvent]:
            nonlocal sent
            while True:
                try:
                    current = await run_in_threadpool(store.session_or_newest, session)
                    mark = await run_in_threadpool(store.mark, current)
                    if mark != sent or sent is None:
                        snap = await run_in_threadpool(store.snapshot, current)
                        sent = int(snap.get("updated_at") or 0)
                        yield ServerSentEvent(json.dumps(snap), event="snapshot", id=str(sent))
                    else:
                        yield ServerSentEvent(json.dumps({"server_ms": int(time.time() * 1000)}), event="tick", id=str(sent))
                except StorageError as e:  # the database is busy or gone: say so, keep the stream
                    yield ServerSentEvent(json.dumps({"error": str(e), "server_ms": int(time.time() * 1000)}), event="problem",
                                          id=str(sent or 0))
                await asyncio.sleep(poll_s)

        return EventSourceResponse(events(), ping=15, headers={"cache-control": "no-store"})
