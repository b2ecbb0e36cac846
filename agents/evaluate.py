"""Out-of-sample evaluation: the deterministic policy on the TEST split beside the baselines.

Everything runs through :func:`aster_rl.backtest.backtest` (the env's accounting: fees,
funding, slippage, liquidations), on the test split saved with the run. Metrics come
from :mod:`aster_rl.metrics`; the agent's return and Sharpe get stationary-bootstrap
confidence intervals; a cost sweep reruns the agent and baselines with fees and slippage
scaled; the agent's trades are broken down by regime, BTC-cycle phase and exit profile
at entry. The verdict says in plain words whether there is evidence of an edge.

This module is the only reader of the test split.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aster_rl import metrics as M
from aster_rl.backtest import backtest
from aster_rl.config import AppConfig, EnvConfig, EvalConfig
from aster_rl.timeframes import timeframe_to_timedelta

from agents.baselines import (
    buy_and_hold_policy,
    flat_policy,
    random_policy,
    rule_brain_policy,
)
from agents.splits import Span, Splits, load_run_splits

logger = logging.getLogger(__name__)

BASELINES = ("flat", "buy_and_hold", "random", "rule_brain")
REGIME_NAMES = {0: "ranging", 1: "trending_up", 2: "trending_down", 3: "volatile"}
PHASE_NAMES = {0: "accumulation", 1: "bull_phase_1", 2: "parabolic", 3: "distribution", 4: "bear"}


# ---------------------------------------------------------------- one backtest → metrics

def periods_per_year_of(timeframe: str) -> float:
    return M.periods_per_year(timeframe_to_timedelta(timeframe).total_seconds())


def run_backtest(policy, dataset, cfg: EnvConfig, span: Span):
    """One deterministic pass of ``policy`` over ``span`` through the project's backtester."""
    return backtest(policy, dataset.matrix, dataset.prices, cfg, start=span.start, end=span.end)


def equity_array(result, cfg: EnvConfig) -> np.ndarray:
    """The equity curve with the starting equity in front (so the first bar's return counts)."""
    eq = np.asarray(result.equity, dtype=float)
    return np.concatenate(([cfg.initial_equity_usd], eq))


def summarize_backtest(result, cfg: EnvConfig, periods: float, bar_ns: int) -> dict[str, float]:
    eq = equity_array(result, cfg)
    trades = result.trades
    n_bars = max(1, len(eq) - 1)
    pnl = trades["pnl_usd"].to_numpy(dtype=float) if len(trades) else np.zeros(0)
    if len(trades):
        held = (trades["exit_time"].to_numpy(np.int64) - trades["entry_time"].to_numpy(np.int64)) / bar_ns
        held = np.maximum(held, 1.0)
        exposure = float(min(1.0, held.sum() / n_bars))
        avg_lev = float(np.average(trades["leverage"].to_numpy(dtype=float), weights=held))
    else:
        exposure, avg_lev = 0.0, 0.0
    return M.summarize(
        eq,
        pnl,
        periods=periods,
        exposure=exposure,
        avg_leverage=avg_lev,
        liquidations=int(result.liquidations),
        fees_usd=float(result.fees_usd),
        funding_usd=float(result.funding_usd),
        slippage_usd=float(result.slippage_usd),
    )


def cost_scaled(cfg: EnvConfig, multiplier: float) -> EnvConfig:
    return cfg.model_copy(
        update={
            "taker_fee_rate": cfg.taker_fee_rate * multiplier,
            "maker_fee_rate": cfg.maker_fee_rate * multiplier,
            "slippage_bps": cfg.slippage_bps * multiplier,
            "impact_coef": cfg.impact_coef * multiplier,
        }
    )


# ---------------------------------------------------------------- baselines

