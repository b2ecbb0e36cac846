"""Walk-forward: K chronological folds x several seeds, each trained and tested on its own fold.

Each fold is a contiguous block of bars with its own train / validation / test splits (and
purge gaps inside and between blocks), so a fold's model never sees a later fold. With a
time range the folds are cut inside it. Each run
records ``folds x seeds`` trials (times ``train.trials``) for its deflated Sharpe ratio.

Aggregation: each fold's seeds are averaged first (they share its test period), then the
K fold means of the excess over ``exposure_matched`` and over ``flat`` get Student-t
intervals on K - 1 degrees of freedom. "Evidence of an edge" needs at least
:data:`MIN_FOLDS` folds and both intervals above 0.

With ``ensemble=True`` each fold's seed runs (they share the fold's splits) are also judged
as one policy, :func:`agents.ensemble.load_ensemble`: the same test evaluation as a seed
run, and the gate's verdict on the fold's validation split. That split chose each member's
checkpoint, so the ensemble is one more candidate among every checkpoint the members
evaluated there: the gate counts them all (plus the ensemble) as its candidates, each a
trial in the deflated Sharpe ratio. Its files go to a folder per
fold (``fold<k>__ens``: ``eval/``, ``gate.json``, ``members.json``); its rows
(seed ``"ens"``) get their own aggregate over the K fold ensembles, by the same rule.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aster_rl.evaluation import metrics as M
from aster_rl.config import AppConfig, replace
from aster_rl.data.timeframes import TimeRange
from aster_rl.errors import ConfigError, DataError

from agents.data import fold_dataset
from agents.ensemble import load_ensemble
from agents.evaluate import jsonable, evaluate_policy
from agents.gate import judge_span, read_gate
from agents.policy import load_policy
from agents.run_dir import WALKFORWARD_FILE, RunDir
from agents.run_files import write_manifest
from agents.splits import Splits, walkforward_splits
from agents.train import train

logger = logging.getLogger(__name__)

MIN_FOLDS = 3  # fewer folds make no claim
EXCESS_KEYS = {"exposure_matched": "agent_excess_exposure_matched", "flat": "agent_excess_flat"}
ENSEMBLE_SEED = "ens"  # the seed column of a fold ensemble's row


@dataclass
class WalkForwardResult:
    out_dir: Path
    runs: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    ensembles: list[dict[str, Any]] = field(default_factory=list)  # one row per fold ensemble (ensemble=True)
    ensemble_summary: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        lines = [f"{'fold':>4} {'seed':>4} {'test period':<35} {'agent':>9} {'excess/em':>10} {'best baseline':>22} {'beats':>6}"]
        for r in sorted(self.runs + self.ensembles, key=lambda r: (r["fold"], r["seed"] == ENSEMBLE_SEED)):  # a fold's ens last
            lines.append(
                f"{r['fold']:>4} {r['seed']:>4} {r['test_first_bar'][:16] + ' .. ' + r['test_last_bar'][:16]:<35} "
                f"{r['agent_net_return']:>+9.2%} {r.get('agent_excess_exposure_matched', float('nan')):>+10.2%} "
                f"{r['best_baseline'] + ' ' + format(r['best_baseline_net_return'], '+.2%'):>22} "
                f"{'yes' if r['beats_best_baseline'] else 'no':>6}"
            )
        s = self.summary
        if s.get("timerange"):
            lines.append(f"folds cut inside --timerange {s['timerange']['text']}")
        for name, ci in s.get("excess_ci", {}).items():
            lines.append(
                f"mean excess over {name} {ci['estimate']:+.2%} ({ci['confidence']:.0%} t-interval "
                f"[{ci['low']:+.2%}, {ci['high']:+.2%}], {s['folds_evaluated'] - 1} df) over {s['folds_evaluated']} folds"
            )
        lines.append(f"{s['folds_evaluated']} folds x {s['seeds']} seeds; beats the best baseline in "
                     f"{s['share_beats_best_baseline']:.0%} of runs")
        lines.append("verdict: " + s["verdict"])
        if self.ensembles:
            lines.append("ensemble verdict: " + self.ensemble_summary["verdict"])
            lines += [f"fold {r['fold']} ensemble gate: {r['gate']['line']}" for r in self.ensembles]
        return "\n".join(lines)


def run_record(fold: int, seed: int | str, run_dir: Path, report, best_validation: dict[str, Any]) -> dict[str, Any]:
    """One (fold, seed) run as a flat record: net returns, excesses, the best baseline."""
    base = {n: o.metrics["net_return"] for n, o in report.baselines.items()}
    best_name = max(base, key=base.__getitem__)
    agent_ret = report.agent.metrics["net_return"]
    return {
        "fold": fold,
        "seed": seed,
        "run_dir": str(run_dir),
        "test_first_bar": report.split["first_bar"],
        "test_last_bar": report.split["last_bar"],
        "agent_net_return": agent_ret,
        "agent_sharpe": report.agent.metrics["sharpe"],
        "agent_deflated_sharpe": report.agent.metrics.get("deflated_sharpe"),
        "agent_trades": report.agent.metrics["trades"],
        "agent_net_exposure": report.agent.metrics.get("net_exposure"),
        "agent_ci": report.agent.ci_return.to_dict() if report.agent.ci_return else None,
        **{key: report.excess[name].estimate for name, key in EXCESS_KEYS.items() if name in report.excess},
        "edge": bool(report.flags.get("edge", False)),
        "baselines_net_return": base,
        "best_baseline": best_name,
        "best_baseline_net_return": base[best_name],
        "beats_best_baseline": bool(agent_ret > base[best_name]),
        "best_validation": best_validation,
    }


def fold_means(runs: list[dict[str, Any]], key: str) -> np.ndarray:
    """``key`` averaged over each fold's seeds, in fold order."""
    folds = sorted({r["fold"] for r in runs})
    return np.array([np.mean([r[key] for r in runs if r["fold"] == k]) for k in folds], dtype=float)


