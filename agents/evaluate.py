"""Out-of-sample evaluation: the deterministic policy on the TEST split beside the baselines.

Everything runs through :func:`aster_rl.sim.backtest.backtest` (the env's accounting: fees,
funding, slippage, liquidations), on the test split saved with the run. Metrics come
from :mod:`aster_rl.evaluation.metrics`; the agent's return and Sharpe get stationary-bootstrap
confidence intervals; a cost sweep reruns the agent and baselines with fees, slippage and
impact scaled (a liquidation's loss is the margin, not a cost that scales); the agent's trades are broken down by regime, BTC-cycle phase
and exit profile at entry.

The verdict is about excess, not level: "evidence of an edge" only when the paired
block-bootstrap intervals of the agent's growth over ``exposure_matched`` (buy-and-hold
scaled to the agent's mean net exposure) and over ``flat`` both lie above 0. Beside the
Sharpe ratio stands the deflated Sharpe ratio for the number of trials recorded with the
run (``train.trials``).

This module is the only reader of the test split. A named time range (``evaluate RUN
--timerange``) replaces the test split only when its first bar comes after every bar the run
trained or was selected on (:func:`agents.splits.check_unseen`); its report is kept apart
from the test split's (:meth:`agents.run_dir.RunDir.eval_range`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aster_rl.evaluation import metrics as M
from aster_rl.sim.backtest import backtest, scale_costs
from aster_rl.config import AppConfig, EnvConfig, EvalConfig, replace
from aster_rl.errors import DataError
from aster_rl.evaluation.support import policy_support_report
from aster_rl.data.timeframes import TimeRange, timeframe_to_timedelta
from aster_rl.features.tentacles.btc_cycle import PHASE_KEYS
from aster_rl.features.tentacles.regime import STATE_KEYS

from agents.run_dir import EvalDir, RunDir, Which
from agents.baselines import (
    Baseline,
    buy_and_hold,
    flat_policy,
    order_config,
    holding,
    leverage_index,
    random_policy,
    rule_brain_policy,
)
from agents.splits import Span, Splits, check_unseen, load_run_splits

logger = logging.getLogger(__name__)

EXCESS_OVER = ("exposure_matched", "flat")
REGIME_NAMES = dict(enumerate(STATE_KEYS))
PHASE_NAMES = dict(enumerate(PHASE_KEYS))


# ---------------------------------------------------------------- one backtest → metrics

def periods_per_year_of(timeframe: str) -> float:
    return M.periods_per_year(timeframe_to_timedelta(timeframe).total_seconds())


def run_backtest(policy, dataset, cfg: EnvConfig, span: Span):
    """One deterministic pass of ``policy`` over ``span`` through the project's backtester."""
    return backtest(policy, dataset.matrix, dataset.prices, cfg, start=span.start, end=span.end)


def summarize_backtest(result, cfg: EnvConfig, periods: float, bar_ns: int, trials: int = 1) -> dict[str, float]:
    """The metrics of one backtest; its equity curve starts at the starting equity on the first bar."""
    eq = np.asarray(result.equity, dtype=float)
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
    net, gross = result.exposure()
    return M.summarize(
        eq,
        pnl,
        periods=periods,
        exposure=exposure,
        net_exposure=net,
        gross_exposure=gross,
        avg_leverage=avg_lev,
        liquidations=int(result.liquidations),
        fees_usd=float(result.fees_usd),
        funding_usd=float(result.funding_usd),
        slippage_usd=float(result.slippage_usd),
        trials=trials,
    )


# ---------------------------------------------------------------- baselines

@dataclass
class Outcome:
    """One strategy's test-split result; ``returns`` are its per-bar simple returns."""

    name: str
    metrics: dict[str, float]
    equity: pd.Series
    trades: pd.DataFrame
    ci_return: M.Interval | None = None
    ci_sharpe: M.Interval | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    returns: np.ndarray = field(default_factory=lambda: np.zeros(0))


