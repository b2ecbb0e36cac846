"""The dashboard's API over a database a paper replay wrote: rows, auth, Host check, CSP,
no secrets, the event stream's ids and resume, read-only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient

from aster_rl.config import DataConfig
from aster_rl.dashboard.app import create_app
from aster_rl.dashboard.auth import bearer_ok, host_name, write_token
from aster_rl.dashboard.queries import DashboardStore, Market
from aster_rl.errors import StorageError
from aster_rl.live.sources import ReplaySource
from aster_rl.storage import Database, live_store, store_market
from factories import make_market
from live_helpers import DecidingPolicy, make_db, paper_runner

SESSION = "test-session"
TOKEN = "t0ken-for-tests-only"
LOCAL = "http://127.0.0.1:5001"
SECRET = "0xPLANTEDsecretKEY0123456789abcdef"
WALLET = "0xPLANTEDwallet0000000000000000000000000000"


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """A database with a stored market and a finished paper replay of 90 bars."""
    tmp = tmp_path_factory.mktemp("dash")
    market = make_market(900, seed=4)
    db = make_db(tmp)
    store_market(db, market, "synthetic")
    runner = paper_runner(DecidingPolicy(n_lev=4), ReplaySource(market, 700, 790), db, tmp, features="batch", session=SESSION)
    runner.run()
    return tmp, db.url


def _store(url: str, writer: bool = True) -> DashboardStore:
    reader = Database(url, read_only=True)
    return DashboardStore(reader, Market.of(DataConfig(source="synthetic")), writer=Database(url) if writer else None,
                          gate_of=lambda run: f"gate of {run}", runs=lambda: [{"name": "r1", "gate": "no edge found"}])


@pytest.fixture
def client(replayed, monkeypatch):
    monkeypatch.setenv("ASTER_PRIVATE_KEY", SECRET)
    monkeypatch.setenv("ASTER_WALLET_ADDRESS", WALLET)
    return TestClient(create_app(_store(replayed[1]), token=TOKEN, poll_s=0.05), base_url=LOCAL)


def test_routes_return_the_stored_rows(client, replayed):
    db = Database(replayed[1])
    preds = live_store.predictions(db, session_id=SESSION)
    assert client.get("/api/sessions").json()[0]["session_id"] == SESSION
    snap = client.get("/api/snapshot").json()
    assert snap["session_id"] == SESSION and snap["mode"] == "replay" and snap["run_id"] == "fixed-policy"
    assert snap["decision"]["id"] == int(preds["id"].iloc[-1]) and snap["decision"]["side"] == preds["side"].iloc[-1]
    assert [r["id"] for r in snap["recent"]] == preds["id"].iloc[::-1].head(10).tolist()
    closed = preds[preds["status"].isin(["win", "loss"])]
    assert snap["totals"]["closed_trades"] == len(closed) > 0
    assert snap["totals"]["win_rate"] == pytest.approx((closed["status"] == "win").mean())
    assert snap["totals"]["pnl_usd"] == pytest.approx(closed["pnl_usd"].sum())
    assert snap["gate"] == "gate of fixed-policy" and snap["support"] is None  # this policy has no training support
    assert snap["readings"] and all(r["tentacle"] and r["text"] for r in snap["readings"])  # named, from the state
    assert snap["effects"] == []  # this policy cannot say how far each tentacle moved P(side)
    state = live_store.load_state(db, SESSION)
    assert snap["last_bar_ts"] == state["last_bar_ts"] and snap["equity"] == pytest.approx(state["equity"])
    assert snap["candles"][-1]["time"] * 1000 == state["last_bar_ts"]  # the chart ends at the last processed bar
    assert len(snap["candles"]) == 300
    series = snap["decision_series"]  # every decision in the chart's span, on the bar it decided on
    assert [d["time"] * 1000 + 300_000 for d in series] == preds["ts"].tolist()
    assert {d["p"] for d in series} == {0.5} and {d["value"] for d in series} == {1.25}
    ledger = client.get("/api/predictions", params={"side": "BUY"}).json()
    assert ledger and all(r["side"] == "BUY" for r in ledger) and len(ledger) == int((preds["side"] == "BUY").sum())
    csv = client.get("/api/predictions.csv", params={"status": "win"})
    assert csv.headers["content-type"].startswith("text/csv") and "attachment" in csv.headers["content-disposition"]
    assert len(csv.text.strip().splitlines()) == 1 + int((preds["status"] == "win").sum())
    perf = client.get("/api/performance").json()
    assert len(perf["equity"]) == len(closed) + 1
    assert perf["equity"][-1]["v"] == pytest.approx(10_000 + closed["pnl_usd"].sum())
    assert perf["buy_and_hold"][0]["v"] == pytest.approx(10_000)
    cal = perf["calibration"]  # the policy says P(side) = 0.5 for every decision: one bin
    assert cal["trades"] == len(closed) and [b["n"] for b in cal["bins"]] == [len(closed)]
    assert cal["ece"] == pytest.approx(abs((closed["status"] == "win").mean() - 0.5))
    assert client.get("/api/risk").status_code == 200
    assert client.get("/api/runs").json() == [{"name": "r1", "gate": "no edge found"}]
    page = client.get("/")
    assert page.status_code == 200 and "<script type=\"module\"" in page.text


def test_commands_need_the_token_and_write_one_row(client, replayed):
    db = Database(replayed[1])
    before = len(live_store.commands(db, SESSION))
    body = {"session_id": SESSION, "command": "pause"}
    assert client.post("/api/commands", json=body).status_code == 401
    assert client.post("/api/commands", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/api/commands", json=body, headers={"Authorization": TOKEN}).status_code == 401
    assert len(live_store.commands(db, SESSION)) == before
    ok = client.post("/api/commands", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json()["command"] == "pause" and ok.json()["status"] == "new"
    rows = live_store.commands(db, SESSION)
    assert len(rows) == before + 1 and rows[0]["id"] == ok.json()["id"] and rows[0]["source"] == "dashboard"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/api/commands", json={"session_id": SESSION, "command": "explode"}, headers=auth).status_code == 422
    assert client.post("/api/commands", json={"session_id": "nope", "command": "stop"}, headers=auth).status_code == 404


def test_host_header_is_checked_unless_remote(replayed):
    app = create_app(_store(replayed[1]), token=TOKEN)
    for host in ("127.0.0.1:5001", "localhost", "[::1]:5001"):
        assert TestClient(app, base_url=f"http://{host}").get("/api/sessions").status_code == 200, host
    for host in ("evil.example:5001", "127.0.0.1.evil.example", "testserver"):
        r = TestClient(app, base_url=f"http://{host}").get("/api/sessions")
        assert r.status_code == 400 and "localhost" in r.json()["detail"], host
    remote = TestClient(create_app(_store(replayed[1]), token=TOKEN, allow_remote=True), base_url="http://dash.example")
    assert remote.get("/api/sessions").status_code == 401  # every API route needs the token
    assert remote.get("/api/stream").status_code == 401
    assert remote.get("/api/sessions", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert remote.get("/").status_code == 200  # the page shell: no data, no token


def test_security_headers_and_no_cors(client):
    for path in ("/", "/api/snapshot", "/static/app.js"):
        r = client.get(path, headers={"Origin": "http://evil.example"})
        assert r.status_code == 200, path
        assert r.headers["content-security-policy"].startswith("default-src 'self'")
        assert "access-control-allow-origin" not in r.headers
    pre = client.options("/api/commands", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers


def test_no_secret_and_no_token_in_any_response(client, replayed):
    bodies = []
    for path in ("/", "/api/sessions", "/api/snapshot", "/api/predictions", "/api/predictions.csv", "/api/performance",
                 "/api/risk", "/api/runs"):
        bodies.append(client.get(path).text)
    static = Path(__file__).parents[3] / "aster_rl" / "dashboard" / "static"
    for f in static.rglob("*"):
        if f.is_file() and f.suffix in (".js", ".html", ".css"):
            bodies.append(client.get("/static/" + f.relative_to(static).as_posix()).text)
    with client.stream("GET", "/api/stream") as r:
        for line in r.iter_lines():
            bodies.append(line)
            if line.startswith("data:"):
                break
    text = "\n".join(bodies)
    for secret in (SECRET, WALLET, TOKEN):
        assert secret not in text


def _events(response, n):
    out, event = [], {}
    for line in response.iter_lines():
        if not line.strip():
            if event:
                out.append(event)
                event = {}
                if len(out) == n:
                    return out
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        event[key] = value.strip()
    return out


def test_stream_ids_and_resume_from_last_event_id(replayed, tmp_path):
    import shutil

    db_path = tmp_path / "copy.db"
    shutil.copy(Path(Database(replayed[1]).engine.url.database), db_path)
    url = f"sqlite:///{db_path}"
    client = TestClient(create_app(_store(url), token=TOKEN, poll_s=0.05), base_url=LOCAL)
    mark = live_store.sessions(Database(url))[0]["updated_at"]
    with client.stream("GET", "/api/stream") as r:
        first = _events(r, 3)
    assert first[0]["event"] == "snapshot" and first[0]["id"] == str(mark)
    assert json.loads(first[0]["data"])["updated_at"] == mark
    assert [e["event"] for e in first[1:]] == ["tick", "tick"] and all(e["id"] == str(mark) for e in first)
    # resume: nothing changed since that id, so no snapshot again
    with client.stream("GET", "/api/stream", headers={"Last-Event-ID": str(mark)}) as r:
        again = _events(r, 2)
    assert [e["event"] for e in again] == ["tick", "tick"]
    # the runner writes a bar: the resumed stream sends the new snapshot with a newer id
    writer = Database(url)
    state = live_store.load_state(writer, SESSION)
    live_store.record_bar(writer, SESSION, state=state, now_ms=mark + 5_000)
    with client.stream("GET", "/api/stream", headers={"Last-Event-ID": str(mark)}) as r:
        newer = _events(r, 1)
    assert newer[0]["event"] == "snapshot" and newer[0]["id"] == str(mark + 5_000)


def test_the_readers_engine_cannot_write(replayed):
    reader = Database(replayed[1], read_only=True)
    with pytest.raises(StorageError, match=r"readonly|read-only|read only"):
        live_store.add_command(reader, SESSION, "stop")
    with pytest.raises(StorageError):
        live_store.record_bar(reader, SESSION, state={"x": 1})
    store = _store(replayed[1], writer=False)
    with pytest.raises(PermissionError):
        store.add_command(SESSION, "stop")
    with pytest.raises(StorageError, match="does not exist"):
        Database(f"sqlite:///{replayed[0] / 'missing.db'}", read_only=True)
    assert not (replayed[0] / "missing.db").exists()


def test_token_file_is_private_and_compared_in_constant_time(tmp_path):
    path = write_token(tmp_path / "data", TOKEN)
    assert path.read_text().strip() == TOKEN
    assert (os.stat(path).st_mode & 0o777) == 0o600
    assert bearer_ok(f"Bearer {TOKEN}", TOKEN) and not bearer_ok(f"Bearer {TOKEN}x", TOKEN) and not bearer_ok(None, TOKEN)
    assert host_name("[::1]:5001") == "[::1]" and host_name("localhost:80") == "localhost"


def test_support_share_comes_from_the_runners_count():
    from aster_rl.dashboard.queries import support

    assert support({"support": {"bars": 8, "outside_bars": 2, "top_columns": {"x": 0.25}}})["share"] == 0.25
    assert support({"support": {"bars": 0, "outside_bars": 0, "top_columns": {}}}) is None
    assert support({}) is None
