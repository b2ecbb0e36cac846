"""The seed ensemble: mean heads, WAIT on disagreement, and loading runs that must match."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy

from agents.ensemble import EnsemblePolicy, load_ensemble
from agents.policy import LoadedPolicy
from agents.train import train
from aster_rl.config import AppConfig
from aster_rl.errors import ConfigError
from aster_rl.interfaces import DecidingPolicy
from aster_rl.live.policy import decide
from aster_rl.sim.backtest import backtest
from aster_rl.sim.observation import N_ACCOUNT
from agent_helpers import tiny_config

N_FEATURES = 2
OBS = np.zeros(N_FEATURES + N_ACCOUNT, dtype=np.float32)


def member(side, leverage=(0.25, 0.25, 0.25, 0.25), profile=(0.6, 0.3, 0.1)) -> LoadedPolicy:
    """A policy whose heads' probabilities are fixed (zero weights, the logits as the action net's bias)."""
    obs_space = spaces.Box(-np.inf, np.inf, (N_FEATURES + N_ACCOUNT,), np.float32)
    net = ActorCriticPolicy(obs_space, spaces.MultiDiscrete([3, 4, 3]), lambda _: 1e-3, net_arch=[4])
    assert isinstance(net.action_net, torch.nn.Linear)
    with torch.no_grad():
        net.action_net.weight.zero_()
        net.action_net.bias.copy_(torch.tensor(np.log(np.concatenate([side, leverage, profile])), dtype=torch.float32))
    model = SimpleNamespace(policy=net, predict=lambda obs, deterministic=True: net.predict(obs, deterministic=deterministic))
    return LoadedPolicy(model, None, None, AppConfig(), None)


BUY_SURE = (0.1, 0.8, 0.1)
BUY_WEAK = (0.3, 0.4, 0.3)
SELL_SURE = (0.1, 0.1, 0.8)


def test_mean_heads_and_majority_agreement():
    ens = EnsemblePolicy([member(BUY_SURE), member(BUY_WEAK), member(SELL_SURE, leverage=(0.1, 0.1, 0.1, 0.7))])
    assert isinstance(ens, DecidingPolicy) and ens.agreement == 2
    d = decide(ens, OBS)
    np.testing.assert_allclose(d.probabilities[0], [0.5 / 3, 1.3 / 3, 1.2 / 3], atol=1e-6)
    np.testing.assert_allclose(d.probabilities[1], [0.2, 0.2, 0.2, 0.4], atol=1e-6)
    assert d.action == (1, 3, 0)  # BUY (2 of 3 agree), the mean leverage head's rung, the first profile
    assert d.confidence == pytest.approx(1.3 / 3, abs=1e-6) and d.reason is None
    assert ens.predict(OBS).tolist() == [1, 3, 0]
    assert ens.predict(np.stack([OBS, OBS])).tolist() == [[1, 3, 0], [1, 3, 0]]


def test_wait_when_too_few_members_pick_the_mean_side():
    ens = EnsemblePolicy([member(BUY_SURE), member(BUY_WEAK), member(SELL_SURE)], agreement=3)
    d = ens.decide(OBS)
    assert d.action[0] == 0 and d.confidence is None
    assert d.reason == "WAIT: members disagree (2 of 3 pick BUY, 3 needed)"
    # the mean can pick a side fewer members chose: two weak SELLs against one sure BUY
    weak_sell = (0.3, 0.3, 0.4)
    d = EnsemblePolicy([member((0.02, 0.96, 0.02)), member(weak_sell), member(weak_sell)]).decide(OBS)
    assert d.action[0] == 0 and "1 of 3 pick BUY, 2 needed" in d.reason
    unanimous = EnsemblePolicy([member(BUY_SURE), member(BUY_WEAK)], agreement=2).decide(OBS)
    assert unanimous.action[0] == 1 and unanimous.reason is None
    with pytest.raises(ConfigError, match="agreement"):
        EnsemblePolicy([member(BUY_SURE)], agreement=2)


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory, tiny_dataset):
    tmp = tmp_path_factory.mktemp("ens")
    runs = [train(tiny_config(tmp, seed=s, name=f"seed{s}"), tiny_dataset) for s in (3, 4)]
    other = train(tiny_config(tmp, seed=5, name="other", learning_rate=1e-3), tiny_dataset)
    return [r.run_dir for r in runs], other.run_dir


def test_load_ensemble_of_seed_runs_and_backtest(seed_runs, tiny_dataset):
    runs, _ = seed_runs
    ens = load_ensemble(runs, schema=tiny_dataset.schema, agreement=2)
    assert len(ens.members) == 2 and ens.agreement == 2
    assert "+" in ens.model_version
    ds = tiny_dataset
    test_start = ds.warmup + 300
    obs = np.concatenate([ds.matrix[test_start], np.zeros(N_ACCOUNT, dtype=np.float32)])
    d = ens.decide(obs)
    member_sides = [int(m.decide(obs).action[0]) for m in ens.members]
    mean_side = int(np.argmax(d.probabilities[0]))
    assert d.action[0] == (mean_side if member_sides.count(mean_side) == 2 else 0)
    res = backtest(ens, ds.matrix, ds.prices, ds_cfg(runs), start=test_start, end=test_start + 200)
    assert len(res.equity) == 200


def ds_cfg(runs):
    from agents.run_dir import RunDir

    return RunDir(runs[0]).load_config().env


def test_load_ensemble_refuses_members_that_differ(seed_runs, tiny_dataset):
    runs, other = seed_runs
    with pytest.raises(ConfigError, match=r"train\.learning_rate"):
        load_ensemble([runs[0], other], schema=tiny_dataset.schema)
    with pytest.raises(ConfigError, match="listed twice"):
        load_ensemble([runs[0], runs[0]])
    with pytest.raises(ConfigError, match="at least two"):
        load_ensemble(runs[:1])