def bootstrap_kwargs(eval_cfg: EvalConfig) -> dict[str, Any]:
    return {"samples": eval_cfg.bootstrap_samples, "block": eval_cfg.bootstrap_block, "confidence": eval_cfg.confidence,
            "seed": 0}


def _outcome(name: str, result, cfg: EnvConfig, periods: float, bar_ns: int, eval_cfg: EvalConfig, with_ci: bool,
             trials: int = 1) -> Outcome:
    summary = summarize_backtest(result, cfg, periods, bar_ns, trials)
    r = M.bar_returns(result.equity.to_numpy(dtype=float))
    out = Outcome(name, summary, pd.Series(result.equity, name="equity_usd"), result.trades.copy(), returns=r)
    if with_ci:
        kw = bootstrap_kwargs(eval_cfg)
        out.ci_return = M.return_ci(r, **kw)
        out.ci_sharpe = M.sharpe_ci(r, periods, **kw)
    return out


def _mix(trades: pd.DataFrame, column: str, values: list) -> list[float] | None:
    if not len(trades) or column not in trades:
        return None
    counts = np.array([float((trades[column] == v).sum()) for v in values])
    return list(counts) if counts.sum() > 0 else None


def traded_notional(trades: pd.DataFrame) -> float:
    """Sum of the entry notionals (quantity x entry price) of ``trades``, USD."""
    if not len(trades):
        return 0.0
    return float((trades["qty"].to_numpy(dtype=float) * trades["entry_price"].to_numpy(dtype=float)).sum())


def traded_leverage_mix(trades: pd.DataFrame, cfg: EnvConfig) -> list[float] | None:
    """Trades per ladder rung, by the leverage each trade really had (the margin brackets may cap the chosen rung)."""
    if not len(trades):
        return None
    counts = np.zeros(len(cfg.leverages))
    for lev in trades["leverage"].to_numpy(dtype=float):
        counts[leverage_index(cfg, lev)] += 1
    return list(counts)


def run_random_baseline(dataset, cfg: EnvConfig, span: Span, eval_cfg: EvalConfig, agent_trades: pd.DataFrame,
                        periods: float, bar_ns: int) -> Outcome:
    """Random entries with the agent's traded notional and leverage / profile mix, averaged over seeds."""
    cfg = order_config(cfg)
    target = traded_notional(agent_trades)
    lev_w = traded_leverage_mix(agent_trades, cfg)
    prof_w = _mix(agent_trades, "profile", list(cfg.exit_profiles))
    p = min(1.0, len(agent_trades) / max(1, len(span)))
    if target > 0:  # calibrate the entry probability so the traded notional matches
        for _ in range(4):
            got = traded_notional(run_backtest(random_policy(cfg, p, 10_000, lev_w, prof_w), dataset, cfg, span).trades)
            if got <= 0 or abs(got - target) <= 0.1 * target:
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
    out.extra = {"entry_probability": p, "seeds": eval_cfg.random_seeds, "net_returns": returns,
                 "traded_notional_usd": float(np.mean([traded_notional(r[1].trades) for r in runs])),
                 "agent_traded_notional_usd": target}
    return out


def exposure_matched_baseline(dataset, cfg: EnvConfig, span: Span, exposure: float, iterations: int = 4) -> tuple[Baseline, float]:
    """Buy-and-hold whose mean net exposure over ``span`` matches ``exposure``, and the entry exposure that does it.

    A held quantity's notional / equity drifts with the price (a leveraged long grows as
    the price falls), so the entry size is rescaled a few times until the mean over the
    span is within 2% of ``exposure``.
    """
    entry = exposure
    base = holding(cfg, entry)
    for _ in range(iterations):
        if abs(entry) < 1e-6:
            break
        got = run_backtest(base.policy, dataset, base.env, span).exposure()[0]
        if got == 0 or abs(got - exposure) <= 0.02 * abs(exposure):
            break
        entry = entry * exposure / got
        base = holding(cfg, entry)
    return base, entry


