"""``walkforward`` fanned out through the study storage: the same aggregate as the sequential run, with two
workers and after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agent_helpers import tiny_config

from agents.data import build_dataset
from agents.evaluate import jsonable
from agents.run_dir import WALKFORWARD_FILE
from agents.tune import load_study
from agents.walkforward import FanoutSpec, walkforward, walkforward_fanout
from aster_rl.config import replace, to_toml

pytest.importorskip("optuna")
ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path):
    return replace(tiny_config(tmp_path, total_timesteps=128, eval_freq=128), synth={"n_bars": 16 * 288},
                   eval={"walkforward_folds": 2, "walkforward_seeds": 2, "random_seeds": 1, "bootstrap_samples": 30},
                   live={"wait_outside_support": False})


def _without_paths(runs):
    return [{k: v for k, v in r.items() if k != "run_dir"} for r in jsonable(runs)]


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wf")
    cfg = _config(tmp)
    dataset = build_dataset(cfg)
    return cfg, dataset, walkforward(cfg, dataset, out_dir=tmp / "sequential")


def test_two_workers_on_postgresql_give_the_sequential_aggregate(sequential, postgres):
    cfg, dataset, seq = sequential
    spec = FanoutSpec(config=cfg, storage=postgres.new_database("wf"))
    fanned = walkforward_fanout(spec, dataset, workers=2)
    assert jsonable(fanned.summary) == jsonable(seq.summary)
    assert _without_paths(fanned.runs) == _without_paths(seq.runs)
    saved = json.loads((spec.out_dir() / WALKFORWARD_FILE).read_text())
    assert saved["summary"] == json.loads((seq.out_dir / WALKFORWARD_FILE).read_text())["summary"]
    study = load_study(spec.storage, spec.study)
    assert sorted(t.params["job"] for t in study.trials if t.state.name == "COMPLETE") == [0, 1, 2, 3]
    again = walkforward_fanout(spec, dataset)  # finished: read back, nothing trained
    assert jsonable(again.summary) == jsonable(seq.summary) and len(study.trials) == len(load_study(spec.storage, spec.study).trials)


def test_a_killed_walkforward_resumes_to_the_sequential_aggregate(sequential, postgres, tmp_path):
    cfg, dataset, seq = sequential
    url = postgres.new_database("wf")
    spec = FanoutSpec(config=cfg, storage=url, heartbeat_s=1, grace_s=3)
    config_file = tmp_path / "wf.toml"
    config_file.write_text(to_toml(cfg))
    argv = [sys.executable, "-m", "aster_rl.cli", "--config", str(config_file), "walkforward", "--storage", url,
            "--heartbeat", "1", "--grace", "3"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no job finished"
            try:
                trials = load_study(url, spec.study).get_trials(deepcopy=False)
            except Exception:  # not created yet
                trials = []
            if any(t.state.name == "COMPLETE" for t in trials) and any(t.state.name == "RUNNING" for t in trials):
                os.kill(proc.pid, signal.SIGKILL)  # one job done, one in flight
                break
            time.sleep(0.1)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    resumed = walkforward_fanout(spec, dataset)
    assert jsonable(resumed.summary) == jsonable(seq.summary)
    assert _without_paths(resumed.runs) == _without_paths(seq.runs)
    states = [t.state.name for t in load_study(url, spec.study).trials]
    assert "FAIL" in states and states.count("COMPLETE") == 4
