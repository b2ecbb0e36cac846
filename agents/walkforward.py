"""Walk-forward: K chronological folds x several seeds, each trained and tested on its own fold.

Each fold is a contiguous block of bars with its own train / validation / test splits (and
purge gaps inside and between blocks), so a fold's model never sees a later fold. Results
are aggregated over every (fold, seed): the mean out-of-sample net return with a bootstrap
confidence interval over folds (seeds of one fold share its test period), and the share of
runs where the agent beats the best baseline.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aster_rl import metrics as M
from aster_rl.config import AppConfig, replace

from agents.data import fold_dataset
from agents.evaluate import jsonable, evaluate_policy
from agents.policy import load_policy
from agents.splits import walkforward_splits
from agents.train import train

logger = logging.getLogger(__name__)


@dataclass
class WalkForwardResult:
    out_dir: Path
    runs: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        lines = [f"{'fold':>4} {'seed':>4} {'test period':<35} {'agent':>9} {'best baseline':>22} {'beats':>6}"]
        for r in self.runs:
            lines.append(
                f"{r['fold']:>4} {r['seed']:>4} {r['test_first_bar'][:16] + ' .. ' + r['test_last_bar'][:16]:<35} "
                f"{r['agent_net_return']:>+9.2%} {r['best_baseline'] + ' ' + format(r['best_baseline_net_return'], '+.2%'):>22} "
                f"{'yes' if r['beats_best_baseline'] else 'no':>6}"
            )
        s = self.summary
        ci = s["agent_net_return_ci"]
        lines.append(
            f"agent mean net return {ci['estimate']:+.2%} ({ci['confidence']:.0%} CI [{ci['low']:+.2%}, {ci['high']:+.2%}]) "
            f"over {s['folds']} folds x {s['seeds']} seeds; beats the best baseline in {s['share_beats_best_baseline']:.0%} of runs"
        )
        lines.append("verdict: " + s["verdict"])
        return "\n".join(lines)


def summarize_runs(runs: list[dict[str, Any]], *, folds: int, seeds: int, confidence: float) -> dict[str, Any]:
    """Aggregate (fold, seed) runs: the interval of the mean net return resamples FOLDS.

    Seeds trained on the same fold share its test period, so their returns are not
    independent draws; each fold's seeds are averaged first and the bootstrap resamples
    the fold means. With a single fold there is no interval and no claim of an edge.
    """
    fold_ids = sorted({r["fold"] for r in runs})
    fold_means = np.array([np.mean([r["agent_net_return"] for r in runs if r["fold"] == k]) for k in fold_ids])
    ci = M.mean_ci(fold_means, confidence=confidence)
    share = float(np.mean([r["beats_best_baseline"] for r in runs])) if runs else 0.0
    interval = f"mean out-of-sample net return CI [{ci.low:+.2%}, {ci.high:+.2%}] over {len(fold_means)} folds"
    if len(fold_means) < 2:
        verdict = (f"mean out-of-sample net return {ci.estimate:+.2%} from {len(fold_means)} fold: "
                   "too few folds for a confidence interval, so no evidence of an edge")
    elif ci.low > 0:
        verdict = f"{interval} lies above 0: evidence of an edge"
    elif ci.high < 0:
        verdict = f"{interval} lies below 0: the agent loses money"
    else:
        verdict = f"{interval} includes 0: no evidence of an edge"
    verdict += f"; it beats the best baseline in {share:.0%} of {len(runs)} fold-seed runs"
    return {
        "folds": folds,
        "seeds": seeds,
        "runs": len(runs),
        "agent_net_return_ci": ci.to_dict(),
        "agent_fold_mean_net_returns": [float(v) for v in fold_means],
        "share_beats_best_baseline": share,
        "baselines_mean_net_return": {
            n: float(np.mean([r["baselines_net_return"][n] for r in runs])) for n in runs[0]["baselines_net_return"]
        } if runs else {},
        "verdict": verdict,
    }


def walkforward(config: AppConfig, dataset, out_dir: Path | None = None) -> WalkForwardResult:
    ev = config.eval
    folds = walkforward_splits(
        len(dataset),
        ev.walkforward_folds,
        warmup=dataset.warmup,
        episode_length=config.env.episode_length,
        train_fraction=config.train.train_fraction,
        validation_fraction=config.train.validation_fraction,
    )
    if out_dir is None:
        out_dir = Path(config.train.checkpoint_dir) / f"{config.train.name}__walkforward__{int(time.time())}"
    out_dir.mkdir(parents=True, exist_ok=True)
    result = WalkForwardResult(out_dir=out_dir)
    for k, splits in enumerate(folds):
        fold_config, fold_data, mined = fold_dataset(config, dataset, splits)
        for s in range(ev.walkforward_seeds):
            seed = config.train.seed + s
            cfg = replace(fold_config, train={"seed": seed, "name": f"{config.train.name}_fold{k}"})
            run_dir = out_dir / f"fold{k}__seed{seed}"
            logger.info("walk-forward fold %d/%d, seed %d", k + 1, len(folds), seed)
            trained = train(cfg, fold_data, splits=splits, run_dir=run_dir)
            policy = load_policy(run_dir, schema=fold_data.schema)
            report = evaluate_policy(policy, fold_data, cfg, splits, run_dir=run_dir)
            report.save(run_dir / "eval")
            base = {n: o.metrics["net_return"] for n, o in report.baselines.items()}
            best_name = max(base, key=base.get)
            agent_ret = report.agent.metrics["net_return"]
            result.runs.append({
                "fold": k,
                "seed": seed,
                "run_dir": str(run_dir),
                "test_first_bar": report.split["first_bar"],
                "test_last_bar": report.split["last_bar"],
                "agent_net_return": agent_ret,
                "agent_sharpe": report.agent.metrics["sharpe"],
                "agent_trades": report.agent.metrics["trades"],
                "agent_ci": report.agent.ci_return.to_dict() if report.agent.ci_return else None,
                "baselines_net_return": base,
                "best_baseline": best_name,
                "best_baseline_net_return": base[best_name],
                "beats_best_baseline": bool(agent_ret > base[best_name]),
                "best_validation": trained.metrics.get("best_validation", {}),
                **mined,
            })
    result.summary = summarize_runs(result.runs, folds=len(folds), seeds=ev.walkforward_seeds, confidence=ev.confidence)
    verdict = result.summary["verdict"]
    (out_dir / "walkforward.json").write_text(json.dumps(jsonable({"summary": result.summary, "runs": result.runs}), indent=2))
    logger.info("walk-forward: %s", verdict)
    return result
