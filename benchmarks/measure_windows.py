"""Smallest trailing window per tentacle whose newest row equals the batch row.

Run: ``.venv/bin/python benchmarks/measure_windows.py``. For each tentacle and window size,
the tentacle runs on the last ``w`` bars ending at three different bars and the newest row
is compared with the batch row; the error is |window - batch| / max(|batch|, 1e-3). Prints
the smallest window meeting 1e-6 (None: not met within the sizes tried) and the time of
one computation at that window. The results set ``aster_rl.features.pipeline.WINDOW_BARS`` and
``TENTACLE_WINDOW_HOURS``.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from aster_rl.config import FeaturesConfig, SynthConfig
from aster_rl.features.pipeline import _run_tentacles, resolve_tentacles
from aster_rl.data.synthetic import synthesize

WINDOWS = [100, 200, 300, 400, 600, 800, 1000, 1200, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 20000, 30000, 40000, 52000]


def main() -> None:
    for tf, n in (("5m", 60_000), ("1m", 80_000)):
        m = synthesize(SynthConfig(seed=3, n_bars=n), timeframe=tf)
        selected = resolve_tentacles(FeaturesConfig())
        full = _run_tentacles(m, selected)
        ends = [n - 1, n - 777, n - 3001]
        for (name, t, p), batch in zip(selected, full):
            if name == "strategy":  # row by row over the columns before it
                continue
            found, worst, worst_col = None, np.inf, None
            for w in WINDOWS:
                if w > ends[-1]:
                    break
                worst, worst_col = 0.0, None
                for e in ends:
                    sub = m.head(e + 1).window(m.candles.index[e - w + 1], None)
                    df = t.features(sub, pd.DataFrame(index=sub.candles.index), **p)
                    a, b = df.iloc[-1].to_numpy(float), batch.iloc[e].to_numpy(float)
                    err = np.abs(a - b) / np.maximum(np.abs(b), 1e-3)
                    j = int(np.argmax(err))
                    if err[j] > worst:
                        worst, worst_col = float(err[j]), df.columns[j]
                if worst <= 1e-6:
                    found = w
                    break
            sub = m.window(m.candles.index[-(found or WINDOWS[-1])], None)
            t0 = time.perf_counter()
            t.features(sub, pd.DataFrame(index=sub.candles.index), **p)
            ms = (time.perf_counter() - t0) * 1e3
            print(f"{tf} {name:16s} window {found} bars (last error {worst:.1e} in {worst_col}), {ms:.1f} ms", flush=True)


if __name__ == "__main__":
    main()
