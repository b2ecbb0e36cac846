"""Continued training: resume PPO from a run's checkpoint on the newer stored data, then
promote the challenger only if it beats the champion on the newest held-out range.

- Data: the market named by the *current* ``config.data`` (so bars the live runner
  stored from the exchange are included), with the champion's feature, env and training
  configuration (the model's schema must still match; a mismatch is a clear error).
- Ranges by time: the newest ``holdout_fraction`` of the bars is held out (never
  trained on); training resumes on the bars before it, after a purge gap of one warm-up
  plus one episode. The champion's observation statistics (VecNormalize) are loaded and
  keep adapting on training rollouts only.
- Both policies are backtested on the held-out range with the project's evaluation code
  (:func:`agents.evaluate.run_backtest` + :func:`agents.evaluate.summarize_backtest`), as
  live would trade them (``live.wait_outside_support``). The challenger also passes the
  deployment gate (:mod:`agents.gate`) on the hold-out: the judge's verdict, with the two
  candidates compared there counted as trials, written to its ``gate.json``. It is promoted
  only when that verdict says deployable AND its net PnL is higher (ties keep the champion).
- The decision is recorded as ``retrain_decision.json`` in the challenger's run
  directory, appended to ``<checkpoint_dir>/retrain_decisions.jsonl``, and a promotion
  rewrites ``<checkpoint_dir>/champion.json`` (what ``aster-rl live run --run champion`` uses).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aster_rl.config import AppConfig, replace, to_toml
from aster_rl.errors import DataError, SchemaMismatchError
from aster_rl.evaluation.support import ObservationSupport
from aster_rl.data.timeframes import timeframe_to_timedelta

from agents import run_files
from agents.evaluate import jsonable, periods_per_year_of, run_backtest, summarize_backtest
from agents.gate import judge_span, write_gate
from agents.policy import load_policy
from agents.run_dir import RunDir, Which, champion_file, retrain_log
from agents.splits import Span, purge_bars

logger = logging.getLogger(__name__)

KEYS = ("net_pnl_usd", "net_return", "sharpe", "max_drawdown", "win_rate", "profit_factor", "trades", "fees_usd")


@dataclass
class RetrainDecision:
    champion: str
    challenger: str
    promoted: bool
    reason: str
    holdout: dict[str, Any]
    champion_metrics: dict[str, float]
    challenger_metrics: dict[str, float]
    timesteps: int
    train_bars: int
    live_outcomes: dict[str, Any]
    decided_at: float
    gate: dict[str, Any]  # the challenger's gate record (agents.gate.GateRecord)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def resolve_champion(run: str | Path, checkpoint_dir: str | Path) -> RunDir:
    """``run`` (see :meth:`RunDir.resolve`), or for ``"champion"`` the run named in ``<checkpoint_dir>/champion.json``."""
    if str(run) == "champion":
        path = champion_file(checkpoint_dir)
        if not path.exists():
            raise DataError(f"no {path}: nothing was promoted yet; pass a run directory")
        return RunDir.resolve(json.loads(path.read_text())["run"], checkpoint_dir)
    return RunDir.resolve(run, checkpoint_dir)


def holdout_spans(n_bars: int, warmup: int, episode_length: int, holdout_fraction: float) -> tuple[Span, Span]:
    """(train, holdout): the newest ``holdout_fraction`` of the bars, and what precedes it after a purge gap."""
    if not 0 < holdout_fraction < 1:
        raise DataError(f"holdout_fraction = {holdout_fraction}: must be in (0, 1)")
    purge = purge_bars(warmup, episode_length)
    n_hold = max(2, int((n_bars - warmup) * holdout_fraction))
    holdout = Span(n_bars - n_hold, n_bars)
    train = Span(warmup, holdout.start - purge)
    if len(train) <= episode_length:
        raise DataError(
            f"retrain: {n_bars} bars leave {len(train)} training bars before the {n_hold}-bar hold-out and a {purge}-bar "
            f"purge gap; need more than one episode ({episode_length}); store more data or lower the hold-out fraction"
        )
    return train, holdout


def _live_outcomes(config: AppConfig, run_name: str) -> dict[str, Any]:
    """The closed live/paper trades the champion's runs logged (context for the decision)."""
    try:
        from aster_rl.storage import Database, live_store

        db = Database.from_config(config.data)
        db.init_schema()
        preds = live_store.predictions(db, run_id=run_name)
    except Exception as e:  # the prediction log is context only; its absence never blocks retraining
        logger.warning("retrain: could not read the prediction log: %s", e)
        return {"closed_trades": 0}
    closed = preds[preds["status"].isin(["win", "loss"])]
    return {
        "closed_trades": int(len(closed)),
        "wins": int((closed["status"] == "win").sum()),
        "pnl_usd": float(closed["pnl_usd"].sum()) if len(closed) else 0.0,
    }


