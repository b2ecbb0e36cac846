"""What the live runner asks of a policy: :class:`aster_rl.interfaces.Policy`, ``policy(obs) -> action``.

A trained PPO run (``agents.policy.LoadedPolicy``) is also a
:class:`aster_rl.interfaces.DecidingPolicy`: ``decide(obs)`` gives the confidence P(side)
(the side head's probability of the chosen side), the heads' probabilities, the policy's
entropy and its value estimate; for a plain policy they are unknown. Optional attributes
describe the model for the prediction log and the risk guard: ``schema`` (its feature
schema), ``run_dir`` (a path), ``model_version`` (which weights), ``trained_at`` (when they
were written: the risk guard's model-age check) and ``support`` (an
:class:`aster_rl.evaluation.support.ObservationSupport`: the runner counts the bars whose
features lie outside the training ranges). A decision the policy overrides itself (a loaded
run WAITs outside its training support, ``live.wait_outside_support``) carries why in
``PolicyDecision.reason``; the runner puts it first in the prediction's reasoning. A policy
with ``tentacle_effects(obs, side)`` (a loaded run) also says how far each tentacle's inputs
moved P(side): the runner keeps it in its state for the dashboard's "why this action".
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from aster_rl.interfaces import DecidingPolicy, Policy, PolicyDecision, as_action

logger = logging.getLogger(__name__)


def decide(policy: Policy, obs: np.ndarray) -> PolicyDecision:
    """Ask ``policy``: its ``decide`` when it has one, else ``policy(obs)``; the action is checked
    to be 3 ints (ValueError)."""
    if isinstance(policy, DecidingPolicy):
        d = policy.decide(obs)
        return dataclasses.replace(d, action=as_action(d.action))
    return PolicyDecision(action=as_action(policy(obs)))


def model_version(policy: Any) -> str:
    """The policy's own name for its weights (``model_version``), or its type's name."""
    explicit = getattr(policy, "model_version", None)
    return str(explicit) if explicit else type(policy).__name__


def run_id(policy: Any) -> str:
    run_dir = getattr(policy, "run_dir", None)
    return Path(run_dir).name if run_dir is not None else str(getattr(policy, "run_id", type(policy).__name__))


def model_trained_at(policy: Any) -> float | None:
    """Unix time the policy's weights were written (``trained_at``; None when unknown)."""
    explicit = getattr(policy, "trained_at", None)
    return None if explicit is None else float(explicit)


def tentacle_effects(policy: Any, obs: np.ndarray, side: int) -> dict[str, float] | None:
    """P(side | all) − P(side | tentacle blanked) per tentacle, when ``policy`` can say (else None)."""
    explain = getattr(policy, "tentacle_effects", None)
    return dict(explain(obs, side)) if callable(explain) else None