def summarize_runs(runs: list[dict[str, Any]], *, folds: int, seeds: int, confidence: float,
                   unit: str = "fold-seed runs") -> dict[str, Any]:
    """Aggregate (fold, seed) runs over FOLDS: Student-t intervals of the fold-mean excesses on K - 1 df.

    Seeds trained on the same fold share its test period, so their results are not
    independent draws; each fold's seeds are averaged first. "Evidence of an edge" needs
    ``K >= MIN_FOLDS`` and the intervals of the excess over ``exposure_matched`` and over
    ``flat`` both above 0. For independent, roughly normal fold excesses with mean 0 the
    chance of a claim is at most (1 - confidence) / 2.
    """
    k = len({r["fold"] for r in runs})
    net = fold_means(runs, "agent_net_return") if runs else np.zeros(0)
    excess_ci: dict[str, M.Interval] = {}
    for name, key in EXCESS_KEYS.items():
        if runs and all(key in r for r in runs):
            excess_ci[name] = M.t_interval(fold_means(runs, key), confidence)
    share = float(np.mean([r["beats_best_baseline"] for r in runs])) if runs else 0.0
    if k < MIN_FOLDS:
        verdict = (f"{k} fold{'s' if k != 1 else ''}: fewer than {MIN_FOLDS} folds make no claim, "
                   "so no evidence of an edge")
    elif len(excess_ci) < len(EXCESS_KEYS):
        verdict = "the runs carry no excess over the benchmarks: no evidence of an edge"
    else:
        parts, above = [], []
        for name, ci in excess_ci.items():
            where = "lies above 0" if ci.low > 0 else "lies below 0" if ci.high < 0 else "includes 0"
            parts.append(f"mean excess over {name} {ci.estimate:+.2%}, {ci.confidence:.0%} t-interval "
                         f"[{ci.low:+.2%}, {ci.high:+.2%}] {where}")
            above.append(ci.low > 0)
        conclusion = "evidence of an edge" if all(above) else "no evidence of an edge"
        verdict = f"over {k} folds: " + "; ".join(parts) + f": {conclusion}"
    verdict += f"; it beats the best baseline in {share:.0%} of {len(runs)} {unit}"
    edge = k >= MIN_FOLDS and len(excess_ci) == len(EXCESS_KEYS) and all(ci.low > 0 for ci in excess_ci.values())
    return {
        "folds": folds,
        "folds_evaluated": k,
        "seeds": seeds,
        "runs": len(runs),
        "excess_ci": {n: ci.to_dict() for n, ci in excess_ci.items()},
        "agent_net_return_ci": M.t_interval(net, confidence).to_dict(),
        "agent_fold_mean_net_returns": [float(v) for v in net],
        "share_beats_best_baseline": share,
        "baselines_mean_net_return": {
            n: float(np.mean([r["baselines_net_return"][n] for r in runs])) for n in runs[0]["baselines_net_return"]
        } if runs else {},
        "edge": bool(edge),
        "verdict": verdict,
    }


