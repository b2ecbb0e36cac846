"""``aster-rl db init`` and ``aster-rl data import`` end to end through ``aster_rl.cli.main``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from aster_rl.cli import main
from aster_rl.config import DataConfig
from aster_rl.storage import Database, describe, load_candles
from factories import make_candles



def _settings(tmp_path: Path) -> list[str]:
    return ["--set", f"data.data_dir={tmp_path.as_posix()}"]


def _db(tmp_path: Path) -> Database:
    return Database.from_config(DataConfig(data_dir=tmp_path))


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


def test_import_stores_bars_once_and_reports_gaps(tmp_path, capsys):
    candles = make_candles(500, seed=1)
    path = _write(tmp_path / "ASTERUSDT_5m.csv", candles.drop(candles.index[100:103]))
    assert main([*_settings(tmp_path), "data", "import", str(path)]) == 0
    out = capsys.readouterr().out
    assert "497 5m bars of ASTER/USDT:USDT" in out and "497 new" in out
    assert "gaps: 1 (3 missing bars" in out
    assert main([*_settings(tmp_path), "data", "import", str(path)]) == 0
    assert ", 0 new" in capsys.readouterr().out
    stored = load_candles(_db(tmp_path), "import", "ASTER/USDT:USDT", "5m")
    assert len(stored) == 497
    assert main([*_settings(tmp_path), "db", "info"]) == 0
    assert "import" in capsys.readouterr().out


def test_import_with_explicit_symbol_timeframe_and_source(tmp_path, capsys):
    path = _write(tmp_path / "whatever.csv", make_candles(50, timeframe="1h"))
    args = ["data", "import", str(path), "--symbol", "BTC/USDT:USDT", "--timeframe", "1h", "--source", "binance"]
    assert main([*_settings(tmp_path), *args]) == 0
    assert len(load_candles(_db(tmp_path), "binance", "BTC/USDT:USDT", "1h")) == 50


def test_corrupt_csv_exits_nonzero_with_one_line_and_database_unchanged(tmp_path, capsys):
    good = _write(tmp_path / "BTCUSDT_5m.csv", make_candles(300, seed=2, price=60_000.0))
    assert main([*_settings(tmp_path), "data", "import", str(good)]) == 0
    before = describe(_db(tmp_path))
    capsys.readouterr()

    candles = make_candles(300, seed=3)
    candles.iloc[56, candles.columns.get_loc("high")] = candles["low"].iloc[56] * 0.5
    bad = _write(tmp_path / "ASTERUSDT_5m.csv", candles)
    fine = _write(tmp_path / "ETHUSDT_5m.csv", make_candles(300, seed=4, price=3_000.0))
    code = main([*_settings(tmp_path), "data", "import", str(fine), str(bad)])
    captured = capsys.readouterr()
    assert code != 0
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert str(bad) in lines[0] and "row 57" in lines[0] and "high" in lines[0]
    assert captured.out == ""
    assert describe(_db(tmp_path)) == before  # the good file given alongside was not stored either


def test_import_every_real_file(tmp_path, capsys, real_data):
    files = sorted(str(p) for p in real_data.glob("*.csv"))
    assert main([*_settings(tmp_path), "data", "import", *files]) == 0
    series = describe(_db(tmp_path))["candles"]
    assert len(series) == len(files)
    assert {s["symbol"] for s in series} == {"ASTER/USDT:USDT", "BTC/USDT:USDT", "ETH/USDT:USDT"}
    total = sum(s["bars"] for s in series)
    expected = sum(sum(1 for _ in open(f)) - 1 for f in files)
    assert total == expected
