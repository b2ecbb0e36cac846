"""Small synthetic datasets for the agent tests."""

from __future__ import annotations

import pytest

from aster_rl.config import AppConfig, replace


@pytest.fixture(scope="session")
def tiny_dataset():
    from aster_rl.data.synthetic import synthesize

    from agents.data import build_dataset

    cfg = replace(AppConfig(), synth={"n_bars": 12 * 288, "seed": 11}, env={"episode_length": 64})
    return build_dataset(cfg, market=synthesize(cfg.synth))