def fold_splits(config: AppConfig, dataset, timerange: TimeRange | None = None) -> list[Splits]:
    """The walk-forward folds of ``dataset`` (inside ``timerange`` when given)."""
    ev = config.eval
    lo, hi = (0, len(dataset)) if timerange is None else timerange.bar_span(dataset.index)
    try:
        return walkforward_splits(
            hi,
            ev.walkforward_folds,
            warmup=dataset.warmup,
            episode_length=config.env.episode_length,
            train_fraction=config.train.train_fraction,
            validation_fraction=config.train.validation_fraction,
            start=lo,
        )
    except DataError as e:
        if timerange is None:
            raise
        raise DataError(f"--timerange {timerange} ({hi - lo} bars): {e}") from None


def run_job(config: AppConfig, fold: tuple[AppConfig, Any, dict[str, Any]], splits: Splits, k: int, s: int, n_folds: int,
            out_dir: Path) -> dict[str, Any]:
    """Train and test fold ``k`` (``fold``: :func:`agents.data.fold_dataset`'s config, data and mined library) with
    the ``s``-th seed; its run record, a pure function of the arguments."""
    fold_config, fold_data, mined = fold
    ev = config.eval
    seed = config.train.seed + s
    cfg = replace(fold_config, train={
        "seed": seed, "name": f"{config.train.name}_fold{k}", "trials": config.train.trials * n_folds * ev.walkforward_seeds})
    run_dir = out_dir / f"fold{k}__seed{seed}"
    logger.info("walk-forward fold %d/%d, seed %d", k + 1, n_folds, seed)
    trained = train(cfg, fold_data, splits=splits, run_dir=run_dir)
    policy = load_policy(run_dir, schema=fold_data.schema)
    report = evaluate_policy(policy, fold_data, cfg, splits, run_dir=run_dir)
    report.save(RunDir(run_dir).eval)
    return {**run_record(k, seed, run_dir, report, trained.metrics.get("best_validation", {})), **mined}


def ensemble_dir(out_dir: Path, k: int) -> RunDir:
    """The folder of fold ``k``'s ensemble under the walk-forward directory ``out_dir``."""
    return RunDir(out_dir / f"fold{k}__{ENSEMBLE_SEED}")


def ensemble_candidates(members: list[Path]) -> int:
    """The policies judged on a fold's validation split by the time its ensemble is: every checkpoint each member
    evaluated there (its gate's candidates) and the ensemble itself."""
    records = [read_gate(m) for m in members]
    return sum(r.candidates if r is not None else 1 for r in records) + 1


