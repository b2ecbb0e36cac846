"""The layout of a training run's directory, and of the checkpoint directory that holds the runs.

A run ``<checkpoint_dir>/<name>__<seed>__<unix_time>/`` (a walk-forward fold one level
deeper) holds, per model (``best``, ``last``):

- ``policy_<which>.pt`` (state dicts) and ``obs_norm_<which>.npz`` (observation statistics),
  the safe format (:mod:`agents.run_files`);
- ``model_<which>.zip`` (SB3's zip) and, in older runs, ``vecnormalize*.pkl``: pickled, read
  only for a run the user trusts;

and once: ``config.toml``, ``feature_schema.json``, ``splits.json``, ``support.json``,
``manifest.json`` (sha256 of the run files, and when the run was created), ``metrics.json``,
``gate.json`` (the deployment gate's verdict, :mod:`agents.gate`; covered by the manifest),
``retrain_decision.json`` (a retrained run), ``members.json`` (in an ensemble's folder, which
holds no model: the runs it is made of), the TensorBoard logs in ``tb/`` and the
evaluation report in ``eval/`` (``results.json``, ``equity_<name>.csv``, ``trades_<name>.csv``; a report on a
named time range in ``eval_<START-END>/``).

The checkpoint directory also holds ``champion.json``, ``retrain_decisions.jsonl`` and the
walk-forward directories with their ``walkforward.json``.

The newest run is the one with the latest creation time: the manifest's ``created`` field,
else (a run saved before the field existed, or without a manifest) the directory's mtime.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aster_rl.errors import DataError
from aster_rl.evaluation.support import SUPPORT_FILE

Which = Literal["best", "last"]
WHICH: tuple[Which, ...] = ("best", "last")

CHAMPION_FILE = "champion.json"
RETRAIN_LOG = "retrain_decisions.jsonl"
WALKFORWARD_FILE = "walkforward.json"


@dataclass(frozen=True)
class EvalDir:
    """The files of one saved evaluation report."""

    path: Path

    @property
    def results(self) -> Path:
        return self.path / "results.json"

    def equity(self, name: str) -> Path:
        return self.path / f"equity_{name}.csv"

    def trades(self, name: str) -> Path:
        return self.path / f"trades_{name}.csv"


@dataclass(frozen=True)
class RunDir:
    """Every path of one training run; listing, ``latest`` and loading through the class methods."""

    path: Path

    CONFIG = "config.toml"
    SCHEMA = "feature_schema.json"
    SPLITS = "splits.json"
    SUPPORT = SUPPORT_FILE
    MANIFEST = "manifest.json"
    METRICS = "metrics.json"
    GATE = "gate.json"
    RETRAIN_DECISION = "retrain_decision.json"
    TENSORBOARD = "tb"
    EVAL = "eval"
    MEMBERS = "members.json"  # an ensemble's folder: the runs it is made of

    def __init__(self, path: str | Path | RunDir) -> None:
        object.__setattr__(self, "path", Path(path.path if isinstance(path, RunDir) else path))

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    # ------------------------------------------------------------ file names

    @staticmethod
    def policy_name(which: Which) -> str:
        return f"policy_{which}.pt"

    @staticmethod
    def normalizer_name(which: Which) -> str:
        return f"obs_norm_{which}.npz"

    @staticmethod
    def sb3_model_name(which: Which) -> str:
        return f"model_{which}.zip"

    @staticmethod
    def pickled_normalizer_name(which: Which) -> str:
        return "vecnormalize_best.pkl" if which == "best" else "vecnormalize.pkl"

    @classmethod
    def manifest_files(cls) -> tuple[str, ...]:
        """The run inputs a manifest covers when present, and the gate's verdict (reports such as eval/ or
        metrics.json are not)."""
        models = tuple(f(w) for f in (cls.policy_name, cls.normalizer_name, cls.sb3_model_name) for w in WHICH)
        return (cls.CONFIG, cls.SCHEMA, cls.SPLITS, cls.SUPPORT, *models, cls.GATE)

    # ------------------------------------------------------------ paths

    def policy(self, which: Which) -> Path:
        return self.path / self.policy_name(which)

    def normalizer(self, which: Which) -> Path:
        return self.path / self.normalizer_name(which)

    def sb3_model(self, which: Which) -> Path:
        return self.path / self.sb3_model_name(which)

    def pickled_normalizer(self, which: Which) -> Path:
        return self.path / self.pickled_normalizer_name(which)

    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def schema(self) -> Path:
        return self.path / self.SCHEMA

    @property
    def splits(self) -> Path:
        return self.path / self.SPLITS

    @property
    def support(self) -> Path:
        return self.path / self.SUPPORT

    @property
    def manifest(self) -> Path:
        return self.path / self.MANIFEST

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def gate(self) -> Path:
        return self.path / self.GATE

    @property
    def retrain_decision(self) -> Path:
        return self.path / self.RETRAIN_DECISION

    @property
    def members(self) -> Path:
        return self.path / self.MEMBERS

    @property
    def tensorboard(self) -> Path:
        return self.path / self.TENSORBOARD

    @property
    def eval(self) -> EvalDir:
        return EvalDir(self.path / self.EVAL)

    def eval_range(self, timerange: str) -> EvalDir:
        """The report of an evaluation on a named time range (``evaluate --timerange``), apart from the test split's."""
        return EvalDir(self.path / f"{self.EVAL}_{timerange}")

    # ------------------------------------------------------------ state

    def has_model(self, which: Which = "last") -> bool:
        """Whether the run holds a ``which`` model in either format."""
        return self.policy(which).is_file() or self.sb3_model(which).is_file()

    def is_safe_format(self) -> bool:
        return self.manifest.is_file() and any(self.policy(w).is_file() for w in WHICH)

    def read_splits(self) -> dict[str, Any]:
        """``splits.json`` as saved; DataError when the run has none."""
        if not self.splits.is_file():
            raise DataError(f"{self.path}: no {self.SPLITS}; the run is incomplete")
        return dict(json.loads(self.splits.read_text()))

    def has_test_split(self) -> bool:
        """Whether the run saved a test split (a retrained run has only its selection hold-out)."""
        return self.splits.is_file() and "test" in json.loads(self.splits.read_text())

    def created_at(self) -> float:
        """When the run was created: the manifest's ``created`` time, else the directory's mtime."""
        try:
            created = json.loads(self.manifest.read_text()).get("created")
        except (OSError, ValueError, AttributeError):
            created = None
        if isinstance(created, (int, float)) and not isinstance(created, bool):
            return float(created)
        return self.path.stat().st_mtime

    # ------------------------------------------------------------ loading

    def load_config(self) -> Any:
        """The run's saved configuration (an ``AppConfig``)."""
        from aster_rl.config import load_config

        return load_config(self.config)

    def load_schema(self) -> Any:
        """The run's saved feature schema (a ``FeatureSchema``)."""
        from aster_rl.features.pipeline import FeatureSchema

        if not self.schema.exists():
            raise DataError(f"{self.path}: no {self.SCHEMA}; the run is incomplete")
        return FeatureSchema.from_dict(json.loads(self.schema.read_text()))

    # ------------------------------------------------------------ the runs of a checkpoint directory

    @classmethod
    def all(cls, checkpoint_dir: str | Path) -> list[RunDir]:
        """Trained runs under ``checkpoint_dir`` (directly or one level down, e.g. walk-forward folds), newest first."""
        root = Path(checkpoint_dir)
        if not root.is_dir():
            return []
        runs = [r for r in _candidates(root) if r.has_model()]
        return sorted(runs, key=lambda r: (r.created_at(), r.name), reverse=True)

    @classmethod
    def newest(cls, checkpoint_dir: str | Path, where: Callable[[RunDir], bool] | None = None) -> RunDir | None:
        """The newest trained run under ``checkpoint_dir`` (that satisfies ``where``); None if there is none."""
        return next((r for r in cls.all(checkpoint_dir) if where is None or where(r)), None)

    @classmethod
    def resolve(cls, run: str | Path | RunDir, checkpoint_dir: str | Path = "checkpoints") -> RunDir:
        """A trained run directory, or ``"latest"``: the newest run under ``checkpoint_dir``."""
        if str(run) == "latest":
            newest = cls.newest(checkpoint_dir)
            if newest is None:
                raise DataError(f"no trained run under {Path(checkpoint_dir)}/; train one with `aster-rl train`")
            return newest
        rd = cls(run)
        if not rd.path.is_dir():
            raise DataError(f"run directory {rd.path} does not exist")
        if not rd.has_model():
            raise DataError(f"{rd.path} is not a trained run (no {cls.policy_name('last')} or {cls.sb3_model_name('last')})")
        return rd


def _candidates(root: Path) -> Iterator[RunDir]:
    for child in root.iterdir():
        if child.is_dir():
            yield RunDir(child)
            for grandchild in child.iterdir():
                if grandchild.is_dir():
                    yield RunDir(grandchild)


def champion_file(checkpoint_dir: str | Path) -> Path:
    return Path(checkpoint_dir) / CHAMPION_FILE


def retrain_log(checkpoint_dir: str | Path) -> Path:
    return Path(checkpoint_dir) / RETRAIN_LOG
