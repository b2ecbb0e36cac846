"""Early stopping and checkpoint selection: ValidationCallback with scripted scores inside a real SB3 ``learn``,
a tiny run whose score cannot improve, and the config's bounds."""

from __future__ import annotations

import json

import pytest

from agents.callbacks import ValidationCallback
from agents.run_dir import RunDir
from agents.train import train
from aster_rl.cli import main
from aster_rl.config import AppConfig, replace
from aster_rl.errors import ConfigError

from agent_helpers import tiny_config

STEPS = 16  # one rollout of the toy PPO below; the callback evaluates once per rollout


def learn_with(scores: list[dict[str, float]], *, select_by: str = "net_pnl", patience: int = 0,
               total: int = 40 * STEPS, select_from: int = 0, every: int = 1) -> tuple[ValidationCallback, int, list[int]]:
    """Toy PPO (CartPole, one env) learning with a ValidationCallback whose evaluations return ``scores`` in
    turn (the last one repeated), every ``every`` rollouts: (callback, timesteps learned, timesteps at which the
    best model was saved)."""
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", "CartPole-v1", n_steps=STEPS, batch_size=STEPS, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"net_arch": [8]})
    queue = list(scores)
    saved: list[int] = []

    def evaluate(_model) -> dict[str, float]:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    cb = ValidationCallback(evaluate, lambda m: saved.append(int(m.num_timesteps)), eval_freq=every * STEPS,
                            select_by=select_by, patience=patience, select_from=select_from)
    model.learn(total_timesteps=total, callback=cb)
    return cb, int(model.num_timesteps), saved


def pnl(*values: float) -> list[dict[str, float]]:
    return [{"net_pnl_usd": v, "excess_exposure_matched": 0.0} for v in values]


def test_patience_one_stops_learn_after_two_evaluations_when_the_score_cannot_improve():
    cb, steps, saved = learn_with(pnl(5.0), patience=1)
    assert len(cb.history) == 2 and steps == 2 * STEPS  # learn returned long before its 640 steps
    assert cb.stopped_at == 2 * STEPS
    assert saved == [STEPS] and cb.best is cb.history[0]


def test_patience_counts_evaluations_in_a_row_without_a_higher_score():
    # 1 best, 3 best, 2 and 3 (a tie is no improvement): two stale in a row -> stop at the 4th evaluation
    cb, steps, saved = learn_with(pnl(1.0, 3.0, 2.0, 3.0, 9.0), patience=2)
    assert [h["net_pnl_usd"] for h in cb.history] == [1.0, 3.0, 2.0, 3.0]
    assert [h["best"] for h in cb.history] == [1.0, 1.0, 0.0, 0.0]
    assert steps == cb.stopped_at == 4 * STEPS and saved == [STEPS, 2 * STEPS]
    # a higher score resets the count: 1, 0 (stale), 2 (best), 0, 0 -> stop at the 5th
    cb, steps, _ = learn_with(pnl(1.0, 0.0, 2.0, 0.0, 0.0, 9.0), patience=2)
    assert len(cb.history) == 5 and cb.stopped_at == steps == 5 * STEPS and cb.best["net_pnl_usd"] == 2.0


def test_no_patience_runs_every_step():
    cb, steps, saved = learn_with(pnl(5.0), patience=0, total=6 * STEPS)
    assert steps == 6 * STEPS and cb.stopped_at is None and len(cb.history) == 6 and saved == [STEPS]


def test_selection_follows_the_configured_score():
    both = [{"net_pnl_usd": 10.0, "excess_exposure_matched": -0.05},  # long in a rising market: PnL, no skill
            {"net_pnl_usd": 2.0, "excess_exposure_matched": 0.01},
            {"net_pnl_usd": 4.0, "excess_exposure_matched": -0.01}]
    by_excess, _, saved = learn_with(both, select_by="excess", total=3 * STEPS)
    assert by_excess.best == by_excess.history[1] and saved == [STEPS, 2 * STEPS]
    by_pnl, _, saved = learn_with(both, select_by="net_pnl", total=3 * STEPS)
    assert by_pnl.best == by_pnl.history[0] and saved == [STEPS]
    # a flipper's large but noisy excess against a waiter's smaller, steadier one
    steady = [{"net_pnl_usd": 9.0, "excess_exposure_matched": 0.30, "excess_ir_exposure_matched": 6.0},
              {"net_pnl_usd": 5.0, "excess_exposure_matched": 0.20, "excess_ir_exposure_matched": 14.0}]
    by_ir, _, saved = learn_with(steady, select_by="excess_ir", total=2 * STEPS)
    assert by_ir.best == by_ir.history[1] and saved == [STEPS, 2 * STEPS]


def test_evaluations_before_select_from_are_recorded_but_never_kept():
    # 9 at the first evaluation (an unsettled policy's lucky score) is not kept; from 2 rollouts on, as usual
    cb, _, saved = learn_with(pnl(9.0, 1.0, 2.0, 3.0), select_from=2 * STEPS, total=4 * STEPS)
    assert [h["best"] for h in cb.history] == [0.0, 1.0, 1.0, 1.0]
    assert saved == [2 * STEPS, 3 * STEPS, 4 * STEPS] and cb.best["net_pnl_usd"] == 3.0
    assert cb.best_timesteps == 4 * STEPS


