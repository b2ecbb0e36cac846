"""Decision latency per bar in replay: new bar -> orders sent (target <= 50 ms).

Runs the live runner with the paper broker over a replayed synthetic range after
``history_days`` of 5m history (default 180: the window the multi_timeframe tentacle
reads), once with the batch feature matrix (the replay default) and once with
incremental features (the live path: the runner's FeatureStream, fed the bars known at
each close), and prints the per-bar latency distribution.

Usage: ``python benchmarks/bench_live.py [bars] [history_days] [modes] [--no-gc-freeze]``,
e.g. ``python benchmarks/bench_live.py 200 180 incremental``.

``python benchmarks/bench_live.py --broker [bars]`` times the paper broker alone (one bar:
append it to the price buffer, run it, the observation, the decision's order) after a
short and after long histories: the per-bar cost must not grow with the history.
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

from factories import make_market
from live_helpers import DecidingPolicy, make_db, paper_runner

from aster_rl.config import EnvConfig
from aster_rl.live.bars import LivePrices
from aster_rl.live.brokers import PaperBroker
from aster_rl.live.sources import ReplaySource, bars_from_market

LEVERAGES = 4  # 1x to 5x
FREEZE_GC = True  # as `aster-rl live run` does on the exchange: no full collections over the history mid-bar
SEED = 37  # a synthetic path whose price stays near 1 USDT over the 180 days (others drift to 0.001 or 1e6)


def run(mode: str, start: int, bars: int, market, tmp: Path) -> np.ndarray:
    db = make_db(tmp, f"{mode}.db")
    t0 = time.perf_counter()
    runner = paper_runner(DecidingPolicy(n_lev=LEVERAGES), ReplaySource(market, start, start + bars), db, tmp, features=mode,
                          freeze_gc=FREEZE_GC)
    runner.start()
    setup = time.perf_counter() - t0
    cpu0, t0 = time.process_time(), time.perf_counter()
    summary = runner.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    all_lat = np.array(summary.latencies_s) * 1e3
    lat = all_lat[1:]  # the first bar may still pay one-off costs (compilation, caches), shown apart
    print(f"{mode:12} {len(lat):5d} bars  median {np.median(lat):7.2f} ms  p95 {np.percentile(lat, 95):7.2f} ms  "
          f"max {lat.max():7.2f} ms  first bar {all_lat[0]:8.1f} ms  CPU {cpu / len(all_lat) * 1e3:6.2f} ms/bar  "
          f"(start-up {setup:.1f} s, run {wall:.1f} s, {summary.bars} bars, {len(summary.trades)} trades, "
          f"stopped by {summary.stopped_by or '-'})", flush=True)
    return lat


def broker_per_bar(history: int, bars: int, all_bars: list, features: np.ndarray) -> np.ndarray:
    """Per-bar paper-broker latency (ms) over ``bars`` bars after ``history`` bars of history."""
    env = EnvConfig()
    prices = LivePrices("5m")
    for bar in all_bars[:history]:
        prices.append(bar)
    broker = PaperBroker(env, prices)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 3, bars)
    lat = np.empty(bars)
    for i in range(bars):
        t0 = time.perf_counter()
        t = prices.append(all_bars[history + i])
        broker.on_bar(t)
        broker.observation(features, t)
        broker.submit(t, int(actions[i]), 1, 0)
        lat[i] = time.perf_counter() - t0
    return lat * 1e3


def broker_main(bars: int) -> None:
    histories = (1_000, 50_000, 500_000)
    market = make_market(histories[-1] + bars + 10, seed=SEED)
    all_bars = bars_from_market(market)
    features = np.zeros(64, dtype=np.float32)
    broker_per_bar(1_000, 50, all_bars, features)  # compile the kernels once
    print(f"paper broker alone, {bars} bars (append, run the bar, observation, order) after each history length:")
    for history in histories:
        lat = broker_per_bar(history, bars, all_bars, features)
        print(f"  history {history:>9,} bars: median {np.median(lat) * 1e3:7.1f} us  p95 {np.percentile(lat, 95) * 1e3:7.1f} us  "
              f"max {lat.max() * 1e3:8.1f} us", flush=True)


def main() -> None:
    global FREEZE_GC
    if "--broker" in sys.argv:
        args = [a for a in sys.argv[1:] if not a.startswith("--")]
        broker_main(int(args[0]) if args else 2_000)
        return
    FREEZE_GC = "--no-gc-freeze" not in sys.argv
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    bars = int(args[0]) if len(args) > 0 else 200
    days = float(args[1]) if len(args) > 1 else 180.0
    modes = args[2].split(",") if len(args) > 2 else ["batch", "incremental"]
    history = max(1_000, int(days * 288))
    t0 = time.perf_counter()
    market = make_market(history + bars + 10, seed=SEED)
    print(f"replay of {bars} 5m bars after {history:,} bars ({history / 288:.0f} days) of history, paper broker, "
          f"SQLite file, all tentacles, gc {'frozen after start-up' if FREEZE_GC else 'as is'} (market built in {time.perf_counter() - t0:.1f} s)", flush=True)
    with tempfile.TemporaryDirectory() as d:
        for mode in modes:
            run(mode, history, bars, market, Path(d))


if __name__ == "__main__":
    main()
