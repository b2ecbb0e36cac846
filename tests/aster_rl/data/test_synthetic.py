"""The synthetic market: determinism, conventions, the planted edge, calibration, the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from aster_rl.config import SynthConfig
from aster_rl.errors import ConfigError, DataError
from aster_rl.data.market import validate_candles
from aster_rl.data.synthetic import (
    planted_drift,
    SIGNAL_MEDIAN_WINDOWS,
    SIGNAL_WARMUP_BARS,
    market_summary,
    planted_signals,
    synthesize,
    synthesize_with_truth,
)

SEEDS = (7, 11)
N_BARS = 60 * 288


@pytest.fixture(scope="module", params=SEEDS)
def pair(request):
    """Planted and null markets of one seed with their signals."""
    planted = synthesize_with_truth(SynthConfig(seed=request.param, n_bars=N_BARS, edge="planted"))
    null = synthesize_with_truth(SynthConfig(seed=request.param, n_bars=N_BARS, edge="null"))
    planted[1].attrs["seed"] = request.param
    return planted, null


def _frames(bundle):
    return {k: getattr(bundle, k) for k in ("candles", "funding", "trades", "book", "btc", "eth")}


def test_same_seed_gives_identical_frames_and_another_seed_differs():
    a = synthesize(SynthConfig(seed=3, n_bars=3_000))
    b = synthesize(SynthConfig(seed=3, n_bars=3_000))
    c = synthesize(SynthConfig(seed=4, n_bars=3_000))
    for name, frame in _frames(a).items():
        pd.testing.assert_frame_equal(frame, _frames(b)[name], obj=name)
        assert not frame.equals(_frames(c)[name]), name


def test_candles_follow_the_conventions():
    cfg = SynthConfig(seed=5, n_bars=5_000, start="2025-06-01 12:00")
    bundle = synthesize(cfg, timeframe="5m", symbol="ASTER/USDT:USDT")
    for name in ("candles", "btc", "eth"):
        frame = getattr(bundle, name)
        validate_candles(frame, f"synthetic {name}")
        assert frame.index.equals(bundle.candles.index)
        assert {"quote_volume", "trades", "taker_buy_volume"} <= set(frame.columns)
        assert (frame["taker_buy_volume"] <= frame["volume"]).all() and (frame["trades"] >= 1).all()
    c = bundle.candles
    assert c.index[0] == pd.Timestamp("2025-06-01 12:00", tz="UTC")
    assert (np.diff(c.index.asi8) == np.diff(c.index.asi8)[0]).all()
    assert (c.index[1] - c.index[0]) == pd.Timedelta("5min")
    np.testing.assert_allclose(c["open"].to_numpy()[1:], c["close"].to_numpy()[:-1], rtol=1e-12)
    assert 0.5 < c["open"].iloc[0] < 2.0
    assert 60_000 < bundle.btc["close"].median() < 120_000 and 2_000 < bundle.eth["close"].median() < 5_000


def test_other_timeframes_and_bad_input():
    bundle = synthesize(SynthConfig(seed=1, n_bars=500), timeframe="1h")
    validate_candles(bundle.candles, "synthetic 1h")
    assert (bundle.candles.index[1] - bundle.candles.index[0]) == pd.Timedelta("1h")
    with pytest.raises(ValidationError, match="not a date"):  # the config refuses it
        SynthConfig(start="not a date", n_bars=100)
    with pytest.raises(ConfigError, match=r"synth\.start"):  # and so does the generator, for a config copied around it
        synthesize(SynthConfig(n_bars=100).model_copy(update={"start": "not a date"}))
    with pytest.raises(DataError, match="timeframe"):
        synthesize(SynthConfig(n_bars=100), timeframe="5x")


def test_volume_and_flow_move_with_returns():
    c = synthesize(SynthConfig(seed=2, n_bars=N_BARS)).candles
    r = np.log(c["close"]).diff().to_numpy()[1:]
    share = (c["taker_buy_volume"] / c["volume"]).to_numpy()[1:]
    vol = c["volume"].to_numpy()[1:]
    assert np.corrcoef(np.abs(r), vol)[0, 1] > 0.3
    assert np.corrcoef(np.sign(r), share)[0, 1] > 0.3
    assert np.corrcoef(c["trades"].to_numpy()[1:], np.abs(r))[0, 1] > 0.3


def test_funding_settles_every_four_hours_following_the_premium(pair):
    (bundle, _), _ = pair
    f, c = bundle.funding, bundle.candles
    assert len(f) == N_BARS // 48
    assert (f.index.hour % 4 == 0).all() and (f.index.minute == 0).all()
    assert (np.diff(f.index.asi8) == pd.Timedelta("4h").value).all()
    assert f.index[0] >= c.index[0] and f.index[-1] < c.index[-1] + pd.Timedelta("5min")
    rate = f["funding_rate"].to_numpy()
    assert -0.002 <= rate.min() and rate.max() <= 0.002
    typical = (rate >= -0.0004) & (rate <= 0.00005 + 1e-12)
    assert typical.mean() > 0.9
    # the mark price is the last close before settlement: known at that time
    prev_close = c["close"].shift(1).reindex(f.index)
    np.testing.assert_allclose(f["mark_price"].iloc[1:], prev_close.iloc[1:], rtol=1e-12)
    # the rate follows the drift of the 4 h before settlement
    drift = np.log(c["close"]).diff(48).shift(1).reindex(f.index).to_numpy()
    ok = np.isfinite(drift)
    assert np.corrcoef(drift[ok], rate[ok])[0, 1] > 0.3


def test_trades_are_inside_their_bars_and_one_sided_on_signals(pair):
    (bundle, signals), _ = pair
    t, c = bundle.trades, bundle.candles
    assert t["trade_id"].is_unique and set(t["side"].unique()) <= {"buy", "sell"}
    assert t.index.is_monotonic_increasing
    bar = t.index.floor("5min")
    assert bar.isin(c.index).all()
    lo, hi = c["low"].reindex(bar).to_numpy(), c["high"].reindex(bar).to_numpy()
    assert ((t["price"].to_numpy() >= lo) & (t["price"].to_numpy() <= hi)).all()
    np.testing.assert_allclose(t["price"] * t["amount"], t["notional_usd"], rtol=1e-9)
    at_signal = bar.isin(signals.index)
    direction = signals["direction"].reindex(bar[at_signal]).to_numpy()
    buys = (t["side"][at_signal] == "buy").to_numpy()
    assert ((buys == (direction > 0)).mean()) > 0.75
    per_bar = t.groupby(bar).size()
    assert per_bar.reindex(signals.index).fillna(0).mean() > per_bar.mean()


def test_book_snapshot_each_bar_leans_with_the_current_flow_only(pair):
    _, (bundle, _) = pair  # null market: after signal bars the planted one drifts with the flow, by design
    b, c = bundle.book, bundle.candles
    assert len(b) == len(c)
    assert (b.index == c.index + pd.Timedelta("5min") - pd.Timedelta("1s")).all()
    assert (b["best_bid"] < b["best_ask"]).all()
    assert (b["largest_bid_usd"] <= b["bid_depth_usd"]).all() and (b["largest_ask_usd"] <= b["ask_depth_usd"]).all()
    imbalance = (b["bid_depth_usd"] / (b["bid_depth_usd"] + b["ask_depth_usd"])).to_numpy()
    share = (c["taker_buy_volume"] / c["volume"]).to_numpy()
    assert np.corrcoef(imbalance, share)[0, 1] > 0.5
    next_sign = np.sign(np.log(c["close"]).diff().shift(-1).to_numpy())
    ok = np.isfinite(next_sign)
    # no look-ahead: the imbalance says nothing about the next bar beyond chance (4 standard errors)
    assert abs(np.corrcoef(imbalance[ok], next_sign[ok])[0, 1]) < 4 / np.sqrt(ok.sum())


def test_signal_bars_show_the_documented_spike_and_flow(pair):
    (bundle, signals), (_, null_signals) = pair
    c = bundle.candles
    pd.testing.assert_frame_equal(signals.drop(columns="drifts"), null_signals.drop(columns="drifts"))
    assert not null_signals["drifts"].any() and (signals["drifts"] == signals["pays"]).all()
    pd.testing.assert_frame_equal(signals, planted_signals(SynthConfig(seed=_seed_of(pair), n_bars=N_BARS)))
    bars = signals["bar"].to_numpy()
    assert bars.min() >= SIGNAL_WARMUP_BARS
    assert 0.006 < len(bars) / (N_BARS - SIGNAL_WARMUP_BARS) < 0.014
    longs = (signals["direction"] > 0).mean()
    assert 0.3 < longs < 0.7
    volume = c["volume"].to_numpy()
    for bar in bars:
        for window in SIGNAL_MEDIAN_WINDOWS:
            assert volume[bar] >= 3 * np.median(volume[bar - window : bar])
    share = (c["taker_buy_volume"] / c["volume"]).to_numpy()[bars]
    direction = signals["direction"].to_numpy()
    assert (share[direction > 0] >= 0.75).all() and (share[direction < 0] <= 0.25).all()
    null_ret = np.log(pair[1][0].candles["close"]).diff().to_numpy()[bars]  # no drift of earlier signals
    assert (np.sign(null_ret) == direction).all()
    ret = np.log(c["close"]).diff().to_numpy()[bars]
    assert (np.sign(ret) == direction).mean() > 0.95


def test_outside_signal_bars_the_signal_condition_is_rare(pair):
    (bundle, signals), _ = pair
    c = bundle.candles
    median = pd.concat([c["volume"].rolling(w).median().shift(1) for w in SIGNAL_MEDIAN_WINDOWS], axis=1).max(axis=1)
    share = c["taker_buy_volume"] / c["volume"]
    condition = (c["volume"] >= 3 * median) & ((share >= 0.75) | (share <= 0.25))
    outside = condition.drop(signals.index)
    assert outside.sum() <= 0.05 * len(signals)
    assert condition.reindex(signals.index).all()


def test_planted_and_null_differ_only_by_the_drift(pair):
    (planted, signals), (null, _) = pair
    cfg = SynthConfig()
    expected = planted_drift(SynthConfig(seed=signals.attrs["seed"], n_bars=N_BARS))
    signal_part = np.zeros(N_BARS)
    for row in signals[signals["drifts"]].itertuples():
        signal_part[row.bar + 1 : row.bar + 1 + cfg.edge_horizon] += row.direction * np.log1p(cfg.edge_drift) / cfg.edge_horizon
    trend_part = np.round((expected - signal_part) / cfg.trend_drift, 9)
    assert set(np.unique(trend_part)) == {-1.0, 0.0, 1.0}  # what is left is the trend regimes' drift
    diff = np.diff(np.log(planted.candles["close"].to_numpy()), prepend=0.0) - np.diff(
        np.log(null.candles["close"].to_numpy()), prepend=0.0
    )
    np.testing.assert_allclose(diff, expected, atol=1e-10)
    for col in ("volume", "trades", "taker_buy_volume"):
        np.testing.assert_array_equal(planted.candles[col].to_numpy(), null.candles[col].to_numpy(), err_msg=col)
    for col in ("trade_id", "side", "notional_usd"):
        np.testing.assert_array_equal(planted.trades[col].to_numpy(), null.trades[col].to_numpy(), err_msg=col)
    assert planted.trades.index.equals(null.trades.index)
    for col in ("bid_depth_usd", "ask_depth_usd"):
        np.testing.assert_array_equal(planted.book[col].to_numpy(), null.book[col].to_numpy(), err_msg=col)
    pd.testing.assert_frame_equal(planted.btc, null.btc)


def _forward_returns(bundle, signals, horizon):
    log_close = np.log(bundle.candles["close"].to_numpy())
    full = signals[signals["bar"] + horizon < len(log_close)]
    bars = full["bar"].to_numpy()
    return full["direction"].to_numpy() * (log_close[bars + horizon] - log_close[bars])


def test_drift_after_signals_is_positive_when_planted_and_zero_in_null(pair):
    (planted, signals), (null, _) = pair
    cfg = SynthConfig()
    fwd_planted = _forward_returns(planted, signals, cfg.edge_horizon)
    fwd_null = _forward_returns(null, signals, cfg.edge_horizon)
    se = fwd_null.std(ddof=1) / np.sqrt(len(fwd_null))
    expected = cfg.edge_probability * np.log1p(cfg.edge_drift)
    assert abs(fwd_null.mean()) < 4 * se
    assert fwd_planted.mean() > 3 * se
    assert abs(fwd_planted.mean() - expected) < 4 * se


def test_edge_probability_sets_the_share_of_signals_that_pay():
    always = planted_signals(SynthConfig(seed=9, n_bars=N_BARS, edge_probability=1.0))
    never = planted_signals(SynthConfig(seed=9, n_bars=N_BARS, edge_probability=0.0))
    assert always["drifts"].all() and not never["drifts"].any()
    assert always.index.equals(never.index)


@pytest.mark.parametrize("seed", SEEDS)
def test_thirty_days_have_heavy_tails_and_clustered_volatility(seed):
    summary = market_summary(synthesize(SynthConfig(seed=seed, n_bars=30 * 288)).candles)
    assert summary["excess_kurtosis"] > 5
    assert summary["abs_return_autocorr_1"] > 0.1
    assert summary["volume_abs_return_corr"] > 0.3
    assert 0.01 < summary["daily_volatility"] < 0.5
    assert summary["bars_per_day"] == pytest.approx(288, rel=0.01)


def test_market_summary_on_a_hand_made_frame():
    """Log returns a * (1, -1, 2, -2) repeated, volume = |return|: every figure is known."""
    index = pd.date_range("2025-01-01", periods=10 * 24, freq="1h", tz="UTC")
    pattern = np.array([1.0, -1.0, 2.0, -2.0]) * 0.01
    log_ret = np.concatenate(([0.0], np.tile(pattern, 60)[:-1]))
    close = np.exp(np.cumsum(log_ret))
    volume = np.abs(log_ret) + np.where(np.arange(len(index)) == 0, 0.01, 0.0)
    candles = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": volume}, index=index)
    summary = market_summary(candles)
    assert summary["daily_volatility"] == pytest.approx(0.0, abs=1e-9)  # 24 bars sum to zero each day
    assert summary["excess_kurtosis"] == pytest.approx(8.5 / 2.5**2 - 3, abs=0.05)
    assert summary["abs_return_autocorr_1"] == pytest.approx(0.0, abs=0.02)
    assert summary["volume_abs_return_corr"] == pytest.approx(1.0)
    assert summary["bars_per_day"] == pytest.approx(24, rel=0.01)


def _seed_of(pair) -> int:
    (_, signals), _ = pair
    for seed in SEEDS:
        if planted_signals(SynthConfig(seed=seed, n_bars=N_BARS)).index.equals(signals.index):
            return seed
    raise AssertionError("signals match no seed")


def test_cli_synth_stores_the_market(tmp_path, capsys):
    storage = pytest.importorskip("aster_rl.storage", reason="the storage package is not available")
    from aster_rl.cli import main
    from aster_rl.config import load_config

    code = main(["--set", f"data.data_dir={tmp_path}", "data", "synth", "--bars", "2000", "--seed", "5"])
    assert code == 0
    out = capsys.readouterr().out
    assert str(tmp_path) in out and "2000" in out
    cfg = load_config(None, [f"data.data_dir={tmp_path}"])
    db = storage.Database.from_config(cfg.data)
    stored = storage.load_candles(db, "synthetic", cfg.data.symbol, "5m")
    expected = synthesize(SynthConfig(seed=5, n_bars=2000)).candles
    assert len(stored) == 2000
    np.testing.assert_allclose(stored["close"].to_numpy(), expected["close"].to_numpy(), rtol=1e-9)
    assert len(storage.load_candles(db, "synthetic", cfg.data.btc_symbol, "5m")) == 2000
    # running it again stores nothing new
    assert main(["--set", f"data.data_dir={tmp_path}", "data", "synth", "--bars", "2000", "--seed", "5"]) == 0
    assert "candles 0 new rows" in capsys.readouterr().out


def test_cli_synth_rejects_bad_bars(tmp_path, capsys):
    from aster_rl.cli import main

    assert main(["--set", f"data.data_dir={tmp_path}", "data", "synth", "--bars", "0"]) == 2
    assert "n_bars" in capsys.readouterr().err
