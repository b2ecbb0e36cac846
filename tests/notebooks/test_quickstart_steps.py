"""The quickstart notebook's steps: its market (synthetic or the shared real files), the observation by
tentacle, the notebook progress bar and the two figures only it draws."""

import matplotlib

matplotlib.use("Agg")

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import envs  # noqa: F401  (registers AsterFutures-v0)
from aster_rl.errors import DataError
from aster_rl.sim.observation import ACCOUNT_COLUMNS

from agents import notebooks as N
from agents import plots as P
from agents.data import build_dataset, load_market_for

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REAL = ["ASTERUSDT_5m.csv", "BTCUSDT_5m.csv", "ETHUSDT_5m.csv"]


def tiny(tmp_path, n_bars=600):
    return N.tiny_config(data_dir=tmp_path / "data", checkpoint_dir=tmp_path / "ck", n_bars=n_bars)


def test_synthetic_market_is_stored_under_a_source_naming_its_bars_and_rebuilds_from_the_config(tmp_path):
    config, market = N.notebook_market(tiny(tmp_path))
    assert config.data.source == "synthetic-planted-s7-600" and len(market) == 600
    assert load_market_for(config).candles.equals(market.candles)  # what a run's saved config reads back
    again, same = N.notebook_market(tiny(tmp_path))  # stored twice: nothing doubles
    assert again.data.source == config.data.source and same.candles.equals(market.candles)
    other, longer = N.notebook_market(tiny(tmp_path, n_bars=700))  # the same database, another market beside it
    assert other.data.source == "synthetic-planted-s7-700" and len(longer) == 700
    assert len(load_market_for(config)) == 600


def test_real_market_is_the_last_bars_of_the_named_files(real_data, tmp_path):
    market = N.real_market(REAL, 500, "BTC/USDT:USDT", "ETH/USDT:USDT")
    aster = pd.read_csv(real_data / "ASTERUSDT_5m.csv")
    assert market.symbol == "ASTER/USDT:USDT" and market.timeframe == "5m" and len(market) == 500
    assert int(market.candles.index[-1].value // 1_000_000) == int(aster["timestamp"].iloc[-1])
    assert market.candles["close"].to_numpy() == pytest.approx(aster["close"].to_numpy()[-500:])
    for companion in (market.btc, market.eth):
        assert companion is not None and companion.index[0] >= market.candles.index[0]
        assert companion.index[-1] == market.candles.index[-1]

    config, stored = N.notebook_market(tiny(tmp_path), REAL, 500)
    assert config.data.source.startswith("real-5m-") and config.data.source.endswith("-500")
    assert config.data.symbol == "ASTER/USDT:USDT" and stored.candles.equals(market.candles)
    assert stored.btc is not None and len(stored.btc) == len(market.btc)


def test_real_files_that_do_not_make_one_market_are_refused_in_one_line(real_data):
    with pytest.raises(DataError, match="expected one traded market"):
        N.real_market(["BTCUSDT_5m.csv", "ETHUSDT_5m.csv"], 100, "BTC/USDT:USDT", "ETH/USDT:USDT")
    with pytest.raises(DataError, match="15m"):
        N.real_market(["ASTERUSDT_5m.csv", "BTCUSDT_15m.csv"], 100, "BTC/USDT:USDT", "ETH/USDT:USDT")
    with pytest.raises(DataError, match="no such file"):
        N.real_market(["NOPEUSDT_5m.csv"], 100, "BTC/USDT:USDT", "ETH/USDT:USDT")


def test_observation_by_tentacle_covers_every_value_once(tmp_path):
    config, market = N.notebook_market(tiny(tmp_path, n_bars=1_000))  # past the features' warm-up (624 bars)
    dataset = build_dataset(config, market)
    env = gym.make("AsterFutures-v0", market=market, config=config, render_mode="ansi", random_start=False)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step((1, 0, 0))
    assert "LONG" in env.render()
    frame = N.observation_by_tentacle(obs, dataset.schema)
    assert list(frame.index) == [*dataset.schema.tentacles, "account"]
    assert int(frame["columns"].sum()) == len(obs) and frame.loc["account", "columns"] == len(ACCOUNT_COLUMNS)
    assert "side=1" in frame.loc["account", "values"]  # the long just opened
    assert frame.loc["indicators", "values"].startswith(dataset.schema.column_groups()["indicators"][0][len("indicators_"):])
    with pytest.raises(DataError, match="observation has"):
        N.observation_by_tentacle(obs[:-1], dataset.schema)


def test_notebook_progress_bar_replaces_sb3s_bar_only_inside(capsys):
    import stable_baselines3.common.callbacks as sb3_callbacks

    rich_bar = sb3_callbacks.tqdm
    with N.notebook_progress_bar():
        assert sb3_callbacks.tqdm is not rich_bar
        bar = sb3_callbacks.tqdm(total=8)
        bar.update(8)
        bar.close()
    assert sb3_callbacks.tqdm is rich_bar
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        assert "8/8" in capsys.readouterr().out  # the text bar, on stdout
    with pytest.raises(RuntimeError), N.notebook_progress_bar():
        raise RuntimeError("training failed")
    assert sb3_callbacks.tqdm is rich_bar


def test_training_curves_and_market_figures(tmp_path):
    tb = pd.DataFrame({"tag": ["train/value_loss"] * 3 + ["eval/net_pnl_usd"] * 2 + ["other/x"],
                       "step": [1, 2, 3, 2, 3, 1], "value": np.arange(6.0), "wall_time": 0.0})
    fig = P.training_curves(tb)
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["train/value_loss", "eval/net_pnl_usd"]
    assert P.training_curves(tb[tb["tag"] == "other/x"]) is None
    idx = pd.date_range("2025-03-01", periods=60, freq="5min", tz="UTC")
    candles = pd.DataFrame({"close": np.linspace(1, 2, 60), "volume": 1.0}, index=idx)
    market = P.market_close(candles, {"train": (idx[0], idx[29]), "test": (idx[40], idx[59])})
    for i, f in enumerate((fig, market)):
        P.save(f, tmp_path / f"{i}.png")
        assert (tmp_path / f"{i}.png").read_bytes()[:8] == PNG_MAGIC
        matplotlib.pyplot.close(f)
