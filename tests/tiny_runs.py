"""A tiny trained run for the tests that drive it through the CLI (live replay, gate, dashboard, parity)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aster_rl.config import AppConfig, replace, to_toml


def tiny_trained_run(tmp: Path, name: str, *, timesteps: int = 256, n_epochs: int = 2, eval_freq: int = 128,
                     live: dict[str, Any] | None = None) -> tuple[AppConfig, Path, Path, Any]:
    """A tiny PPO run on a stored 12-day synthetic market (seed 5) under ``tmp``, its config written as
    ``tmp/config.toml``: (config, config file, run directory, dataset). ``live``: the live section
    (the kill file under ``tmp`` unless given)."""
    from agents.data import build_dataset
    from agents.train import train

    cfg = replace(
        AppConfig(),
        data={"data_dir": str(tmp / "data")},
        synth={"n_bars": 12 * 288, "seed": 5},
        env={"episode_length": 64},
        train={"total_timesteps": timesteps, "n_envs": 4, "n_steps": 32, "batch_size": 64, "n_epochs": n_epochs,
               "eval_freq": eval_freq, "net_arch": [16], "checkpoint_dir": str(tmp / "checkpoints"),
               "progress_bar": False, "seed": 3, "name": name},
        eval={"random_seeds": 2, "bootstrap_samples": 50, "bootstrap_block": 16},
        live={"kill_file": str(tmp / "KILL"), **(live or {})},
    )
    dataset = build_dataset(cfg)  # stores the synthetic market in the database first
    run_dir = train(cfg, dataset).run_dir
    config_file = tmp / "config.toml"
    config_file.write_text(to_toml(cfg))
    return cfg, config_file, run_dir, dataset