def _resume_safe(champion: RunDir, which: Which, config: AppConfig, venv: Any) -> tuple[Any, Any]:
    """PPO rebuilt from the run's config with the saved policy and optimizer state, and its statistics."""
    from agents.train import make_model

    arrays = run_files.read_norm_arrays(champion.normalizer(which))
    vn = run_files.vec_normalize_from(arrays, venv, training=True)
    source = champion.policy(which)
    payload = run_files.read_policy_payload(source)
    model = make_model(config, vn, None)
    run_files.load_weights(model.policy, payload, source)
    model.num_timesteps = int(payload.get("num_timesteps", 0))
    return model, vn


def _resume_pickled(champion: RunDir, which: Which, config: AppConfig, venv: Any) -> tuple[Any, Any]:
    """An older run's SB3 zip and pickled VecNormalize (trusted explicitly: unpickling runs code)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    t = config.train
    if not champion.sb3_model(which).exists():
        which = "last"
    if champion.pickled_normalizer(which).exists():
        vn = VecNormalize.load(str(champion.pickled_normalizer(which)), venv)
        vn.training = True
    else:
        vn = VecNormalize(venv, norm_obs=t.normalize_observations, norm_reward=True, gamma=t.gamma, clip_obs=10.0)
    return PPO.load(champion.sb3_model(which), env=vn, device="cpu"), vn


def retrain(
    config: AppConfig,
    run: str | Path,
    *,
    timesteps: int | None = None,
    holdout_fraction: float = 0.15,
    which: Which = "best",
    dataset: Any = None,
    progress_bar: bool = False,
    trust_run: bool = False,
) -> RetrainDecision:
    import torch

    from agents.data import build_dataset
    from agents.train import new_run_dir
    from envs import BatchedPerpEnv

    ckpt = config.train.checkpoint_dir
    champion = resolve_champion(run, ckpt)
    champion_dir = champion.path
    safe, which = run_files.admit_run(champion_dir, which, trust_run)
    run_cfg = champion.load_config()
    # the champion's model-defining sections; the current data location and bookkeeping
    merged = replace(run_cfg, data=config.data.model_dump(), train={"checkpoint_dir": str(ckpt)})
    if dataset is None:
        dataset = build_dataset(merged)
    saved = champion.load_schema()
    try:
        saved.check_compatible(dataset.schema)
    except SchemaMismatchError as e:
        raise SchemaMismatchError(f"retrain from {champion_dir.name}: the stored data's features differ from the model's: {e}") from None
    env_cfg = merged.env
    train_span, holdout = holdout_spans(len(dataset), dataset.warmup, env_cfg.episode_length, holdout_fraction)
    steps = int(timesteps or merged.train.total_timesteps)
    t = merged.train
    torch.set_num_threads(t.torch_threads)

    support = ObservationSupport.load(champion_dir)  # the champion's observation columns (and training ranges)
    matrix = support.select_features(dataset.matrix) if support is not None else dataset.matrix
    venv = BatchedPerpEnv(matrix, dataset.prices, env_cfg, t.n_envs, start=train_span.start, end=train_span.end,
                          random_start=True, seed=t.seed + 1)
    model, vn = (_resume_safe if safe else _resume_pickled)(champion, which, merged, venv)
    logger.info("retrain %s: resuming for %d steps on %d bars; hold-out %d bars", champion_dir.name, steps, len(train_span), len(holdout))
    model.learn(total_timesteps=steps, reset_num_timesteps=False, progress_bar=progress_bar)

    name_cfg = replace(merged, train={"name": f"{t.name}-retrain", "trials": t.trials + 1})  # a retrain is one more try
    challenger_dir = new_run_dir(name_cfg)
    challenger = RunDir(challenger_dir)
    challenger.config.write_text(to_toml(name_cfg))
    challenger.schema.write_text(json.dumps(dataset.schema.to_dict(), indent=2))
    ts = dataset.prices.timestamps
    challenger.splits.write_text(json.dumps({
        "retrained_from": str(champion_dir), "train": [train_span.start, train_span.end], "holdout": [holdout.start, holdout.end],
        "holdout_from": str(np.datetime64(int(ts[holdout.start]), "ns")), "holdout_to": str(np.datetime64(int(ts[holdout.end - 1]), "ns")),
    }, indent=2))
    if support is not None:
        support.save(challenger_dir)
    vn.training = False
    run_files.save_model(model, vn, challenger_dir, "last")
    vn.close()

    periods = periods_per_year_of(dataset.prices.timeframe)
    bar_ns = int(timeframe_to_timedelta(dataset.prices.timeframe).value)

    wait = config.live.wait_outside_support  # both judged as live would trade them

    def score(run_dir: Path, which_model: Which) -> dict[str, float]:
        policy = load_policy(run_dir, dataset.schema, which=which_model, checkpoint_dir=ckpt, trust_run=trust_run,
                             wait_outside_support=wait)
        res = run_backtest(policy.predict, dataset, env_cfg, holdout)
        s = summarize_backtest(res, env_cfg, periods, bar_ns)
        return {k: float(s[k]) for k in KEYS}

    champ = score(champion_dir, which)
    chall = score(challenger_dir, "last")
    chall_policy = load_policy(challenger_dir, dataset.schema, which="last", checkpoint_dir=ckpt, wait_outside_support=wait)
    if chall_policy.model_file is None:
        raise DataError(f"{challenger_dir}: the retrained policy has no weights file to judge")
    gate = write_gate(challenger_dir, judge_span(chall_policy, dataset, name_cfg, holdout, split_name="holdout", role="selection",
                                                 source="retrain", candidates=2), chall_policy.model_file)
    better = chall["net_pnl_usd"] > champ["net_pnl_usd"]
    promoted = better and gate.deployable
    reason = (
        f"challenger net PnL {chall['net_pnl_usd']:+.2f} USD {'>' if better else '<='} champion {champ['net_pnl_usd']:+.2f} USD "
        f"on the newest {len(holdout)} held-out bars; gate: {gate.line()}"
    )
    decision = RetrainDecision(
        champion=str(champion_dir), challenger=str(challenger_dir), promoted=promoted, reason=reason,
        holdout={"start": holdout.start, "end": holdout.end, "bars": len(holdout)},
        champion_metrics=champ, challenger_metrics=chall, timesteps=steps, train_bars=len(train_span),
        live_outcomes=_live_outcomes(config, champion_dir.name), decided_at=time.time(), gate=gate.to_dict(),
    )
    record = decision.to_dict()
    challenger.retrain_decision.write_text(json.dumps(record, indent=2))
    with open(retrain_log(ckpt), "a") as fh:
        fh.write(json.dumps(record) + "\n")
    if promoted:
        champion_file(ckpt).write_text(json.dumps({"run": str(challenger_dir), "since": record["decided_at"]}, indent=2))
    logger.info("retrain: %s -> %s", "promoted" if promoted else "kept the champion", reason)
    return decision
