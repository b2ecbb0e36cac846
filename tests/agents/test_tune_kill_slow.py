"""A tune worker killed mid-trial: the heartbeat fails its trial, the trial is queued again and the study
ends with the same values and the same best configuration as an undisturbed study."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agent_helpers import tiny_config

from agents.data import build_dataset
from agents.tune import TuneSpec, best_trial, load_study, tune, values_by_hash
from aster_rl.config import replace, to_toml

pytest.importorskip("optuna")
pytestmark = pytest.mark.slow  # about a minute: two studies of four tiny trials and a heartbeat's grace period

GRID = ("train.learning_rate", "env.max_leverage")
ROOT = Path(__file__).resolve().parents[2]


def _worker(config_file: Path, url: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "aster_rl.cli", "--config", str(config_file), "tune", "--storage", url, "--study", "killed",
            "--trials", "4", "--params", ",".join(GRID), "--sampler", "grid", "--pruner", "none",
            "--heartbeat", "1", "--grace", "3"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def test_a_killed_worker_s_trial_is_retried_and_the_study_ends_as_undisturbed(tmp_path, postgres):
    cfg = replace(tiny_config(tmp_path, total_timesteps=1024, eval_freq=256), live={"wait_outside_support": False})
    dataset = build_dataset(cfg)  # stores the synthetic market once, before any worker reads it
    url = postgres.new_database("optuna")
    calm = tune(TuneSpec(config=cfg, storage=url, study="calm", trials=4, params=GRID, sampler="grid", pruner="none"),
                dataset=dataset)
    calm_study = load_study(url, "calm")

    config_file = tmp_path / "base.toml"
    config_file.write_text(to_toml(cfg))
    procs = [_worker(config_file, url) for _ in range(2)]
    try:
        victim = procs[0]
        deadline = time.monotonic() + 240
        killed_trial = None
        while killed_trial is None:
            assert time.monotonic() < deadline, "no trial of the first worker started"
            assert victim.poll() is None, victim.communicate()
            try:
                study = load_study(url, "killed")
            except Exception:  # not created yet
                time.sleep(0.2)
                continue
            for t in study.get_trials(deepcopy=False):
                if t.state.name == "RUNNING" and t.user_attrs.get("worker", "").endswith(f":{victim.pid}"):
                    time.sleep(1.0)  # well inside the training
                    os.kill(victim.pid, signal.SIGKILL)
                    killed_trial = t.number
                    break
            time.sleep(0.1)
        victim.wait(timeout=30)
        out, err = procs[1].communicate(timeout=300)
        assert procs[1].returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    study = load_study(url, "killed")
    states = [t.state.name for t in study.trials]
    assert study.trials[killed_trial].state.name == "FAIL"
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed_trial]
    assert len(retried) == 1 and retried[0].state.name == "COMPLETE", states
    assert retried[0].params == study.trials[killed_trial].params
    assert states.count("COMPLETE") == 4
    assert values_by_hash(study) == values_by_hash(calm_study)  # every configuration's value, as undisturbed
    best, calm_best = best_trial(study), best_trial(calm_study)
    assert best is not None and calm_best is not None and best.params == calm_best.params == calm.best_params
    assert "best configuration (4 trials recorded as train.trials)" in out
