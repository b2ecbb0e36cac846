"""train.exposure_penalty_warmup: the charge rises from 0 to env.exposure_penalty over the first timesteps."""

from __future__ import annotations

import pytest

from agents.callbacks import PenaltyWarmup, event_scalar_tags, warmup_value
from agents.run_dir import RunDir
from agents.train import train
from aster_rl.config import replace

from agent_helpers import tiny_config


def test_warmup_value_rises_linearly_then_holds():
    assert [warmup_value(t, 100, 2e-4) for t in (0, 25, 50, 100, 400)] == pytest.approx([0, 5e-5, 1e-4, 2e-4, 2e-4])
    assert warmup_value(0, 0, 2e-4) == 2e-4  # no warm-up: full from the start


def test_the_callback_sets_the_schedule_at_every_rollout_start_inside_learn():
    from stable_baselines3 import PPO

    seen: list[float] = []
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"net_arch": [8]})
    model.learn(total_timesteps=96, callback=PenaltyWarmup(seen.append, final=1e-3, warmup=64))
    assert seen == pytest.approx([0.0, 2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])


def test_a_run_with_a_warmup_trains_and_logs_the_charge(tmp_path):
    from agents.data import build_dataset
    from aster_rl.data.synthetic import synthesize

    cfg = tiny_config(tmp_path, exposure_penalty_warmup=128, tensorboard=True)
    cfg = replace(cfg, env={"episode_length": 64, "exposure_penalty": 2e-4})
    result = train(cfg, build_dataset(cfg, market=synthesize(cfg.synth)))
    assert "train/exposure_penalty" in event_scalar_tags(RunDir(result.run_dir).tensorboard)
    assert "exposure_penalty_warmup = 128" in RunDir(result.run_dir).config.read_text()
