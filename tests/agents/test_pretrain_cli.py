"""``aster-rl train --pretrain``: bad markets and look-ahead refused in one line, exit 2, no run written."""

from __future__ import annotations

import pytest

from aster_rl.cli import main


def _args(tmp_path, *more):
    return ["--set", f"data.data_dir={tmp_path / 'data'}", "--set", f"train.checkpoint_dir={tmp_path / 'ck'}",
            "--set", "synth.n_bars=3456", "--set", "env.episode_length=64", *more]


@pytest.mark.parametrize("extra, text", [
    (["train", "--pretrain", "BTC,DOGE"], "pretraining markets BTC,DOGE: expected two or more distinct names"),
    (["--set", "train.init_from=elsewhere", "train", "--pretrain", "BTC,ETH"], "train.pretrain_markets and train.init_from"),
])
def test_bad_pretraining_refused(tmp_path, capsys, extra, text):
    code = main(_args(tmp_path, *extra))
    err = capsys.readouterr().err
    assert code == 2 and text in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ck").exists() or not any((tmp_path / "ck").iterdir())


def test_pretraining_markets_after_the_training_start_refused(tmp_path, capsys, monkeypatch, real_data):
    monkeypatch.setenv("ASTER_REAL_DATA", str(real_data))
    # a synthetic market in mid 2023: the Binance files run to 2024-05, past its training bars
    code = main(_args(tmp_path, "--set", "synth.start=2023-06-01", "train", "--pretrain", "BTC,ETH"))
    err = capsys.readouterr().err
    assert code == 2 and "pretraining on BTC+ETH: its data reach 2024-05-14" in err and "would look ahead" in err
    assert not (tmp_path / "ck").exists() or not any((tmp_path / "ck").iterdir())
