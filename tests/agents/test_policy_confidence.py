"""Confidence = P(side): the side head's probability, the marginal of SB3's joint
MultiDiscrete distribution over leverage and profile; the other heads and the entropy beside it."""

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy

from agents.policy import LoadedPolicy
from aster_rl.config import AppConfig
from aster_rl.live.policy import decide
from aster_rl.sim.observation import N_ACCOUNT
from aster_rl.evaluation.support import ObservationSupport

SIDE = np.log([0.2, 0.5, 0.3])  # WAIT, BUY, SELL
LEVERAGE = np.log([0.1, 0.2, 0.3, 0.4])
PROFILE = np.log([0.6, 0.25, 0.15])


def hand_policy(n_features: int = 2) -> LoadedPolicy:
    """An SB3 actor-critic whose action logits are fixed: the action net's weights are zero, its bias the logits."""
    obs_space = spaces.Box(-np.inf, np.inf, (n_features + N_ACCOUNT,), np.float32)
    net = ActorCriticPolicy(obs_space, spaces.MultiDiscrete([3, 4, 3]), lambda _: 1e-3, net_arch=[4])
    action_net = net.action_net
    assert isinstance(action_net, torch.nn.Linear)
    with torch.no_grad():
        action_net.weight.zero_()
        action_net.bias.copy_(torch.tensor(np.concatenate([SIDE, LEVERAGE, PROFILE]), dtype=torch.float32))
    model = SimpleNamespace(policy=net, predict=lambda obs, deterministic=True: net.predict(obs, deterministic=deterministic))
    return LoadedPolicy(model, None, None, AppConfig(), None)


def test_confidence_is_the_marginal_of_the_side_head():
    pol = hand_policy()
    obs = np.zeros(2 + N_ACCOUNT, dtype=np.float32)
    d = pol.decide(obs)
    np.testing.assert_array_equal(d.action, [1, 3, 0])  # BUY, the 4th rung, the first profile
    assert d.confidence == pytest.approx(0.5, abs=1e-6)
    # the marginal summed from SB3's own joint probabilities
    net = pol.model.policy
    with torch.no_grad():
        obs_t, _ = net.obs_to_tensor(obs)
        dist = net.get_distribution(obs_t)
        joint = {a: float(torch.exp(dist.log_prob(torch.tensor([a])))[0]) for a in itertools.product(range(3), range(4), range(3))}
    marginal = sum(p for (s, _, _), p in joint.items() if s == d.action[0])
    assert d.confidence == pytest.approx(marginal, abs=1e-6)
    assert joint[tuple(d.action)] == pytest.approx(0.5 * 0.4 * 0.6, abs=1e-6)  # what used to be printed
    assert d.leverage_probability == pytest.approx(0.4, abs=1e-6)
    assert d.profile_probability == pytest.approx(0.6, abs=1e-6)
    entropy = sum(-(np.exp(x) * x).sum() for x in (SIDE, LEVERAGE, PROFILE))
    assert d.entropy == pytest.approx(entropy, abs=1e-5)
    # the live runner's view of the same decision
    live = decide(pol, obs)
    assert live.action == (1, 3, 0) and live.confidence == pytest.approx(0.5, abs=1e-6)
    assert live.leverage_probability == pytest.approx(0.4, abs=1e-6) and live.entropy == pytest.approx(entropy, abs=1e-5)


def test_a_full_observation_is_reduced_to_the_runs_columns():
    train = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    train[:, 1] = 7.0  # constant over training: left out
    train[:, 3] = 0.0
    support = ObservationSupport.fit(train, ["a", "b", "c", "d"], exclude=())
    assert support.kept == ["a", "c"]
    pol = hand_policy(n_features=2)
    pol.support = support
    full = np.zeros(4 + N_ACCOUNT, dtype=np.float32)
    assert pol.normalize(full).shape == (2 + N_ACCOUNT,)
    np.testing.assert_array_equal(pol.predict(full), [1, 3, 0])
