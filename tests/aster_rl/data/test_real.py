"""The shared real markets: validated candles, freqtrade funding snapped to its grid, companions cut at the end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aster_rl.data.real import CONTRACTS, read_freqtrade_funding, real_market
from aster_rl.errors import DataError


def test_a_binance_perp_comes_with_its_real_funding_on_the_8h_grid(real_data):
    market = real_market("ltc", real_data)
    raw = pd.read_feather(real_data / "binance-futures" / "LTC_USDT_USDT-8h-funding_rate.feather")
    assert market.symbol == "LTC/USDT:USDT" and market.timeframe == "5m"
    assert market.funding is not None and len(market.funding) == len(raw)
    np.testing.assert_array_equal(market.funding["funding_rate"].to_numpy(), raw["open"].to_numpy(dtype=float))
    assert (market.funding.index.as_unit("ns").asi8 % pd.Timedelta(hours=8).value == 0).all()
    assert market.btc is not None and market.btc.index[-1] <= market.candles.index[-1]
    assert market.eth is not None and market.eth.index[-1] <= market.candles.index[-1]


def test_aster_has_no_funding_in_the_files_and_its_companions_stop_with_it(real_data):
    market = real_market("ASTER", real_data)
    assert market.funding is None
    assert market.btc is not None and market.btc.index[-1] == market.candles.index[-1]
    assert CONTRACTS["ASTER"]["price_tick"] == 0.0001


def test_an_unknown_market_or_folder_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="expected one of ASTER, BTC, ETH, LTC"):
        real_market("DOGE", tmp_path)
    with pytest.raises(DataError, match="no real data folder"):
        real_market("BTC", tmp_path / "absent")


def test_a_funding_file_without_freqtrades_columns_is_refused(tmp_path):
    path = tmp_path / "X_USDT_USDT-8h-funding_rate.feather"
    pd.DataFrame({"time": [1, 2], "rate": [0.0001, 0.0002]}).to_feather(path)
    with pytest.raises(DataError, match="expected freqtrade's funding columns"):
        read_freqtrade_funding(path)


def test_contract_settings_apply_to_a_config():
    from aster_rl.config import AppConfig, replace
    from aster_rl.data.real import contract_settings

    cfg = replace(AppConfig(), **contract_settings("aster"))
    assert cfg.env.price_tick == 0.0001 and cfg.features.funding_interval_hours == 4.0
    cfg = replace(AppConfig(), **contract_settings("BTC"))
    assert cfg.env.price_tick == 0.1 and cfg.env.qty_step == 0.001 and cfg.features.funding_interval_hours == 8.0
    with pytest.raises(DataError, match="expected one of"):
        contract_settings("doge")
