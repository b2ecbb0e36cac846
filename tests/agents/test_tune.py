"""``aster-rl tune``: the space, the config hash, studies on SQLite and PostgreSQL, workers, the CLI."""

from __future__ import annotations

import json
import tomllib

import pytest
from agent_helpers import tiny_config

from agents.run_dir import RunDir
from agents.tune import (
    SPACE,
    STORAGE_ENV,
    TuneSpec,
    apply_params,
    config_hash,
    load_study,
    space_for,
    storage_url,
    tune,
    values_by_hash,
)
from aster_rl.cli import main
from aster_rl.config import load_config, replace, to_toml
from aster_rl.data.timeframes import parse_timerange
from aster_rl.errors import ConfigError

pytest.importorskip("optuna")

GRID = ("train.learning_rate", "env.max_leverage")  # 2 x 2 grid points


def _config(tmp_path):
    """Tiny PPO settings on a tiny synthetic market; the policy trades on every bar, so trials differ."""
    return replace(tiny_config(tmp_path), live={"wait_outside_support": False})


def test_the_space_is_declared_once_and_applied_through_replace(tmp_path):
    cfg = _config(tmp_path)
    assert len({p.key for p in SPACE}) == len(SPACE) and all(p.why for p in SPACE)
    applied = apply_params(cfg, {"train.net_arch": "128x128", "env.max_leverage": 5, "env.turnover_penalty": 0.001})
    assert applied.train.net_arch == (128, 128)
    assert applied.env.max_leverage == 5 and applied.env.leverages == (1, 2, 3, 5)
    assert applied.env.turnover_penalty == 0.001 and cfg.env.turnover_penalty == 0.0
    with pytest.raises(ConfigError, match="below every rung"):
        apply_params(replace(cfg, env={"leverages": (10, 20), "max_leverage": 20}), {"env.max_leverage": 5})
    with pytest.raises(ConfigError, match=r"train\.learning_rate: Input should be less than or equal to 1"):
        apply_params(cfg, {"train.learning_rate": 2.0})
    with pytest.raises(ConfigError, match=r"--params: unknown \['train.nope'\]"):
        space_for(["train.nope"])


def test_the_config_hash_names_the_config_and_the_range(tmp_path):
    cfg = _config(tmp_path)
    (tmp_path / "c.toml").write_text(to_toml(cfg))
    assert config_hash(load_config(tmp_path / "c.toml")) == config_hash(cfg)  # a config read back hashes the same
    assert config_hash(cfg) != config_hash(replace(cfg, train={"learning_rate": 1e-4}))
    assert config_hash(cfg) != config_hash(cfg, parse_timerange("20250301-20250310"))
    assert len(config_hash(cfg)) == 16


def test_the_storage_url_comes_from_the_option_or_the_environment_and_is_checked():
    assert storage_url("sqlite:///x.db", {}) == "sqlite:///x.db"
    assert storage_url(None, {STORAGE_ENV: "postgresql://u:pw@h/db"}) == "postgresql://u:pw@h/db"
    with pytest.raises(ConfigError, match=STORAGE_ENV):
        storage_url(None, {})
    with pytest.raises(ConfigError, match="not a database URL") as err:
        storage_url("secret-text", {})
    assert "secret-text" not in str(err.value)


def test_a_bad_spec_is_a_config_error(tmp_path):
    cfg = _config(tmp_path)
    with pytest.raises(ConfigError, match="--study"):
        TuneSpec(config=cfg, storage="sqlite://", study="../x", trials=2)
    with pytest.raises(ConfigError, match="--trials 0"):
        TuneSpec(config=cfg, storage="sqlite://", study="s", trials=0)
    with pytest.raises(ConfigError, match="heartbeat"):
        TuneSpec(config=cfg, storage="sqlite://", study="s", trials=2, heartbeat_s=5, grace_s=5)


