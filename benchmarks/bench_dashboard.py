"""Dashboard latency and cost: from a bar's decision being stored to an event-stream client
receiving the snapshot that shows it (goal: median and p95 <= 1 s), and the dashboard
process's CPU share while a paper replay runs.

A paper runner (a deterministic deciding policy, batch features) replays ``bars`` synthetic
5m bars at ``pace`` seconds per bar into a SQLite database; ``aster-rl dashboard`` serves that
database from its own process; one SSE client (this process, a thread) follows
``/api/stream``. Latency = the client's arrival time of the first snapshot whose decision is
that bar's (or a later one) minus the time the runner's transaction for the bar committed.

Usage: ``python benchmarks/bench_dashboard.py [bars] [pace]`` (default 100 bars, 0.5 s).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))
sys.path.append(str(ROOT / "tests" / "aster_rl" / "live"))

import httpx  # noqa: E402
from factories import make_market  # noqa: E402
from live_helpers import DecidingPolicy, make_db, paper_runner  # noqa: E402

from aster_rl.live.sources import ReplaySource  # noqa: E402
from aster_rl.storage import store_market  # noqa: E402

START = 700  # the first replayed bar (after the features' warm-up)
BAR_MS = 300_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _follow(url: str, arrivals: list[tuple[float, int]], stop: threading.Event) -> None:
    """Record (arrival time, decision ts) of every snapshot on the stream."""
    with httpx.Client(timeout=None) as client, client.stream("GET", url) as r:
        event = None
        for line in r.iter_lines():
            if stop.is_set():
                return
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "snapshot":
                snap = json.loads(line.split(":", 1)[1])
                decision = snap.get("decision") or {}
                if decision.get("ts") is not None:
                    arrivals.append((time.time(), int(decision["ts"])))


def main(bars: int = 100, pace: float = 0.5) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench_dashboard_"))
    market = make_market(START + bars + 50, seed=4)
    db = make_db(tmp, "aster_rl.db")  # the dashboard's default file under data.data_dir
    store_market(db, market, "synthetic")
    port = _free_port()
    dash = subprocess.Popen(
        [sys.executable, "-m", "aster_rl.cli", "--set", f"data.data_dir='{tmp}'", "dashboard", "--port", str(port)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert dash.stdout is not None
        print(dash.stdout.readline().strip())
        url = f"http://127.0.0.1:{port}/api/stream"
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/sessions", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        stored: dict[int, float] = {}
        runner = None

        def after_store(_t: int) -> None:
            stored[int(runner.summary.decision_times[-1].value // 1_000_000) + BAR_MS] = time.time()

        runner = paper_runner(DecidingPolicy(n_lev=4), ReplaySource(market, START, START + bars + 1, pace_s=pace), db, tmp,
                              features="batch", after_store=after_store, session="bench")
        runner.start()  # the session's state exists before the client connects
        arrivals: list[tuple[float, int]] = []
        stop = threading.Event()
        client = threading.Thread(target=_follow, args=(url, arrivals, stop), daemon=True)
        client.start()
        time.sleep(1.0)
        cpu0, wall0 = _cpu_s(dash.pid), time.perf_counter()
        runner.run()
        time.sleep(1.5)
        cpu_s, wall_s = _cpu_s(dash.pid) - cpu0, time.perf_counter() - wall0
        stop.set()
        latencies = []
        for ts, t_stored in sorted(stored.items()):
            seen = [t for t, shown in arrivals if shown >= ts and t >= t_stored]
            if seen:
                latencies.append(min(seen) - t_stored)
        lat = np.array(latencies) * 1000
        print(f"{len(stored)} decisions stored at {pace:g} s per bar; {len(lat)} seen by the SSE client, "
              f"{len(arrivals)} snapshots received")
        print(f"stored -> shown: median {np.median(lat):.0f} ms, p95 {np.percentile(lat, 95):.0f} ms, max {lat.max():.0f} ms "
              f"(goal <= 1000 ms)")
        print(f"dashboard CPU while the runner replays: {cpu_s:.2f} s over {wall_s:.1f} s = {100 * cpu_s / wall_s:.1f}% of one core")
    finally:
        dash.terminate()
        dash.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100, float(sys.argv[2]) if len(sys.argv) > 2 else 0.5)