@dataclass
class Outcome:
    """One strategy's test-split result."""

    name: str
    metrics: dict[str, float]
    equity: pd.Series
    trades: pd.DataFrame
    ci_return: M.Interval | None = None
    ci_sharpe: M.Interval | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _outcome(name: str, result, cfg: EnvConfig, periods: float, bar_ns: int, eval_cfg: EvalConfig, with_ci: bool) -> Outcome:
    summary = summarize_backtest(result, cfg, periods, bar_ns)
    out = Outcome(name, summary, pd.Series(result.equity, name="equity_usd"), result.trades.copy())
    if with_ci:
        r = M.bar_returns(equity_array(result, cfg))
        kw = dict(samples=eval_cfg.bootstrap_samples, block=eval_cfg.bootstrap_block, confidence=eval_cfg.confidence, seed=0)
        out.ci_return = M.return_ci(r, **kw)
        out.ci_sharpe = M.sharpe_ci(r, periods, **kw)
    return out


def _mix(trades: pd.DataFrame, column: str, values: list) -> list[float] | None:
    if not len(trades) or column not in trades:
        return None
    counts = np.array([float((trades[column] == v).sum()) for v in values])
    return list(counts) if counts.sum() > 0 else None


def run_random_baseline(dataset, cfg: EnvConfig, span: Span, eval_cfg: EvalConfig, agent_trades: pd.DataFrame,
                        periods: float, bar_ns: int) -> Outcome:
    """Random entries with the agent's turnover and leverage/profile mix, averaged over seeds."""
    target = len(agent_trades)
    lev_w = _mix(agent_trades, "leverage", list(cfg.leverages))
    prof_w = _mix(agent_trades, "profile", list(cfg.exit_profiles))
    p = min(1.0, target / max(1, len(span)))
    if target > 0:  # calibrate the entry probability so the trade count matches
        for _ in range(3):
            got = len(run_backtest(random_policy(cfg, p, 10_000, lev_w, prof_w), dataset, cfg, span).trades)
            if got == 0 or abs(got - target) <= max(1, 0.1 * target):
                break
            p = min(1.0, p * target / got)
    runs = []
    for seed in range(eval_cfg.random_seeds):
        res = run_backtest(random_policy(cfg, p, seed, lev_w, prof_w), dataset, cfg, span)
        runs.append((summarize_backtest(res, cfg, periods, bar_ns), res))
    keys = runs[0][0].keys()
    mean = {k: float(np.mean([r[0][k] for r in runs])) for k in keys}
    equity = pd.concat([pd.Series(r[1].equity) for r in runs], axis=1).mean(axis=1).rename("equity_usd")
    returns = [r[0]["net_return"] for r in runs]
    out = Outcome("random", mean, equity, runs[0][1].trades.copy())
    out.extra = {"entry_probability": p, "seeds": eval_cfg.random_seeds, "net_returns": returns}
    return out


def baseline_policies(dataset, cfg: EnvConfig) -> dict[str, Any]:
    return {
        "flat": flat_policy(cfg),
        "buy_and_hold": buy_and_hold_policy(cfg),
        "rule_brain": rule_brain_policy(cfg, dataset.columns),
    }


# ---------------------------------------------------------------- breakdowns

def breakdowns(trades: pd.DataFrame, dataset) -> dict[str, dict[str, dict[str, float]]]:
    """Trade count, win rate, total and mean PnL grouped by regime, cycle phase and exit profile.

    Regime and phase are those known at the decision bar (the bar before the entry fill).
    """
    if not len(trades):
        return {}
    ts = np.asarray(dataset.prices.timestamps)
    fill = np.searchsorted(ts, trades["entry_time"].to_numpy(np.int64), side="left")
    decision_bar = np.clip(fill - 1, 0, len(ts) - 1)
    groups: dict[str, pd.Series] = {"exit_profile": trades["profile"].astype(str).reset_index(drop=True)}
    for col, names, key in (("regime_state", REGIME_NAMES, "regime"), ("btc_cycle_phase", PHASE_NAMES, "cycle_phase")):
        values = dataset.column(col)
        if values is not None:
            groups[key] = pd.Series([names.get(int(round(v)), str(v)) for v in values[decision_bar]])
    pnl = trades["pnl_usd"].to_numpy(dtype=float)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for key, labels in groups.items():
        table: dict[str, dict[str, float]] = {}
        for label in sorted(set(labels)):
            sel = pnl[(labels == label).to_numpy()]
            ts_ = M.trade_stats(sel)
            table[label] = {"trades": float(ts_.n_trades), "win_rate": ts_.win_rate,
                            "pnl_usd": float(sel.sum()), "expectancy_usd": ts_.expectancy}
        out[key] = table
    return out


