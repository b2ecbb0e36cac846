"""Load a trained run and act with it: model + observation normalization + schema check.

A run directory holds ``policy_best.pt`` / ``policy_last.pt`` (state dicts),
``obs_norm_best.npz`` / ``obs_norm_last.npz`` (the observation statistics fitted on the
training split), ``feature_schema.json``, ``config.toml``, ``splits.json``, ``support.json``
(the observation's columns and their training ranges, :mod:`aster_rl.evaluation.support`) and
``manifest.json`` (the layout: :class:`agents.run_dir.RunDir`); nothing in it is unpickled. Older runs
(``model_*.zip`` + ``vecnormalize*.pkl`` only) load only with ``trust_run=True``.
:class:`LoadedPolicy` is an :class:`aster_rl.interfaces.DecidingPolicy`, the contract the live
runner and the backtester use: ``policy(obs) -> action`` (also ``predict``) on a full
observation (every feature column + the account state; the columns left out at training
are dropped here); ``decide`` adds the
confidence, P(side) from the side head, the leverage and profile heads' probabilities,
the policy's entropy and its value estimate.

**WAIT outside the support** (``wait_outside_support``, the ``live.wait_outside_support``
switch): on an observation whose kept feature columns lie outside their training ranges
(:meth:`ObservationSupport.outside`) the side is WAIT (no new position; an open one keeps
its exchange-side stop and target), and ``decide`` says why in ``PolicyDecision.reason``,
naming the columns. It lives here, in the policy, so the backtester, the evaluation, the
deployment gate and the live runner all see the same decisions.

SB3's distribution for a ``MultiDiscrete`` action is a product of independent categoricals
(``MultiCategoricalDistribution``: one ``Categorical`` per head, log-probabilities and
entropies summed), so P(side) is the side head's probability itself, the marginal over
leverage and profile.

**Why this action** (:meth:`LoadedPolicy.tentacle_effects`): for one observation, how far each
tentacle's inputs move P(side) of a given side: the tentacle's kept feature columns are
blanked (set to 0 after the observation normalization, i.e. to their training mean) and the
policy is asked again; the effect is P(side | all) − P(side | tentacle blanked). The
tentacles are the feature schema's column groups (``FeatureSchema.column_groups``, the
grouping :mod:`agents.importance` shuffles); all of them go through the network in one batch.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from aster_rl.config import AppConfig
from aster_rl.errors import SchemaMismatchError
from aster_rl.interfaces import DecidingPolicy, PolicyDecision
from aster_rl.evaluation.support import TOP_COLUMNS, ObservationSupport

from agents.data import check_run_pattern_library

from agents import run_files
from agents.run_dir import RunDir, Which

logger = logging.getLogger(__name__)


class LoadedPolicy(DecidingPolicy):
    """A trained PPO policy with its observation normalization, ready for raw observations."""

    def __init__(self, model: Any, obs_normalizer: Any | None, schema: Any, config: AppConfig, run_dir: Path | None,
                 support: ObservationSupport | None = None, model_file: Path | None = None,
                 wait_outside_support: bool = False):
        self.model = model
        self.obs_normalizer = obs_normalizer
        self.schema = schema
        self.config = config
        self.run_dir = run_dir
        self.support = support
        self.model_file = model_file  # the weights loaded (the live runner names and ages the model by it)
        self.wait_outside_support = wait_outside_support and support is not None

    @property
    def model_version(self) -> str | None:
        """``<run>/<weights file>@<sha256[:12]>``: which weights made a decision (None when not loaded from a file)."""
        if self.model_file is None or not self.model_file.exists():
            return None
        digest = hashlib.sha256(self.model_file.read_bytes()).hexdigest()[:12]
        return f"{self.model_file.parent.name}/{self.model_file.name}@{digest}"

    @property
    def trained_at(self) -> float | None:
        """Unix time the loaded weights were written (None when not loaded from a file)."""
        if self.model_file is None or not self.model_file.exists():
            return None
        return self.model_file.stat().st_mtime

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """A full observation, reduced to the run's columns (when it left some out) and normalized."""
        obs = np.asarray(obs, dtype=np.float32)
        if self.support is not None:
            obs = self.support.select(obs)
        if self.obs_normalizer is None:
            return obs
        return self.obs_normalizer.normalize_obs(obs).astype(np.float32)

    def outside_support(self, obs: np.ndarray) -> np.ndarray:
        """Bool per observation (shape ``obs.shape[:-1]``): WAIT forced because it lies outside the training support."""
        shape = np.shape(obs)[:-1]
        if not self.wait_outside_support or self.support is None:
            return np.zeros(shape, dtype=bool)
        return np.asarray(self.support.outside(obs).any(axis=1)).reshape(shape)

    def support_reason(self, obs: np.ndarray) -> str | None:
        """Why one observation's decision is WAIT whatever the model says (None when it is not forced)."""
        if self.support is None or not self.outside_support(obs).any():
            return None
        cols = self.support.outside_columns(obs)
        more = f" and {len(cols) - TOP_COLUMNS} more" if len(cols) > TOP_COLUMNS else ""
        return "WAIT: outside the training support (" + ", ".join(cols[:TOP_COLUMNS]) + more + ")"

    def side_probabilities(self, normalized: np.ndarray) -> np.ndarray:
        """P(WAIT), P(BUY), P(SELL) per row of a batch of normalized observations (rows × 3)."""
        import torch

        policy = self.model.policy
        with torch.no_grad():
            obs_t, _ = policy.obs_to_tensor(np.asarray(normalized, dtype=np.float32))
            dist = policy.get_distribution(obs_t)
            return dist.distribution[0].probs.cpu().numpy().astype(float).reshape(-1, 3)

    def tentacle_positions(self) -> dict[str, list[int]]:
        """Tentacle -> the positions of its kept feature columns in the normalized observation (none without a schema)."""
        if self.schema is None:
            return {}
        kept = self.support.kept if self.support is not None else list(self.schema.names)
        where = {name: i for i, name in enumerate(kept)}
        return {t: [where[c] for c in cols if c in where] for t, cols in self.schema.column_groups().items()}

    def tentacle_effects(self, obs: np.ndarray, side: int) -> dict[str, float]:
        """P(side | all) − P(side | tentacle blanked), per tentacle, for one raw observation (module docstring)."""
        return tentacle_effects(self.side_probabilities, self.normalize(obs), self.tentacle_positions(), side)

    def predict(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic action (most probable per dimension) for a raw observation; the side is WAIT
        where the observation lies outside the training support and ``wait_outside_support`` is on."""
        action, _ = self.model.predict(self.normalize(obs), deterministic=True)
        action = np.array(action, dtype=np.int64)
        forced = self.outside_support(obs)
        if np.any(forced):
            action[..., 0] = np.where(forced, 0, action[..., 0])
        return action

    __call__ = predict

    def decide(self, obs: np.ndarray) -> PolicyDecision:
        import torch

        norm = self.normalize(obs)
        policy = self.model.policy
        with torch.no_grad():
            obs_t, _ = policy.obs_to_tensor(norm)
            dist = policy.get_distribution(obs_t)
            probs = tuple(d.probs[0].cpu().numpy().astype(float) for d in dist.distribution)
            entropy = float(dist.entropy()[0])
            value = float(policy.predict_values(obs_t)[0, 0])
        action = np.array([int(np.argmax(p)) for p in probs], dtype=np.int64)
        reason = self.support_reason(obs)
        if reason is not None:  # the model's own choice is kept in the probabilities; its confidence does not apply
            return PolicyDecision(action=(0, int(action[1]), int(action[2])), confidence=None, value=value,
                                  probabilities=probs, entropy=entropy, reason=reason)
        return PolicyDecision(action=(int(action[0]), int(action[1]), int(action[2])),
                              confidence=action_confidence(probs, action), value=value, probabilities=probs, entropy=entropy)


def action_confidence(probs: tuple[np.ndarray, ...], action: np.ndarray) -> float:
    """P(side): the side head's probability of the chosen side (WAIT, BUY or SELL).

    The heads are independent, so this is the marginal of the joint distribution over
    leverage and profile; the joint probability of one (side, leverage, profile) triple is
    mostly the spread over the ladders and says little about whether the trade wins."""
    return float(probs[0][int(action[0])])


def tentacle_effects(side_probabilities: Any, normalized: np.ndarray, positions: dict[str, list[int]],
                     side: int) -> dict[str, float]:
    """How far each tentacle moves P(side): ``side_probabilities(batch) -> rows × 3`` on the
    normalized observation and on one copy per tentacle with its ``positions`` set to 0 (the
    training mean after normalization), in one batch. Tentacles without kept columns are left out."""
    if side not in (0, 1, 2):
        raise ValueError(f"side {side}: must be 0 (WAIT), 1 (BUY) or 2 (SELL)")
    base = np.asarray(normalized, dtype=np.float32).reshape(-1)
    names = [t for t, idx in positions.items() if idx]
    batch = np.repeat(base[None, :], len(names) + 1, axis=0)
    for row, name in enumerate(names, start=1):
        batch[row, positions[name]] = 0.0
    p = np.asarray(side_probabilities(batch), dtype=float)[:, side]
    return {name: float(p[0] - p[row]) for row, name in enumerate(names, start=1)}


def load_policy(
    run: str | Path | RunDir,
    schema: Any | None = None,
    which: Which = "best",
    checkpoint_dir: str | Path = "checkpoints",
    trust_run: bool = False,
    wait_outside_support: bool | None = None,
) -> LoadedPolicy:
    """Load ``run`` (falls back to the last model if there is no best one).

    ``wait_outside_support`` (None: the run's own ``live.wait_outside_support``) makes the
    policy WAIT on observations outside its training support (see the module docstring).

    The run's files must match its manifest; a run in the older pickled format loads only
    with ``trust_run=True`` (unpickling runs code stored in it). With ``schema`` (the feature
    schema of the data the policy will see), the run's saved schema must be compatible, or
    :class:`SchemaMismatchError` says what differs.
    """
    import torch

    rd = RunDir.resolve(run, checkpoint_dir)
    run_dir = rd.path
    safe, which = run_files.admit_run(run_dir, which, trust_run)
    saved = rd.load_schema()
    check_run_pattern_library(run_dir, saved)
    if schema is not None:
        try:
            saved.check_compatible(schema)
        except SchemaMismatchError as e:
            raise SchemaMismatchError(f"run {run_dir.name}: the data's features differ from the model's: {e}") from None
    config = rd.load_config()
    torch.set_num_threads(config.train.torch_threads)
    normalizer: Any  # the plain statistics, or an older run's VecNormalize
    if safe:
        model, normalizer, _ = run_files.load_model_files(run_dir, which, config)
    else:
        model, normalizer = _load_pickled(rd, which)
    support = ObservationSupport.load(run_dir)
    if support is not None and tuple(support.columns) != tuple(saved.names):
        raise SchemaMismatchError(f"run {run_dir.name}: {RunDir.SUPPORT} lists other columns than {RunDir.SCHEMA}")
    weights = rd.policy(which) if safe else rd.sb3_model(which)
    wait = config.live.wait_outside_support if wait_outside_support is None else wait_outside_support
    return LoadedPolicy(model, normalizer, saved, config, run_dir, support, model_file=weights, wait_outside_support=wait)


def _load_pickled(rd: RunDir, which: Which) -> tuple[Any, Any | None]:
    """An older run's SB3 zip and pickled VecNormalize: runs code stored in them (trusted runs only)."""
    from stable_baselines3 import PPO

    if not rd.sb3_model(which).exists():
        logger.info("%s: no %s, using the last model", rd.path, rd.sb3_model_name(which))
        which = "last"
    logger.warning("%s: loading a pickled run (trusted explicitly)", rd.path)
    model = PPO.load(rd.sb3_model(which), device="cpu")
    normalizer = None
    if rd.pickled_normalizer(which).exists():
        with open(rd.pickled_normalizer(which), "rb") as fh:
            normalizer = pickle.load(fh)
        normalizer.training = False
    return model, normalizer
