"""Hyperparameter tuning: an Optuna study on shared storage, worked by any number of processes.

Why Optuna with a relational storage: each worker is an independent process that needs
nothing but the storage URL, so ``--workers K`` on one machine and the same command on
other machines pointed at the same PostgreSQL database all work one study (rl-baselines3-
zoo's ``--optimize --storage --study-name`` model). SQLite serves one worker at a time;
concurrent workers need a server database (PostgreSQL).

- **The space** is :data:`SPACE`, declared once: PPO's learning rate, entropy coefficient
  and network size, the reward's turnover and drawdown penalties, the leverage ladder's
  cap, the decision interval and minimum holding time, and the reward itself. ``params`` narrows it to some of its keys (the rest keep the config's values).
- **The objective** is the judge's validation excess over ``exposure_matched``: the
  estimate in the deployment gate's record (:func:`agents.gate.judge_span`, run by
  :func:`agents.train.train` on the validation split that chose the checkpoint). The test
  split is never read.
- **Pruning** hears every validation evaluation during training: the step's value is that
  evaluation's excess over ``exposure_matched`` (the judge's estimate, which every
  validation evaluation records), so a pruner compares trials on the objective's own scale
  before the gate runs.
- **One run per configuration**: a trial's run is a pure function of its config (and time
  range), so a hash of both names its run directory ``<checkpoint_dir>/tune/<study>/<hash>``;
  a hash the study (or the directory) already finished is looked up, not trained again.
- **Crashed workers**: the storage's heartbeat marks a trial whose worker stopped beating
  as failed, and :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` queues it again with the
  same parameters; a worker stops when the study has ``trials`` finished (complete or
  pruned) trials, and waits while the last ones run elsewhere, so a crashed one is retried.
- The best configuration is written as TOML for ``train --config``, with ``train.trials`` =
  the study's finished trials, so its deflated Sharpe counts every configuration tried.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aster_rl.config import AppConfig, check_run_name, replace, to_toml
from aster_rl.data.timeframes import TimeRange
from aster_rl.errors import ConfigError, DataError
from aster_rl.storage import display_url

from agents.run_dir import RunDir

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

STORAGE_ENV = "ASTER_TUNE_STORAGE"  # the storage URL when --storage is not given (it may hold a password)
OBJECTIVE = "validation excess over exposure_matched"
HEARTBEAT_S = 10  # a running trial's worker beats this often ...
GRACE_S = 60  # ... and a trial not heard from for this long is failed and queued again
MAX_RETRY = 3  # queued again at most this many times
POLL_S = 1.0  # how often a worker with nothing to start looks for retried trials
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "none")
STATES_DONE = ("COMPLETE", "PRUNED")


@dataclass(frozen=True)
class Param:
    """One tuned setting: its dotted config key, its range (or choices), a small grid and why it matters."""

    key: str
    kind: Literal["float", "categorical"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()
    grid: tuple[Any, ...] = ()  # the grid sampler's points
    why: str = ""


# The search space, in one place. Network sizes are "<width>x<width>" (Optuna stores plain values).
SPACE: tuple[Param, ...] = (
    Param("train.learning_rate", "float", 1e-5, 1e-3, log=True, grid=(1e-4, 3e-4), why="PPO's step size"),
    Param("train.ent_coef", "float", 1e-4, 0.05, log=True, grid=(0.001, 0.01),
          why="entropy bonus: keeps exploring sides and leverages vs. committing early"),
    Param("train.net_arch", "categorical", choices=("64x64", "128x128", "256x256"), grid=("64x64", "128x128"),
          why="policy and value network size"),
    Param("env.turnover_penalty", "float", 0.0, 0.002, grid=(0.0, 0.0005),
          why="reward cost per traded notional / equity: discourages churning beyond the fees"),
    Param("env.drawdown_penalty", "float", 0.0, 0.05, grid=(0.0, 0.01),
          why="reward cost per step of the drop from the peak equity"),
    Param("env.max_leverage", "categorical", choices=(3, 5, 10, 20, 50), grid=(5, 20),
          why="the leverage ladder's cap: rungs above it are dropped"),
    Param("env.decision_every", "categorical", choices=(1, 3, 6, 12), grid=(1, 12),
          why="bars between decisions (aster_rl.sim.decision): fewer entries, fewer costs"),
    Param("env.min_hold_bars", "categorical", choices=(0, 6, 12, 36), grid=(0, 12),
          why="a signal may not close a younger position (stops and targets still fire)"),
    Param("env.reward", "categorical", choices=("log_equity", "differential_sharpe"),
          grid=("log_equity", "differential_sharpe"), why="growth of equity vs. a risk-adjusted step reward"),
)


def space_for(keys: Sequence[str] | None) -> tuple[Param, ...]:
    """The parameters of :data:`SPACE` named by ``keys`` (all when None); ConfigError naming an unknown key."""
    if not keys:
        return SPACE
    known = {p.key: p for p in SPACE}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ConfigError(f"--params: unknown {unknown}; the tuned settings are {sorted(known)}")
    return tuple(known[k] for k in dict.fromkeys(keys))


def suggest(trial: optuna.Trial, space: Sequence[Param]) -> dict[str, Any]:
    """The trial's values for ``space``."""
    out: dict[str, Any] = {}
    for p in space:
        if p.kind == "float":
            out[p.key] = trial.suggest_float(p.key, p.low, p.high, log=p.log)
        else:
            out[p.key] = trial.suggest_categorical(p.key, list(p.choices))
    return out


