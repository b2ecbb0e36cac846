import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from aster_rl.config import FeaturesConfig
from aster_rl.errors import ConfigError, DataError, SchemaMismatchError
from aster_rl.features.pipeline import (
    WINDOW_BARS,
    FeatureSchema,
    build_features,
    latest_features,
    resolve_tentacles,
    window_bars_for,
)
from aster_rl.features.tentacles import TENTACLES
from aster_rl.features.tentacles.base import Tentacle
from factories import make_market

CFG = FeaturesConfig()
MARKET = make_market(2500, seed=31)
FS = build_features(MARKET, CFG)


def test_matrix_shape_dtype_index_and_names():
    assert FS.matrix.dtype == np.float32
    assert FS.matrix.shape == (len(MARKET), len(FS.columns))
    assert FS.index.equals(MARKET.candles.index)
    for name in ("market_volume_ratio", "orderflow_taker_buy_ratio", "indicators_rsi_14", "indicators_atr_pct"):
        assert name in FS.columns
    # columns grouped by tentacle, in pipeline order
    prefixes = [next(t for t in FS.schema.tentacles if c.startswith(t + "_")) for c in FS.columns]
    assert prefixes == sorted(prefixes, key=list(TENTACLES).index)
    assert FS.warmup == max(t.warmup(p) for _, t, p in resolve_tentacles(CFG))
    assert np.isfinite(FS.matrix[FS.warmup :]).all()
    frame = FS.frame()
    assert list(frame.columns) == FS.columns and frame.index.equals(FS.index)


def test_missing_sources_give_flags_not_nan():
    bare = make_market(1200, seed=32, with_trades=False, with_book=False, with_funding=False, with_macro=False)
    fs = build_features(bare, CFG)
    assert np.isfinite(fs.matrix).all()
    f = fs.frame()
    for flag in ("market_funding_available", "orderflow_book_available", "whales_available"):
        assert (f[flag] == 0).all(), flag
    assert fs.columns == FS.columns  # same schema whatever the sources


def test_input_market_is_not_modified():
    m = make_market(600, seed=33)
    copies = {k: getattr(m, k).copy() for k in ("candles", "funding", "trades", "book", "btc", "eth")}
    build_features(m, CFG)
    for k, v in copies.items():
        pd.testing.assert_frame_equal(getattr(m, k), v)


def test_readings_cover_every_tentacle():
    r = FS.readings(-1)
    assert list(r) == list(FS.schema.tentacles)
    assert all(isinstance(s, str) and s for s in r.values())
    assert r["indicators"].startswith("Indicators: RSI")
    with pytest.raises(IndexError):
        FS.readings(len(FS.index))


def test_nan_after_warmup_is_a_data_error_naming_column_and_row(monkeypatch):
    def bad(market, context, **params):
        out = pd.DataFrame({"market_broken": np.ones(len(market))}, index=market.candles.index)
        out.iloc[1234, 0] = np.nan
        return out

    monkeypatch.setitem(TENTACLES, "market", Tentacle("market", bad, lambda r: "", lambda p: 10))
    with pytest.raises(DataError, match=r"market_broken first at row 1234"):
        build_features(MARKET, CFG)


def test_unknown_tentacles_and_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="unknown tentacle"):
        build_features(MARKET, FeaturesConfig(tentacles=("market", "telepathy")))
    with pytest.raises(ConfigError, match="unknown parameter"):
        build_features(MARKET, FeaturesConfig(params={"indicators": {"rsi_perod": 7}}))


def test_parameters_flow_into_columns_and_schema():
    cfg = FeaturesConfig(tentacles=("indicators", "whales"), params={"indicators": {"rsi_period": 7}}, whale_notional_usd=20_000)
    fs = build_features(MARKET, cfg)
    assert "indicators_rsi_7" in fs.columns and "indicators_rsi_14" not in fs.columns
    assert fs.schema.params["whales"]["whale_notional_usd"] == 20_000
    assert fs.schema.tentacles == ("indicators", "whales")


# ---------------------------------------------------------------- schema

def test_schema_round_trip_json_and_stable_hash():
    d = json.loads(json.dumps(FS.schema.to_dict()))
    again = FeatureSchema.from_dict(d)
    assert again == FS.schema and again.hash == FS.schema.hash
    assert build_features(make_market(300, seed=99), CFG).schema.hash == FS.schema.hash  # data does not enter the hash
    assert len(FS.schema.hash) == 64
    d["hash"] = "0" * 64
    with pytest.raises(SchemaMismatchError, match="does not match"):
        FeatureSchema.from_dict(d)


def test_schema_diff_and_check_compatible():
    other = build_features(MARKET, FeaturesConfig(params={"indicators": {"rsi_period": 7}})).schema
    lines = FS.schema.diff(other)
    assert "parameter indicators.rsi_period: 14 -> 7" in lines
    assert any(line.startswith("missing columns (1): indicators_rsi_14") for line in lines)
    assert any(line.startswith("extra columns (1): indicators_rsi_7") for line in lines)
    with pytest.raises(SchemaMismatchError, match="rsi_period"):
        FS.schema.check_compatible(other)
    FS.schema.check_compatible(FeatureSchema.from_dict(FS.schema.to_dict()))  # identical: fine
    fewer = build_features(MARKET, FeaturesConfig(tentacles=("market", "indicators"))).schema
    assert "tentacle 'whales' missing" in FS.schema.diff(fewer)
    d = FS.schema.to_dict()
    names = list(d["names"])
    names[0], names[1] = names[1], names[0]
    swapped = FeatureSchema.from_dict({**d, "names": names, "hash": None})
    assert any(line.startswith("reordered columns") for line in FS.schema.diff(swapped))
    assert FS.schema.diff(replace(FS.schema, timeframe="1m")) == ["timeframe 5m -> 1m"]


# ---------------------------------------------------------------- incremental

def assert_row_close(row, batch, columns):
    row, batch = row.astype(float), batch.astype(float)
    err = np.abs(row - batch)
    tol = 1e-6 * np.maximum(np.abs(batch), 1.0)
    bad = np.flatnonzero(err > tol)
    assert not len(bad), [(columns[j], row[j], batch[j]) for j in bad[:5]]


@pytest.mark.parametrize("end", [4000, 3377])
def test_latest_row_equals_batch_on_5m(end):
    cfg = FeaturesConfig(tentacles=tuple(t for t in CFG.tentacles if t != "multi_timeframe"))
    m = make_market(4000, seed=34).head(end)
    batch = build_features(m, cfg)
    row = latest_features(m, cfg)
    assert row.dtype == np.float32 and row.shape == (len(batch.columns),)
    assert_row_close(row, batch.matrix[-1], batch.columns)


def test_latest_row_equals_batch_with_every_tentacle_on_1h():
    m = make_market(6000, seed=35, timeframe="1h")
    batch = build_features(m, CFG)
    row = latest_features(m, CFG)
    assert_row_close(row, batch.matrix[-1], batch.columns)


def test_windows_are_bounded_and_documented():
    sel = {name: (t, p) for name, t, p in resolve_tentacles(CFG)}
    assert window_bars_for("indicators", *sel["indicators"], "5m") == WINDOW_BARS
    assert window_bars_for("market", *sel["market"], "1m") == 1440 + WINDOW_BARS
    assert window_bars_for("multi_timeframe", *sel["multi_timeframe"], "5m") == 180 * 288 + WINDOW_BARS
    assert window_bars_for("strategy", *sel["strategy"], "5m") < 100