# ---------------------------------------------------------------- verdict

def verdict(agent: Outcome, baselines: dict[str, Outcome]) -> tuple[str, dict[str, bool]]:
    ci = agent.ci_return
    pct = lambda x: f"{100 * x:+.2f}%"  # noqa: E731
    if ci is None:
        edge_text, edge = "no confidence interval was computed", False
    elif ci.low > 0:
        edge_text, edge = (f"the agent's out-of-sample net return {pct(ci.estimate)} has a {ci.confidence:.0%} CI "
                           f"[{pct(ci.low)}, {pct(ci.high)}] above 0: evidence of an edge"), True
    elif ci.high < 0:
        edge_text, edge = (f"the agent's out-of-sample net return {pct(ci.estimate)} has a {ci.confidence:.0%} CI "
                           f"[{pct(ci.low)}, {pct(ci.high)}] below 0: it loses money after costs"), False
    else:
        edge_text, edge = (f"the agent's out-of-sample net return CI [{pct(ci.low)}, {pct(ci.high)}] includes 0: "
                           "no evidence of an edge"), False
    ret = agent.metrics["net_return"]
    beaten = [n for n, b in baselines.items() if ret > b.metrics["net_return"]]
    not_beaten = [n for n in baselines if n not in beaten]
    if not not_beaten:
        base_text = "it beats every baseline (" + ", ".join(beaten) + ") on net return"
    else:
        base_text = "it does not beat " + ", ".join(
            f"{n} ({pct(baselines[n].metrics['net_return'])})" for n in not_beaten) + f" with {pct(ret)}"
    return f"{edge_text}; {base_text}.", {"edge": edge, "beats_all_baselines": not not_beaten}


# ---------------------------------------------------------------- the report

