"""The differential Sharpe ratio reward (Moody & Saffell), by hand and in the env."""

import itertools

import numpy as np
import pytest

from aster_rl.config import EnvConfig
from aster_rl.sim import kernels as K
from envs import PerpEnv
from test_decision import synthetic


def test_hand_computed_steps():
    F = np.zeros((K.NF, 1))
    # step 1: no moments yet (B - A^2 = 0): D = 0; then A = 0.5 * 0.01, B = 0.5 * 1e-4
    assert K._differential_sharpe(F, 0, 0.5, 100.0, 101.0) == 0.0
    assert F[K.DSR_A, 0] == pytest.approx(0.005) and F[K.DSR_B, 0] == pytest.approx(5e-5)
    # step 2: R = 0.005: dA = 0, dB = 2.5e-5 - 5e-5; var = 5e-5 - 2.5e-5 = 2.5e-5
    # D = (5e-5 * 0 - 0.5 * 0.005 * (-2.5e-5)) / (2.5e-5)^1.5 = 6.25e-8 / 1.25e-7 = 0.5
    assert K._differential_sharpe(F, 0, 0.5, 101.0, 101.0 * 1.005) == pytest.approx(0.5, rel=1e-9)
    assert F[K.DSR_A, 0] == pytest.approx(0.005) and F[K.DSR_B, 0] == pytest.approx(3.75e-5)
    # step 3: R = -0.02: var = 3.75e-5 - 2.5e-5 = 1.25e-5, dA = -0.025, dB = 4e-4 - 3.75e-5
    want = (3.75e-5 * -0.025 - 0.5 * 0.005 * (4e-4 - 3.75e-5)) / 1.25e-5**1.5
    assert want < -K.DSR_CLIP  # -> clipped
    assert K._differential_sharpe(F, 0, 0.5, 100.0, 98.0) == -K.DSR_CLIP


def reference(equity: np.ndarray, eta: float) -> np.ndarray:
    a = b = 0.0
    out = []
    for prev, eq in itertools.pairwise(equity):
        r = eq / prev - 1.0
        var = b - a * a
        d = 0.0 if var <= 1e-24 else float(np.clip((b * (r - a) - 0.5 * a * (r * r - b)) / var**1.5, -K.DSR_CLIP, K.DSR_CLIP))
        a, b = a + eta * (r - a), b + eta * (r * r - b)
        out.append(d)
    return np.array(out)


def test_env_reward_is_the_differential_sharpe_of_the_net_equity():
    features, prices = synthetic()
    cfg = EnvConfig(reward="differential_sharpe", dsr_eta=0.05, episode_length=200)
    env = PerpEnv(features, prices, cfg, random_start=False)
    env.reset()
    rng = np.random.default_rng(2)
    equity, rewards = [cfg.initial_equity_usd], []
    for _ in range(150):
        _o, r, te, tr, info = env.step(np.array([rng.integers(0, 3), 2, 1]))
        equity.append(info["equity"])
        rewards.append(r)
        if te or tr:
            break
    assert len(set(np.round(equity, 6))) > 20  # the account traded: fees and price moves
    np.testing.assert_allclose(rewards, reference(np.array(equity), 0.05), rtol=1e-9, atol=1e-12)
    assert rewards[0] == 0.0
    # a new episode starts the moments again
    env.reset()
    _o, r, *_ = env.step(np.array([1, 2, 1]))
    assert r == 0.0
