import json

import pandas as pd
import pytest

from aster_rl.features.brain import BrainDecision, BrainReport, brain_report
from aster_rl.cli import main
from aster_rl.config import FeaturesConfig
from aster_rl.errors import DataError
from aster_rl.features.tentacles import TENTACLES
from factories import make_market

CFG = FeaturesConfig()
MARKET = make_market(2000, seed=3)


@pytest.fixture(scope="module")
def report() -> BrainReport:
    return brain_report(MARKET, None, None, CFG)


def test_report_has_every_selected_tentacle_reading(report):
    expected = [n for n in TENTACLES if n in CFG.tentacles]
    assert list(report.readings) == expected
    assert all(isinstance(t, str) and t and "not implemented" not in t for t in report.readings.values())
    assert report.time == MARKET.candles.index[-1]
    assert report.close_time == report.time + pd.Timedelta(minutes=5)
    assert report.price == MARKET.candles["close"].iloc[-1]
    assert report.readings["btc_cycle"].startswith("Day 321 of the cycle: bull market phase 1")  # 2025-03-07
    assert report.cycle["phase"] == "BULL_MARKET_PHASE_1"
    assert report.regime["state"] in ("ranging", "trending up", "trending down", "volatile")
    assert report.strategy["profile"] in ("scalp", "swing", "position")
    assert report.strategy["leverage_low"] <= report.strategy["leverage_high"]
    assert -1 <= report.multi_timeframe["alignment"] <= 1
    assert report.multi_timeframe["considered"] == len([t for t in report.multi_timeframe["trends"] if t != "1d"])


def test_text_report(report):
    text = report.to_text()
    for label in ("Price", "Cycle", "Regime", "Timeframes", "Strategy", "Tentacles", "indicators", "macro"):
        assert label in text
    assert "no policy checkpoint given" in text
    decided = report.with_decision(BrainDecision("BUY", 20, "swing", 1.0, 0.97, 1.05, 0.61, "trend and confluence"))
    assert "BUY, 20x, swing, entry 1, stop 0.97, target 1.05, P(side) 61%" in decided.to_text()


def test_text_report_shows_the_heads_and_the_support(report):
    d = BrainDecision("SELL", 5, "swing", 1.0, 1.03, 0.95, 0.41, "ranging", side_probabilities=(0.35, 0.24, 0.41),
                      leverage_probability=0.3, profile_probability=0.55, entropy=2.31,
                      support={"bar_outside": ["regime_adx"], "bars": 8640, "outside_bars": 3214, "share": 0.372,
                               "top_columns": {"regime_adx": 0.301}, "since": "2025-10-01T00:00:00+00:00"})
    text = report.with_decision(d).to_text()
    assert "SELL, 5x, swing, entry 1, stop 1.03, target 0.95, P(side) 41%" in text
    assert "Policy      P(side) WAIT 35% / BUY 24% / SELL 41%; leverage 5x p=30%; profile swing p=55%; entropy 2.31 nats" in text
    assert ("Support     this bar: 1 column outside the training range (regime_adx); bars since 2025-10-01T00:00: "
            "37.2% of 8,640 out of support (regime_adx 30.1%)") in text
    back = BrainReport.from_dict(json.loads(json.dumps(report.with_decision(d).to_dict())))
    assert back.decision == d


def test_json_round_trip(report):
    for r in (report, report.with_decision(BrainDecision("WAIT", 1, "scalp", confidence=0.4, reasoning="ranging"))):
        data = json.loads(json.dumps(r.to_dict()))
        assert BrainReport.from_dict(data) == r
        assert data["decision"] is None or data["decision"]["side"] in ("BUY", "WAIT", "SELL")


def test_at_picks_the_bar_and_uses_only_the_past():
    at = MARKET.candles.index[1200] + pd.Timedelta(minutes=3)  # inside bar 1200
    r = brain_report(MARKET, None, at, CFG)
    assert r.time == MARKET.candles.index[1200]
    # Nothing after the bar changes the report.
    assert brain_report(MARKET.head(1201), None, None, CFG) == r
    with pytest.raises(DataError, match="before the first bar"):
        brain_report(MARKET, None, "2020-01-01", CFG)


def test_given_feature_frame_or_set_gives_the_same_readings(report):
    from aster_rl.features.pipeline import build_features

    fs = build_features(MARKET, CFG)
    assert brain_report(MARKET, fs, None, CFG).readings == report.readings
    frame = pd.concat([TENTACLES["btc_cycle"].compute(MARKET), TENTACLES["regime"].compute(MARKET)], axis=1)
    small = brain_report(MARKET, frame, None, FeaturesConfig(tentacles=("btc_cycle", "regime")))
    assert list(small.readings) == ["btc_cycle", "regime"] and small.strategy == {} and small.regime


def test_one_readings_function_reads_by_schema_or_by_column_prefix():
    from dataclasses import replace

    from aster_rl.features.brain import readings
    from aster_rl.features.pipeline import build_features

    fs = build_features(MARKET.head(1500), CFG)
    row = fs.frame().iloc[-1]
    by_schema = readings(row, fs.schema)
    assert list(by_schema) == list(fs.schema.tentacles) and by_schema == fs.readings(-1)
    assert readings(row) == by_schema  # the columns named <tentacle>_* give the same sentences

    def broken(values: pd.Series) -> str:
        raise ValueError("no data")

    readers = {**TENTACLES, "regime": replace(TENTACLES["regime"], reading=broken)}
    texts = readings(row, fs.schema, readers)
    assert texts["regime"] == "regime: no reading (ValueError)"
    assert {k: v for k, v in texts.items() if k != "regime"} == {k: v for k, v in by_schema.items() if k != "regime"}


def test_cli_brain_on_a_stored_market(tmp_path, capsys):
    pytest.importorskip("aster_rl.storage")
    from aster_rl.config import DataConfig
    from aster_rl.storage import Database, store_market

    data = DataConfig(data_dir=tmp_path)
    db = Database.from_config(data)
    db.init_schema()
    store_market(db, MARKET, source="synthetic", btc_symbol=data.btc_symbol, eth_symbol=data.eth_symbol)
    out = tmp_path / "report.json"
    assert main(["--set", f"data.data_dir={tmp_path}", "brain", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Master brain: ASTER/USDT:USDT 5m" in printed and "no policy checkpoint given" in printed
    saved = json.loads(out.read_text())
    assert saved["time"] == MARKET.candles.index[-1].isoformat()
    assert set(saved["readings"]) == set(CFG.tentacles)
    at = MARKET.candles.index[1500]
    assert main(["--set", f"data.data_dir={tmp_path}", "brain", "--at", str(at), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["time"] == at.isoformat()
    capsys.readouterr()
    assert main(["--set", f"data.data_dir={tmp_path}", "brain", "--at", "not-a-time"]) == 2
    assert "--at" in capsys.readouterr().err
    assert main(["--set", f"data.data_dir={tmp_path}", "brain", "--run", str(tmp_path / "no_run")]) == 2
    assert "no_run does not exist" in capsys.readouterr().err
