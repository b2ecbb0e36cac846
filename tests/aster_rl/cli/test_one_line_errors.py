"""Every failure a user can cause ends in one line naming what and where, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aster_rl.cli import main

ROOT = Path(__file__).resolve().parents[3]


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_binary_toml_file(capsys, tmp_path):
    path = tmp_path / "model.toml"
    path.write_bytes(bytes(range(256)))
    code, _, err = _run(capsys, ["--config", str(path), "config", "show"])
    _assert_one_line(code, err, "model.toml", "not a UTF-8 text file")


def test_config_is_a_directory(capsys, tmp_path):
    code, _, err = _run(capsys, ["--config", str(tmp_path), "config", "show"])
    _assert_one_line(code, err, str(tmp_path), "is a directory")


def test_database_url_not_a_url_in_a_file(capsys, tmp_path):
    path = tmp_path / "db.toml"
    path.write_text('[data]\ndatabase_url = "notaurl"\n')
    code, _, err = _run(capsys, ["--config", str(path), "db", "init"])
    _assert_one_line(code, err, "'notaurl'", "data.database_url")


def test_database_url_of_an_unknown_dialect(capsys):
    code, _, err = _run(capsys, ["--set", "data.database_url=nosuchdb://x/y", "db", "info"])
    _assert_one_line(code, err, "nosuchdb://x/y")


def test_data_dir_under_a_file_is_impossible(capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    code, _, err = _run(capsys, ["--set", f"data.data_dir={(blocker / 'data').as_posix()}", "db", "init"])
    _assert_one_line(code, err, "a_file", "data.data_dir")
    code, _, err = _run(capsys, ["--set", f"data.data_dir={blocker.as_posix()}", "db", "init"])
    _assert_one_line(code, err, "is a file, not a directory")


def test_data_dir_under_proc_is_impossible(capsys):
    code, _, err = _run(capsys, ["--set", "data.data_dir=/proc/aster_rl_nowhere/data", "db", "init"])
    _assert_one_line(code, err, "/proc/aster_rl_nowhere/data")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through directory permissions")
def test_unwritable_data_dir(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = _run(capsys, ["--set", f"data.data_dir={(locked / 'data').as_posix()}", "db", "init"])
    finally:
        locked.chmod(0o700)
    _assert_one_line(code, err, "locked")


def test_empty_kill_file_is_refused_before_live_starts(capsys):
    code, _, err = _run(capsys, ["--set", "live.kill_file=", "config", "show"])
    _assert_one_line(code, err, "--set live.kill_file=", "live.kill_file", "empty path")


@pytest.mark.parametrize("override", ["env.taker_fee_rate=1.5", "env.max_leverage=1000", "train.n_envs=true",
                                      "env.initial_equity_usd=inf", "nosuch.key=1", "justtext"])
def test_bad_set_values_are_one_line(capsys, override):
    code, _, err = _run(capsys, ["--set", override, "config", "show"])
    _assert_one_line(code, err, override.split("=")[0])


def test_date_set_value_is_accepted(capsys):
    code, out, err = _run(capsys, ["--set", "data.since=2025-09-19", "config", "show"])
    assert code == 0, err
    assert 'since = "2025-09-19"' in out


def test_bad_run_name_for_train_is_one_line(capsys, tmp_path):
    code, _, err = _run(capsys, ["--set", f"data.data_dir={tmp_path.as_posix()}", "train", "--name", "../../x"])
    _assert_one_line(code, err, "'../../x'", "not a plain name")
    code, _, err = _run(capsys, ["train", "--name", "/tmp/abs"])
    _assert_one_line(code, err, "'/tmp/abs'")


def test_verbose_shows_the_traceback_and_the_line():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "aster_rl.cli", "--set", "env.max_leverage=1000", "config", "show"]
    quiet = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert len(quiet.stderr.strip().splitlines()) == 1
    loud = subprocess.run([*argv[:3], "-v", *argv[3:]], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert loud.returncode == 2 and "Traceback" in loud.stderr
    assert loud.stderr.strip().splitlines()[-1] == quiet.stderr.strip()


@pytest.mark.parametrize("argv, flag", [
    (["features", "--start", "garbage"], "--start"),
    (["features", "--end", "2025-13-45"], "--end"),
    (["brain", "--at", "yesterday-ish"], "--at"),
    (["patterns", "mine", "--start", "garbage"], "--start"),
])
def test_a_time_that_is_not_a_time_is_one_line(capsys, tmp_path, argv, flag):
    code, _, err = _run(capsys, ["--set", f"data.data_dir={tmp_path.as_posix()}", *argv])
    _assert_one_line(code, err, flag, "not a time")
