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




def hand_made_run(path, created: float | None = None, *, splits: dict | None = None, which: str = "last"):
    """A run directory with only a model file (and a manifest recording ``created``, when given): enough to be
    listed, not to be loaded."""
    import json
    from pathlib import Path

    from agents.run_dir import RunDir

    rd = RunDir(Path(path))
    rd.path.mkdir(parents=True, exist_ok=True)
    rd.sb3_model(which).write_bytes(b"x")  # type: ignore[arg-type]
    if created is not None:
        rd.manifest.write_text(json.dumps({"format": 1, "algorithm": "sha256", "created": created, "files": {}}))
    if splits is not None:
        rd.splits.write_text(json.dumps(splits))
    return rd