def exposure_matched_excess(result, dataset, cfg: EnvConfig, span: Span, net_exposure: float,
                            periods: float) -> dict[str, float]:
    """A backtest ``result`` over ``span`` against ``exposure_matched`` (buy-and-hold at ``net_exposure``):
    ``excess_exposure_matched``, the judge's excess (the estimate :func:`agents.gate.judge_span` reports,
    without its interval), and ``excess_ir_exposure_matched``, the information ratio of the per-bar excess
    (:func:`aster_rl.evaluation.metrics.information_ratio`, ``periods`` bars a year)."""
    matched, _ = exposure_matched_baseline(dataset, cfg, span, net_exposure)
    benchmark = run_backtest(matched.policy, dataset, matched.env, span)
    r = M.bar_returns(result.equity.to_numpy(dtype=float))
    b = M.bar_returns(benchmark.equity.to_numpy(dtype=float))
    return {"excess_exposure_matched": M.excess_growth(r, b),
            "excess_ir_exposure_matched": M.information_ratio(r, b, periods)}


def baseline_policies(dataset, cfg: EnvConfig) -> dict[str, Baseline]:
    """The deterministic baselines, each with the account it trades on (``exposure_matched`` needs the agent's run)."""
    cfg = order_config(cfg)
    return {
        "flat": Baseline(flat_policy(cfg), cfg),
        "buy_and_hold": buy_and_hold(cfg),
        "rule_brain": Baseline(rule_brain_policy(cfg, dataset.columns), cfg),
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

def excess_intervals(agent: Outcome, baselines: dict[str, Outcome], eval_cfg: EvalConfig) -> dict[str, M.Interval]:
    """Paired block-bootstrap intervals of the agent's growth over each of :data:`EXCESS_OVER`."""
    return {n: M.excess_ci(agent.returns, baselines[n].returns, **bootstrap_kwargs(eval_cfg))
            for n in EXCESS_OVER if n in baselines}


def _pct(x: float) -> str:
    return f"{100 * x:+.2f}%"


def verdict(agent: Outcome, baselines: dict[str, Outcome], excess: dict[str, M.Interval]) -> tuple[str, dict[str, bool]]:
    """Plain words on the agent's excess over ``exposure_matched`` and ``flat``; "evidence of an edge" only when both
    paired intervals lie above 0. The deflated Sharpe ratio and the net-return ranking follow as context."""
    parts, above = [], {}
    for name in EXCESS_OVER:
        ci = excess.get(name)
        if ci is None:
            parts.append(f"no interval against {name} was computed")
            above[name] = False
            continue
        where = "lies above 0" if ci.low > 0 else "lies below 0" if ci.high < 0 else "includes 0"
        label = name
        if name == "exposure_matched" and name in baselines:
            label = f"exposure_matched (net exposure {baselines[name].extra.get('exposure', float('nan')):+.2f})"
        parts.append(f"over {label} {_pct(ci.estimate)}, {ci.confidence:.0%} CI [{_pct(ci.low)}, {_pct(ci.high)}] {where}")
        above[name] = ci.low > 0
    edge = all(above.values())
    if edge:
        conclusion = "both intervals lie above 0: evidence of an edge"
    elif excess.get("exposure_matched") is not None and excess["exposure_matched"].high < 0:
        conclusion = "it does worse than holding its own average market exposure: no evidence of an edge"
    else:
        conclusion = "no evidence of an edge"
    text = "the agent's out-of-sample growth " + "; ".join(parts) + f": {conclusion}"
    dsr, trials = agent.metrics.get("deflated_sharpe", math.nan), int(agent.metrics.get("trials", 1))
    text += (f"; Sharpe {agent.metrics.get('sharpe', math.nan):+.2f}, deflated Sharpe "
             f"{'n/a' if not math.isfinite(dsr) else format(dsr, '.2f')} for {trials} trial{'s' if trials != 1 else ''}")
    ret = agent.metrics["net_return"]
    beaten = [n for n, b in baselines.items() if ret > b.metrics["net_return"]]
    not_beaten = [n for n in baselines if n not in beaten]
    if not not_beaten:
        base_text = "on net return it beats every baseline (" + ", ".join(beaten) + ")"
    else:
        base_text = f"on net return ({_pct(ret)}) it does not beat " + ", ".join(
            f"{n} ({_pct(baselines[n].metrics['net_return'])})" for n in not_beaten)
    flags = {"edge": edge, "beats_all_baselines": not not_beaten,
             **{f"excess_over_{n}_above_0": above[n] for n in EXCESS_OVER}}
    return f"{text}; {base_text}.", flags


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
    support: dict[str, Any] | None = None  # out-of-support share of the test bars (aster_rl.evaluation.support)
    support_line: str = ""
    excess: dict[str, M.Interval] = field(default_factory=dict)

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
            "excess": {n: ci.to_dict() for n, ci in self.excess.items()},
            "cost_sweep": self.cost_sweep,
            "breakdown": self.breakdown,
            "actions": self.actions,
            "verdict": self.verdict,
            "flags": self.flags,
            "support": self.support,
        })

    def save(self, out_dir: Path | EvalDir) -> None:
        files = out_dir if isinstance(out_dir, EvalDir) else EvalDir(Path(out_dir))
        files.path.mkdir(parents=True, exist_ok=True)
        files.results.write_text(json.dumps(self.to_dict(), indent=2))
        for name, o in self.outcomes().items():
            o.equity.to_csv(files.equity(name), header=True)
            o.trades.to_csv(files.trades(name), index=False)

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
                                 "distinct_rungs": len(np.unique(np.round(lev)))}
        out["trade_profiles"] = {str(k): int(v) for k, v in tr["profile"].value_counts().items()}
        out["trade_sides"] = {str(k): int(v) for k, v in tr["side"].value_counts().items()}
    return out