def ensemble_job(fold: tuple[AppConfig, Any, dict[str, Any]], splits: Splits, k: int, members: list[Path],
                 out_dir: Path) -> dict[str, Any]:
    """Fold ``k``'s seed runs ``members`` as one :class:`agents.ensemble.EnsemblePolicy`: tested like a seed run
    and judged by the gate on the fold's validation split (:func:`ensemble_candidates`); its record."""
    _, fold_data, mined = fold
    policy = load_ensemble(members, schema=fold_data.schema)
    cfg = policy.config  # the members' (the trials of the walk-forward: every fold and seed)
    rd = ensemble_dir(out_dir, k)
    rd.path.mkdir(parents=True, exist_ok=True)
    logger.info("walk-forward fold %d: ensemble of %d seed runs", k + 1, len(members))
    report = evaluate_policy(policy, fold_data, cfg, splits, run_dir=rd.path)
    report.save(rd.eval)
    gate = judge_span(policy, fold_data, cfg, splits.validation, split_name="validation", role="selection",
                      source="walkforward ensemble", candidates=ensemble_candidates(members))
    gate = dataclasses.replace(gate, model=policy.model_version)  # the members' weights, each with its sha256
    rd.gate.write_text(json.dumps(gate.to_dict(), indent=2) + "\n")
    rd.members.write_text(json.dumps({"members": [str(m) for m in members], "agreement": policy.agreement}, indent=2) + "\n")
    write_manifest(rd.path)  # seals gate.json, as in a run (read_gate checks it)
    return {**run_record(k, ENSEMBLE_SEED, rd.path, report, {}), "members": [str(m) for m in members],
            "agreement": policy.agreement, "gate": {**gate.to_dict(), "line": gate.line()}, **mined}


def finish(result: WalkForwardResult, n_folds: int, config: AppConfig, timerange: TimeRange | None) -> WalkForwardResult:
    """Aggregate ``result.runs`` (in fold, seed order) and ``result.ensembles``, and write ``walkforward.json``."""
    ev = config.eval
    result.runs.sort(key=lambda r: (r["fold"], r["seed"]))
    result.summary = summarize_runs(result.runs, folds=n_folds, seeds=ev.walkforward_seeds, confidence=ev.confidence)
    if timerange is not None:
        result.summary["timerange"] = timerange.to_dict()
    saved: dict[str, Any] = {"summary": result.summary, "runs": result.runs}
    if result.ensembles:
        result.ensembles.sort(key=lambda r: r["fold"])
        result.ensemble_summary = summarize_runs(result.ensembles, folds=n_folds, seeds=1, confidence=ev.confidence,
                                                 unit="fold ensembles")
        result.ensemble_summary["members"] = ev.walkforward_seeds
        result.ensemble_summary["gate_deploys"] = sum(bool(r["gate"]["deployable"]) for r in result.ensembles)
        saved.update(ensemble_summary=result.ensemble_summary, ensembles=result.ensembles)
        logger.info("walk-forward ensembles: %s", result.ensemble_summary["verdict"])
    (result.out_dir / WALKFORWARD_FILE).write_text(json.dumps(jsonable(saved), indent=2))
    logger.info("walk-forward: %s", result.summary["verdict"])
    return result


def walkforward(config: AppConfig, dataset, out_dir: Path | None = None, timerange: TimeRange | None = None, *,
                ensemble: bool = False) -> WalkForwardResult:
    """Train and test ``eval.walkforward_folds`` folds x ``eval.walkforward_seeds`` seeds, on the bars in ``timerange``
    (every bar when None); with ``ensemble`` each fold's seeds also as one ensemble (:func:`ensemble_job`)."""
    if ensemble:
        check_ensemble(config)
    folds = fold_splits(config, dataset, timerange)
    if out_dir is None:
        out_dir = Path(config.train.checkpoint_dir) / f"{config.train.name}__walkforward__{int(time.time())}"
    out_dir.mkdir(parents=True, exist_ok=True)
    result = WalkForwardResult(out_dir=out_dir)
    for k, splits in enumerate(folds):
        fold = fold_dataset(config, dataset, splits)
        runs = [run_job(config, fold, splits, k, s, len(folds), out_dir) for s in range(config.eval.walkforward_seeds)]
        result.runs += runs
        if ensemble:
            result.ensembles.append(ensemble_job(fold, splits, k, [Path(r["run_dir"]) for r in runs], out_dir))
    return finish(result, len(folds), config, timerange)


