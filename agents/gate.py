"""The deployment gate: the judge's verdict on bars a run did not train on, recorded in the run.

A run is **deployable** (may send real orders) only when its ``gate.json`` says so:

- ``train`` ends with :func:`judge_span` on the validation split: the judge of
  :mod:`agents.evaluate` (paired block-bootstrap intervals of the per-bar excess over
  ``exposure_matched`` and over ``flat``, the deflated Sharpe ratio), with the policy as it
  trades (loaded from the run's saved weights, with ``live.wait_outside_support``).
- Validation also chose the checkpoint (the best of the evaluated ones), so its verdict
  flatters the run. The gate takes the stricter reading: every evaluated checkpoint counts
  as a trial (``trials = train.trials x checkpoints evaluated``), and "deployable" needs
  both the judge's edge (both intervals above 0) and a deflated Sharpe ratio of at least
  ``eval.confidence`` for that many trials. The record names the split and its role
  (``selection``). The test split stays for ``evaluate`` alone.
- ``retrain`` judges a challenger the same way on its hold-out (where it is compared with
  the champion: two candidates, so twice the run's trials).
- The record is covered by the run's manifest (:func:`agents.run_files.write_manifest`): a
  changed ``gate.json`` refuses the run. It names the weights it judged (file and
  sha256); other weights, or another ``wait_outside_support``, are not the judged policy.

A run without a record (e.g. saved before the gate existed) is not deployable.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from aster_rl.config import AppConfig
from aster_rl.data.timeframes import timeframe_to_timedelta
from aster_rl.errors import DataError, RiskRefusal

from agents.evaluate import (
    EXCESS_OVER,
    Outcome,
    _outcome,
    baseline_policies,
    exposure_matched_baseline,
    excess_intervals,
    jsonable,
    periods_per_year_of,
    run_backtest,
    verdict,
)
from agents.run_dir import RunDir
from agents.run_files import sha256_of, verify_manifest, write_manifest
from agents.splits import Span

GATE_VERSION = 1


@dataclass(frozen=True)
class GateRecord:
    """The gate's verdict on one run (``gate.json``)."""

    deployable: bool
    edge: bool  # the judge's edge: both paired excess intervals above 0
    verdict: str  # the judge's words
    source: str  # "train" (validation split) or "retrain" (hold-out)
    split: dict[str, Any]  # name, role ("selection": it chose the model), first / last bar, bars
    excess: dict[str, dict[str, float]]  # over exposure_matched and flat: estimate, low, high, confidence
    sharpe: float
    deflated_sharpe: float
    required_deflated_sharpe: float
    trials: int  # the run's trials x the candidates the split chose among
    candidates: int  # checkpoints (or champion and challenger) evaluated on the split
    wait_outside_support: bool
    model: str = ""  # the weights judged: "<file>@<sha256>"
    decided_at: float = field(default_factory=time.time)
    version: int = GATE_VERSION

    def line(self) -> str:
        """One honest line: "edge on <split>: deployable (...)" or "no edge found: this run will not trade real money (...)"."""
        name, role = self.split.get("name", "?"), self.split.get("role", "?")
        excess = ", ".join(
            f"over {n} {ci['estimate']:+.2%} [{ci['low']:+.2%}, {ci['high']:+.2%}]" for n, ci in self.excess.items())
        dsr = "n/a" if not math.isfinite(self.deflated_sharpe) else f"{self.deflated_sharpe:.2f}"
        stats = f"excess {excess}; deflated Sharpe {dsr} for {self.trials} trials"
        if self.deployable:
            return f"edge on {name}: deployable ({role} split; {stats})"
        if self.edge:
            why = f"deflated Sharpe {dsr} < {self.required_deflated_sharpe:.2f}"
        else:
            why = "the excess intervals do not both lie above 0"
        return f"no edge found: this run will not trade real money ({name}, {role} split: {why}; {stats})"

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GateRecord:
        """A record read back (JSON holds nan / inf as strings: :func:`agents.evaluate.jsonable`)."""
        try:
            values = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
            for k in ("sharpe", "deflated_sharpe", "required_deflated_sharpe", "decided_at"):
                values[k] = float(values[k])
            values["excess"] = {n: {k: float(v) for k, v in ci.items()} for n, ci in dict(values["excess"]).items()}
            return cls(**values)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DataError(f"gate record: malformed ({type(e).__name__}: {e})") from None


