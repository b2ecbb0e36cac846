"""Loading a run directory never runs code from it; changed files and bad run names are refused."""

from __future__ import annotations

import base64
import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.run_dir import RunDir
from agents import run_files
from agents.policy import load_policy
from agents.retrain import retrain
from agents.train import train
from aster_rl.cli import main
from aster_rl.config import replace
from aster_rl.errors import ConfigError, UntrustedRunError

from agent_helpers import tiny_config

RUN_INPUTS = (RunDir.CONFIG, RunDir.SCHEMA, RunDir.SPLITS)
SB3_FILES = (RunDir.sb3_model_name("best"), RunDir.sb3_model_name("last"))
MODEL_FILES = tuple(f(w) for f in (RunDir.policy_name, RunDir.normalizer_name) for w in ("best", "last"))


class _Payload:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_pickle(marker: Path) -> bytes:
    return pickle.dumps(_Payload(marker))


def _evil_sb3_zip(path: Path, marker: Path) -> None:
    """An SB3-style model zip whose ``data`` carries a cloudpickle payload (run by ``PPO.load``)."""
    blob = base64.b64encode(_evil_pickle(marker)).decode()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data", json.dumps({"policy_class": {":type:": "<class 'x'>", ":serialized:": blob}}))
        zf.writestr("_stable_baselines3_version", "2.9.2")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_dataset):
    tmp = tmp_path_factory.mktemp("safe")
    cfg = tiny_config(tmp)
    return cfg, train(cfg, tiny_dataset).run_dir


@pytest.fixture
def run_copy(trained, tmp_path):
    _, run_dir = trained
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(RunDir.TENSORBOARD, RunDir.EVAL))
    return copy


def _obs(dataset, rows=(900, 1500, 2000, 2500, 3000)) -> np.ndarray:
    rng = np.random.default_rng(0)
    feats = dataset.matrix[list(rows)]
    account = rng.normal(size=(len(rows), 6)).astype(np.float32)
    return np.concatenate([feats, account], axis=1)


def test_a_run_holds_state_dicts_plain_statistics_and_a_manifest(trained):
    _, run_dir = trained
    manifest = json.loads(RunDir(run_dir).manifest.read_text())
    for name in (*MODEL_FILES, RunDir.CONFIG, RunDir.SCHEMA, RunDir.SPLITS):
        assert manifest["files"][name] == run_files.sha256_of(run_dir / name)
    assert not list(run_dir.glob("*.pkl"))
    payload = torch.load(RunDir(run_dir).policy("last"), weights_only=True)
    assert payload["action_nvec"][0] == 3 and payload["num_timesteps"] >= 256
    with np.load(RunDir(run_dir).normalizer("last"), allow_pickle=False) as data:
        assert set(data.files) >= {"obs_mean", "obs_var", "obs_count", "clip_obs", "epsilon"}


@pytest.mark.parametrize("which", ["best", "last"])
def test_state_dict_run_acts_exactly_like_the_sb3_model(trained, tiny_dataset, which):
    """The rebuilt policy and plain statistics give the same actions and probabilities as SB3's own files."""
    from stable_baselines3 import PPO

    _, run_dir = trained
    safe = load_policy(run_dir, which=which, wait_outside_support=False)  # the weights alone (WAIT outside the support: test_gate.py)
    assert isinstance(safe.model, run_files.PolicyModel)
    original = PPO.load(run_dir / f"model_{which}.zip", device="cpu")  # the test's own run: trusted
    obs = _obs(tiny_dataset)
    for row in obs:
        norm = safe.normalize(row)
        expected, _ = original.predict(norm, deterministic=True)
        np.testing.assert_array_equal(safe.predict(row), expected)
        d = safe.decide(row)
        with torch.no_grad():
            dist = original.policy.get_distribution(original.policy.obs_to_tensor(norm)[0])
        for p, q in zip(d.probabilities, dist.distribution):
            np.testing.assert_array_equal(p, q.probs[0].numpy().astype(float))


def test_plain_statistics_normalize_like_vecnormalize(tiny_dataset):
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
    import gymnasium as gym

    n = tiny_dataset.matrix.shape[1] + 6
    env = DummyVecEnv([lambda: gym.make("CartPole-v1")])  # any venv; the statistics are set by hand
    vn = VecNormalize(env, clip_obs=5.0)
    rng = np.random.default_rng(1)
    vn.obs_rms.mean, vn.obs_rms.var = rng.normal(size=n), rng.uniform(0.1, 9, size=n)
    plain = run_files.obs_normalizer(run_files.norm_arrays(vn))
    obs = _obs(tiny_dataset)
    np.testing.assert_array_equal(plain.normalize_obs(obs), vn.normalize_obs(obs))
    assert plain.normalize_obs(obs).dtype == np.float32


def test_crafted_pickles_in_a_run_do_not_run(run_copy, tmp_path):
    marker = tmp_path / "payload_ran"
    RunDir(run_copy).pickled_normalizer("best").write_bytes(_evil_pickle(marker))
    RunDir(run_copy).pickled_normalizer("last").write_bytes(_evil_pickle(marker))
    _evil_sb3_zip(RunDir(run_copy).sb3_model("best"), marker)
    with pytest.raises(UntrustedRunError, match=r"model_best\.zip was modified"):
        load_policy(run_copy)
    assert not marker.exists()


def test_a_crafted_policy_file_with_a_rewritten_manifest_does_not_run(run_copy, tmp_path):
    marker = tmp_path / "payload_ran"
    torch.save({"format": 1, "policy": _Payload(marker)}, RunDir(run_copy).policy("best"))  # a pickle inside torch's zip
    run_files.write_manifest(run_copy)  # whoever planted it also fixed the checksums
    with pytest.raises(UntrustedRunError, match=r"policy_best\.pt: not a plain state-dict file"):
        load_policy(run_copy)
    assert not marker.exists()


