"""TensorBoard callbacks: trading scalars aggregated over ALL envs, validation, hyperparameters.

Scalars (namespaced like SB3's ``rollout/`` and ``train/``), recorded once per rollout:

- ``trade/``: win_rate, profit_factor, expectancy, avg_pnl, trades_per_day, avg_leverage,
  liquidations — over every trade closed in any env during the rollout;
- ``env/``: equity (mean over envs, now), drawdown (mean over envs of the drop from the
  episode's peak), and per finished episode: fees, funding, slippage, time_in_market,
  return, max_drawdown;
- ``actions/``: side mix (wait/buy/sell shares of all actions), leverage and profile mix
  (shares among BUY/SELL actions), and the policy's entropy on the rollout's observations;
- ``eval/``: validation metrics from a deterministic backtest (see ``ValidationCallback``);
- ``train/exposure_penalty``: the reward's exposure charge while it warms up (``PenaltyWarmup``).

Callbacks read ``infos`` and ``actions`` only, never env internals. The aggregation is in
plain functions so it can be tested on made-up infos.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import HParam, TensorBoardOutputFormat

from aster_rl.evaluation import metrics as M

logger = logging.getLogger(__name__)

SIDE_NAMES = ("wait", "buy", "sell")


# ---------------------------------------------------------------- pure aggregation

def trade_scalars(trades: Sequence[dict], env_steps: int, bars_per_day: float) -> dict[str, float]:
    """``trade/`` scalars of closed trades (dicts as in ``info["closed_trades"]``)."""
    pnl = np.array([float(t["pnl_usd"]) for t in trades], dtype=float)
    ts = M.trade_stats(pnl)
    days = env_steps / bars_per_day if bars_per_day > 0 else 0.0
    out = {
        "trade/n_trades": float(ts.n_trades),
        "trade/win_rate": ts.win_rate,
        "trade/profit_factor": min(ts.profit_factor, 100.0),  # inf (no losers) would break the chart
        "trade/expectancy": ts.expectancy,
        "trade/avg_pnl": float(pnl.mean()) if len(pnl) else 0.0,
        "trade/trades_per_day": float(ts.n_trades / days) if days > 0 else 0.0,
        "trade/avg_leverage": float(np.mean([float(t["leverage"]) for t in trades])) if trades else 0.0,
        "trade/liquidations": float(sum(1 for t in trades if t.get("reason") == "liquidation")),
    }
    return out


def action_scalars(actions: np.ndarray, leverages: Sequence[float], profiles: Sequence[str]) -> dict[str, float]:
    """``actions/`` shares from an ``(N, 3)`` array of MultiDiscrete actions."""
    a = np.asarray(actions).reshape(-1, 3)
    out: dict[str, float] = {}
    if len(a) == 0:
        return out
    for i, name in enumerate(SIDE_NAMES):
        out[f"actions/side_{name}"] = float((a[:, 0] == i).mean())
    active = a[a[:, 0] != 0]
    if len(active):
        lev = np.asarray(leverages, dtype=float)[active[:, 1]]
        out["actions/leverage_mean"] = float(lev.mean())
        for i, value in enumerate(leverages):
            out[f"actions/leverage_{value:g}x"] = float((active[:, 1] == i).mean())
        for i, name in enumerate(profiles):
            out[f"actions/profile_{name}"] = float((active[:, 2] == i).mean())
    return out


class RolloutStats:
    """Accumulates infos and actions of one rollout over all envs."""

    def __init__(self, n_envs: int):
        self.n_envs = n_envs
        self.peak = np.full(n_envs, np.nan)
        self.reset()

    def reset(self) -> None:
        self.trades: list[dict] = []
        self.episodes: list[dict] = []
        self.actions: list[np.ndarray] = []
        self.env_steps = 0
        self.equity = np.full(self.n_envs, np.nan)
        self.drawdown = np.zeros(self.n_envs)
        self.in_market = 0

    def update(self, infos: Iterable[dict], actions: np.ndarray | None, dones: np.ndarray | None = None) -> None:
        infos = list(infos)
        self.env_steps += len(infos)
        if actions is not None:
            self.actions.append(np.asarray(actions).reshape(len(infos), -1).copy())
        for i, info in enumerate(infos):
            self.trades.extend(info.get("closed_trades") or ())
            eq = info.get("equity")
            if eq is not None:
                eq = float(eq)
                self.equity[i] = eq
                self.peak[i] = eq if not np.isfinite(self.peak[i]) else max(self.peak[i], eq)
                self.drawdown[i] = 1.0 - eq / self.peak[i] if self.peak[i] > 0 else 0.0
            if info.get("position", 0):
                self.in_market += 1
            stats = info.get("episode_stats")
            if stats is not None:
                self.episodes.append(stats)
            if stats is not None or (dones is not None and bool(dones[i])):
                self.peak[i] = np.nan  # a new episode starts its own peak

    def scalars(self, bars_per_day: float, leverages: Sequence[float], profiles: Sequence[str]) -> dict[str, float]:
        out = trade_scalars(self.trades, self.env_steps, bars_per_day)
        if np.isfinite(self.equity).any():
            out["env/equity"] = float(np.nanmean(self.equity))
            out["env/drawdown"] = float(np.mean(self.drawdown))
        if self.env_steps:
            out["env/time_in_market"] = float(self.in_market / self.env_steps)
        if self.episodes:
            out["env/episodes"] = float(len(self.episodes))
            for key in ("fees", "funding", "slippage", "return", "max_drawdown", "liquidations", "time_in_market"):
                vals = [float(e[key]) for e in self.episodes if key in e]
                if vals:  # costs as env/fees ..., the rest as env/episode_return ...
                    tag = f"env/{key}" if key in ("fees", "funding", "slippage") else f"env/episode_{key}"
                    out[tag] = float(np.mean(vals))
        if self.actions:
            out.update(action_scalars(np.concatenate(self.actions), leverages, profiles))
        return out


# ---------------------------------------------------------------- SB3 callbacks

class TradingMetricsCallback(BaseCallback):
    """Records ``trade/``, ``env/`` and ``actions/`` scalars at the end of every rollout."""

    def __init__(self, bars_per_day: float, leverages: Sequence[float], profiles: Sequence[str],
                 hparams: dict[str, Any] | None = None, config_text: str | None = None, verbose: int = 0):
        super().__init__(verbose)
        self.bars_per_day = bars_per_day
        self.leverages = list(leverages)
        self.profiles = list(profiles)
        self.hparams = hparams or {}
        self.config_text = config_text
        self.stats: RolloutStats | None = None
        self.history: list[dict[str, float]] = []

    def _on_training_start(self) -> None:
        self.stats = RolloutStats(self.training_env.num_envs)
        if self.hparams:
            clean = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in self.hparams.items()}
            self.logger.record("hparams", HParam(clean, {"eval/net_return": 0.0, "trade/win_rate": 0.0}),
                               exclude=("stdout", "log", "json", "csv"))
        for fmt in self.logger.output_formats:
            if isinstance(fmt, TensorBoardOutputFormat):
                table = "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in self.hparams.items())
                fmt.writer.add_text("hyperparameters", table, 0)
                if self.config_text:
                    fmt.writer.add_text("config", "```toml\n" + self.config_text + "\n```", 0)
                fmt.writer.flush()

    def _on_step(self) -> bool:
        assert self.stats is not None
        self.stats.update(self.locals.get("infos", ()), self.locals.get("actions"), self.locals.get("dones"))
        return True

    def _on_rollout_end(self) -> None:
        assert self.stats is not None
        scalars = self.stats.scalars(self.bars_per_day, self.leverages, self.profiles)
        entropy = self._policy_entropy()
        if entropy is not None:
            scalars["actions/entropy"] = entropy
        for key, value in scalars.items():
            self.logger.record(key, value)
        self.history.append({"timesteps": float(self.num_timesteps), **scalars})
        self.stats.reset()

    def _policy_entropy(self, max_obs: int = 2_048) -> float | None:
        import torch
        from stable_baselines3.common.policies import ActorCriticPolicy

        buf = getattr(self.model, "rollout_buffer", None)
        if buf is None or not getattr(buf, "full", False):
            return None
        obs = buf.observations.reshape(-1, buf.observations.shape[-1])
        if len(obs) > max_obs:
            obs = obs[np.linspace(0, len(obs) - 1, max_obs).astype(int)]
        policy = self.model.policy
        if not isinstance(policy, ActorCriticPolicy):
            return None
        with torch.no_grad():
            entropy = policy.get_distribution(torch.as_tensor(obs, device=self.model.device)).entropy()
        return None if entropy is None else float(entropy.mean())


SELECTION_KEYS = {"net_pnl": "net_pnl_usd", "excess": "excess_exposure_matched",  # train.select_by -> validation metric
                  "excess_ir": "excess_ir_exposure_matched"}


class ValidationCallback(BaseCallback):
    """Every ``eval_freq`` timesteps (and at the end): a deterministic backtest on the validation
    split; records ``eval/`` scalars and keeps the model with the best selection score.

    ``evaluate(model) -> dict`` returns the validation metrics (net_pnl_usd, net_return, ...);
    ``select_by`` names the score (:data:`SELECTION_KEYS`: net PnL, the excess over
    exposure_matched or its information ratio); the first evaluation is always kept, a later
    one only when its score is higher; evaluations before ``select_from`` timesteps are
    recorded but never kept (the policy has not settled), unless the training ends before it;
    ``save_best(model)`` writes the best model and its normalization statistics; ``patience`` > 0
    stops the training after that many evaluations in a row without a higher score, counted from
    ``select_from`` (``stopped_at`` is then the timesteps); ``on_result(timesteps, metrics)``,
    when given, hears every evaluation (a tuning pruner); an exception it raises ends the training.
    """

    def __init__(self, evaluate: Callable[[Any], dict[str, float]], save_best: Callable[[Any], None],
                 eval_freq: int, verbose: int = 0, on_result: Callable[[int, dict[str, float]], None] | None = None,
                 select_by: str = "net_pnl", patience: int = 0, select_from: int = 0):
        super().__init__(verbose)
        if select_by not in SELECTION_KEYS:
            raise ValueError(f"select_by={select_by!r}: expected one of {sorted(SELECTION_KEYS)}")
        if patience < 0:
            raise ValueError(f"patience={patience}: must be 0 (off) or more")
        if select_from < 0:
            raise ValueError(f"select_from={select_from}: must be 0 (every evaluation) or more")
        self.evaluate = evaluate
        self.save_best = save_best
        self.on_result = on_result
        self.eval_freq = int(eval_freq)
        self.next_eval = self.eval_freq
        self.select_by = select_by
        self.key = SELECTION_KEYS[select_by]
        self.patience = int(patience)
        self.select_from = int(select_from)
        self.best_score = -math.inf
        self.best_timesteps = 0
        self.best_index: int | None = None
        self.stale = 0  # evaluations since the last higher score
        self.stopped_at: int | None = None
        self.history: list[dict[str, float]] = []

    @property
    def best(self) -> dict[str, float]:
        """The history entry of the kept checkpoint ({} before the first evaluation)."""
        return self.history[self.best_index] if self.best_index is not None else {}

    def _run(self, final: bool = False) -> None:
        result = self.evaluate(self.model)
        result = {k: float(v) for k, v in result.items()}
        for key, value in result.items():
            if math.isfinite(value):
                self.logger.record(f"eval/{key}", value)
        score = result.get(self.key, math.nan)
        score = score if not math.isnan(score) else -math.inf
        eligible = self.num_timesteps >= self.select_from or (final and self.best_index is None)
        improved = eligible and (self.best_index is None or score > self.best_score)
        if improved:
            self._keep(score, len(self.history))
        elif eligible:
            self.stale += 1
        if math.isfinite(self.best_score):
            self.logger.record(f"eval/best_{self.key}", self.best_score)
        self.history.append({"timesteps": float(self.num_timesteps), **result, "best": float(improved)})
        excess = result.get(SELECTION_KEYS["excess"], math.nan)
        logger.info("validation at %d steps: net PnL %.2f USD, excess over exposure_matched %+.2f%%%s", self.num_timesteps,
                    result.get("net_pnl_usd", math.nan), 100 * excess, " (best)" if improved else "")
        if self.on_result is not None:
            self.on_result(int(self.num_timesteps), result)

    def _keep(self, score: float, index: int) -> None:
        """The model as it is now becomes the kept checkpoint (history entry ``index``)."""
        self.best_score, self.best_timesteps, self.best_index = score, self.num_timesteps, index
        self.stale = 0
        self.save_best(self.model)

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_eval:
            self._run()
            while self.next_eval <= self.num_timesteps:
                self.next_eval += self.eval_freq
            if self.patience and self.stale >= self.patience:
                self.stopped_at = int(self.num_timesteps)
                logger.info("stopped early at %d timesteps: %d validations in a row without a higher %s (best at %d)",
                            self.stopped_at, self.stale, self.key, self.best_timesteps)
                return False
        return True

    def _on_training_end(self) -> None:
        if not self.history or self.history[-1]["timesteps"] != self.num_timesteps:
            self._run(final=True)
        elif self.best_index is None:  # every evaluation came before select_from: keep the last one
            last = self.history[-1]
            last["best"] = 1.0
            score = last.get(self.key, math.nan)
            self._keep(score if not math.isnan(score) else -math.inf, len(self.history) - 1)
        self.logger.dump(self.num_timesteps)


def warmup_value(timesteps: int, warmup: int, final: float) -> float:
    """A weight rising linearly from 0 at timestep 0 to ``final`` at ``warmup`` timesteps (``final`` if warmup is 0)."""
    if warmup <= 0:
        return float(final)
    return float(final) * min(1.0, max(0.0, timesteps / warmup))


class PenaltyWarmup(BaseCallback):
    """At each rollout's start, sets the exposure charge to :func:`warmup_value` of the timesteps so far
    (``set_value(v)``: the training env's setter) and records it as ``train/exposure_penalty``."""

    def __init__(self, set_value: Callable[[float], None], final: float, warmup: int, verbose: int = 0):
        super().__init__(verbose)
        self.set_value = set_value
        self.final = float(final)
        self.warmup = int(warmup)

    def _on_rollout_start(self) -> None:
        value = warmup_value(self.num_timesteps, self.warmup, self.final)
        self.set_value(value)
        self.logger.record("train/exposure_penalty", value)

    def _on_step(self) -> bool:
        return True


def event_scalar_tags(log_dir: Path) -> set[str]:
    """Every scalar tag in the TensorBoard event files under ``log_dir`` (TensorBoard's own reader)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for events in Path(log_dir).rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent))
        acc.Reload()
        tags |= set(acc.Tags().get("scalars", []))
    return tags