def evaluate_policy(
    policy,
    dataset,
    config: AppConfig,
    splits: Splits | None,
    *,
    run_dir: Path | None = None,
    eval_cfg: EvalConfig | None = None,
    timerange: TimeRange | None = None,
) -> EvaluationReport:
    """Agent and baselines on ``splits.test``, or on the bars in ``timerange`` (after the feature warm-up;
    the caller checks the policy never saw them: :func:`evaluate_run`); nothing here is fitted,
    everything is reported."""
    eval_cfg = eval_cfg or config.eval
    cfg = config.env
    if timerange is not None:
        span = range_span(dataset, timerange)
    elif splits is not None:
        span = splits.test
    else:
        raise TypeError("evaluate_policy needs splits or a timerange")
    periods = periods_per_year_of(dataset.prices.timeframe)
    bar_ns = int(timeframe_to_timedelta(dataset.prices.timeframe).value)

    trials = config.train.trials

    agent_res = run_backtest(policy, dataset, cfg, span)
    agent = _outcome("agent", agent_res, cfg, periods, bar_ns, eval_cfg, with_ci=True, trials=trials)
    exposure = agent.metrics["net_exposure"]
    policies = baseline_policies(dataset, cfg)
    policies["exposure_matched"], entry_exposure = exposure_matched_baseline(dataset, cfg, span, exposure)
    baselines: dict[str, Outcome] = {}
    for name in ("flat", "buy_and_hold", "exposure_matched"):
        b = policies[name]
        baselines[name] = _outcome(name, run_backtest(b.policy, dataset, b.env, span), b.env, periods, bar_ns, eval_cfg, True)
    baselines["exposure_matched"].extra.update(exposure=exposure, entry_exposure=entry_exposure)
    baselines["random"] = run_random_baseline(dataset, cfg, span, eval_cfg, agent_res.trades, periods, bar_ns)
    b = policies["rule_brain"]
    baselines["rule_brain"] = _outcome("rule_brain", run_backtest(b.policy, dataset, b.env, span), b.env, periods, bar_ns,
                                       eval_cfg, True)
    rnd = baselines["random"].extra.get("net_returns", [])
    if rnd:
        agent.extra["share_of_random_seeds_beaten"] = float(np.mean([agent.metrics["net_return"] > r for r in rnd]))

    sweep: dict[str, dict[str, dict[str, float]]] = {}
    swept = {"agent": Baseline(policy, cfg), **{n: policies[n] for n in ("buy_and_hold", "exposure_matched", "rule_brain")}}
    for mult in eval_cfg.cost_multipliers:
        key = f"x{mult:g}"
        sweep[key] = {}
        for name, b in swept.items():
            if mult == 1.0:
                m = (agent if name == "agent" else baselines[name]).metrics
            else:
                scaled = scale_costs(b.env, mult)
                m = summarize_backtest(run_backtest(b.policy, dataset, scaled, span), scaled, periods, bar_ns)
            sweep[key][name] = {k: m[k] for k in ("net_return", "sharpe", "trades", "fees_usd", "slippage_usd")}

    excess = excess_intervals(agent, baselines, eval_cfg)
    text, flags = verdict(agent, baselines, excess)
    ts = dataset.prices.timestamps
    split = {
        "name": "test" if timerange is None else "timerange",
        **({"timerange": timerange.to_dict()} if timerange is not None else {}),
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
        excess=excess,
    )
    support = policy_support_report(policy, dataset.matrix[span.start : span.end])
    if support is not None:
        report.support, report.support_line = support.to_dict(), support.line()
        logger.info("evaluation: %s", report.support_line)
    logger.info("evaluation: %s", text)
    return report


