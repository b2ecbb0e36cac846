"""Where the project finds things outside its own tree.

The real candles used for development and benchmarks live beside the project, in
``../shared/data/real`` relative to the project root. ``ASTER_REAL_DATA`` names another
folder. Nothing here copies data into the project.
"""

from __future__ import annotations

import os
from pathlib import Path

REAL_DATA_ENV = "ASTER_REAL_DATA"


def project_root() -> Path:
    """The folder holding ``aster_rl/`` (the clone's root in a source checkout)."""
    return Path(__file__).resolve().parent.parent


def real_data_dir() -> Path:
    """The shared real-data folder: ``$ASTER_REAL_DATA``, else ``<project>/../shared/data/real``.

    The path is returned whether or not it exists; callers decide what absence means.
    """
    override = os.environ.get(REAL_DATA_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return (project_root().parent / "shared" / "data" / "real").resolve()
