"""Import throughput: bars/s for parsing+validating a CSV and for storing it into SQLite.

References measured in the same run: a bare ``pandas.read_csv`` of the same file (the
parsing floor) and a bare ``sqlite3`` executemany of the same rows (the storing floor).

    .venv/bin/python benchmarks/bench_import.py [--bars 500000]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aster_rl.data.importer import read_candle_file
from aster_rl.storage import Database, merge_candles

TARGET_BARS_PER_S = 200_000


def write_csv(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    close = np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    open_ = np.concatenate(([1.0], close[:-1]))
    high = np.maximum(open_, close) * (1 + rng.random(n) * 0.002)
    low = np.minimum(open_, close) * (1 - rng.random(n) * 0.002)
    ts = 1_500_000_000_000 + np.arange(n, dtype=np.int64) * 300_000  # 2017-07-14: 500k bars end before today
    frame = pd.DataFrame({"timestamp": ts, "open": open_, "high": high, "low": low, "close": close,
                          "volume": rng.lognormal(10, 0.5, n)})
    frame.to_csv(path, index=False)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=500_000)
    n = parser.parse_args().bars
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ASTERUSDT_5m.csv"
        write_csv(path, n)

        _, t_read_csv = timed(lambda: pd.read_csv(path))
        parsed, t_parse = timed(lambda: read_candle_file(path))

        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.init_schema()
        new, t_store = timed(lambda: merge_candles(db, "bench", parsed.symbol, parsed.timeframe, parsed.candles))
        again, t_again = timed(lambda: merge_candles(db, "bench", parsed.symbol, parsed.timeframe, parsed.candles))
        assert (new.new, new.changed, again.new, again.changed) == (n, 0, 0, 0)

        raw = sqlite3.connect(Path(tmp) / "raw.db")
        raw.execute("CREATE TABLE c (source TEXT, symbol TEXT, timeframe TEXT, ts INTEGER, open REAL, high REAL, "
                    "low REAL, close REAL, volume REAL, PRIMARY KEY (source, symbol, timeframe, ts))")
        c = parsed.candles
        rows = list(zip(["bench"] * n, ["X"] * n, ["5m"] * n, c.index.as_unit("ms").asi8.tolist(),
                        *(c[k].to_numpy().tolist() for k in ("open", "high", "low", "close", "volume"))))

        def raw_insert():
            with raw:
                raw.executemany("INSERT INTO c VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING", rows)

        _, t_raw = timed(raw_insert)
        raw.close()

    total = t_parse + t_store
    print(f"bars: {n:,}")
    print(f"parse+validate CSV : {n / t_parse:>12,.0f} bars/s  ({t_parse:.2f} s; bare pandas.read_csv "
          f"{n / t_read_csv:,.0f} bars/s, ratio {t_read_csv / t_parse:.2f})")
    print(f"store into SQLite  : {n / t_store:>12,.0f} bars/s  ({t_store:.2f} s; bare sqlite3 executemany, text key "
          f"{n / t_raw:,.0f} bars/s, ratio {t_raw / t_store:.2f})")
    print(f"store again (dupes): {n / t_again:>12,.0f} bars/s  ({t_again:.2f} s, 0 new, every bar compared)")
    print(f"import end to end  : {n / total:>12,.0f} bars/s  (target >= {TARGET_BARS_PER_S:,} bars/s: "
          f"{'met' if n / total >= TARGET_BARS_PER_S else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