def judge_span(policy: Any, dataset: Any, config: AppConfig, span: Span, *, split_name: str, role: str, source: str,
               candidates: int = 1) -> GateRecord:
    """The judge's verdict on ``policy`` over ``span`` (agent, flat and exposure_matched, paired intervals,
    deflated Sharpe for ``train.trials x candidates`` trials), as a gate record."""
    cfg, eval_cfg = config.env, config.eval
    candidates = max(1, int(candidates))
    trials = config.train.trials * candidates
    periods = periods_per_year_of(dataset.prices.timeframe)
    bar_ns = int(timeframe_to_timedelta(dataset.prices.timeframe).value)
    agent = _outcome("agent", run_backtest(policy, dataset, cfg, span), cfg, periods, bar_ns, eval_cfg, False, trials)
    matched, entry = exposure_matched_baseline(dataset, cfg, span, agent.metrics["net_exposure"])
    flat = baseline_policies(dataset, cfg)["flat"]
    baselines: dict[str, Outcome] = {
        name: _outcome(name, run_backtest(b.policy, dataset, b.env, span), b.env, periods, bar_ns, eval_cfg, False)
        for name, b in (("flat", flat), ("exposure_matched", matched))
    }
    baselines["exposure_matched"].extra.update(exposure=agent.metrics["net_exposure"], entry_exposure=entry)
    excess = excess_intervals(agent, baselines, eval_cfg)
    text, flags = verdict(agent, baselines, excess)
    dsr = float(agent.metrics.get("deflated_sharpe", math.nan))
    edge = bool(flags["edge"])
    ts = dataset.prices.timestamps
    return GateRecord(
        deployable=edge and math.isfinite(dsr) and dsr >= eval_cfg.confidence,
        edge=edge,
        verdict=text,
        source=source,
        split={"name": split_name, "role": role, "start": span.start, "end": span.end, "bars": len(span),
               "first_bar": pd.Timestamp(int(ts[span.start]), tz="UTC").isoformat(),
               "last_bar": pd.Timestamp(int(ts[span.end - 1]), tz="UTC").isoformat()},
        excess={n: excess[n].to_dict() for n in EXCESS_OVER if n in excess},
        sharpe=float(agent.metrics.get("sharpe", math.nan)),
        deflated_sharpe=dsr,
        required_deflated_sharpe=float(eval_cfg.confidence),
        trials=trials,
        candidates=candidates,
        wait_outside_support=bool(getattr(policy, "wait_outside_support", False)),
    )


def write_gate(run_dir: str | Path | RunDir, record: GateRecord, weights: Path) -> GateRecord:
    """Write ``record`` as the run's ``gate.json``, naming the ``weights`` (a file of the run) it judged, and
    re-seal the manifest."""
    rd = RunDir(run_dir)
    weights = rd.path / Path(weights).name
    stamped = GateRecord(**{**asdict(record), "model": f"{weights.name}@{sha256_of(weights)}"})
    tmp = rd.gate.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(stamped.to_dict(), indent=2) + "\n")
    tmp.replace(rd.gate)
    write_manifest(rd.path)
    return stamped


def read_gate(run_dir: str | Path | RunDir) -> GateRecord | None:
    """The run's gate record, checked against the manifest (UntrustedRunError when changed); None when there is none."""
    rd = RunDir(run_dir)
    if not rd.gate.is_file():
        return None
    verify_manifest(rd.path, (RunDir.GATE,))
    try:
        data = json.loads(rd.gate.read_text())
    except ValueError as e:
        raise DataError(f"{rd.gate}: not valid JSON ({e})") from None
    return GateRecord.from_dict(data)


def gate_status(run_dir: str | Path | RunDir) -> str:
    """One line on the run's gate, for reports."""
    record = read_gate(run_dir)
    if record is None:
        return f"gate: no verdict recorded ({RunDir.GATE} missing): not deployable, paper only"
    return "gate: " + record.line()


def gate_problem(record: GateRecord | None, policy: Any) -> str | None:
    """Why the loaded ``policy`` may not trade real money under ``record`` (its run's gate; None when the
    record says deployable for exactly these weights and this ``wait_outside_support``)."""
    if record is None:
        return f"no gate verdict recorded ({RunDir.GATE} missing: a run saved before the gate; train it again)"
    if not record.deployable:
        return record.line()
    weights = getattr(policy, "model_file", None)
    judged = f"{Path(weights).name}@{sha256_of(Path(weights))}" if weights is not None else ""
    if judged != record.model:
        loaded = Path(weights).name if weights is not None else "weights of no file"
        return f"the gate judged {record.model.split('@')[0] or 'other weights'}, not the loaded {loaded}"
    wait = bool(getattr(policy, "wait_outside_support", False))
    if wait != record.wait_outside_support:
        return (f"the gate judged it with wait_outside_support = {str(record.wait_outside_support).lower()}, "
                f"the live config gives {str(wait).lower()}")
    return None


def require_deployable(run_dir: str | Path | RunDir, policy: Any) -> GateRecord:
    """The run's gate record, when it says deployable for exactly the loaded ``policy``; else RiskRefusal naming why."""
    record = read_gate(run_dir)
    problem = gate_problem(record, policy)
    if problem is not None or record is None:
        raise RiskRefusal(f"run {RunDir(run_dir).name} is not deployable: {problem}; it may run on paper (or --replay)")
    return record
