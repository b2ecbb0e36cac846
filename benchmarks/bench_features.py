"""Time and peak memory of the feature pipeline on 1 month .. 1 year of synthetic 1m bars.

Run: ``.venv/bin/python benchmarks/bench_features.py [--months 1 3 6 12]``. Prints, per size,
the seconds and peak traced memory of ``build_features`` (with BTC/ETH companions, trades,
book and funding), the growth ratio against the 1-month run, and the per-bar time of
``latest_features`` for the newest bar and of a ``FeatureStream`` fed one bar at a time. Targets on the 2-core reference machine: one
year <= 60 s and <= 2 GiB, incremental <= 10 ms per bar.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np

from aster_rl.config import FeaturesConfig, SynthConfig
from aster_rl.features.stream import FeatureStream
from aster_rl.features.pipeline import build_features, latest_features
from aster_rl.data.market import MarketBundle
from aster_rl.data.synthetic import synthesize

BARS_PER_MONTH = 43_800  # 525,600 / 12


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--months", type=int, nargs="*", default=[1, 3, 6, 12])
    ap.add_argument("--incremental-bars", type=int, default=20)
    args = ap.parse_args()
    cfg = FeaturesConfig()
    first: tuple[int, float] | None = None
    market: MarketBundle | None = None
    for months in args.months:
        n = BARS_PER_MONTH * months
        t0 = time.perf_counter()
        market = synthesize(SynthConfig(seed=1, n_bars=n), timeframe="1m")
        synth_s = time.perf_counter() - t0
        tracemalloc.start()
        t0 = time.perf_counter()
        fs = build_features(market, cfg)
        seconds = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        per_row = seconds / n * 1e6
        first = first or (n, seconds)
        growth = (seconds / first[1]) / (n / first[0])
        print(
            f"{months:>2} month(s) {n:>7} bars x {fs.matrix.shape[1]} cols: build_features {seconds:6.2f} s "
            f"({per_row:.2f} us/bar, time per bar vs 1 month x{growth:.2f}), peak traced {peak / 2**20:7.1f} MiB, "
            f"matrix {fs.matrix.nbytes / 2**20:.1f} MiB (synth {synth_s:.1f} s)",
            flush=True,
        )
        del fs
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(f"process max RSS {maxrss:.0f} MiB", flush=True)

    assert market is not None, "--months lists at least one length"
    # incremental: the newest bar from a bounded window, for consecutive bars
    for tf, label, sub_cfg in (
        ("1m", "all tentacles", cfg),
        ("1m", "without multi_timeframe", FeaturesConfig(tentacles=tuple(t for t in cfg.tentacles if t != "multi_timeframe"))),
    ):
        times = []
        for k in range(args.incremental_bars):
            view = market.head(len(market) - args.incremental_bars + k + 1)
            t0 = time.perf_counter()
            latest_features(view, sub_cfg)
            times.append(time.perf_counter() - t0)
        print(f"latest_features {tf} {label}: median {np.median(times) * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms per bar", flush=True)
    m5 = synthesize(SynthConfig(seed=2, n_bars=60_000), timeframe="5m")
    times = []
    for k in range(args.incremental_bars):
        view = m5.head(len(m5) - args.incremental_bars + k + 1)
        t0 = time.perf_counter()
        latest_features(view, cfg)
        times.append(time.perf_counter() - t0)
    print(f"latest_features 5m all tentacles: median {np.median(times) * 1e3:.1f} ms per bar", flush=True)

    # incremental with state: a FeatureStream fed one closed bar at a time, against latest_features
    for tf, m in (("5m", m5), ("1m", market)):
        views = [m.head(len(m) - args.incremental_bars + k + 1) for k in range(args.incremental_bars)]
        stream = FeatureStream(cfg, tf)
        t0 = time.perf_counter()
        stream.update(m.head(len(m) - args.incremental_bars))
        first_update = time.perf_counter() - t0
        stream_times, reference_times = [], []
        for view in views:
            t0 = time.perf_counter()
            row = stream.update(view)
            stream_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            reference = latest_features(view, cfg)
            reference_times.append(time.perf_counter() - t0)
            assert np.allclose(row, reference, rtol=1e-6, atol=1e-6)
        print(
            f"FeatureStream {tf} all tentacles: median {np.median(stream_times) * 1e3:.1f} ms, max {max(stream_times) * 1e3:.1f} ms per bar "
            f"(first update, from {len(m) - args.incremental_bars} bars: {first_update * 1e3:.0f} ms); "
            f"latest_features on the same bars: median {np.median(reference_times) * 1e3:.1f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
