"""Reaching ``../shared/data/real`` from the tests: skip when absent, fail when absent in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aster_rl.paths import real_data_dir


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_real_data() -> Path:
    path = real_data_dir()
    if not path.is_dir():
        message = f"real data folder absent: {path} (set ASTER_REAL_DATA or place ../shared beside the project)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path
