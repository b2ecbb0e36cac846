"""Download speed: the real ccxt client pages klines from the loopback fake exchange into SQLite.

Prints bars/s end to end and with the fake server's own work (request handling and JSON
slicing, measured inside the server thread) taken out, plus where the client's time goes:
HTTP round trip + ccxt's JSON decoding, parsing into a DataFrame, storing.
Target: >= 20k bars/s into SQLite, the loopback server excluded.

    .venv/bin/python benchmarks/bench_download.py [--bars 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from aster_rl.exchange import client as exchange_mod
from aster_rl.data import download as download_mod
from aster_rl.config import DataConfig
from aster_rl.data.download import download_candles
from aster_rl.exchange.client import ExchangeClient
from aster_rl.testing.fake_exchange import FakeAsterExchange
from aster_rl.storage import Database, load_candles

TARGET_BARS_PER_S = 20_000


def make_candles(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=n, freq="5min", tz="UTC")
    close = np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    open_ = np.concatenate(([1.0], close[:-1]))
    high = np.maximum(open_, close) * (1 + rng.random(n) * 0.002)
    low = np.minimum(open_, close) * (1 - rng.random(n) * 0.002)
    volume = rng.lognormal(10, 0.6, n)
    return pd.DataFrame(
        {
            "open": open_, "high": high, "low": low, "close": close, "volume": volume,
            "quote_volume": volume * close, "trades": np.round(volume / 400) + 1, "taker_buy_volume": volume * 0.5,
        },
        index=index,
    )


class Timer:
    def __init__(self) -> None:
        self.total = 0.0
        self.calls = 0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - t0
                self.calls += 1

        return timed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    args = parser.parse_args()
    candles = make_candles(args.bars)
    server, http, parse, store = Timer(), Timer(), Timer(), Timer()
    with tempfile.TemporaryDirectory() as tmp, FakeAsterExchange(candles) as fake:
        # time spent inside the server thread: a timing wrapper shadows the method on this instance
        fake._handle = server.wrap(fake._handle)  # type: ignore[method-assign]
        db = Database(f"sqlite:///{(Path(tmp) / 'bench.db').as_posix()}")
        db.init_schema()
        client = ExchangeClient.from_config(DataConfig(api_url=fake.url, retry_backoff_s=0), rate_limit_ms=0)
        client.load_markets()
        server.total, server.calls = 0.0, 0
        client.exchange.fapiPublicGetV3Klines = http.wrap(client.exchange.fapiPublicGetV3Klines)
        exchange_mod.klines_to_frame = parse.wrap(exchange_mod.klines_to_frame)
        download_mod.upsert_candles = store.wrap(download_mod.upsert_candles)

        t0 = time.perf_counter()
        report = download_candles(client, db, "aster", "ASTER/USDT:USDT", "5m", candles.index[0], now=fake.now)
        elapsed = time.perf_counter() - t0
        stored = len(load_candles(db, "aster", "ASTER/USDT:USDT", "5m"))

        t1 = time.perf_counter()
        again = download_candles(client, db, "aster", "ASTER/USDT:USDT", "5m", candles.index[0], now=fake.now)
        rerun = time.perf_counter() - t1

    assert report.new == args.bars == stored and again.new == 0, (report, stored, again)
    bars = report.fetched
    client_s = elapsed - server.total
    print(f"download {bars:,} 5m bars in {report.pages} pages from the loopback fake into SQLite (file)")
    print(f"  end to end:               {elapsed:7.3f} s  {bars / elapsed:>10,.0f} bars/s")
    print(f"  server thread (handler):  {server.total:7.3f} s  ({server.total / elapsed:.0%} of the time, {server.calls} requests)")
    print(f"  without the server:       {client_s:7.3f} s  {bars / client_s:>10,.0f} bars/s  (target >= {TARGET_BARS_PER_S:,})")
    print(f"  client: HTTP + ccxt JSON  {http.total - server.total:7.3f} s  (round trips {http.total:.3f} s incl. server)")
    print(f"  client: parse to frame    {parse.total:7.3f} s  {bars / parse.total:>10,.0f} bars/s")
    print(f"  client: store (SQLite)    {store.total:7.3f} s  {bars / store.total:>10,.0f} bars/s")
    print(f"  re-run (nothing new):     {rerun:7.3f} s")
    ok = bars / client_s >= TARGET_BARS_PER_S
    print("PASS" if ok else "BELOW TARGET", f"{bars / client_s:,.0f} bars/s without the server")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
