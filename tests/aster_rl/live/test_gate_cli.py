"""The deployment gate at ``aster-rl live run``: --real refuses a run whose verdict is not deployable (or that has
no verdict, or a changed one) before any exchange call; paper and replay run it under a banner; a deployable run
gets to the confirmation prompt. ``aster-rl brain --run`` shows the gate."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from aster_rl.cli import main
from tiny_runs import tiny_trained_run
from aster_rl.config import AppConfig, replace
from aster_rl.errors import ExchangeError
from aster_rl.exchange.client import ExchangeClient, wallet_address
from aster_rl.sim.prices import PriceArrays

PLANTED = "0x" + "5a" * 32  # a fake key, so the key checks pass and the gate is what refuses
REAL = ["--real", "--confirm", "I-UNDERSTAND"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny PPO run (its gate: no edge) on a stored synthetic market, and its config file."""
    return tiny_trained_run(tmp_path_factory.mktemp("gate_cli"), "gate", timesteps=128, n_epochs=1, eval_freq=64,
                            live={"stale_after_bars": 1e9})


@pytest.fixture
def no_exchange(monkeypatch):
    """Keys in the environment; building an exchange client is recorded and stops the command."""
    monkeypatch.setenv("ASTER_PRIVATE_KEY", PLANTED)
    monkeypatch.setenv("ASTER_WALLET_ADDRESS", wallet_address(PLANTED))
    built: list[bool] = []

    def refuse(*a, **k):
        built.append(True)
        raise ExchangeError("exchange client built (the test stops here)")

    monkeypatch.setattr(ExchangeClient, "from_config", classmethod(lambda cls, *a, **k: refuse()))
    return built


def _live(config_file, run_dir, *args: str) -> int:
    return main(["--config", str(config_file), "live", "run", "--run", str(run_dir), *args])


def _error_line(err: str) -> str:
    (line,) = [x for x in err.splitlines() if "error:" in x]
    return line


def _copy(run_dir, tmp_path):
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    return copy


class _Foresight:
    """A market whose feature 0 is the sign of the next bar's return (the judge's own foresight test)."""

    def __init__(self, n: int = 4_000):
        rng = np.random.default_rng(3)
        close = np.exp(np.cumsum(rng.normal(0.0, 0.006, n)))
        open_ = np.concatenate(([close[0]], close[:-1]))
        self.prices = PriceArrays.from_arrays(open_, np.maximum(open_, close) * 1.002, np.minimum(open_, close) * 0.998,
                                              close, np.full(n, 5e7))
        nxt = np.sign(np.concatenate((np.log(close[1:] / close[:-1]), [0.0])))
        self.matrix = np.column_stack([nxt, np.zeros(n)]).astype(np.float32)
        self.columns = ["f0", "f1"]

    def column(self, name):
        return None

    def __len__(self):
        return len(self.prices)


def _deployable_copy(run_dir, tmp_path):
    """A copy of the run whose gate record is the judge's verdict (through the gate's own code) on a policy with
    real foresight: deployable, for the run's best weights, judged without WAIT outside the support."""
    from agents.gate import judge_span, write_gate
    from agents.run_dir import RunDir
    from agents.splits import Span

    n = 4_000
    cfg = replace(AppConfig(), env={"episode_length": 10_000},
                  eval={"bootstrap_samples": 300, "bootstrap_block": 48, "random_seeds": 2})
    record = judge_span(lambda obs: np.array([1 if obs[0] > 0 else 2, 0, 2]), _Foresight(n), cfg, Span(100, n),
                        split_name="validation", role="selection", source="train")
    assert record.deployable, record.verdict
    copy = _copy(run_dir, tmp_path)
    write_gate(copy, record, RunDir(copy).policy("best"))
    return copy


def test_real_refuses_a_non_deployable_run_before_any_exchange_call(trained, no_exchange, capsys):
    from agents.gate import read_gate

    _, config_file, run_dir, _ = trained
    record = read_gate(run_dir)
    assert record is not None and not record.deployable
    assert _live(config_file, run_dir, *REAL) == 2
    line = _error_line(capsys.readouterr().err)
    assert f"run {run_dir.name} is not deployable: no edge found: this run will not trade real money (validation" in line
    assert not no_exchange


def test_real_refuses_a_run_without_a_gate_record(trained, no_exchange, capsys, tmp_path):
    from agents.run_dir import RunDir
    from agents.run_files import write_manifest

    _, config_file, run_dir, _ = trained
    copy = _copy(run_dir, tmp_path)
    RunDir(copy).gate.unlink()
    write_manifest(copy)  # a run saved before the gate: no record, a consistent manifest
    assert _live(config_file, copy, *REAL) == 2
    assert "is not deployable: no gate verdict recorded (gate.json missing" in _error_line(capsys.readouterr().err)
    assert not no_exchange


def test_real_refuses_a_changed_gate_record(trained, no_exchange, capsys, tmp_path):
    from agents.run_dir import RunDir

    _, config_file, run_dir, _ = trained
    copy = _copy(run_dir, tmp_path)
    data = json.loads(RunDir(copy).gate.read_text())
    data["deployable"] = True
    RunDir(copy).gate.write_text(json.dumps(data))
    assert _live(config_file, copy, *REAL) == 2
    assert "gate.json was modified after the run was saved" in _error_line(capsys.readouterr().err)
    assert not no_exchange


def test_a_deployable_run_gets_to_the_confirmation_prompt(trained, no_exchange, capsys, tmp_path, monkeypatch):
    _, config_file, run_dir, _ = trained
    copy = _deployable_copy(run_dir, tmp_path)
    # the verdict was reached without WAIT outside the support: a live config with it on is not the judged policy
    assert _live(config_file, copy, *REAL) == 2
    assert "the gate judged it with wait_outside_support = false" in _error_line(capsys.readouterr().err)

    same = ["--set", "live.wait_outside_support=false"]
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    for typed, expect in (("no", "confirmation"), ("I-UNDERSTAND", "exchange client built")):
        monkeypatch.setattr("builtins.input", lambda prompt, _t=typed: asked.append(prompt) or _t)
        code = main(["--config", str(config_file), *same, "live", "run", "--run", str(copy), "--real"])
        assert code == 2
        assert expect in _error_line(capsys.readouterr().err)
    assert len(asked) == 2 and "Type I-UNDERSTAND" in asked[0]
    assert no_exchange == [True]  # only once confirmed does the command build the exchange client


def test_paper_replay_runs_a_non_deployable_run_under_a_banner(trained, capsys, caplog):
    _, config_file, run_dir, dataset = trained
    index = dataset.market.candles.index
    code = _live(config_file, run_dir, "--replay", "--start", index[len(index) - 20].isoformat(), "--max-bars", "5",
                 "--session", "banner")
    out = capsys.readouterr().out
    assert code == 0, out
    banner = out.splitlines()[0]
    assert banner.startswith("NOT DEPLOYABLE: no edge found: this run will not trade real money") and banner.endswith("— paper only")
    assert "5 bars, 5 decisions" in out
    assert "NOT DEPLOYABLE" in caplog.text


def test_brain_shows_the_gate(trained, capsys):
    _, config_file, run_dir, _ = trained
    assert main(["--config", str(config_file), "brain", "--run", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "gate: no edge found: this run will not trade real money" in out
