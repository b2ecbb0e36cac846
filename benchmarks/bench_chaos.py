"""Chaos table: seeded fault schedules against the real broker, the real ccxt client and the
loopback fake exchange (rejects, 429, 503, lost replies, timeouts, partial fills, outside
closes, price gaps through the stop, kill -9 of the runner with restart); prints schedules,
faults injected by kind and invariant violations (must be 0).

Usage: ``python benchmarks/bench_chaos.py [schedules] [bars] [workers]`` (default 50 200 2).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root))
sys.path.append(str(root / "tests"))
sys.path.append(str(root / "tests" / "aster_rl" / "live"))

from chaos import chaos_table, run_chaos  # noqa: E402


def main(argv: list[str]) -> int:
    schedules = int(argv[0]) if argv else 50
    bars = int(argv[1]) if len(argv) > 1 else 200
    workers = int(argv[2]) if len(argv) > 2 else 2
    t0 = time.perf_counter()
    results = run_chaos(range(schedules), bars, workers=workers)
    print(chaos_table(results))
    print(f"wall clock                {time.perf_counter() - t0:.1f} s ({workers} worker(s))")
    for r in results:
        for v in r.violations:
            print("VIOLATION", v)
    return 1 if any(r.violations for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