def check_ensemble(config: AppConfig) -> None:
    """An ensemble needs at least two seeds per fold."""
    if config.eval.walkforward_seeds < 2:
        raise ConfigError(f"an ensemble needs at least two seeds per fold; eval.walkforward_seeds = "
                          f"{config.eval.walkforward_seeds}")


# ---------------------------------------------------------------- fan-out over shared storage

def fanout_key(config: AppConfig, timerange: TimeRange | None) -> str:
    """What names a fanned-out walk-forward (its study and directory): the config and the range, hashed."""
    from agents.tune import config_hash

    return config_hash(config, timerange)


@dataclass(frozen=True)
class FanoutSpec:
    """A walk-forward fanned out through the study storage at ``storage``.

    The (fold, seed) jobs are the trials of an Optuna study ``wf_<key>`` in the same storage as
    ``aster-rl tune``: each job is queued once with ``enqueue_trial({"job": j})``, and workers on
    any machine take the queued trials. The study gives the job table, the claims, the results
    (each job's run record in its trial's attributes) and the crash handling (heartbeat, stale
    trials queued again) that tuning already uses, with no second schema to keep; and
    ``optuna-dashboard`` shows the jobs' progress. A run directory is named by its job under
    ``<checkpoint_dir>/<name>__walkforward__<key>``, so the same command after a kill resumes:
    finished jobs are read back, a job whose worker died runs again from the start, and the
    aggregate is computed from the records in (fold, seed) order, as the sequential
    :func:`walkforward` does.
    """

    config: AppConfig
    storage: str
    timerange: TimeRange | None = None
    heartbeat_s: int = 10
    grace_s: int = 60

    @property
    def key(self) -> str:
        return fanout_key(self.config, self.timerange)

    @property
    def study(self) -> str:
        return f"wf_{self.key}"

    def out_dir(self) -> Path:
        return Path(self.config.train.checkpoint_dir) / f"{self.config.train.name}__walkforward__{self.key}"


def _open_jobs(spec: FanoutSpec, n_jobs: int):
    """The jobs' study, created with every job queued when it is new."""
    import optuna

    from agents.tune import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(spec.storage, heartbeat_s=spec.heartbeat_s, grace_s=spec.grace_s)
    study = optuna.create_study(study_name=spec.study, storage=storage, direction="maximize", load_if_exists=True)
    if not study.get_trials(deepcopy=False) and not study.user_attrs.get("jobs"):
        study.set_user_attr("jobs", n_jobs)
        for j in range(n_jobs):
            study.enqueue_trial({"job": j}, user_attrs={"queued": True})
    return storage, study


def _records(study) -> dict[int, dict[str, Any]]:
    """The run record of every finished job (the first, should a job have finished twice)."""
    out: dict[int, dict[str, Any]] = {}
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if t.state.name == "COMPLETE" and "record" in t.user_attrs:
            out.setdefault(int(t.params["job"]), t.user_attrs["record"])
    return out


