"""``aster-rl db init`` and ``aster-rl data import`` end to end through ``aster_rl.cli.main``."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import inspect, text

from aster_rl.cli import main
from aster_rl.config import DataConfig
from aster_rl.storage import Database, describe, load_candles
from factories import make_candles


ON_BOTH = pytest.mark.usefixtures("database_url")  # the test runs on SQLite and on PostgreSQL


@pytest.fixture
def where(request, tmp_path) -> Path | str:
    """Where the CLI stores: the test's ``database_url`` when it asks for one, else the default SQLite file in tmp_path."""
    if "database_url" in request.fixturenames:
        return request.getfixturevalue("database_url")
    return tmp_path


def _settings(where: Path | str) -> list[str]:
    if isinstance(where, str):
        return ["--set", f"data.database_url={where}"]
    return ["--set", f"data.data_dir={where.as_posix()}"]


def _db(where: Path | str) -> Database:
    return Database(where) if isinstance(where, str) else Database.from_config(DataConfig(data_dir=where))


def _write(path: Path, candles: pd.DataFrame) -> Path:
    frame = candles[["open", "high", "low", "close", "volume"]].reset_index(drop=True)
    frame.insert(0, "timestamp", candles.index.as_unit("ms").asi8)
    frame.to_csv(path, index=False)
    return path


