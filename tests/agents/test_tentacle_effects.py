"""Why this action: P(side | all) − P(side | tentacle blanked) per tentacle, on hand-made policies."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy

from agents.policy import LoadedPolicy, tentacle_effects
from aster_rl.config import AppConfig
from aster_rl.live.policy import tentacle_effects as live_effects
from aster_rl.sim.observation import N_ACCOUNT

NAMES = ["regime_a", "regime_b", "flow_a", "vol_a"]
GROUPS = {"regime": ["regime_a", "regime_b"], "orderflow": ["flow_a"], "volatility": ["vol_a"]}


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_a_policy_reading_one_column_gives_its_tentacle_all_the_effect():
    positions = {"regime": [0, 1], "orderflow": [2], "volatility": [3]}

    def reads_flow(batch: np.ndarray) -> np.ndarray:  # only column 2 matters
        x = np.asarray(batch)[:, 2]
        return softmax(np.stack([np.zeros_like(x), 2.0 * x, -x], axis=1))

    obs = np.array([0.7, -1.2, 1.5, 0.3, 0.0, 1.0], dtype=np.float32)
    p_all = reads_flow(obs[None, :])[0]
    p_blank = reads_flow(np.array([[0.7, -1.2, 0.0, 0.3, 0.0, 1.0]]))[0]
    for side in (0, 1, 2):
        effects = tentacle_effects(reads_flow, obs, positions, side)
        assert set(effects) == set(positions)
        assert effects["orderflow"] == pytest.approx(p_all[side] - p_blank[side])
        assert effects["orderflow"] != 0.0
        assert effects["regime"] == 0.0 and effects["volatility"] == 0.0
    # BUY grows with the column: blanking a positive reading lowers P(BUY), raises P(WAIT)
    assert tentacle_effects(reads_flow, obs, positions, 1)["orderflow"] > 0
    assert tentacle_effects(reads_flow, obs, positions, 0)["orderflow"] < 0


def test_two_tentacles_share_the_effect_and_empty_ones_are_left_out():
    def additive(batch: np.ndarray) -> np.ndarray:
        b = np.asarray(batch)
        return softmax(np.stack([np.zeros(len(b)), b[:, 0] + b[:, 3], np.zeros(len(b))], axis=1))

    effects = tentacle_effects(additive, np.array([1.0, 5.0, 9.0, 1.0]), {"regime": [0, 1], "flow": [2], "vol": [3], "gone": []}, 1)
    assert set(effects) == {"regime", "flow", "vol"}
    assert effects["flow"] == 0.0
    assert effects["regime"] == pytest.approx(effects["vol"]) and effects["regime"] > 0
    with pytest.raises(ValueError, match="side 3"):
        tentacle_effects(additive, np.zeros(4), {"regime": [0]}, 3)


def one_column_policy(column: int, support=None) -> LoadedPolicy:
    """An SB3 actor-critic whose policy network sees only feature ``column`` (the other first-layer weights are zero)."""
    torch.manual_seed(0)
    obs_space = spaces.Box(-np.inf, np.inf, (len(NAMES) + N_ACCOUNT,), np.float32)
    net = ActorCriticPolicy(obs_space, spaces.MultiDiscrete([3, 4, 3]), lambda _: 1e-3, net_arch=[8])
    first = net.mlp_extractor.policy_net[0]
    assert isinstance(first, torch.nn.Linear)
    with torch.no_grad():
        keep = first.weight[:, column].clone()
        first.weight.zero_()
        first.weight[:, column] = keep * 5
    model = SimpleNamespace(policy=net, predict=lambda obs, deterministic=True: net.predict(obs, deterministic=deterministic))
    schema = SimpleNamespace(names=NAMES, column_groups=lambda: GROUPS)
    return LoadedPolicy(model, None, schema, AppConfig(), None, support)


def test_a_loaded_policy_reading_one_tentacle_and_the_live_view_of_it():
    pol = one_column_policy(NAMES.index("vol_a"))
    obs = np.array([0.4, -0.9, 1.3, 1.7, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0][: len(NAMES) + N_ACCOUNT], dtype=np.float32)
    d = pol.decide(obs)
    side = d.action[0]
    effects = pol.tentacle_effects(obs, side)
    assert set(effects) == set(GROUPS)
    assert abs(effects["volatility"]) > 1e-4
    assert effects["regime"] == pytest.approx(0.0, abs=1e-7) and effects["orderflow"] == pytest.approx(0.0, abs=1e-7)
    # the first row of the batch is the decision itself: P(side | all) is the decision's confidence
    blanked = obs.copy()
    blanked[NAMES.index("vol_a")] = 0.0
    assert effects["volatility"] == pytest.approx(d.confidence - pol.side_probabilities(blanked[None, :])[0, side], abs=1e-6)
    assert live_effects(pol, obs, side) == effects
    assert live_effects(lambda o: np.zeros(3, dtype=np.int64), obs, side) is None  # a plain policy cannot say
    pol.schema = None  # no feature schema: no tentacles to blank
    assert pol.tentacle_effects(obs, side) == {}
