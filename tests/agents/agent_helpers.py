"""Small configs for the agent tests."""

from __future__ import annotations

from aster_rl.config import AppConfig, replace


def tiny_config(tmp_path, **train) -> AppConfig:
    t = {"total_timesteps": 256, "n_envs": 4, "n_steps": 32, "batch_size": 64, "n_epochs": 2, "eval_freq": 128,
         "net_arch": [16], "checkpoint_dir": str(tmp_path / "checkpoints"), "progress_bar": False, "seed": 3}
    t.update(train)
    return replace(
        AppConfig(),
        data={"data_dir": str(tmp_path / "data")},
        synth={"n_bars": 12 * 288, "seed": 11},
        env={"episode_length": 64},
        train=t,
        eval={"random_seeds": 2, "bootstrap_samples": 50, "bootstrap_block": 24},
    )