def fanout_worker(spec: FanoutSpec, dataset) -> int:
    """Take queued (fold, seed) jobs until every job has finished; the number this worker ran."""
    import warnings

    import optuna

    folds = fold_splits(spec.config, dataset, spec.timerange)
    seeds = spec.config.eval.walkforward_seeds
    n_jobs = len(folds) * seeds
    storage, study = _open_jobs(spec, n_jobs)
    out_dir = spec.out_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    cache: dict[int, tuple[AppConfig, Any, dict[str, Any]]] = {}

    def objective(trial: optuna.Trial) -> float:
        if not trial.user_attrs.get("queued"):  # nothing queued was left when this trial began
            raise optuna.TrialPruned("no queued job")
        j = trial.suggest_int("job", 0, n_jobs - 1)
        k, s = divmod(j, seeds)
        done = _records(study)
        if j in done:  # finished by another worker meanwhile
            record = done[j]
        else:
            run_dir = out_dir / f"fold{k}__seed{spec.config.train.seed + s}"
            if run_dir.exists():  # left by a worker that died in this job: run it again from the start
                shutil.rmtree(run_dir)
            if k not in cache:
                cache[k] = fold_dataset(spec.config, dataset, folds[k])
            record = jsonable(run_job(spec.config, cache[k], folds[k], k, s, len(folds), out_dir))
        trial.set_user_attr("record", record)
        print(f"walk-forward job {j + 1}/{n_jobs} (fold {k}, seed {record['seed']}): agent {record['agent_net_return']:+.2%}, "
              f"excess over exposure_matched {record.get('agent_excess_exposure_matched', float('nan')):+.2%}", flush=True)
        return float(record.get("agent_excess_exposure_matched", 0.0))

    ran, requeued = 0, False
    try:
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            missing = set(range(n_jobs)) - set(_records(study))
            if not missing:
                return ran
            states = [t.state.name for t in study.get_trials(deepcopy=False)]
            if "WAITING" in states:
                study.optimize(objective, n_trials=1, gc_after_trial=True)
                ran += 1
            elif "RUNNING" not in states:  # jobs that failed for good (or were never queued): queue them once more
                if requeued:
                    raise DataError(f"walk-forward study {spec.study}: jobs {sorted(missing)} failed twice; see the errors above")
                for j in sorted(missing):
                    study.enqueue_trial({"job": j}, user_attrs={"queued": True})
                requeued = True
            else:
                time.sleep(1.0)
    finally:
        storage.engine.dispose()


def fanout_result(spec: FanoutSpec, dataset, *, ensemble: bool = False) -> WalkForwardResult:
    """The aggregate of a finished fanned-out walk-forward, written to its ``walkforward.json``; with ``ensemble``
    each fold's seed runs (their directories must be reachable here) also as one ensemble (:func:`ensemble_job`)."""
    folds = fold_splits(spec.config, dataset, spec.timerange)
    storage, study = _open_jobs(spec, len(folds) * spec.config.eval.walkforward_seeds)
    try:
        records = _records(study)
    finally:
        storage.engine.dispose()
    result = WalkForwardResult(out_dir=spec.out_dir(), runs=[records[j] for j in sorted(records)])
    if ensemble:
        for k, splits in enumerate(folds):
            members = [Path(r["run_dir"]) for r in sorted(result.runs, key=lambda r: r["seed"]) if r["fold"] == k]
            fold = fold_dataset(spec.config, dataset, splits)
            result.ensembles.append(ensemble_job(fold, splits, k, members, result.out_dir))
    return finish(result, len(folds), spec.config, spec.timerange)


def walkforward_fanout(spec: FanoutSpec, dataset, workers: int = 1, *, ensemble: bool = False) -> WalkForwardResult:
    """Work the fanned-out walk-forward with ``workers`` processes here (others may join from elsewhere with
    the same config and storage); its aggregate, equal to :func:`walkforward`'s for the same config (with
    ``ensemble``, the fold ensembles too)."""
    from agents.tune import fork_or_spawn

    if ensemble:
        check_ensemble(spec.config)
    folds = fold_splits(spec.config, dataset, spec.timerange)
    storage, _ = _open_jobs(spec, len(folds) * spec.config.eval.walkforward_seeds)
    storage.engine.dispose()
    if workers <= 1:
        fanout_worker(spec, dataset)
    else:
        codes = fork_or_spawn(fanout_worker, [(spec, dataset)] * workers)
        if any(codes):
            raise DataError(f"walk-forward workers exited with {codes}; run the same command again to resume")
    return fanout_result(spec, dataset, ensemble=ensemble)