def apply_params(config: AppConfig, params: dict[str, Any]) -> AppConfig:
    """``config`` with a trial's ``params`` set (validated by :func:`aster_rl.config.replace`)."""
    sections: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        section, name = key.split(".", 1)
        if name == "net_arch":
            value = tuple(int(w) for w in str(value).split("x"))
        if section == "env" and name == "max_leverage":
            cap = int(value)
            ladder = tuple(lev for lev in config.env.leverages if lev <= cap)
            if not ladder:
                raise ConfigError(f"env.max_leverage={cap}: below every rung of env.leverages {list(config.env.leverages)}")
            sections.setdefault("env", {})["leverages"] = ladder
            value = cap
        sections.setdefault(section, {})[name] = value
    return replace(config, **sections) if sections else config


def config_hash(config: AppConfig, timerange: TimeRange | None = None) -> str:
    """What names a trial's run: the config as TOML and the time range, hashed (16 hex digits)."""
    text = to_toml(config) + f"\n# timerange: {timerange.text if timerange is not None else ''}\n"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def storage_url(given: str | None, environ: dict[str, str] | None = None) -> str:
    """The storage URL: ``--storage``, else ``$ASTER_TUNE_STORAGE``; ConfigError when neither is set."""
    env = os.environ if environ is None else environ
    url = given or env.get(STORAGE_ENV, "")
    if not url:
        raise ConfigError(f"--storage: no storage URL; give one (e.g. postgresql+psycopg://user@host/db) or set {STORAGE_ENV}")
    if "://" not in url:
        raise ConfigError(f"--storage {display_url(url)}: not a database URL (dialect[+driver]://...)")
    return url


def open_storage(url: str, *, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S) -> optuna.storages.RDBStorage:
    """Optuna's storage at ``url`` with the heartbeat on and stale trials queued again."""
    import optuna

    with warnings.catch_warnings():  # Optuna marks the heartbeat experimental
        warnings.simplefilter("ignore")
        try:
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=int(heartbeat_s), grace_period=int(grace_s),
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
                engine_kwargs={"pool_pre_ping": True},
            )
        except ImportError as e:
            raise ConfigError(f"--storage {display_url(url)}: the database driver is missing ({e}); "
                              "install the `tune` extra") from None
        except Exception as e:  # sqlalchemy's connection errors: one line, never the password
            message = str(getattr(e, "orig", None) or e).splitlines()[0][:200]
            raise ConfigError(f"--storage {display_url(url)}: cannot open the study storage ({message})") from None


# ---------------------------------------------------------------- the specification every worker shares

