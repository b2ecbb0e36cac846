"""RunDir: the run layout, the creation time and the one rule for the newest run."""

import json
import os
import time

import pytest
from agent_helpers import hand_made_run

from agents import notebooks as N
from agents import run_files
from agents.run_dir import RunDir
from aster_rl.errors import DataError

TEST_SPLITS: dict[str, dict] = {"train": {}, "validation": {}, "test": {}}


def test_paths_follow_the_documented_layout(tmp_path):
    rd = RunDir(tmp_path / "r")
    assert rd.policy("best").name == "policy_best.pt" and rd.normalizer("last").name == "obs_norm_last.npz"
    assert rd.sb3_model("last").name == "model_last.zip" and rd.pickled_normalizer("last").name == "vecnormalize.pkl"
    assert rd.eval.results == tmp_path / "r" / "eval" / "results.json"
    assert rd.eval.equity("flat").name == "equity_flat.csv" and rd.eval.trades("agent").name == "trades_agent.csv"
    assert rd.tensorboard.name == "tb" and RunDir(rd) == rd and os.fspath(rd) == str(tmp_path / "r")
    assert "metrics.json" not in RunDir.manifest_files() and "support.json" in RunDir.manifest_files()


def test_creation_time_is_the_manifests_else_the_directorys_mtime(tmp_path):
    rd = hand_made_run(tmp_path / "a", created=1_000.0)
    assert rd.created_at() == 1_000.0
    old = hand_made_run(tmp_path / "b")  # no manifest
    os.utime(old.path, (2_000.0, 2_000.0))
    assert old.created_at() == 2_000.0


def test_a_rewritten_manifest_keeps_the_creation_time(tmp_path):
    rd = RunDir(tmp_path / "r")
    rd.path.mkdir()
    rd.config.write_text("")
    run_files.write_manifest(rd.path)
    first = rd.created_at()
    assert abs(first - time.time()) < 60
    data = json.loads(rd.manifest.read_text())
    data["created"] = first - 500
    rd.manifest.write_text(json.dumps(data))
    rd.schema.write_text("{}")
    run_files.write_manifest(rd.path)  # the "last" model saved after the "best" one
    assert rd.created_at() == first - 500 and RunDir.SCHEMA in json.loads(rd.manifest.read_text())["files"]


def test_the_newest_run_is_by_creation_time_not_by_file_times(tmp_path):
    now = time.time()
    early = hand_made_run(tmp_path / "a__0__1", now - 300, splits=TEST_SPLITS)
    late = hand_made_run(tmp_path / "b__0__2", now - 100, splits=TEST_SPLITS)
    fold = hand_made_run(tmp_path / "wf" / "fold0__seed0", now - 200, splits=TEST_SPLITS)
    hand_made_run(tmp_path / "empty__0__3", now)
    RunDir(tmp_path / "empty__0__3").sb3_model("last").unlink()  # no model: not a run
    # the early run's files were touched last (e.g. re-evaluated): it stays the oldest
    for f in early.path.iterdir():
        os.utime(f, (now, now))
    os.utime(early.path, (now, now))
    assert RunDir.all(tmp_path) == [late, fold, early]
    assert RunDir.newest(tmp_path) == late
    assert RunDir.newest(tmp_path, where=lambda r: r.path.parent.name == "wf") == fold
    assert RunDir.all(tmp_path / "none") == [] and RunDir.newest(tmp_path / "none") is None


def test_latest_and_the_notebooks_agree_on_the_newest_run(tmp_path):
    now = time.time()
    hand_made_run(tmp_path / "a__0__1", now - 100, splits=TEST_SPLITS)
    newer = hand_made_run(tmp_path / "b__0__2", now - 50, splits=TEST_SPLITS)
    assert RunDir.resolve("latest", tmp_path) == newer
    assert N.ensure_run(checkpoint_dir=tmp_path) == newer.path


def test_resolve_names_what_is_missing(tmp_path):
    with pytest.raises(DataError, match="no trained run under"):
        RunDir.resolve("latest", tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        RunDir.resolve(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    with pytest.raises(DataError, match="not a trained run"):
        RunDir.resolve(tmp_path / "half")
    with pytest.raises(DataError, match=r"no splits\.json"):
        RunDir(tmp_path / "half").read_splits()