def test_patience_counts_from_select_from():
    # evaluations at 1 and 2 rollouts are neither kept nor stale; kept at 3, stale at 4 -> stop there
    cb, steps, saved = learn_with(pnl(5.0), patience=1, select_from=3 * STEPS)
    assert steps == cb.stopped_at == 4 * STEPS and saved == [3 * STEPS] and cb.best is cb.history[2]


@pytest.mark.parametrize("every", [1, 2])
def test_a_training_that_ends_before_select_from_keeps_its_last_model(every):
    # with an evaluation at the last step (every rollout) or one run at the end (every second rollout of 3):
    # the final model is kept, with its score
    cb, steps, saved = learn_with(pnl(1.0, 2.0, 0.5, 0.25), select_from=100 * STEPS, total=3 * STEPS, every=every)
    assert len(cb.history) == (3 if every == 1 else 2)
    assert saved == [steps] and cb.best is cb.history[-1] and cb.best["timesteps"] == steps
    assert [h["best"] for h in cb.history].count(1.0) == 1 and cb.best_score == cb.best["net_pnl_usd"]


def test_a_run_whose_score_cannot_improve_stops_after_two_evaluations(tmp_path, tiny_dataset):
    # the tiny market's validation bars all lie outside the training support and validation evaluates the policy
    # as the gate loads it (WAIT there): every checkpoint scores the same, none higher than the first
    cfg = tiny_config(tmp_path, total_timesteps=2_048, patience=1, select_by="excess")  # room for 16 evaluations
    result = train(cfg, tiny_dataset)
    m = json.loads(RunDir(result.run_dir).metrics.read_text())
    history = m["validation_history"]
    assert m["stopped_early"] is True and m["select_by"] == "excess"
    assert m["stopped_at_timesteps"] == m["timesteps"] == 256
    assert [(h["timesteps"], h["best"], h["trades"], h["excess_exposure_matched"]) for h in history] == [
        (128.0, 1.0, 0.0, 0.0), (256.0, 0.0, 0.0, 0.0)]
    assert m["best_validation"] == history[0]
    assert m["gate"]["candidates"] == 2  # the gate counts the checkpoints evaluated: fewer when stopped early
    assert m["gate"]["excess"]["exposure_matched"]["estimate"] == 0.0


def test_train_keeps_no_checkpoint_from_before_select_from(tmp_path, tiny_dataset):
    cfg = tiny_config(tmp_path, total_timesteps=512, select_from=384)  # evaluations at 128, 256, 384, 512
    m = json.loads(RunDir(train(cfg, tiny_dataset).run_dir).metrics.read_text())
    history = m["validation_history"]
    assert [h["timesteps"] for h in history] == [128.0, 256.0, 384.0, 512.0]
    assert [h["best"] for h in history[:2]] == [0.0, 0.0] and history[2]["best"] == 1.0
    assert m["best_validation"]["timesteps"] >= 384


def test_patience_select_by_and_select_from_are_validated(capsys):
    assert replace(AppConfig(), train={"patience": 3, "select_by": "excess"}).train.patience == 3
    with pytest.raises(ConfigError, match=r"train\.patience"):
        replace(AppConfig(), train={"patience": -1})
    with pytest.raises(ConfigError, match=r"train\.select_by"):
        replace(AppConfig(), train={"select_by": "sharpe"})
    assert main(["--set", "train.patience=-1", "train"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "train.patience" in err
    with pytest.raises(ValueError, match="patience"):
        ValidationCallback(lambda m: {}, lambda m: None, eval_freq=1, patience=-1)
    assert replace(AppConfig(), train={"select_from": 300_000}).train.select_from == 300_000
    with pytest.raises(ConfigError, match=r"train\.select_from"):
        replace(AppConfig(), train={"select_from": -1})
    with pytest.raises(ValueError, match="select_from"):
        ValidationCallback(lambda m: {}, lambda m: None, eval_freq=1, select_from=-1)


def test_train_cli_says_which_checkpoint_it_kept_and_when_it_stopped(tmp_path, capsys):
    import json

    from agents.run_dir import RunDir

    sets = {"data.data_dir": tmp_path / "data", "train.checkpoint_dir": tmp_path / "ck", "synth.n_bars": 12 * 288,
            "env.episode_length": 64, "train.total_timesteps": 512, "train.n_envs": 4, "train.n_steps": 32,
            "train.batch_size": 64, "train.n_epochs": 1, "train.eval_freq": 128, "train.net_arch": "[16]",
            "train.tensorboard": "false", "train.patience": 1, "train.select_by": "excess"}
    args = [x for k, v in sets.items() for x in ("--set", f"{k}={v}")]
    assert main([*args, "data", "synth"]) == 0
    assert main([*args, "train"]) == 0
    out = capsys.readouterr().out
    run_dir = next(line.split("run: ", 1)[1] for line in out.splitlines() if line.startswith("run: "))
    m = json.loads(RunDir(run_dir).metrics.read_text())
    best = m["best_validation"]
    assert f"kept the checkpoint at {best['timesteps']:.0f} steps (best validation excess)" in out, out
    assert f"excess over exposure_matched {best['excess_exposure_matched']:+.2%}" in out
    assert ("stopped early at" in out) == m["stopped_early"]
    if m["stopped_early"]:
        assert f"stopped early at {m['stopped_at_timesteps']} steps (train.patience = 1)" in out
