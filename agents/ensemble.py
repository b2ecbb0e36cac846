"""A seed ensemble: several runs trained on the same data with different seeds, acting as one
policy that WAITs when its members disagree.

:class:`EnsemblePolicy` is an :class:`aster_rl.interfaces.DecidingPolicy` over
:class:`agents.policy.LoadedPolicy` members:

- each head's probabilities are the members' mean (side, leverage, profile); the side is the
  argmax of the mean side head, the leverage and profile the argmaxes of theirs;
- each member's own side is its decision's side (its argmax, or WAIT when it lies outside its
  training support with ``wait_outside_support``); when fewer than ``agreement`` members
  (default: a strict majority, ``n // 2 + 1``) pick the mean's side, the side is WAIT and
  ``PolicyDecision.reason`` says so ("members disagree: 2 of 3 pick BUY, 3 needed");
- a member forced to WAIT outside the training support makes the ensemble WAIT with that
  member's reason (the members share their training split, hence their support);
- confidence is the mean side head's probability of the chosen side; value and entropy are the
  members' means.

:func:`load_ensemble` loads the members and checks that they share the feature schema, the
splits and the configuration except ``train.seed`` (and the run's bookkeeping ``train.name``
and ``train.checkpoint_dir``): an ensemble of different designs or data is refused with the
differences named. :func:`evaluate_ensemble` judges an ensemble as ``evaluate`` judges one run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aster_rl.config import AppConfig
from aster_rl.data.timeframes import TimeRange
from aster_rl.errors import ConfigError, SchemaMismatchError
from aster_rl.interfaces import DecidingPolicy, PolicyDecision

from agents.evaluate import EvaluationReport, evaluate_policy, evaluation_setting
from agents.policy import LoadedPolicy, action_confidence, load_policy
from agents.run_dir import RunDir, Which

SIDE_NAMES = ("WAIT", "BUY", "SELL")
# Configuration fields members may differ in: the seed, and the run's own bookkeeping.
FREE_TRAIN_FIELDS = ("seed", "name", "checkpoint_dir")


def check_size(runs: Sequence[Any]) -> None:
    """An ensemble needs at least two runs."""
    if len(runs) < 2:
        raise ConfigError(f"ensemble: {len(runs)} run(s) given; an ensemble needs at least two")


def majority(n: int) -> int:
    """A strict majority of ``n`` members."""
    return n // 2 + 1


class EnsemblePolicy(DecidingPolicy):
    """Mean of the members' action heads, WAIT when fewer than ``agreement`` members pick its side."""

    def __init__(self, members: Sequence[LoadedPolicy], agreement: int | None = None):
        if not members:
            raise ConfigError("ensemble: no members")
        self.members = tuple(members)
        n = len(self.members)
        self.agreement = majority(n) if agreement is None else int(agreement)
        if not 1 <= self.agreement <= n:
            raise ConfigError(f"ensemble agreement = {agreement}: must be in 1..{n} (the number of members)")
        first = self.members[0]
        self.schema = first.schema
        self.config = first.config
        self.support = first.support
        self.run_dir = first.run_dir
        # a member forced to WAIT outside the support makes the ensemble WAIT
        self.wait_outside_support = any(m.wait_outside_support for m in self.members)

    @property
    def model_version(self) -> str:
        """The members' versions joined with ``+``."""
        return "+".join(str(m.model_version or type(m).__name__) for m in self.members)

    def decide(self, obs: np.ndarray) -> PolicyDecision:
        decisions = [m.decide(obs) for m in self.members]
        heads = len(decisions[0].probabilities)
        probs = tuple(np.mean([d.probabilities[h] for d in decisions], axis=0) for h in range(heads))
        action = np.array([int(np.argmax(p)) for p in probs], dtype=np.int64)
        value = float(np.mean([d.value for d in decisions if d.value is not None])) if decisions[0].value is not None else None
        entropy = float(np.mean([d.entropy for d in decisions if d.entropy is not None])) if decisions[0].entropy is not None else None
        forced = next((d.reason for d in decisions if d.reason is not None), None)
        if forced is not None:
            return PolicyDecision(action=(0, int(action[1]), int(action[2])), confidence=None, value=value,
                                  probabilities=probs, entropy=entropy, reason=forced)
        side = int(action[0])
        votes = sum(1 for d in decisions if int(d.action[0]) == side)
        if votes < self.agreement:
            reason = (f"WAIT: members disagree ({votes} of {len(decisions)} pick {SIDE_NAMES[side]}, "
                      f"{self.agreement} needed)")
            return PolicyDecision(action=(0, int(action[1]), int(action[2])), confidence=None, value=value,
                                  probabilities=probs, entropy=entropy, reason=reason)
        return PolicyDecision(action=(side, int(action[1]), int(action[2])), confidence=action_confidence(probs, action),
                              value=value, probabilities=probs, entropy=entropy)

    def predict(self, obs: np.ndarray) -> np.ndarray:
        """The ensemble's action for one observation, or one per row of a batch."""
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim == 1:
            return np.array(self.decide(obs).action, dtype=np.int64)
        return np.stack([np.array(self.decide(row).action, dtype=np.int64) for row in obs])

    __call__ = predict