def test_db_init_creates_schema_and_prints_url(tmp_path, capsys):
    assert main([*_settings(tmp_path), "db", "init"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "aster_rl.db") in out
    _db(tmp_path).check_schema()
    assert main([*_settings(tmp_path), "db", "init"]) == 0


def test_db_info_without_schema_is_one_clear_error(tmp_path, capsys):
    assert main([*_settings(tmp_path), "db", "info"]) == 2
    err = capsys.readouterr().err.strip()
    assert "aster-rl db init" in err and len(err.splitlines()) == 1


@ON_BOTH
def test_import_stores_bars_once_and_reports_gaps(where, tmp_path, capsys):
    candles = make_candles(500, seed=1)
    path = _write(tmp_path / "ASTERUSDT_5m.csv", candles.drop(candles.index[100:103]))
    assert main([*_settings(where), "data", "import", str(path)]) == 0
    out = capsys.readouterr().out
    assert "497 5m bars of ASTER/USDT:USDT" in out and "497 new" in out
    assert "gaps: 1 (3 missing bars" in out
    assert main([*_settings(where), "data", "import", str(path)]) == 0
    assert ", 0 new" in capsys.readouterr().out
    stored = load_candles(_db(where), "import", "ASTER/USDT:USDT", "5m")
    assert len(stored) == 497
    assert main([*_settings(where), "db", "info"]) == 0
    assert "import" in capsys.readouterr().out


def test_import_with_explicit_symbol_timeframe_and_source(tmp_path, capsys):
    path = _write(tmp_path / "whatever.csv", make_candles(50, timeframe="1h"))
    args = ["data", "import", str(path), "--symbol", "BTC/USDT:USDT", "--timeframe", "1h", "--source", "binance"]
    assert main([*_settings(tmp_path), *args]) == 0
    assert len(load_candles(_db(tmp_path), "binance", "BTC/USDT:USDT", "1h")) == 50


@ON_BOTH
def test_corrupt_csv_exits_nonzero_with_one_line_and_database_unchanged(where, tmp_path, capsys):
    good = _write(tmp_path / "BTCUSDT_5m.csv", make_candles(300, seed=2, price=60_000.0))
    assert main([*_settings(where), "data", "import", str(good)]) == 0
    before = describe(_db(where))
    capsys.readouterr()

    candles = make_candles(300, seed=3)
    candles.iloc[56, candles.columns.get_loc("high")] = candles["low"].iloc[56] * 0.5
    bad = _write(tmp_path / "ASTERUSDT_5m.csv", candles)
    fine = _write(tmp_path / "ETHUSDT_5m.csv", make_candles(300, seed=4, price=3_000.0))
    code = main([*_settings(where), "data", "import", str(fine), str(bad)])
    captured = capsys.readouterr()
    assert code != 0
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert str(bad) in lines[0] and "row 57" in lines[0] and "high" in lines[0]
    assert captured.out == ""
    assert describe(_db(where)) == before  # the good file given alongside was not stored either


def test_import_every_real_file(tmp_path, capsys, real_data):
    files = sorted(str(p) for p in real_data.glob("*.csv"))
    assert main([*_settings(tmp_path), "data", "import", *files]) == 0
    series = describe(_db(tmp_path))["candles"]
    assert len(series) == len(files)
    assert {s["symbol"] for s in series} == {"ASTER/USDT:USDT", "BTC/USDT:USDT", "ETH/USDT:USDT"}
    total = sum(s["bars"] for s in series)
    expected = sum(sum(1 for _ in open(f)) - 1 for f in files)
    assert total == expected


# ---------------------------------------------------------------- bad input: one line, exit 2, database unchanged

def _dump(where: Path | str) -> list[tuple]:
    """Every row of the candle tables in key order; empty before the database (or its schema) exists."""
    if isinstance(where, Path) and not (where / "aster_rl.db").exists():
        return []
    db = _db(where)
    try:
        if "candles" not in inspect(db.engine).get_table_names():
            return []
        with db.engine.connect() as conn:
            return [
                *map(tuple, conn.execute(text("select * from candle_series order by id")).all()),
                *map(tuple, conn.execute(text("select * from candles order by series_id, ts")).all()),
            ]
    finally:
        db.dispose()


def _csv(path: Path, stamps, candles: pd.DataFrame) -> Path:
    frame = candles[["open", "high", "low", "close", "volume"]].reset_index(drop=True)
    frame.insert(0, "timestamp", list(stamps))
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def stored(where, tmp_path, capsys) -> pd.DataFrame:
    """300 5m bars of ASTER already imported from ASTERUSDT_5m.csv."""
    candles = make_candles(300, seed=5)
    assert main([*_settings(where), "data", "import", str(_write(tmp_path / "ASTERUSDT_5m.csv", candles))]) == 0
    capsys.readouterr()
    return candles


def _refused(where: Path | str, capsys, args: list[str], *fragments: str) -> str:
    before = _dump(where)
    code = main([*_settings(where), "data", "import", *args])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and captured.out == "", captured
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert _dump(where) == before
    return lines[0]


def test_bar_before_2009_is_refused(tmp_path, capsys, stored):
    ms = stored.index.as_unit("ms").asi8
    seconds = _csv(tmp_path / "A_5m.csv", np.r_[-5, ms[1:] // 1000], stored)
    _refused(tmp_path, capsys, [str(seconds), "--symbol", "ASTER/USDT:USDT"],
             str(seconds), "row 1 (line 2)", "timestamp -5", "1969-12-31 23:59:55", "before 2009-01-01")
    millis = _csv(tmp_path / "B_5m.csv", np.r_[ms[:-1], -5], stored)
    _refused(tmp_path, capsys, [str(millis), "--symbol", "ASTER/USDT:USDT"], "row 300 (line 301)", "-5", "before 2009")


def test_bar_in_2255_is_refused(tmp_path, capsys, stored):
    ms = stored.index.as_unit("ms").asi8
    ns = _csv(tmp_path / "A_5m.csv", [*(ms[:-1] * 1_000_000), 9_000_000_000_000_000_000], stored)
    _refused(tmp_path, capsys, [str(ns), "--symbol", "ASTER/USDT:USDT"],
             "row 300 (line 301)", "9000000000000000000", "2255-03-14", "later than a bar can open now")
    alone = _csv(tmp_path / "B_5m.csv", [9_000_000_000_000_000_000], stored.iloc[:1])
    _refused(tmp_path, capsys, [str(alone), "--symbol", "ASTER/USDT:USDT"], "row 1 (line 2)", "2255-03-14")


def test_bars_off_the_grid_between_stored_ones_are_refused(tmp_path, capsys, stored):
    shifted = _csv(tmp_path / "ASTERUSDT_5m.csv", stored.index.as_unit("ms").asi8 + 17_000, stored)
    _refused(tmp_path, capsys, [str(shifted)],
             str(shifted), "row 1 (line 2)", f"{stored.index[0] + pd.Timedelta(seconds=17):%Y-%m-%d %H:%M:%S}",
             "not on the 5m grid", "00:00:17", "300 such bars")


def test_seconds_and_milliseconds_mixed_row_by_row_are_refused(tmp_path, capsys):
    candles = make_candles(100, seed=6)
    ms = candles.index.as_unit("ms").asi8
    mixed = _csv(tmp_path / "ASTERUSDT_5m.csv", np.where(np.arange(100) % 2 == 1, ms // 1000, ms), candles)
    _refused(tmp_path, capsys, [str(mixed)], "row 2 (line 3)", f"timestamp {ms[1] // 1000} is in seconds",
             "in milliseconds", "one unit")


def test_hourly_bars_given_as_5m_are_refused_naming_both(tmp_path, capsys):
    hourly = _write(tmp_path / "bars.csv", make_candles(200, timeframe="1h", seed=7))
    _refused(tmp_path, capsys, [str(hourly), "--symbol", "ASTER/USDT:USDT", "--timeframe", "5m"],
             str(hourly), "--timeframe says 5m", "mostly 1h apart", "--timeframe 1h")
    named = _write(tmp_path / "ASTERUSDT_5m.csv", make_candles(200, timeframe="1h", seed=7))
    _refused(tmp_path, capsys, [str(named)], "the file name says 5m", "1h apart")


def test_timeframe_comes_from_the_spacing_when_nothing_states_it(tmp_path, capsys):
    hourly = _write(tmp_path / "bars.csv", make_candles(200, timeframe="1h", seed=7))
    assert main([*_settings(tmp_path), "data", "import", str(hourly), "--symbol", "ASTER/USDT:USDT"]) == 0
    assert "200 1h bars of ASTER/USDT:USDT" in capsys.readouterr().out
    assert len(load_candles(_db(tmp_path), "import", "ASTER/USDT:USDT", "1h")) == 200


@ON_BOTH
def test_changed_reimport_is_refused_naming_the_first_differing_bar(where, tmp_path, capsys, stored):
    changed = stored.copy()
    changed.iloc[[40, 41, 250], changed.columns.get_loc("high")] *= 1.01
    path = _write(tmp_path / "ASTERUSDT_5m.csv", changed)
    _refused(where, capsys, [str(path)],
             str(path), "row 41 (line 42)", f"bar {stored.index[40]:%Y-%m-%d %H:%M} UTC",
             f"high stored {float(stored['high'].iloc[40])!r}, new {float(changed['high'].iloc[40])!r}", "3 bars differ", "--replace")


@ON_BOTH
def test_replace_overwrites_changed_bars_and_reports_how_many(where, tmp_path, capsys, stored):
    later = make_candles(10, seed=9, start=stored.index[-1] + pd.Timedelta(minutes=5))
    more = pd.concat([stored, later])
    more.iloc[[40, 41, 250], more.columns.get_loc("high")] *= 1.01
    path = _write(tmp_path / "ASTERUSDT_5m.csv", more)
    assert main([*_settings(where), "data", "import", str(path), "--replace"]) == 0
    assert "310 5m bars" in (out := capsys.readouterr().out) and "10 new, 3 replaced" in out
    back = load_candles(_db(where), "import", "ASTER/USDT:USDT", "5m")
    np.testing.assert_array_equal(back["high"].to_numpy(), more["high"].to_numpy())
    assert main([*_settings(where), "data", "import", str(path)]) == 0
    assert ", 0 new" in capsys.readouterr().out


@ON_BOTH
def test_a_conflict_in_a_later_file_leaves_the_earlier_ones_unstored(where, tmp_path, capsys, stored):
    fresh = _write(tmp_path / "ETHUSDT_5m.csv", make_candles(300, seed=8, price=3_000.0))
    changed = stored.assign(close=stored["close"].where(np.arange(len(stored)) != 7, stored["high"]))
    bad = _write(tmp_path / "ASTERUSDT_5m.csv", changed)
    _refused(where, capsys, [str(fresh), str(bad)], str(bad), "row 8 (line 9)", "close stored")


def _binary(p: Path) -> None:
    p.write_bytes(bytes(range(256)) * 4)


def _latin1(p: Path) -> None:
    p.write_bytes("timestamp,open,high,low,close,volume,note\n1740787200000,1,2,0.5,1.5,10,caf\xe9\n".encode("latin-1"))


BAD_FILES = {
    "binary.csv": (_binary, ["line 1", "binary file"]),
    "latin1.csv": (_latin1, ["line 2", "byte 0xe9 is not UTF-8"]),
    "notgzip.csv.gz": (lambda p: p.write_text("timestamp,open\n"), ["not a valid gzip file"]),
    "truncated.csv.gz": (lambda p: p.write_bytes(gzip.compress(b"timestamp,open,high\n" * 50)[:30]), ["gzip"]),
    "empty.csv": (lambda p: p.write_text(""), ["empty"]),
    "blank.csv": (lambda p: p.write_text("\n\n  \n"), ["empty"]),
    "header_only.csv": (lambda p: p.write_text("timestamp,open,high,low,close,volume\n"), ["no candles"]),
    "bad_header.csv": (lambda p: p.write_text("when,o,h,l,c,vol\n1740787200000,1,2,0.5,1.5,10\n"), ["no timestamp column"]),
    "semicolons.csv": (lambda p: p.write_text("timestamp;open;high;low;close;volume\n1;2;3;4;5;6\n"), ["commas"]),
    "extra_field.csv": (
        lambda p: p.write_text("timestamp,open,high,low,close,volume\n1740787200000,1,2,0.5,1.5,10,7\n"),
        ["line 2 has more fields"],
    ),
    "funding.csv": (lambda p: p.write_text("x\n"), ["funding rates"]),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_unreadable_files_end_in_one_line(tmp_path, capsys, stored, name):
    make, fragments = BAD_FILES[name]
    path = tmp_path / f"ASTERUSDT_5m_{name}".replace("funding.csv", "funding_rate.csv")
    make(path)
    _refused(tmp_path, capsys, [str(path)], str(path), *fragments)


@pytest.mark.parametrize(
    "timeframe, fragment",
    [("999999999w", "longer than 4w"), ("5w", "longer than 4w"), ("0m", "positive"), ("-5m", "whole number"),
     ("5", "whole number"), ("5x", "whole number"), ("05m", "leading zeros"), ("1e3m", "whole number"),
     ("1000000000000000000000m", "longer than 4w")],
)
def test_absurd_timeframes_end_in_one_line(tmp_path, capsys, stored, timeframe, fragment):
    path = _write(tmp_path / "bars.csv", stored)
    _refused(tmp_path, capsys, [str(path), "--symbol", "ASTER/USDT:USDT", f"--timeframe={timeframe}"],
             f"--timeframe: timeframe {timeframe!r}", fragment)


def test_import_real_freqtrade_feather_files(tmp_path, capsys, real_data):
    files = sorted((real_data / "binance-futures").glob("*-5m-futures.feather"))
    assert len(files) == 3
    assert main([*_settings(tmp_path), "data", "import", *map(str, files), "--source", "freqtrade"]) == 0
    assert capsys.readouterr().out.count("gaps: none") == 3
    series = describe(_db(tmp_path))["candles"]
    assert {(s["symbol"], s["timeframe"]) for s in series} == {
        ("BTC/USDT:USDT", "5m"), ("ETH/USDT:USDT", "5m"), ("LTC/USDT:USDT", "5m")
    }
    assert sum(s["bars"] for s in series) == sum(len(pd.read_feather(f)) for f in files)
    funding = real_data / "binance-futures" / "BTC_USDT_USDT-8h-funding_rate.feather"
    _refused(tmp_path, capsys, [str(funding)], str(funding), "funding rates")