@dataclass(frozen=True)
class TuneSpec:
    """Everything a worker needs; the same on every machine that joins the study."""

    config: AppConfig
    storage: str
    study: str
    trials: int
    params: tuple[str, ...] = ()
    timerange: TimeRange | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 0
    heartbeat_s: int = HEARTBEAT_S
    grace_s: int = GRACE_S

    def __post_init__(self) -> None:
        try:
            check_run_name(self.study)
        except ValueError as e:
            raise ConfigError(f"--study: {e}") from None
        if self.trials < 1:
            raise ConfigError(f"--trials {self.trials}: give at least 1")
        if not 1 <= self.heartbeat_s < self.grace_s:
            raise ConfigError(f"--heartbeat {self.heartbeat_s} / --grace {self.grace_s}: need 1 <= heartbeat < grace (seconds)")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler {self.sampler!r}: expected one of {list(SAMPLERS)}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"--pruner {self.pruner!r}: expected one of {list(PRUNERS)}")
        space_for(self.params)

    @property
    def space(self) -> tuple[Param, ...]:
        return space_for(self.params)

    @property
    def runs_root(self) -> Path:
        return Path(self.config.train.checkpoint_dir) / "tune" / self.study

    def fingerprint(self) -> str:
        """What the study was made for: the base config, the range and the space (workers must agree)."""
        return config_hash(self.config, self.timerange) + ":" + ",".join(p.key for p in self.space)


def make_sampler(spec: TuneSpec, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The spec's sampler; random samplers are seeded per worker so that workers propose different points."""
    import optuna

    if spec.sampler == "grid":
        return optuna.samplers.GridSampler({p.key: list(p.grid or p.choices) for p in spec.space}, seed=spec.seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed + worker)
    return optuna.samplers.TPESampler(seed=spec.seed + worker)


def make_pruner(spec: TuneSpec) -> optuna.pruners.BasePruner:
    import optuna

    if spec.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)


def create_study(spec: TuneSpec) -> None:
    """Create the study (or join it); ConfigError when it was made for another config, range or space."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(spec.storage, heartbeat_s=spec.heartbeat_s, grace_s=spec.grace_s)
    try:
        study = optuna.create_study(study_name=spec.study, storage=storage, direction="maximize", load_if_exists=True)
        made_for = study.user_attrs.get("fingerprint")
        if made_for is None:
            study.set_user_attr("fingerprint", spec.fingerprint())
            study.set_user_attr("objective", OBJECTIVE)
        elif made_for != spec.fingerprint():
            raise ConfigError(f"--study {spec.study}: the study in {display_url(spec.storage)} was made for another "
                              "configuration, time range or --params; use the same ones, or another --study")
    finally:
        storage.engine.dispose()


# ---------------------------------------------------------------- one trial

def gate_excess(metrics: dict[str, Any]) -> float:
    """The objective from a run's metrics: the gate's estimate of the validation excess over exposure_matched."""
    try:
        return float(metrics["gate"]["excess"]["exposure_matched"]["estimate"])
    except (KeyError, TypeError, ValueError):
        raise DataError("the run's metrics hold no gate excess over exposure_matched") from None


def finished_run_value(run_dir: Path) -> float | None:
    """The objective of a finished run in ``run_dir`` (its metrics are written last), or None."""
    metrics = RunDir(run_dir).metrics
    if not metrics.is_file():
        return None
    try:
        return gate_excess(json.loads(metrics.read_text()))
    except (ValueError, DataError):
        return None


@dataclass
class Objective:
    """Train the trial's configuration (or look its value up) and return the objective."""

    spec: TuneSpec
    dataset: Any
    splits: Any

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        from agents.train import train

        started = time.perf_counter()
        params = suggest(trial, self.spec.space)
        config = apply_params(self.spec.config, params)
        key = config_hash(config, self.spec.timerange)
        trial.set_user_attr("config_hash", key)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        run_dir = self.spec.runs_root / key
        trial.set_user_attr("run_dir", str(run_dir))
        for other in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if other.user_attrs.get("config_hash") == key and other.value is not None:
                trial.set_user_attr("reused", f"trial {other.number}")
                trial.set_user_attr("seconds", time.perf_counter() - started)
                return float(other.value)
        stored = finished_run_value(run_dir)
        if stored is not None:
            trial.set_user_attr("reused", "run directory")
            trial.set_user_attr("seconds", time.perf_counter() - started)
            return stored
        if run_dir.exists():  # a run that did not finish (a crashed or pruned trial): run it again from the start
            shutil.rmtree(run_dir)
        def report(timesteps: int, result: dict[str, float]) -> None:
            step_value = result["excess_exposure_matched"]
            if math.isfinite(step_value):
                trial.report(step_value, timesteps)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at {timesteps} steps (step value {step_value:+.4f})")

        trial_config = replace(config, train={"progress_bar": False, "name": f"{self.spec.study}_{key}"})
        result = train(trial_config, self.dataset, splits=self.splits, run_dir=run_dir, on_validation=report)
        value = gate_excess(result.metrics)
        trial.set_user_attr("seconds", time.perf_counter() - started)
        if result.gate is not None:
            trial.set_user_attr("gate", result.gate.line())
        return value


