"""Decision latency per bar in replay: new bar -> orders sent (target <= 50 ms).

Runs the live runner with the paper broker over a replayed synthetic range, once with
the batch feature matrix (the replay default) and once with incremental features (the
live path: ``latest_features`` on the market known at each close), and prints the
per-bar latency distribution. Usage: ``python benchmarks/bench_live.py [bars]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests" / "aster_rl" / "live"))

from factories import make_market  # noqa: E402
from live_helpers import DecidingPolicy, make_db, paper_runner  # noqa: E402

from aster_rl.live.sources import ReplaySource  # noqa: E402


def run(mode: str, bars: int, market, tmp: Path) -> np.ndarray:
    db = make_db(tmp, f"{mode}.db")
    start = 1_000
    runner = paper_runner(DecidingPolicy(n_lev=4), ReplaySource(market, start, start + bars), db, tmp, features=mode)
    t0 = time.perf_counter()
    summary = runner.run()
    wall = time.perf_counter() - t0
    all_lat = np.array(summary.latencies_s) * 1e3
    lat = all_lat[1:]  # the first bar also pays one-off start-up costs (compilation, caches), shown apart
    print(f"{mode:12} {len(lat):5d} bars  median {np.median(lat):7.2f} ms  p95 {np.percentile(lat, 95):7.2f} ms  "
          f"max {lat.max():7.2f} ms  first bar {all_lat[0]:8.1f} ms  ({wall:.1f} s incl. start-up, {len(summary.trades)} trades)")
    return lat


def main() -> None:
    bars = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    market = make_market(1_000 + bars + 10, seed=21)
    print(f"replay of {bars} 5m bars after 1,000 bars of history, paper broker, SQLite file, all tentacles")
    with tempfile.TemporaryDirectory() as d:
        run("batch", bars, market, Path(d))
        run("incremental", min(bars, 100), market, Path(d))


if __name__ == "__main__":
    main()