def test_a_study_on_sqlite_writes_the_best_config_and_never_runs_a_config_twice(tmp_path, capsys):
    cfg = _config(tmp_path)
    spec = TuneSpec(config=cfg, storage=f"sqlite:///{tmp_path / 'optuna.db'}", study="s", trials=5, params=GRID,
                    sampler="grid", pruner="none")
    result = tune(spec)
    out = capsys.readouterr().out
    assert out.count(" complete: ") == 5  # one line per finished trial
    study = load_study(spec.storage, "s")
    hashes = [t.user_attrs["config_hash"] for t in study.trials]
    assert len(set(hashes)) == 4  # the fifth trial met a grid point again ...
    assert "reused from trial" in out  # ... and looked its value up instead of training
    trained = [t for t in study.trials if not t.user_attrs.get("reused")]
    assert len(trained) == 4
    assert all(sorted(t.intermediate_values) == [128, 256] for t in trained)  # the pruner hears every validation
    for t in trained:  # ... each one's excess over exposure_matched, as the run recorded it
        history = json.loads(RunDir(t.user_attrs["run_dir"]).metrics.read_text())["validation_history"]
        assert [t.intermediate_values[int(h["timesteps"])] for h in history] == [h["excess_exposure_matched"] for h in history]
    runs = sorted(p.name for p in spec.runs_root.iterdir() if p.is_dir())
    assert runs == sorted(set(hashes))  # one run directory per configuration, named by its hash
    values = values_by_hash(study)
    assert len(set(values.values())) > 1  # the trials differ
    assert result.finished == 5 and result.best_value == max(values.values())
    text = result.best_config.read_text()
    best = load_config(result.best_config)  # `train --config` reads it
    assert best.train.trials == 5
    assert apply_params(cfg, result.best_params).env == best.env
    assert config_hash(replace(best, train={"trials": cfg.train.trials})) in values
    assert tomllib.loads(text)["train"]["trials"] == 5
    # the same command again: the study is complete, nothing is trained
    again = tune(spec)
    assert again.finished == 5 and "complete: " not in capsys.readouterr().out


def test_a_study_refuses_workers_with_another_configuration(tmp_path):
    cfg = _config(tmp_path)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    tune(TuneSpec(config=cfg, storage=url, study="s", trials=1, params=GRID, sampler="grid", pruner="none"))
    other = TuneSpec(config=replace(cfg, train={"total_timesteps": 512}), storage=url, study="s", trials=1, params=GRID)
    with pytest.raises(ConfigError, match="made for another configuration"):
        tune(other)


def test_two_workers_on_postgresql_and_the_status_command(tmp_path, postgres, capsys, monkeypatch):
    cfg = _config(tmp_path)
    url = postgres.new_database("optuna").replace("postgres@", "postgres:hunter2@")  # trust auth ignores the password
    config_file = tmp_path / "base.toml"
    config_file.write_text(to_toml(cfg))
    monkeypatch.setenv(STORAGE_ENV, url)
    argv = ["--config", str(config_file), "tune", "--study", "pg", "--trials", "4", "--workers", "2",
            "--params", ",".join(GRID), "--sampler", "grid", "--pruner", "none"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "hunter2" not in captured.out + captured.err and "***" in captured.err
    assert captured.out.count(" complete: ") >= 4  # the workers' lines, then the final table
    study = load_study(url, "pg")
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) == 2  # both processes ran trials
    assert len(values_by_hash(study)) == 4
    assert main(["tune", "--status", "--study", "pg"]) == 0
    status = capsys.readouterr().out
    assert "study pg" in status and "4 complete" in status and "best: trial" in status and "hunter2" not in status
    assert main(["tune", "--status", "--study", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no such study" in err and "hunter2" not in err and len(err.strip().splitlines()) == 1


def test_tune_without_a_storage_is_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert main(["tune", "--study", "s", "--trials", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and STORAGE_ENV in err
    assert main(["tune", "--storage", "sqlite:///x.db", "--study", "s", "--params", "train.nope"]) == 2
    assert "unknown ['train.nope']" in capsys.readouterr().err
