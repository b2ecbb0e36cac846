"""``aster-rl backtest``: one policy over a range of the stored market, through the accounting core.

``--ensemble RUN RUN [RUN...]`` in place of ``--run``: seed runs of one design acting as one policy
(:mod:`agents.ensemble`); the policy is then the ensemble unless ``--policy`` names a baseline.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from aster_rl.config import AppConfig
from aster_rl.data.timeframes import parse_timerange, parse_utc_time
from aster_rl.errors import ConfigError

POLICIES = ("agent", "flat", "buy_and_hold", "rule_brain")


def register(sub) -> None:
    p = sub.add_parser("backtest", help="run one policy (a trained run or a baseline) over a range and print its metrics")
    p.add_argument("--policy", choices=POLICIES,
                   help="which policy (agent needs --run or --ensemble; default: the ensemble with --ensemble, else rule_brain)")
    p.add_argument("--run", help="a trained run directory or 'latest' (its market, features and env settings are used)")
    p.add_argument("--ensemble", nargs="+", metavar="RUN",
                   help="instead of --run: two or more runs trained alike with different seeds, acting as one policy "
                   "(the mean of their action heads, WAIT when they disagree; the first run's market and settings)")
    p.add_argument("--agreement", type=int, metavar="N",
                   help="with --ensemble: members that must pick the ensemble's side, else WAIT (default: a strict majority)")
    p.add_argument("--trust-run", action="store_true", help="load a run saved in the older pickled format (runs code stored in it: only for runs you made)")
    p.add_argument("--start", help="first bar (UTC time); default: the run's test split, else the end of the warm-up")
    p.add_argument("--end", help="last bar (UTC time); default: the run's test split end, else the last bar")
    p.add_argument("--timerange", metavar="START-END",
                   help="the bars in this UTC range instead of --start/--end, e.g. 20251101-20251201 (YYYYMMDD, either side "
                   "may be empty: the stored market's edge; the end excluded)")
    p.add_argument("--out", metavar="DIR", help="write trades.csv, equity.csv and metrics.json here")
    p.set_defaults(func=run)


def _bar_position(index: pd.DatetimeIndex, when: str, side: str) -> int:
    ts = parse_utc_time(when, f"--{side}")
    return int(index.searchsorted(ts, side="left" if side == "start" else "right"))


def run(args: argparse.Namespace, config: AppConfig) -> int:
    from agents.data import build_dataset
    from agents.ensemble import check_size, load_ensemble
    from agents.evaluate import (
        baseline_policies,
        jsonable,
        periods_per_year_of,
        run_backtest,
        summarize_backtest,
    )
    from agents.policy import load_policy
    from agents.run_dir import RunDir
    from agents.splits import Span, load_run_splits
    from aster_rl.evaluation.support import policy_support_report
    from aster_rl.data.timeframes import timeframe_to_timedelta

    if args.run and args.ensemble:
        raise ConfigError("--run and --ensemble both name the policy's runs: give one of them")
    if args.agreement is not None and not args.ensemble:
        raise ConfigError(f"--agreement {args.agreement}: only with --ensemble")
    if args.ensemble is not None:
        check_size(args.ensemble)  # before the data is built
    name = args.policy or ("agent" if args.ensemble else "rule_brain")
    if name == "agent" and not (args.run or args.ensemble):
        raise ConfigError("--policy agent needs --run RUN (a trained run directory or 'latest') or --ensemble RUN RUN ...")
    if args.timerange and (args.start or args.end):
        raise ConfigError(f"--timerange {args.timerange} names the whole range: give it or --start/--end, not both")
    timerange = parse_timerange(args.timerange) if args.timerange else None
    first_run = args.ensemble[0] if args.ensemble else args.run
    run_dir = RunDir.resolve(first_run, config.train.checkpoint_dir) if first_run else None
    run_config = run_dir.load_config() if run_dir is not None else config
    dataset = build_dataset(run_config)
    cfg = run_config.env
    index = dataset.index

    if timerange is not None:
        start, end = timerange.bar_span(index)
    else:
        if run_dir is not None:
            default = load_run_splits(run_dir.path, dataset.prices.timestamps).test
        else:
            default = Span(dataset.warmup, len(dataset))
        start = _bar_position(index, args.start, "start") if args.start else default.start
        end = _bar_position(index, args.end, "end") if args.end else default.end
    start = max(start, dataset.warmup)
    if end - start < 2:
        named = f"--timerange {timerange}" if timerange else f"the range {args.start or index[start]} .. {args.end or index[-1]}"
        raise ConfigError(f"{named} holds fewer than 2 bars after the {dataset.warmup}-bar feature warm-up")

    policy: Callable[[np.ndarray], np.ndarray]
    label = name
    if name == "agent" and args.ensemble:
        policy = load_ensemble(args.ensemble, schema=dataset.schema, agreement=args.agreement,
                               checkpoint_dir=config.train.checkpoint_dir, trust_run=args.trust_run)
        label = f"ensemble of {len(args.ensemble)} runs"
    elif name == "agent":
        assert run_dir is not None  # checked above: --policy agent needs --run
        policy = load_policy(run_dir, schema=dataset.schema, trust_run=args.trust_run)
    else:  # a baseline trades on its own account settings (buy_and_hold: all equity at 1x, no stops)
        baseline = baseline_policies(dataset, cfg)[name]
        policy, cfg = baseline.policy, baseline.env
    result = run_backtest(policy, dataset, cfg, Span(start, end))
    bar_ns = int(timeframe_to_timedelta(dataset.prices.timeframe).value)
    metrics = summarize_backtest(result, cfg, periods_per_year_of(dataset.prices.timeframe), bar_ns)

    print(f"{label} over {index[start]} .. {index[end - 1]} ({end - start} bars), net of fees, funding and slippage")
    first = result.equity.index[0]
    fill = min(int(index.searchsorted(first)) + 1, end - 1)  # the first decision fills at the next bar's open
    market = float(dataset.prices.close[end - 1] / dataset.prices.open[fill] - 1)
    print(f"  market move      {market:+.4%} (the first fill's open to the last close)")
    for key, value in metrics.items():
        print(f"  {key:<16} {format(value, ',.4f') if math.isfinite(value) or math.isinf(value) else 'n/a'}")
    support = policy_support_report(policy, dataset.matrix[start:end])
    if support is not None:
        print(support.line())
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        result.trades.to_csv(out / "trades.csv", index=False)
        result.equity.to_csv(out / "equity.csv")
        (out / "metrics.json").write_text(json.dumps(jsonable(metrics), indent=2))
        print(f"written: {out}/trades.csv, equity.csv, metrics.json")
    return 0