def range_span(dataset, timerange: TimeRange) -> Span:
    """The bars of ``dataset`` in ``timerange`` after the feature warm-up; DataError when fewer than 2."""
    lo, hi = timerange.bar_span(dataset.index)
    lo = max(lo, dataset.warmup)
    if hi - lo < 2:
        raise DataError(f"--timerange {timerange}: fewer than 2 bars after the {dataset.warmup}-bar feature warm-up")
    return Span(lo, hi)


def evaluation_setting(runs: Sequence[RunDir], config: AppConfig | None, dataset=None,
                       timerange: TimeRange | None = None) -> tuple[AppConfig, Any, Splits | None, bool]:
    """What judging the runs ``runs`` (one run, or an ensemble's members) needs: the first run's config with
    ``config``'s evaluation settings, its data rebuilt (or ``dataset``), its splits when no ``timerange`` is
    named (else the range checked against every bar each run trained or was selected on: None), and whether
    the policy WAITs outside the training support (what live would trade)."""
    from agents.data import build_dataset

    run_config = runs[0].load_config()
    if config is not None:  # evaluation settings may change; the market and the env are the run's
        run_config = replace(run_config, eval=config.eval)
    if dataset is None:
        dataset = build_dataset(run_config)
    if timerange is None:
        splits = load_run_splits(runs[0].path, dataset.prices.timestamps)
    else:  # the runs' own bar positions play no part: the range is checked by bar times
        splits = None
        first = dataset.index[range_span(dataset, timerange).start]
        for rd in runs:
            check_unseen(rd.path, timerange, first)
    wait = (config if config is not None else run_config).live.wait_outside_support
    return run_config, dataset, splits, wait


def evaluate_run(
    run: str | Path,
    config: AppConfig | None = None,
    dataset=None,
    *,
    which: Which = "best",
    save: bool = True,
    trust_run: bool = False,
    timerange: TimeRange | None = None,
) -> EvaluationReport:
    """Load a run, rebuild its data (or use ``dataset``), check the schema and the split boundaries, evaluate on its
    test split, or on ``timerange`` when its first bar comes after every bar the run trained or was selected on."""
    from agents.policy import load_policy

    rd = RunDir.resolve(run, config.train.checkpoint_dir if config is not None else "checkpoints")
    run_config, dataset, splits, wait = evaluation_setting([rd], config, dataset, timerange)
    policy = load_policy(rd, schema=dataset.schema, which=which, trust_run=trust_run, wait_outside_support=wait)
    report = evaluate_policy(policy, dataset, run_config, splits, run_dir=rd.path, timerange=timerange)
    if save:
        report.save(rd.eval if timerange is None else rd.eval_range(str(timerange)))
    return report