def trial_line(trial: optuna.trial.FrozenTrial) -> str:
    """One line per finished trial: number, state, value, params, time."""
    value = f"{trial.value:+.4%}" if trial.value is not None else "n/a"
    if trial.state.name == "PRUNED":
        value = f"stopped at step {trial.last_step} ({value} on validation there)"
    seconds = trial.user_attrs.get("seconds")
    if seconds is None and trial.datetime_start and trial.datetime_complete:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    took = f"{seconds:.1f} s" if seconds is not None else "?"
    reused = f", reused from {trial.user_attrs['reused']}" if trial.user_attrs.get("reused") else ""
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
    return f"trial {trial.number} {trial.state.name.lower()}: {value} ({params}) in {took}{reused}"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_finished(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    print(trial_line(trial), flush=True)


# ---------------------------------------------------------------- workers

def _counts(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def finished_trials(study: optuna.Study) -> int:
    """Trials that ended with a value or were pruned (each a configuration tried)."""
    counts = _counts(study)
    return sum(counts.get(s, 0) for s in STATES_DONE)


def run_worker(spec: TuneSpec, worker: int = 0, dataset: Any = None) -> int:
    """Work the study until it has ``spec.trials`` finished trials; the number of trials this worker ran.

    A worker starts a new trial only while finished + running + queued trials fall short of
    ``spec.trials`` (workers finishing at the same instant may start one more each); with
    nothing to start it waits for the running ones, so that a trial whose worker died is
    failed by the heartbeat, queued again and run here."""
    import optuna

    from agents.data import build_dataset
    from agents.train import default_splits

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(spec.storage, heartbeat_s=spec.heartbeat_s, grace_s=spec.grace_s)
    study = optuna.load_study(study_name=spec.study, storage=storage, sampler=make_sampler(spec, worker),
                              pruner=make_pruner(spec))
    dataset = dataset if dataset is not None else build_dataset(spec.config)
    splits = default_splits(spec.config, dataset, spec.timerange)
    objective = Objective(spec, dataset, splits)
    ran = 0
    try:
        while True:
            with warnings.catch_warnings():  # experimental in Optuna's terms since 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            counts = _counts(study)
            done = sum(counts.get(s, 0) for s in STATES_DONE)
            if done >= spec.trials:
                return ran
            waiting, running = counts.get("WAITING", 0), counts.get("RUNNING", 0)
            if not waiting and done + running >= spec.trials:
                time.sleep(POLL_S)
                continue
            study.optimize(objective, n_trials=1, callbacks=[_print_finished], gc_after_trial=True)
            ran += 1
    finally:
        storage.engine.dispose()


def _worker_main(spec: TuneSpec, worker: int, dataset: Any) -> None:
    logging.getLogger("agents").setLevel(logging.WARNING)
    run_worker(spec, worker, dataset)


def fork_or_spawn(target: Callable[..., Any], arglists: Sequence[tuple[Any, ...]]) -> list[int]:
    """Run ``target(*args)`` in one process per ``args`` and wait for them all; their exit codes.

    On Linux the processes are forked, so they share the parent's dataset instead of building
    the features again (elsewhere they are spawned and the arguments pickled)."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork") if "fork" in methods else multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=tuple(args), name=f"aster-worker-{i}") for i, args in enumerate(arglists)]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
    return [int(p.exitcode or 0) for p in procs]


def run_workers(spec: TuneSpec, workers: int, dataset: Any = None) -> list[int]:
    """Start ``workers`` worker processes on this machine and wait for them; their exit codes."""
    if workers < 1:
        raise ConfigError(f"--workers {workers}: give at least 1")
    return fork_or_spawn(_worker_main, [(spec, i, dataset) for i in range(workers)])


# ---------------------------------------------------------------- results

@dataclass
class TuneResult:
    study: str
    finished: int
    best_value: float | None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_config: Path | None = None
    table: str = ""


def load_study(spec_storage: str, study_name: str) -> optuna.Study:
    """The study ``study_name`` in the storage at ``spec_storage``; ConfigError when there is none."""
    import optuna

    storage = open_storage(spec_storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if study_name not in names:
        raise ConfigError(f"--study {study_name}: no such study in {display_url(spec_storage)} "
                          f"(it holds {sorted(names) or 'none'})")
    return optuna.load_study(study_name=study_name, storage=storage)


def status_table(study: optuna.Study) -> str:
    """The study's state: counts by state, every trial's line, the best trial."""
    counts = _counts(study)
    lines = [f"study {study.study_name} ({study.user_attrs.get('objective', OBJECTIVE)}, maximized): "
             + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) if counts else
             f"study {study.study_name}: no trials yet"]
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if t.state.is_finished():
            lines.append("  " + trial_line(t))
        else:
            lines.append(f"  trial {t.number} {t.state.name.lower()}: {dict(t.params) or ''}")
    best = best_trial(study)
    if best is not None:
        lines.append(f"best: trial {best.number}, {best.value:+.4%} ({', '.join(f'{k}={_fmt(v)}' for k, v in best.params.items())})")
    return "\n".join(lines)


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The complete trial with the highest value, or None. Equal values go to the lowest config hash (then the
    lowest number), so the answer does not depend on which worker finished first."""
    import optuna

    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if t.value is not None]
    if not done:
        return None
    return min(done, key=lambda t: (-float(t.value or 0.0), str(t.user_attrs.get("config_hash", "")), t.number))


def write_best_config(spec: TuneSpec, study: optuna.Study, path: Path) -> TuneResult:
    """Write the best trial's configuration as TOML at ``path`` (``train.trials`` = the study's finished trials)."""
    best = best_trial(study)
    finished = finished_trials(study)
    result = TuneResult(study=spec.study, finished=finished, best_value=None, table=status_table(study))
    if best is None:
        return result
    config = apply_params(spec.config, dict(best.params))
    config = replace(config, train={"trials": max(1, finished) * spec.config.train.trials})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(f"# best of {finished} trials of study {spec.study}: {OBJECTIVE} {best.value:+.4%} (trial {best.number})\n"
                   + to_toml(config))
    tmp.replace(path)
    result.best_value, result.best_params, result.best_config = float(best.value or 0.0), dict(best.params), path
    return result


def tune(spec: TuneSpec, workers: int = 1, *, out: Path | None = None, dataset: Any = None) -> TuneResult:
    """Create (or join) the study, work it with ``workers`` processes until it has ``spec.trials`` finished
    trials, and write the best configuration (``out``, default ``<checkpoint_dir>/tune/<study>/best.toml``)."""
    from agents.data import build_dataset

    if workers > 1 and spec.storage.startswith("sqlite"):
        logger.warning("SQLite serves one writer at a time: %d workers on %s may fail with 'database is locked'; "
                       "use PostgreSQL for concurrent workers", workers, display_url(spec.storage))
    create_study(spec)
    dataset = dataset if dataset is not None else build_dataset(spec.config)  # stores the synthetic market once, here
    if workers < 1:
        raise ConfigError(f"--workers {workers}: give at least 1")
    if workers == 1:
        run_worker(spec, 0, dataset)
    else:
        codes = run_workers(spec, workers, dataset)
        if any(codes):
            logger.warning("tune workers exited with %s", codes)
    study = load_study(spec.storage, spec.study)
    result = write_best_config(spec, study, out or spec.runs_root / "best.toml")
    if result.finished < spec.trials:
        raise DataError(f"study {spec.study}: {result.finished} of {spec.trials} trials finished; "
                        f"the workers stopped early (see the lines above); run the command again to continue")
    return result


def values_by_hash(study: optuna.Study) -> dict[str, float]:
    """Each finished configuration hash and its value (for tests and reports)."""
    import optuna

    out: dict[str, float] = {}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if t.value is not None and "config_hash" in t.user_attrs:
            out.setdefault(t.user_attrs["config_hash"], float(t.value))
    return out
