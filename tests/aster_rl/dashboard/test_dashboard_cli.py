"""``aster-rl dashboard``: bad input is one line and exit 2, before anything is served or written."""

from __future__ import annotations

import socket

import pytest

from aster_rl.cli import main

pytest.importorskip("fastapi")


def test_a_non_loopback_host_needs_allow_remote(tmp_path, capsys):
    assert main(["--set", f"data.data_dir='{tmp_path}'", "dashboard", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--allow-remote" in err[0]
    assert not (tmp_path / "dashboard.token").exists()


def test_a_missing_database_is_named_and_not_created(tmp_path, capsys):
    assert main(["--set", f"data.data_dir='{tmp_path}'", "dashboard"]) == 2
    err = capsys.readouterr().err
    assert "aster_rl.db does not exist" in err and not (tmp_path / "aster_rl.db").exists()
    assert not (tmp_path / "dashboard.token").exists()


def test_a_port_in_use_and_a_bad_port_are_one_line(tmp_path, capsys):
    assert main(["--set", f"data.data_dir='{tmp_path}'", "db", "init"]) == 0
    assert main(["--set", f"data.data_dir='{tmp_path}'", "dashboard", "--port", "70000"]) == 2
    assert "--port 70000" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["--set", f"data.data_dir='{tmp_path}'", "dashboard", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot serve on 127.0.0.1:{port}" in err[0]
    assert not (tmp_path / "dashboard.token").exists()
