"""The shared real data is reached relative to the project, and its absence in CI is a failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from aster_rl.paths import REAL_DATA_ENV, project_root, real_data_dir
from shared_data import require_real_data


def test_default_is_beside_the_project(monkeypatch):
    monkeypatch.delenv(REAL_DATA_ENV, raising=False)
    assert real_data_dir() == (project_root().parent / "shared" / "data" / "real").resolve()


def test_environment_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv(REAL_DATA_ENV, str(tmp_path))
    assert real_data_dir() == tmp_path.resolve()


def test_absent_folder_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setenv(REAL_DATA_ENV, str(tmp_path / "missing"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="real data folder absent"):
        require_real_data()


def test_absent_folder_skips_outside_ci(monkeypatch, tmp_path):
    monkeypatch.setenv(REAL_DATA_ENV, str(tmp_path / "missing"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_real_data()


def test_real_data_present(real_data: Path):
    """Fails in CI when ``../shared/data/real`` is missing; skipped elsewhere."""
    assert (real_data / "ASTERUSDT_5m.csv").is_file()
