"""Download through the real ccxt client from the loopback fake exchange into SQLite."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aster_rl.config import DataConfig
from aster_rl.data.download import FUNDING_JITTER, download_candles, download_funding, download_snapshot, snap_funding_times
from aster_rl.errors import DataError, ExchangeError, TemporaryExchangeError
from aster_rl.exchange.client import ExchangeClient
from aster_rl.testing.fake_exchange import FakeAsterExchange
from aster_rl.storage import Database, load_book, load_candles, load_funding, load_trades
from factories import make_market

SYMBOL = "ASTER/USDT:USDT"
SOURCE = "aster"
N_BARS = 4_000  # three pages of 1,500


@pytest.fixture(scope="module")
def market():
    return make_market(N_BARS, seed=11)


@pytest.fixture()
def fake(market):
    with FakeAsterExchange(market) as f:
        yield f


@pytest.fixture()
def client(fake):
    return ExchangeClient.from_config(DataConfig(api_url=fake.url, retry_backoff_s=0, max_retries=3), rate_limit_ms=0)


@pytest.fixture()
def db(database_url):
    """A fresh database, on SQLite and on PostgreSQL."""
    database = Database(database_url)
    database.init_schema()
    yield database
    database.dispose()


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)


def _download(client, db, fake, market, **kw):
    return download_candles(client, db, SOURCE, SYMBOL, "5m", market.candles.index[0], now=fake.now, **kw)


def test_download_stores_every_bar_with_raw_columns(client, db, fake, market):
    report = _download(client, db, fake, market)
    assert (report.fetched, report.new, report.pages) == (N_BARS, N_BARS, 3)
    stored = load_candles(db, SOURCE, SYMBOL, "5m")
    expected = market.candles
    assert list(stored.index) == list(expected.index)
    for col in ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume"):
        np.testing.assert_allclose(stored[col].to_numpy(), expected[col].to_numpy(), rtol=1e-7, err_msg=col)
    np.testing.assert_array_equal(stored["trades"].to_numpy(), expected["trades"].to_numpy())
    starts = [int(r.params["startTime"]) for r in fake.requests_to("/fapi/v3/klines")]
    assert starts == [_ms(expected.index[i]) for i in (0, 1500, 3000)]
    assert all(int(r.params["limit"]) <= 1500 for r in fake.requests_to("/fapi/v3/klines"))


def test_download_twice_stores_each_bar_once(client, db, fake, market):
    _download(client, db, fake, market)
    n_requests = len(fake.requests_to("/fapi/v3/klines"))
    again = _download(client, db, fake, market)
    assert again.new == 0 and again.resumed and again.pages == 0
    assert len(fake.requests_to("/fapi/v3/klines")) == n_requests  # nothing left to ask for
    assert len(load_candles(db, SOURCE, SYMBOL, "5m")) == N_BARS


def test_interrupted_download_resumes_with_only_the_missing_bars(client, db, fake, market):
    # the exchange fails for good after two pages: what was fetched is kept
    client.load_markets()
    idx = market.candles.index
    fake.fail_next(10**6, status=503, path="/fapi/v3/klines", after=2)
    with pytest.raises(TemporaryExchangeError, match="503"):
        _download(client, db, fake, market)
    assert len(fake.requests_to("/fapi/v3/klines")) == 2 + 1 + 3  # two pages, then a first try and 3 retries
    stored = load_candles(db, SOURCE, SYMBOL, "5m")
    assert len(stored) == 3000 and stored.index[-1] == idx[2999]

    fake.clear_faults()
    fake.requests.clear()
    resumed = _download(client, db, fake, market)
    assert resumed.resumed and resumed.new == N_BARS - 3000 and resumed.fetched == N_BARS - 3000
    first = fake.requests_to("/fapi/v3/klines")[0]
    assert int(first.params["startTime"]) == _ms(idx[3000])  # the bar after the last stored one
    assert len(load_candles(db, SOURCE, SYMBOL, "5m")) == N_BARS


def test_stopping_after_n_pages_then_resuming(client, db, fake, market):
    first = _download(client, db, fake, market, max_pages=1, page_limit=1000)
    assert first.fetched == 1000
    second = _download(client, db, fake, market)
    assert second.requested_from == market.candles.index[1000]
    assert second.new == N_BARS - 1000
    assert len(load_candles(db, SOURCE, SYMBOL, "5m")) == N_BARS


@pytest.mark.parametrize("status", [503, 429])
def test_temporary_errors_are_retried_and_the_download_completes(client, db, fake, market, status):
    client.load_markets()
    fake.fail_next(2, status=status, path="/fapi/v3/klines")
    report = _download(client, db, fake, market)
    assert report.new == N_BARS
    statuses = [r.status for r in fake.requests_to("/fapi/v3/klines")]
    assert statuses[:3] == [status, status, 200]


def test_non_temporary_error_is_a_clear_exchange_error(client, db, fake, market):
    client.load_markets()
    fake.fail_next(1, status=400, code=-1121, msg="Invalid symbol.", path="/fapi/v3/klines")
    with pytest.raises(ExchangeError, match=r"klines ASTER/USDT:USDT 5m.*BadSymbol.*Invalid symbol") as info:
        _download(client, db, fake, market)
    assert not isinstance(info.value, TemporaryExchangeError)
    assert len(fake.requests_to("/fapi/v3/klines")) == 1  # not retried


def test_still_forming_candle_is_not_stored(client, db, fake, market):
    idx = market.candles.index
    fake.set_now(idx[-1] + pd.Timedelta("2min"))  # the last bar is still forming on the exchange
    _download(client, db, fake, market)
    served = fake.requests_to("/fapi/v3/klines")
    assert served  # the fake did serve the forming bar: the download dropped it
    stored = load_candles(db, SOURCE, SYMBOL, "5m")
    assert stored.index[-1] == idx[-2] and len(stored) == N_BARS - 1
    fake.set_now(idx[-1] + pd.Timedelta("5min"))  # it closes
    report = _download(client, db, fake, market)
    assert report.new == 1 and load_candles(db, SOURCE, SYMBOL, "5m").index[-1] == idx[-1]


def test_until_bounds_the_download(client, db, fake, market):
    idx = market.candles.index
    report = download_candles(client, db, SOURCE, SYMBOL, "5m", idx[100], until=idx[199], now=fake.now)
    stored = load_candles(db, SOURCE, SYMBOL, "5m")
    assert report.new == 100 and stored.index[0] == idx[100] and stored.index[-1] == idx[199]


def test_bad_dates_are_clear_errors(client, db, fake, market):
    with pytest.raises(DataError, match="since='yesterday-ish'"):
        download_candles(client, db, SOURCE, SYMBOL, "5m", "yesterday-ish", now=fake.now)
    with pytest.raises(DataError, match="is before since"):
        download_candles(client, db, SOURCE, SYMBOL, "5m", "2025-03-02", until="2025-03-01", now=fake.now)
    with pytest.raises(DataError, match="is before since"):
        download_funding(client, db, SOURCE, SYMBOL, "2025-03-02", until="2025-03-01", now=fake.now)
    with pytest.raises(DataError, match="since is required"):
        download_funding(client, db, SOURCE, SYMBOL, None, now=fake.now)


def test_funding_history_pages_and_resumes(client, db, fake, market):
    since = market.candles.index[0]
    report = download_funding(client, db, SOURCE, SYMBOL, since, now=fake.now)
    stored = load_funding(db, SOURCE, SYMBOL)
    assert report.new == len(market.funding) == len(stored)
    assert list(stored.index) == list(market.funding.index)
    again = download_funding(client, db, SOURCE, SYMBOL, since, now=fake.now)
    assert again.new == 0 and again.resumed
    req = fake.requests_to("/fapi/v3/fundingRate")
    assert all(int(r.params["limit"]) <= 1000 for r in req)
    # past the newest stored settlement, however late the exchange stamped it
    assert int(req[-1].params["startTime"]) == _ms(market.funding.index[-1] + FUNDING_JITTER) + 1


def test_since_earlier_than_the_stored_bars_backfills_them_once(client, db, fake, market):
    idx = market.candles.index
    later = download_candles(client, db, SOURCE, SYMBOL, "5m", idx[2000], now=fake.now)
    assert later.new == N_BARS - 2000 and later.backfilled == 0
    fake.requests.clear()
    report = _download(client, db, fake, market)  # since = idx[0], before the oldest stored bar
    assert (report.new, report.backfilled, report.fetched) == (2000, 2000, 2000)
    assert report.requested_from == idx[0] and report.resumed
    assert (report.first, report.last) == (idx[0], idx[1999])
    # paged backward from the oldest stored bar, so that an interruption leaves no hole
    klines = fake.requests_to("/fapi/v3/klines")
    assert [int(r.params["endTime"]) for r in klines] == [_ms(idx[1999]), _ms(idx[499])]
    assert not any("startTime" in r.params for r in klines)
    stored = load_candles(db, SOURCE, SYMBOL, "5m")
    assert list(stored.index) == list(idx) and stored.index.is_unique
    np.testing.assert_allclose(stored["close"].to_numpy(), market.candles["close"].to_numpy(), rtol=1e-7)
    fake.requests.clear()
    again = _download(client, db, fake, market)
    assert (again.new, again.backfilled, again.pages) == (0, 0, 0) and not fake.requests_to("/fapi/v3/klines")


def test_an_interrupted_backfill_leaves_no_hole(client, db, fake, market):
    idx = market.candles.index
    download_candles(client, db, SOURCE, SYMBOL, "5m", idx[2000], now=fake.now)
    fake.fail_next(10**6, status=503, path="/fapi/v3/klines", after=1)  # one backfill page, then down
    with pytest.raises(TemporaryExchangeError):
        _download(client, db, fake, market)
    stored = load_candles(db, SOURCE, SYMBOL, "5m")
    assert list(stored.index) == list(idx[500:])  # the newest 1500 of the missing bars: still contiguous
    fake.clear_faults()
    report = _download(client, db, fake, market)
    assert (report.new, report.backfilled) == (500, 500)
    assert list(load_candles(db, SOURCE, SYMBOL, "5m").index) == list(idx)


def test_backfill_and_resume_in_one_run(client, db, fake, market):
    idx = market.candles.index
    download_candles(client, db, SOURCE, SYMBOL, "5m", idx[1000], until=idx[2999], now=fake.now)
    fake.requests.clear()
    report = _download(client, db, fake, market)
    # 1000 bars before the stored ones, then the 1000 after them
    assert (report.new, report.backfilled, report.fetched) == (2000, 1000, 2000)
    served = [(r.params.get("startTime"), r.params.get("endTime")) for r in fake.requests_to("/fapi/v3/klines")]
    assert served[0] == (None, str(_ms(idx[999]))) and served[1][0] == str(_ms(idx[3000]))
    assert list(load_candles(db, SOURCE, SYMBOL, "5m").index) == list(idx)


def test_funding_backfills_settlements_before_the_stored_ones(client, db, fake, market):
    times = market.funding.index
    download_funding(client, db, SOURCE, SYMBOL, times[30], now=fake.now)
    assert len(load_funding(db, SOURCE, SYMBOL)) == len(times) - 30
    report = download_funding(client, db, SOURCE, SYMBOL, market.candles.index[0], now=fake.now)
    assert (report.new, report.backfilled) == (30, 30) and report.resumed
    stored = load_funding(db, SOURCE, SYMBOL)
    assert list(stored.index) == list(times)
    np.testing.assert_allclose(stored["funding_rate"].to_numpy(), market.funding["funding_rate"].to_numpy(), atol=5e-9)  # served to 8 decimals
    fake.requests.clear()
    again = download_funding(client, db, SOURCE, SYMBOL, market.candles.index[0], now=fake.now)
    assert again.new == 0 and again.backfilled == 0
    # nothing to ask for before the oldest stored settlement: one request, after the newest
    assert [int(r.params["startTime"]) for r in fake.requests_to("/fapi/v3/fundingRate")] == [
        _ms(times[-1] + FUNDING_JITTER) + 1]


def test_jittered_funding_times_are_stored_on_the_grid(market):
    times = market.funding.index
    jitter = pd.to_timedelta(np.random.default_rng(0).integers(0, 30, len(times)), unit="ms")
    jittered = market.funding.set_axis(times + jitter)
    assert (jitter > pd.Timedelta(0)).sum() > len(times) // 2
    database = Database("sqlite://")
    database.init_schema()
    with FakeAsterExchange(market, funding=jittered) as f:
        cl = ExchangeClient.from_config(DataConfig(api_url=f.url, retry_backoff_s=0, max_retries=3), rate_limit_ms=0)
        first = download_funding(cl, database, SOURCE, SYMBOL, market.candles.index[0], now=f.now)
        again = download_funding(cl, database, SOURCE, SYMBOL, market.candles.index[0], now=f.now)
    stored = load_funding(database, SOURCE, SYMBOL)
    assert first.new == len(times) and again.new == 0
    assert list(stored.index) == list(times)  # every settlement exactly on the 4h grid, each once


def test_snap_funding_times_synthetic():
    grid = pd.date_range("2025-03-01", periods=12, freq="4h", tz="UTC")
    jitter = pd.to_timedelta([0, 8, 29, 3, 0, 999, 1, 0, 12, 5, 7, 0], unit="ms")
    snapped = snap_funding_times(grid + jitter)
    assert list(snapped) == list(grid)
    early = grid - pd.to_timedelta(np.arange(12) % 3, unit="ms")  # stamped early too: nearest multiple
    assert list(snap_funding_times(early)) == list(grid)
    # 8h until a switch to 4h: the 4h grid holds both
    switched = grid[::2][:3].append(grid[5:]) + pd.Timedelta("4ms")
    assert list(snap_funding_times(switched)) == list(grid[::2][:3].append(grid[5:]))
    off = (grid + jitter).insert(5, grid[4] + pd.Timedelta("20min")).sort_values()
    with pytest.raises(DataError, match=r"settlement at 2025-03-01 16:20:00\+00:00 is 0 days 00:20:00 off the 0 days "
                                        r"04:00:00 funding grid") as info:
        snap_funding_times(off, interval="4h")
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="off the"):
        snap_funding_times(grid + pd.Timedelta("2s"))  # two seconds late is no jitter
    with pytest.raises(DataError, match="timezone"):
        snap_funding_times(grid.tz_localize(None))


def test_snap_funding_times_on_the_real_freqtrade_file(real_data):
    path = real_data / "binance-futures" / "BTC_USDT_USDT-8h-funding_rate.feather"
    raw = pd.DatetimeIndex(pd.read_feather(path)["date"])
    on_grid = lambda ix: (ix.as_unit("ns").asi8 % pd.Timedelta("8h").value == 0)  # noqa: E731
    assert (~on_grid(raw)).sum() > 100  # the file's times carry milliseconds of jitter
    snapped = snap_funding_times(raw, what=path.name)
    assert on_grid(snapped).all() and snapped.is_unique and len(snapped) == len(raw)
    assert (snapped[1:] - snapped[:-1] == pd.Timedelta("8h")).all()
    assert (raw - snapped).max() <= pd.Timedelta("29ms") and (raw - snapped).min() >= pd.Timedelta(0)
    assert snapped[0] == pd.Timestamp("2023-01-01", tz="UTC")


def test_snapshot_stores_book_and_trades(client, db, fake, market):
    report = download_snapshot(client, db, SOURCE, SYMBOL)
    assert report.book_rows == 1 and report.trades_fetched == 1000 and report.trades_new == 1000
    book = load_book(db, SOURCE, SYMBOL)
    assert book["best_bid"].iloc[0] == pytest.approx(market.book["best_bid"].iloc[-1], rel=1e-7)
    again = download_snapshot(client, db, SOURCE, SYMBOL)
    assert again.trades_new == 0
    assert len(load_trades(db, SOURCE, SYMBOL)) == 1000


def test_cli_download_twice_and_bad_symbol(fake, market, tmp_path, capsys):
    from aster_rl.cli import main

    base = ["--set", f"data.api_url={fake.url}", "--set", f"data.data_dir={tmp_path.as_posix()}",
            "--set", "data.rate_limit_ms=0", "--set", "data.retry_backoff_s=0"]
    since = f"{market.candles.index[0]:%Y-%m-%dT%H:%M}"
    args = [*base, "data", "download", "--symbol", SYMBOL, "--timeframe", "5m", "--since", since]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{N_BARS} bars fetched, {N_BARS} new" in out and "database: sqlite:///" in out
    assert f"funding: {len(market.funding)} settlements fetched" in out
    assert main(args) == 0
    assert "0 bars fetched, 0 new" in capsys.readouterr().out
    db = Database(f"sqlite:///{(tmp_path / 'aster_rl.db').as_posix()}")
    assert len(load_candles(db, "aster", SYMBOL, "5m")) == N_BARS

    assert main([*base, "data", "download", "--symbol", "NOPE/USDT:USDT", "--since", since]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown symbol 'NOPE/USDT:USDT'" in err


def test_cli_download_goes_by_the_exchange_clock(fake, market, tmp_path, capsys):
    from aster_rl.cli import main

    fake.set_now(market.candles.index[-1] + pd.Timedelta("2min"))  # the last bar is still forming on the exchange
    since = f"{market.candles.index[0]:%Y-%m-%dT%H:%M}"
    args = ["--set", f"data.api_url={fake.url}", "--set", f"data.data_dir={tmp_path.as_posix()}",
            "--set", "data.rate_limit_ms=0", "--set", "data.retry_backoff_s=0",
            "data", "download", "--symbol", SYMBOL, "--timeframe", "5m", "--since", since, "--no-snapshot"]
    assert main(args) == 0
    assert f"{N_BARS - 1} bars fetched, {N_BARS - 1} new" in capsys.readouterr().out
    db = Database(f"sqlite:///{(tmp_path / 'aster_rl.db').as_posix()}")
    assert load_candles(db, "aster", SYMBOL, "5m").index[-1] == market.candles.index[-2]


def test_cli_download_with_an_earlier_since_backfills(fake, market, tmp_path, capsys):
    from aster_rl.cli import main

    idx, times = market.candles.index, market.funding.index
    base = ["--set", f"data.api_url={fake.url}", "--set", f"data.data_dir={tmp_path.as_posix()}",
            "--set", "data.rate_limit_ms=0", "--set", "data.retry_backoff_s=0",
            "data", "download", "--symbol", SYMBOL, "--timeframe", "5m", "--no-snapshot"]
    assert main([*base, "--since", f"{idx[2000]:%Y-%m-%dT%H:%M}"]) == 0
    capsys.readouterr()
    assert main([*base, "--since", f"{idx[0]:%Y-%m-%dT%H:%M}"]) == 0
    out = capsys.readouterr().out
    n_early = int((times < idx[2000]).sum())
    assert "2000 bars fetched, 2000 new" in out and "2000 of them before the stored bars" in out
    assert f"funding: {n_early} settlements fetched, {n_early} new, {n_early} of them before the stored ones" in out
    db = Database(f"sqlite:///{(tmp_path / 'aster_rl.db').as_posix()}")
    assert list(load_candles(db, "aster", SYMBOL, "5m").index) == list(idx)
    assert list(load_funding(db, "aster", SYMBOL).index) == list(times)
