"""Permutation importance: a tentacle the policy never reads has no importance; the one it reads has."""

import numpy as np
import pytest

from aster_rl.config import EnvConfig
from aster_rl.errors import DataError

from agents.importance import permutation_importance


def regime_policy(columns):
    i = columns.index("regime_state")

    def policy(obs):
        side = 1 if round(float(obs[i])) == 1 else 2 if round(float(obs[i])) == 2 else 0
        return np.array([side, 0, 0])

    return policy


def test_only_the_tentacle_read_by_the_policy_matters(tiny_dataset):
    ds = tiny_dataset
    groups = ds.schema.column_groups()
    chosen = {k: groups[k] for k in ("regime", "whales", "indicators")}
    n = len(ds)
    cfg = EnvConfig(episode_length=64)
    imp = permutation_importance(regime_policy(ds.columns), ds.matrix, ds.prices, cfg, chosen, ds.columns,
                                 start=n - 600, end=n, repeats=2, seed=1)
    assert set(imp.index) == {"regime", "whales", "indicators"}
    for unused in ("whales", "indicators"):
        assert imp.loc[unused, "action_agreement"] == 1.0
        assert imp.loc[unused, "net_return_drop"] == 0.0
        assert imp.loc[unused, "net_return"] == pytest.approx(imp.attrs["base_net_return"])
    assert imp.loc["regime", "side_agreement"] < 0.95
    assert imp.loc["regime", "net_return_drop"] != 0.0
    assert imp.loc["regime", "n_columns"] == len(groups["regime"])
    assert imp.attrs["bars"] > 500


def test_bad_arguments(tiny_dataset):
    ds = tiny_dataset
    pol = regime_policy(ds.columns)
    with pytest.raises(DataError, match="outside"):
        permutation_importance(pol, ds.matrix, ds.prices, EnvConfig(), {}, ds.columns, start=10, end=len(ds) + 1)
    with pytest.raises(DataError, match="column names"):
        permutation_importance(pol, ds.matrix, ds.prices, EnvConfig(), {}, ds.columns[:-1], start=10, end=100)
    with pytest.raises(ValueError, match="repeats"):
        permutation_importance(pol, ds.matrix, ds.prices, EnvConfig(), {}, ds.columns, start=10, end=100, repeats=0)