def test_an_old_pickled_run_needs_trust_and_then_loads(run_copy, tmp_path, tiny_dataset):
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
    import gymnasium as gym

    old = tmp_path / "old_run"
    old.mkdir()
    for name in (*RUN_INPUTS, RunDir.SUPPORT, *SB3_FILES):
        shutil.copy(run_copy / name, old / name)
    arrays = run_files.read_norm_arrays(RunDir(run_copy).normalizer("best"))
    vn = VecNormalize(DummyVecEnv([lambda: gym.make("CartPole-v1")]))
    vn.obs_rms.mean, vn.obs_rms.var = arrays["obs_mean"], arrays["obs_var"]
    vn.save(str(RunDir(old).pickled_normalizer("best")))  # the format older runs were saved in
    with pytest.raises(UntrustedRunError, match=r"older pickled format.*--trust-run"):
        load_policy(old)
    trusted = load_policy(old, trust_run=True)
    obs = _obs(tiny_dataset)[0]
    np.testing.assert_array_equal(trusted.predict(obs), load_policy(run_copy).predict(obs))
    assert isinstance(trusted.model, PPO)


def test_an_old_run_with_a_payload_is_refused_without_running_it(tmp_path, run_copy):
    marker = tmp_path / "payload_ran"
    old = tmp_path / "old_run"
    old.mkdir()
    for name in RUN_INPUTS:
        shutil.copy(run_copy / name, old / name)
    _evil_sb3_zip(RunDir(old).sb3_model("last"), marker)
    RunDir(old).pickled_normalizer("last").write_bytes(_evil_pickle(marker))
    with pytest.raises(UntrustedRunError, match="--trust-run"):
        load_policy(old)
    assert not marker.exists()


@pytest.mark.parametrize("name", [*RUN_INPUTS, RunDir.policy_name("best"), RunDir.normalizer_name("best")])
def test_a_modified_file_is_refused_by_name(run_copy, name):
    with open(run_copy / name, "ab") as fh:
        fh.write(b"\n")
    with pytest.raises(UntrustedRunError, match=f"{name} was modified"):
        load_policy(run_copy)


def test_a_missing_file_is_refused_by_name(run_copy):
    RunDir(run_copy).normalizer("last").unlink()
    with pytest.raises(UntrustedRunError, match=r"obs_norm_last\.npz is missing"):
        load_policy(run_copy, which="last")


def test_cli_refuses_a_tampered_run_in_one_line(run_copy, capsys, tmp_path):
    RunDir(run_copy).policy("best").write_bytes(b"garbage")
    code = main(["--set", f"data.data_dir={(tmp_path / 'data').as_posix()}", "live", "run", "--run", str(run_copy), "--replay",
                 "--max-bars", "1"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "policy_best.pt was modified" in err


def test_retrain_resumes_from_state_dicts(trained, tiny_dataset):
    cfg, run_dir = trained
    d = retrain(cfg, run_dir, timesteps=64, dataset=tiny_dataset)
    challenger = Path(d.challenger)
    assert RunDir(challenger).policy("last").exists() and RunDir(challenger).manifest.exists()
    payload = torch.load(RunDir(challenger).policy("last"), weights_only=True)
    start = torch.load(RunDir(run_dir).policy("best"), weights_only=True)["num_timesteps"]
    assert payload["num_timesteps"] >= start + 64
    load_policy(challenger, schema=tiny_dataset.schema)


@pytest.mark.parametrize("name", ["../../x", "/tmp/abs", "a/b", "..", ".hidden"])
def test_run_names_that_leave_checkpoints_are_refused(trained, name, tmp_path, tiny_dataset):
    cfg, _ = trained
    with pytest.raises(ConfigError, match=r"train\.name"):
        replace(cfg, train={"name": name})
    bypass = cfg.model_copy(update={"train": cfg.train.model_copy(update={"name": name})})  # skips validation
    with pytest.raises(ConfigError, match="not a plain name"):
        train(bypass, tiny_dataset)


def _old_run(src: Path, dest: Path) -> Path:
    dest.mkdir()
    for name in (*RUN_INPUTS, *SB3_FILES):
        shutil.copy(src / name, dest / name)
    return dest


def test_cli_refuses_an_old_run_without_trust_in_one_line(run_copy, capsys, tmp_path):
    old = _old_run(run_copy, tmp_path / "old_run")
    code = main(["--set", f"data.data_dir={(tmp_path / 'data').as_posix()}", "live", "run", "--run", str(old), "--replay"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "older pickled format" in err and "--trust-run" in err


@pytest.mark.parametrize("argv", [["brain", "--run", "x"], ["live", "run", "--run", "x"], ["evaluate", "x"],
                                  ["backtest", "--run", "x"], ["retrain", "--from", "x"]])
def test_commands_that_load_runs_take_trust_run(argv):
    from aster_rl.cli import build_parser

    assert build_parser().parse_args([*argv, "--trust-run"]).trust_run is True
    assert build_parser().parse_args(argv).trust_run is False


def test_retrain_refuses_an_old_run_without_trust(trained, run_copy, tmp_path, tiny_dataset):
    cfg, _ = trained
    old = _old_run(run_copy, tmp_path / "old_run")
    with pytest.raises(UntrustedRunError, match="--trust-run"):
        retrain(cfg, old, timesteps=64, dataset=tiny_dataset)
