"""The kept checkpoint of a tiny run is the validation history's best by ``train.select_by``; the recorded
excess over exposure_matched is the one the gate measures."""

from __future__ import annotations

import json

import pytest

from agents.callbacks import event_scalar_tags
from agents.run_dir import RunDir
from agents.train import train
from aster_rl.config import replace

from agent_helpers import tiny_config


def run(tmp_path_factory, tiny_dataset, select_by: str):
    cfg = tiny_config(tmp_path_factory.mktemp(select_by), total_timesteps=640, select_by=select_by)
    cfg = replace(cfg, live={"wait_outside_support": False})  # the gate's policy acts as validation's did
    result = train(cfg, tiny_dataset)
    return result, json.loads(RunDir(result.run_dir).metrics.read_text())


@pytest.fixture(scope="module")
def by_excess(tmp_path_factory, tiny_dataset):
    return run(tmp_path_factory, tiny_dataset, "excess")


@pytest.fixture(scope="module")
def by_pnl(tmp_path_factory, tiny_dataset):
    return run(tmp_path_factory, tiny_dataset, "net_pnl")


def kept(history: list[dict], key: str) -> dict:
    return max(history, key=lambda h: h[key])  # the first of equal maxima, as the callback keeps it


def test_excess_keeps_the_checkpoint_with_the_highest_validation_excess(by_excess):
    result, m = by_excess
    history = m["validation_history"]
    assert [h["timesteps"] for h in history] == [128.0, 256.0, 384.0, 512.0, 640.0]
    assert m["select_by"] == "excess" and m["stopped_early"] is False and m["stopped_at_timesteps"] is None
    assert m["best_validation"] == kept(history, "excess_exposure_matched")
    assert len({h["excess_exposure_matched"] for h in history}) > 1  # the choice was a real one
    # the gate judges the kept model on the same split with the same benchmark: the same excess
    assert result.gate is not None
    assert result.gate.excess["exposure_matched"]["estimate"] == pytest.approx(
        m["best_validation"]["excess_exposure_matched"], rel=1e-9, abs=1e-12)
    tags = event_scalar_tags(RunDir(result.run_dir).tensorboard)
    assert {"eval/excess_exposure_matched", "eval/best_excess_exposure_matched"} <= tags


def test_net_pnl_keeps_the_checkpoint_with_the_highest_validation_pnl(by_pnl):
    result, m = by_pnl
    history = m["validation_history"]
    assert m["select_by"] == "net_pnl" and len(history) == 5
    assert m["best_validation"] == kept(history, "net_pnl_usd")
    assert all("excess_exposure_matched" in h and "excess_ir_exposure_matched" in h for h in history)  # in every mode
    assert result.gate is not None
    assert result.gate.excess["exposure_matched"]["estimate"] == pytest.approx(
        m["best_validation"]["excess_exposure_matched"], rel=1e-9, abs=1e-12)
