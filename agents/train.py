"""PPO training from the typed config, on the training split only.

- The vectorized env is :class:`envs.BatchedPerpEnv` (one numpy step for all accounts;
  it is an SB3 ``VecEnv``), restricted to the training split's bars.
- ``VecNormalize`` fits observation (and reward) statistics on training rollouts only; the
  statistics are frozen whenever the policy is evaluated and saved beside each model.
- Every ``train.eval_freq`` timesteps the deterministic policy, as the gate will load it
  (WAIT outside the training support when ``live.wait_outside_support``), is backtested on the
  validation split; the model with the best validation score is kept as ``model_best.zip``:
  by ``train.select_by``, the **net PnL** (after fees, funding and slippage; not the reward),
  the **excess over exposure_matched** (buy-and-hold at the checkpoint's mean net
  exposure, measured as the judge measures it: :func:`agents.evaluate.exposure_matched_excess`)
  or that excess's **information ratio** (how steadily it outgrew the benchmark). Every
  evaluation records all three. ``train.patience`` > 0 stops the training after that many
  evaluations in a row without a better score; evaluations before ``train.select_from``
  timesteps are recorded but neither kept nor counted. The test split is never read.
- ``train.exposure_penalty_warmup`` > 0 raises the reward's exposure charge linearly from 0 to
  ``env.exposure_penalty`` over that many timesteps (:class:`agents.callbacks.PenaltyWarmup`).
- ``torch.set_num_threads(train.torch_threads)``: one thread is the fastest on 2 cores.

A run directory ``<checkpoint_dir>/<name>__<seed>__<unix_time>/`` holds, per model (best and
last), ``policy_*.pt`` (state dicts), ``obs_norm_*.npz`` (observation statistics) and SB3's
``model_*.zip``; ``config.toml``, ``feature_schema.json``, ``splits.json``, ``support.json``
(each feature column's training range and variance, and which columns the observation
leaves out: see :mod:`aster_rl.evaluation.support`), ``manifest.json`` (sha256 of each run file),
``metrics.json``, ``gate.json`` and the TensorBoard logs in ``tb/`` (the layout: :class:`agents.run_dir.RunDir`).

The run ends at the deployment gate (:mod:`agents.gate`): the kept model, loaded from its
saved weights as it would trade, is judged on the validation split, the split that chose
it, with every evaluated checkpoint counted as a trial; the verdict is written to
``gate.json`` under the manifest. Only a run whose verdict says edge may trade real money.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from aster_rl.config import AppConfig, check_run_name, to_toml
from aster_rl.errors import ConfigError, DataError
from aster_rl.data.timeframes import TimeRange, timeframe_to_timedelta

from agents.callbacks import PenaltyWarmup, TradingMetricsCallback, ValidationCallback
from agents.data import bind_pattern_library, observation_support, training_segments
from agents.evaluate import exposure_matched_excess, jsonable, periods_per_year_of, run_backtest, summarize_backtest
from agents.gate import GateRecord, judge_span, write_gate
from agents.policy import LoadedPolicy
from agents.pretrain import initial_state
from agents.run_dir import RunDir
from agents.run_files import save_model
from agents.splits import Splits, range_splits

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    splits: Splits
    metrics: dict[str, Any] = field(default_factory=dict)
    gate: GateRecord | None = None


def default_splits(config: AppConfig, dataset, timerange: TimeRange | None = None) -> Splits:
    """The configured splits of ``dataset``, inside ``timerange`` when one is named."""
    return range_splits(
        dataset.index,
        timerange,
        warmup=dataset.warmup,
        episode_length=config.env.episode_length,
        train_fraction=config.train.train_fraction,
        validation_fraction=config.train.validation_fraction,
    )


def new_run_dir(config: AppConfig) -> Path:
    """A new, empty ``<checkpoint_dir>/<name>__<seed>__<unix_time>/``; the name is a plain name."""
    try:
        check_run_name(config.train.name)
    except ValueError as e:
        raise ConfigError(f"train.name: {e}") from None
    root = Path(config.train.checkpoint_dir)
    stamp = int(time.time())
    while True:
        path = root / f"{config.train.name}__{config.train.seed}__{stamp}"
        if not path.exists():
            path.mkdir(parents=True)
            return path
        stamp += 1


def hyperparameters(config: AppConfig, dataset, splits: Splits) -> dict[str, Any]:
    t = config.train
    return {
        "learning_rate": t.learning_rate, "n_steps": t.n_steps, "batch_size": t.batch_size, "n_epochs": t.n_epochs,
        "gamma": t.gamma, "gae_lambda": t.gae_lambda, "clip_range": t.clip_range, "ent_coef": t.ent_coef,
        "vf_coef": t.vf_coef, "max_grad_norm": t.max_grad_norm, "net_arch": str(list(t.net_arch)),
        "n_envs": t.n_envs, "total_timesteps": t.total_timesteps, "seed": t.seed,
        "normalize_observations": t.normalize_observations, "episode_length": config.env.episode_length,
        "reward": config.env.reward, "leverages": str(list(config.env.leverages)),
        "exit_profiles": str(list(config.env.exit_profiles)), "n_features": int(dataset.matrix.shape[1]),
        "train_bars": len(splits.train), "validation_bars": len(splits.validation),
    }


def make_model(config: AppConfig, venv, tensorboard_log: str | None):
    from stable_baselines3 import PPO

    t = config.train
    return PPO(
        "MlpPolicy",
        venv,
        learning_rate=t.learning_rate,
        n_steps=t.n_steps,
        batch_size=t.batch_size,
        n_epochs=t.n_epochs,
        gamma=t.gamma,
        gae_lambda=t.gae_lambda,
        clip_range=t.clip_range,
        ent_coef=t.ent_coef,
        vf_coef=t.vf_coef,
        max_grad_norm=t.max_grad_norm,
        policy_kwargs={"net_arch": list(t.net_arch)},
        tensorboard_log=tensorboard_log,
        seed=t.seed,
        device="cpu",
        verbose=0,
    )


def train(
    config: AppConfig,
    dataset,
    *,
    splits: Splits | None = None,
    run_dir: Path | None = None,
    progress_bar: bool = False,
    on_validation: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train PPO on ``splits.train`` of ``dataset``; select on ``splits.validation``; write the run.

    ``on_validation(timesteps, metrics)`` hears each validation evaluation (:mod:`agents.tune`'s pruner)."""
    import torch
    from stable_baselines3.common.vec_env import VecNormalize

    from envs import BatchedPerpEnv

    t = config.train
    torch.set_num_threads(t.torch_threads)
    splits = splits or default_splits(config, dataset)
    splits.check()
    if len(splits.train) <= config.env.episode_length:
        raise DataError(
            f"the training split has {len(splits.train)} bars, not more than one episode ({config.env.episode_length}); "
            "use more data or a shorter env.episode_length"
        )
    config = bind_pattern_library(config, dataset, splits)  # the run's config holds the library snapshot it trains with
    init = initial_state(config, dataset, splits)  # train.init_from: another run's weights, statistics and columns
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    rd = RunDir(run_dir)
    rd.config.write_text(to_toml(config))
    rd.schema.write_text(json.dumps(dataset.schema.to_dict(), indent=2))
    rd.splits.write_text(json.dumps(splits.to_dict(dataset.prices.timestamps), indent=2))
    support = init.support if init else observation_support(dataset, splits.train)
    support.save(run_dir)

    venv = BatchedPerpEnv(
        support.select_features(dataset.matrix), dataset.prices, config.env, t.n_envs,
        start=splits.train.start, end=splits.train.end, random_start=True, seed=t.seed,
        segments=training_segments(dataset, splits.train),
    )
    vn = init.normalizer(venv) if init else VecNormalize(
        venv, norm_obs=t.normalize_observations, norm_reward=True, gamma=t.gamma, clip_obs=10.0)
    tb_dir = str(rd.tensorboard) if t.tensorboard else None
    model = make_model(config, vn, tb_dir)
    if init:
        init.load_into(model)

    periods = periods_per_year_of(dataset.prices.timeframe)
    bar_td = timeframe_to_timedelta(dataset.prices.timeframe)
    bar_ns = int(bar_td.value)

    def evaluate_validation(m) -> dict[str, float]:
        # the policy as the gate loads it: normalized, and WAITing outside the support when live.wait_outside_support
        policy = LoadedPolicy(m, vn, dataset.schema, config, run_dir, support,
                              wait_outside_support=config.live.wait_outside_support)
        res = run_backtest(policy, dataset, config.env, splits.validation)
        s = summarize_backtest(res, config.env, periods, bar_ns)
        keys = ("net_pnl_usd", "net_return", "sharpe", "sortino", "max_drawdown", "win_rate", "profit_factor",
                "trades", "exposure", "net_exposure", "avg_leverage", "liquidations", "fees_usd")
        excess = exposure_matched_excess(res, dataset, config.env, splits.validation, s["net_exposure"], periods)
        return {**{k: s[k] for k in keys}, **excess}

    def save_best(m) -> None:
        save_model(m, vn, run_dir, "best")

    hp = hyperparameters(config, dataset, splits)
    trading_cb = TradingMetricsCallback(
        bars_per_day=86_400 / bar_td.total_seconds(),
        leverages=config.env.leverages,
        profiles=list(config.env.exit_profiles),
        hparams=hp,
        config_text=to_toml(config),
    )
    val_cb = ValidationCallback(evaluate_validation, save_best, eval_freq=t.eval_freq, on_result=on_validation,
                                select_by=t.select_by, patience=t.patience, select_from=t.select_from)
    callbacks = [trading_cb, val_cb]
    if t.exposure_penalty_warmup:
        callbacks.insert(0, PenaltyWarmup(venv.set_exposure_penalty, config.env.exposure_penalty, t.exposure_penalty_warmup))
    logger.info("training %s: %d timesteps, %d envs, %d training bars", run_dir.name, t.total_timesteps, t.n_envs, len(splits.train))
    started = time.perf_counter()
    model.learn(total_timesteps=t.total_timesteps, callback=callbacks, progress_bar=progress_bar, tb_log_name="ppo")
    seconds = time.perf_counter() - started
    save_model(model, vn, run_dir, "last")
    vn.close()

    best = val_cb.best
    metrics = {
        "run": run_dir.name,
        "trials": t.trials,
        "timesteps": int(model.num_timesteps),
        "select_by": t.select_by,
        "stopped_early": val_cb.stopped_at is not None,
        "stopped_at_timesteps": val_cb.stopped_at,
        "train_seconds": seconds,
        "fps": model.num_timesteps / seconds if seconds > 0 else 0.0,
        "best_validation": best,
        "last_validation": val_cb.history[-1] if val_cb.history else {},
        "validation_history": val_cb.history,
        "last_rollout": trading_cb.history[-1] if trading_cb.history else {},
        "tensorboard_dir": tb_dir,
        "support_notice": support.notice(),
        "observation_columns": len(support.kept),
    }
    gate = judge_run(run_dir, dataset, config, splits, checkpoints=len(val_cb.history))
    metrics["gate"] = gate.to_dict()
    rd.metrics.write_text(json.dumps(jsonable(metrics), indent=2))
    logger.info("trained %s in %.1f s (%.0f fps); best validation by %s: net PnL %.2f USD, excess over exposure_matched "
                "%+.2f%% at %s steps", run_dir.name, seconds, metrics["fps"], t.select_by, best.get("net_pnl_usd", float("nan")),
                100 * best.get("excess_exposure_matched", float("nan")), best.get("timesteps"))
    logger.info("gate: %s", gate.line())
    return TrainResult(run_dir=run_dir, splits=splits, metrics=metrics, gate=gate)


def judge_run(run_dir: Path, dataset, config: AppConfig, splits: Splits, checkpoints: int) -> GateRecord:
    """The gate's verdict on the run's kept model over the validation split, written to ``gate.json``.

    ``checkpoints`` is how many checkpoints validation evaluated (and chose among): each is a
    trial in the deflated Sharpe ratio. With none, validation chose nothing (the last model)."""
    from agents.policy import load_policy

    policy = load_policy(run_dir, schema=dataset.schema, wait_outside_support=config.live.wait_outside_support)
    if policy.model_file is None:
        raise DataError(f"{run_dir}: the trained policy has no weights file to judge")
    record = judge_span(policy, dataset, config, splits.validation, split_name="validation",
                        role="selection" if checkpoints else "held out", source="train", candidates=checkpoints)
    return write_gate(run_dir, record, policy.model_file)