# ---------------------------------------------------------------- printing

TABLE_COLUMNS = [
    ("net_return", "net ret", "{:+.2%}"), ("sharpe", "Sharpe", "{:+.2f}"), ("deflated_sharpe", "DSR", "{:.2f}"),
    ("sortino", "Sortino", "{:+.2f}"), ("max_drawdown", "max DD", "{:.2%}"), ("calmar", "Calmar", "{:+.3g}"),
    ("win_rate", "win", "{:.0%}"), ("profit_factor", "PF", "{:.2f}"), ("expectancy_usd", "exp $", "{:+.2f}"),
    ("trades", "trades", "{:.0f}"), ("exposure", "in mkt", "{:.0%}"), ("net_exposure", "net x", "{:+.2f}"),
    ("gross_exposure", "gross x", "{:.2f}"), ("avg_leverage", "lev", "{:.1f}"), ("liquidations", "liq", "{:.0f}"),
    ("fees_usd", "fees $", "{:.0f}"), ("funding_usd", "fund $", "{:+.0f}"),
]


def _cell(value: float, fmt: str) -> str:
    if math.isfinite(value):
        return fmt.format(value)
    return "n/a" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def format_table(report: EvaluationReport) -> str:
    cols = TABLE_COLUMNS
    header = f"{'strategy':<17}" + "".join(f"{c[1]:>9}" for c in cols)
    label = "test split" if report.split.get("name", "test") == "test" else f"timerange {report.split['timerange']['text']}"
    lines = [f"{label} {report.split['first_bar'][:16]} .. {report.split['last_bar'][:16]} ({report.split['bars']} bars)", header]
    for name, o in report.outcomes().items():
        cells = "".join(f"{_cell(float(o.metrics.get(key, math.nan)), fmt):>9}" for key, _, fmt in cols)
        label = name if name != "random" else f"random(x{o.extra.get('seeds', 0)})"
        lines.append(f"{label:<17}" + cells)
    a = report.agent
    if a.ci_return is not None and a.ci_sharpe is not None:
        lines.append(
            f"agent {a.ci_return.confidence:.0%} bootstrap CI: net return [{a.ci_return.low:+.2%}, {a.ci_return.high:+.2%}], "
            f"Sharpe [{a.ci_sharpe.low:+.2f}, {a.ci_sharpe.high:+.2f}]; deflated Sharpe "
            f"{_cell(float(a.metrics.get('deflated_sharpe', math.nan)), '{:.2f}')} for {int(a.metrics.get('trials', 1))} trial(s)"
        )
    for name, ci in report.excess.items():
        lines.append(f"excess over {name} (paired block bootstrap): {ci.estimate:+.2%}, "
                     f"{ci.confidence:.0%} CI [{ci.low:+.2%}, {ci.high:+.2%}]")
    sweep = "; ".join(
        f"{k}: " + ", ".join(f"{n} {v['net_return']:+.2%}" for n, v in d.items()) for k, d in report.cost_sweep.items()
    )
    lines.append(f"cost sweep (fees, slippage, impact) {sweep}")
    if report.breakdown.get("regime"):
        lines.append("agent by regime: " + ", ".join(
            f"{k} {v['trades']:.0f} trades {v['pnl_usd']:+.0f}$" for k, v in report.breakdown["regime"].items()))
    if report.breakdown.get("exit_profile"):
        lines.append("agent by exit profile: " + ", ".join(
            f"{k} {v['trades']:.0f} trades {v['pnl_usd']:+.0f}$" for k, v in report.breakdown["exit_profile"].items()))
    if report.support_line:
        lines.append(report.support_line)
    lines.append("verdict: " + report.verdict)
    return "\n".join(lines)