def _config_body(policy: LoadedPolicy) -> dict[str, Any]:
    body = json.loads(policy.config.model_dump_json())
    for key in FREE_TRAIN_FIELDS:
        body.get("train", {}).pop(key, None)
    return body


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{where}.{key}" if where else str(key))
        return out
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def check_members(members: Sequence[LoadedPolicy], names: Sequence[str]) -> None:
    """The members share the feature schema, the splits and the configuration except :data:`FREE_TRAIN_FIELDS`."""
    first, first_name = members[0], names[0]
    base_config = _config_body(first)
    base_splits = RunDir(first.run_dir).read_splits() if first.run_dir is not None else None
    for member, name in zip(members[1:], names[1:]):
        if member.schema.hash != first.schema.hash:
            what = "; ".join(first.schema.diff(member.schema)) or "hash differs"
            raise SchemaMismatchError(f"ensemble: {name} has other features than {first_name}: {what}")
        diff = _differences(base_config, _config_body(member))
        if diff:
            raise ConfigError(f"ensemble: {name} is configured unlike {first_name} (only train.seed may differ): "
                              + "; ".join(diff[:5]) + (f" and {len(diff) - 5} more" if len(diff) > 5 else ""))
        splits = RunDir(member.run_dir).read_splits() if member.run_dir is not None else None
        if splits != base_splits:
            raise ConfigError(f"ensemble: {name} was trained on other splits than {first_name}")


def load_ensemble(
    runs: Sequence[str | Path | RunDir],
    schema: Any | None = None,
    *,
    agreement: int | None = None,
    which: Which = "best",
    checkpoint_dir: str | Path = "checkpoints",
    wait_outside_support: bool | None = None,
    trust_run: bool = False,
) -> EnsemblePolicy:
    """Load the runs ``runs`` (see :func:`agents.policy.load_policy`) as one :class:`EnsemblePolicy`,
    after :func:`check_members`."""
    check_size(runs)
    members = [load_policy(r, schema=schema, which=which, checkpoint_dir=checkpoint_dir,
                           wait_outside_support=wait_outside_support, trust_run=trust_run) for r in runs]
    names = [Path(m.run_dir).name if m.run_dir is not None else str(r) for m, r in zip(members, runs)]
    if len({str(m.run_dir) for m in members}) < len(members):
        raise ConfigError(f"ensemble: a run is listed twice ({', '.join(names)})")
    check_members(members, names)
    return EnsemblePolicy(members, agreement=agreement)


def evaluate_ensemble(
    runs: Sequence[str | Path],
    config: AppConfig | None = None,
    dataset: Any = None,
    *,
    which: Which = "best",
    agreement: int | None = None,
    trust_run: bool = False,
    timerange: TimeRange | None = None,
) -> EvaluationReport:
    """The ensemble of ``runs`` judged as :func:`agents.evaluate.evaluate_run` judges one run: on the members'
    test split (they share it), or on ``timerange`` when its first bar comes after every bar a member trained
    or was selected on. The report is not saved (an ensemble has no run directory of its own)."""
    check_size(runs)
    dirs = [RunDir.resolve(r, config.train.checkpoint_dir if config is not None else "checkpoints") for r in runs]
    run_config, dataset, splits, wait = evaluation_setting(dirs, config, dataset, timerange)
    policy = load_ensemble(dirs, schema=dataset.schema, agreement=agreement, which=which, trust_run=trust_run,
                           wait_outside_support=wait)
    return evaluate_policy(policy, dataset, run_config, splits, timerange=timerange)
