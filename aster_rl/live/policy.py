"""What the live runner needs from a policy: any object with ``predict(obs) -> action``.

A trained PPO run (``agents.policy.LoadedPolicy``) satisfies it and also offers
``decide(obs)`` with the confidence P(side) (the side head's probability of the chosen
side), the leverage and profile heads' probabilities, the policy's entropy and its value
estimate; plain objects with only ``predict`` work too (confidence and value are then
unknown). Optional attributes describe the model for the prediction log and the risk
guard: ``schema`` (its feature schema), ``run_dir`` (a path), ``model_version``, and
``support`` (an :class:`aster_rl.evaluation.support.ObservationSupport`: the runner counts the bars
whose features lie outside the training ranges).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

logger = logging.getLogger(__name__)


@runtime_checkable
class Policy(Protocol):
    def predict(self, obs: np.ndarray) -> Any: ...


@dataclass(frozen=True)
class PolicyDecision:
    action: tuple[int, int, int]  # side (WAIT/BUY/SELL), leverage index, profile index
    confidence: float | None  # P(side)
    value: float | None
    leverage_probability: float | None = None
    profile_probability: float | None = None
    entropy: float | None = None  # nats, of the whole action distribution


def decide(policy: Any, obs: np.ndarray) -> PolicyDecision:
    """Ask ``policy``: its ``decide`` when it has one (object with ``action``/``confidence``/``value``
    or a tuple ``(action, confidence, value)``), else ``predict``."""
    conf = value = None
    extra: dict[str, float | None] = {}
    if hasattr(policy, "decide"):
        out = policy.decide(obs)
        if hasattr(out, "action"):
            raw, conf, value = out.action, getattr(out, "confidence", None), getattr(out, "value", None)
            extra = {k: _float_or_none(getattr(out, k, None))
                     for k in ("leverage_probability", "profile_probability", "entropy")}
        else:
            raw, conf, value = out
    elif hasattr(policy, "predict"):
        raw = policy.predict(obs)
    elif callable(policy):
        raw = policy(obs)
    else:
        raise TypeError(f"policy {type(policy).__name__} has neither decide(obs) nor predict(obs)")
    a = np.asarray(raw).reshape(-1)
    if a.shape[0] != 3:
        raise ValueError(f"policy returned {raw!r}: expected 3 ints (side, leverage index, profile index)")
    return PolicyDecision(
        action=(int(a[0]), int(a[1]), int(a[2])),
        confidence=None if conf is None else float(conf),
        value=None if value is None else float(value),
        **extra,
    )


def _float_or_none(x: Any) -> float | None:
    return None if x is None else float(x)


def model_version(policy: Any) -> str:
    """A short, stable name of the model file (run name + a hash of its bytes), or the policy's own."""
    explicit = getattr(policy, "model_version", None)
    if explicit:
        return str(explicit)
    run_dir = getattr(policy, "run_dir", None)
    if run_dir is not None:
        for name in ("model_best.zip", "model_last.zip"):
            path = Path(run_dir) / name
            if path.exists():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
                return f"{Path(run_dir).name}/{name}@{digest}"
    return type(policy).__name__


def run_id(policy: Any) -> str:
    run_dir = getattr(policy, "run_dir", None)
    return Path(run_dir).name if run_dir is not None else str(getattr(policy, "run_id", type(policy).__name__))


def model_trained_at(policy: Any) -> float | None:
    """Unix time the model file was written (None when unknown)."""
    explicit = getattr(policy, "trained_at", None)
    if explicit is not None:
        return float(explicit)
    run_dir = getattr(policy, "run_dir", None)
    if run_dir is None:
        return None
    files = [Path(run_dir) / n for n in ("model_best.zip", "model_last.zip") if (Path(run_dir) / n).exists()]
    return max(p.stat().st_mtime for p in files) if files else None