@dataclass
class EvaluationReport:
    run_dir: Path | None
    split: dict[str, Any]
    agent: Outcome
    baselines: dict[str, Outcome]
    cost_sweep: dict[str, dict[str, dict[str, float]]]
    breakdown: dict[str, Any]
    verdict: str
    flags: dict[str, bool]
    actions: dict[str, Any]

    def outcomes(self) -> dict[str, Outcome]:
        return {"agent": self.agent, **self.baselines}

    def to_dict(self) -> dict[str, Any]:
        def outcome_dict(o: Outcome) -> dict[str, Any]:
            d: dict[str, Any] = {"metrics": o.metrics}
            if o.ci_return is not None:
                d["ci_net_return"] = o.ci_return.to_dict()
            if o.ci_sharpe is not None:
                d["ci_sharpe"] = o.ci_sharpe.to_dict()
            if o.extra:
                d["extra"] = o.extra
            return d

        return jsonable({
            "split": self.split,
            "agent": outcome_dict(self.agent),
            "baselines": {n: outcome_dict(o) for n, o in self.baselines.items()},
            "cost_sweep": self.cost_sweep,
            "breakdown": self.breakdown,
            "actions": self.actions,
            "verdict": self.verdict,
            "flags": self.flags,
        })

    def save(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").write_text(json.dumps(self.to_dict(), indent=2))
        for name, o in self.outcomes().items():
            o.equity.to_csv(out_dir / f"equity_{name}.csv", header=True)
            o.trades.to_csv(out_dir / f"trades_{name}.csv", index=False)

    def table(self) -> str:
        return format_table(self)


def jsonable(x: Any) -> Any:
    """``x`` ready for ``json.dumps``: numpy scalars as Python numbers, inf/nan as the strings "inf", "-inf", "nan"."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else ("inf" if v > 0 else "-inf" if v < 0 else "nan")
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def action_mix(result, cfg: EnvConfig) -> dict[str, Any]:
    """How varied the agent's choices were: side shares, and leverage / profile of its trades."""
    acts = result.actions
    out: dict[str, Any] = {}
    if len(acts):
        side = acts["side"].to_numpy()
        out["side_share"] = {n: float((side == i).mean()) for i, n in enumerate(("wait", "buy", "sell"))}
        active = acts[side != 0]
        if len(active):
            ladder, names = list(cfg.leverages), list(cfg.exit_profiles)
            lev = active["leverage"].to_numpy(dtype=int)
            prof = active["profile"].to_numpy(dtype=int)
            out["chosen_leverage"] = {f"{ladder[i]:g}x": int((lev == i).sum()) for i in range(len(ladder)) if (lev == i).any()}
            out["chosen_profile"] = {names[i]: int((prof == i).sum()) for i in range(len(names)) if (prof == i).any()}
    tr = result.trades
    if len(tr):
        lev = tr["leverage"].to_numpy(dtype=float)  # effective: the margin brackets may cap the chosen rung
        out["trade_leverage"] = {"min": float(lev.min()), "median": float(np.median(lev)), "max": float(lev.max()),
                                 "distinct_rungs": int(len(np.unique(np.round(lev))))}
        out["trade_profiles"] = {str(k): int(v) for k, v in tr["profile"].value_counts().items()}
        out["trade_sides"] = {str(k): int(v) for k, v in tr["side"].value_counts().items()}
    return out


def evaluate_policy(
    policy,
    dataset,
    config: AppConfig,
    splits: Splits,
    *,
    run_dir: Path | None = None,
    eval_cfg: EvalConfig | None = None,
) -> EvaluationReport:
    """Agent and baselines on ``splits.test``; nothing here is fitted, everything is reported."""
    eval_cfg = eval_cfg or config.eval
    cfg = config.env
    span = splits.test
    periods = periods_per_year_of(dataset.prices.timeframe)
    bar_ns = int(timeframe_to_timedelta(dataset.prices.timeframe).value)

    agent_res = run_backtest(policy, dataset, cfg, span)
    agent = _outcome("agent", agent_res, cfg, periods, bar_ns, eval_cfg, with_ci=True)
    baselines: dict[str, Outcome] = {}
    policies = baseline_policies(dataset, cfg)
    for name in ("flat", "buy_and_hold"):
        baselines[name] = _outcome(name, run_backtest(policies[name], dataset, cfg, span), cfg, periods, bar_ns, eval_cfg, True)
    baselines["random"] = run_random_baseline(dataset, cfg, span, eval_cfg, agent_res.trades, periods, bar_ns)
    baselines["rule_brain"] = _outcome(
        "rule_brain", run_backtest(policies["rule_brain"], dataset, cfg, span), cfg, periods, bar_ns, eval_cfg, True
    )
    rnd = baselines["random"].extra.get("net_returns", [])
    if rnd:
        agent.extra["share_of_random_seeds_beaten"] = float(np.mean([agent.metrics["net_return"] > r for r in rnd]))

    sweep: dict[str, dict[str, dict[str, float]]] = {}
    for mult in eval_cfg.cost_multipliers:
        scaled = cost_scaled(cfg, mult)
        key = f"x{mult:g}"
        sweep[key] = {}
        for name, pol in (("agent", policy), ("buy_and_hold", policies["buy_and_hold"]), ("rule_brain", policies["rule_brain"])):
            if mult == 1.0:
                m = (agent if name == "agent" else baselines[name]).metrics
            else:
                m = summarize_backtest(run_backtest(pol, dataset, scaled, span), scaled, periods, bar_ns)
            sweep[key][name] = {k: m[k] for k in ("net_return", "sharpe", "trades", "fees_usd", "slippage_usd")}

    text, flags = verdict(agent, baselines)
    ts = dataset.prices.timestamps
    split = {
        "name": "test",
        "start": span.start,
        "end": span.end,
        "first_bar": pd.Timestamp(int(ts[span.start]), tz="UTC").isoformat(),
        "last_bar": pd.Timestamp(int(ts[span.end - 1]), tz="UTC").isoformat(),
        "bars": len(span),
    }
    report = EvaluationReport(
        run_dir=run_dir,
        split=split,
        agent=agent,
        baselines=baselines,
        cost_sweep=sweep,
        breakdown=breakdowns(agent_res.trades, dataset),
        verdict=text,
        flags=flags,
        actions=action_mix(agent_res, cfg),
    )
    logger.info("evaluation: %s", text)
    return report


def evaluate_run(
    run: str | Path,
    config: AppConfig | None = None,
    dataset=None,
    *,
    which: str = "best",
    save: bool = True,
    trust_run: bool = False,
) -> EvaluationReport:
    """Load a run, rebuild its data (or use ``dataset``), check the schema and the split boundaries, evaluate on its test split."""
    from agents.data import build_dataset
    from agents.policy import load_policy, load_run_config, resolve_run_dir

    checkpoint_dir = config.train.checkpoint_dir if config is not None else "checkpoints"
    run_dir = resolve_run_dir(run, checkpoint_dir)
    run_config = load_run_config(run_dir)
    if config is not None:  # evaluation settings may change; the market and the env are the run's
        run_config = run_config.model_copy(update={"eval": config.eval})
    if dataset is None:
        dataset = build_dataset(run_config)
    policy = load_policy(run_dir, schema=dataset.schema, which=which, trust_run=trust_run)  # type: ignore[arg-type]
    splits = load_run_splits(run_dir, dataset.prices.timestamps)
    report = evaluate_policy(policy, dataset, run_config, splits, run_dir=run_dir)
    if save:
        report.save(run_dir / "eval")
    return report


# ---------------------------------------------------------------- printing

def format_table(report: EvaluationReport) -> str:
    cols = [("net_return", "net ret", "{:+.2%}"), ("sharpe", "Sharpe", "{:+.2f}"), ("sortino", "Sortino", "{:+.2f}"),
            ("max_drawdown", "max DD", "{:.2%}"), ("calmar", "Calmar", "{:+.3g}"), ("win_rate", "win", "{:.0%}"),
            ("profit_factor", "PF", "{:.2f}"), ("expectancy_usd", "exp $", "{:+.2f}"), ("trades", "trades", "{:.0f}"),
            ("exposure", "expo", "{:.0%}"), ("avg_leverage", "lev", "{:.1f}"), ("liquidations", "liq", "{:.0f}"),
            ("fees_usd", "fees $", "{:.0f}"), ("funding_usd", "fund $", "{:+.0f}")]
    header = f"{'strategy':<13}" + "".join(f"{c[1]:>9}" for c in cols)
    lines = [f"test split {report.split['first_bar'][:16]} .. {report.split['last_bar'][:16]} ({report.split['bars']} bars)", header]
    for name, o in report.outcomes().items():
        cells = []
        for key, _, fmt in cols:
            v = o.metrics.get(key, float("nan"))
            cells.append(f"{fmt.format(v) if math.isfinite(v) else ('inf' if v > 0 else 'nan'):>9}")
        label = name if name != "random" else f"random(x{o.extra.get('seeds', 0)})"
        lines.append(f"{label:<13}" + "".join(cells))
    a = report.agent
    if a.ci_return is not None and a.ci_sharpe is not None:
        lines.append(
            f"agent {a.ci_return.confidence:.0%} bootstrap CI: net return [{a.ci_return.low:+.2%}, {a.ci_return.high:+.2%}], "
            f"Sharpe [{a.ci_sharpe.low:+.2f}, {a.ci_sharpe.high:+.2f}]"
        )
    sweep = "; ".join(
        f"{k}: " + ", ".join(f"{n} {v['net_return']:+.2%}" for n, v in d.items()) for k, d in report.cost_sweep.items()
    )
    lines.append(f"cost sweep (fees and slippage) {sweep}")
    if report.breakdown.get("regime"):
        lines.append("agent by regime: " + ", ".join(
            f"{k} {v['trades']:.0f} trades {v['pnl_usd']:+.0f}$" for k, v in report.breakdown["regime"].items()))
    if report.breakdown.get("exit_profile"):
        lines.append("agent by exit profile: " + ", ".join(
            f"{k} {v['trades']:.0f} trades {v['pnl_usd']:+.0f}$" for k, v in report.breakdown["exit_profile"].items()))
    lines.append("verdict: " + report.verdict)
    return "\n".join(lines)
