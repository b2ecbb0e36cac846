"""``aster-rl live run``: run a trained policy on live or replayed bars (paper by default);
``aster-rl live stop``: ask a running runner to flatten and stop (writes the kill file,
``live.kill_file`` under ``data.data_dir``, so it works from any directory).

The deployment gate (:mod:`agents.gate`): ``--real`` runs only a run whose recorded verdict
says deployable for the weights loaded; any other run is refused in one line (exit 2)
before the confirmation prompt and before any exchange call. Paper and replay run it under
a "NOT DEPLOYABLE" banner."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from aster_rl.config import AppConfig

logger = logging.getLogger(__name__)


def register(sub) -> None:
    live = sub.add_parser("live", help="run a trained policy on live or replayed bars (paper by default), or stop a runner")
    actions = live.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser(
        "run",
        help="run a trained policy on live or replayed bars (paper by default)",
        description="Each closed bar: data -> features -> observation -> policy -> risk guard -> broker -> prediction log. "
        "Paper trading by default; real orders only with --real, for a run whose gate verdict says deployable, keys in "
        "ASTER_PRIVATE_KEY / ASTER_WALLET_ADDRESS and the confirmation I-UNDERSTAND (typed when asked, or --confirm "
        "I-UNDERSTAND). A run that is not deployable runs on paper under a NOT DEPLOYABLE banner.",
    )
    p.add_argument("--run", help="a trained run directory, 'latest', or 'champion' (the last promoted retrain)")
    p.add_argument("--model", choices=("best", "last"), default="best", help="which checkpoint of the run (default: best)")
    p.add_argument("--trust-run", action="store_true", help="load a run saved in the older pickled format (runs code stored in it: only for runs you made)")
    p.add_argument("--replay", action="store_true", help="feed stored history bar by bar instead of polling the exchange")
    p.add_argument("--start", metavar="DATE", help="replay: first bar (default: the first stored bar after the warm-up)")
    p.add_argument("--end", metavar="DATE", help="replay: bars before this time (default: all stored bars)")
    p.add_argument("--pace", type=float, default=0.0, metavar="SECONDS", help="replay: seconds per bar (default 0: as fast as possible)")
    p.add_argument("--features", choices=("auto", "batch", "incremental"), default="auto",
                   help="replay features: batch (exact, fast; default in replay) or incremental (the live path)")
    p.add_argument("--session", help="session name: state and predictions live under it; the same name resumes (default: derived)")
    p.add_argument("--max-bars", type=int, help="stop after this many bars")
    p.add_argument("--real", action="store_true",
                   help="trade real money on the exchange (needs a deployable run: its gate.json says edge; keys; the confirmation)")
    p.add_argument("--confirm", metavar="TEXT", help="the real-trading confirmation, I-UNDERSTAND")
    actions.add_parser("stop", help="ask a running runner to flatten and stop (writes the kill file)")
    live.set_defaults(func=run)


def run(args: argparse.Namespace, config: AppConfig) -> int:
    return ACTIONS[args.action](args, config)


def stop(args: argparse.Namespace, config: AppConfig) -> int:
    from aster_rl.live.risk import live_settings

    path = Path(live_settings(config).kill_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("stop requested by `aster-rl live stop`\n")
    print(f"kill file written: {path} (the runner flattens and stops at its next check; remove the file to start again)")
    return 0


def _prompt_confirmation() -> str | None:
    if sys.stdin.isatty():
        return input("Real orders with real money. Type I-UNDERSTAND to go on: ").strip()
    return None


def run_policy(args: argparse.Namespace, config: AppConfig) -> int:
    from aster_rl.config import load_secrets
    from aster_rl.errors import ConfigError
    from aster_rl.live.bars import LivePrices
    from aster_rl.live.brokers import PaperBroker
    from aster_rl.live.real_broker import RealBroker, check_real_trading_allowed
    from aster_rl.live.risk import live_settings
    from aster_rl.live.runner import LiveRunner
    from aster_rl.live.sources import ExchangeSource, ReplaySource
    from aster_rl.storage import Database, load_market

    live_cfg = live_settings(config)
    prompt = args.real and args.confirm is None and sys.stdin.isatty()  # asked after the gate, not before
    if (args.real or args.confirm is not None) and not prompt:
        check_real_trading_allowed(args.real, args.confirm, load_secrets())
    if args.real and args.replay:
        raise ConfigError("--real and --replay exclude each other: replayed bars are traded on paper only")
    if not args.run:
        raise ConfigError("live run: --run RUN is required (a run directory, 'latest' or 'champion')")

    from agents.gate import gate_problem, read_gate, require_deployable
    from agents.policy import load_policy
    from agents.retrain import resolve_champion

    run_dir = resolve_champion(args.run, config.train.checkpoint_dir)
    policy = load_policy(run_dir, which=args.model, checkpoint_dir=config.train.checkpoint_dir, trust_run=args.trust_run,
                         wait_outside_support=live_cfg.wait_outside_support)
    banner = None
    if args.real:
        record = require_deployable(run_dir, policy)  # before the prompt and any exchange call
        if prompt:
            check_real_trading_allowed(True, _prompt_confirmation(), load_secrets())
        print(f"gate: {record.line()}")
    else:
        problem = gate_problem(read_gate(run_dir), policy)
        if problem is not None:
            banner = f"NOT DEPLOYABLE: {problem} — paper only"
            print(banner)
    env_cfg, feats_cfg = policy.config.env, policy.config.features
    db = Database.from_config(config.data)
    db.init_schema()
    prices = LivePrices(config.data.timeframe)
    source: ReplaySource | ExchangeSource
    broker: PaperBroker | RealBroker
    replayed = ""  # the replayed range, in the default session name
    if args.replay:
        market = load_market(db, config.data)
        start = args.start
        if start is None:
            from aster_rl.features.pipeline import build_features

            start = 0  # replaced below by the warm-up of the features
            warm = build_features(market.window(None, market.candles.index[min(len(market), 3_000) - 1]), feats_cfg).warmup
            start = min(warm, len(market) - 2)
        source = ReplaySource(market, start, args.end, pace_s=args.pace)
        mode = "replay"
        index = source.market.candles.index
        replayed = f":{index[source.start]:%Y%m%dT%H%M}-{index[source.end - 1]:%Y%m%dT%H%M}"
        broker = PaperBroker(env_cfg, prices)
    else:
        from aster_rl.exchange.client import ExchangeClient

        client = ExchangeClient.from_config(config.data, with_secrets=args.real)
        source = ExchangeSource(client, db, config.data, history_bars=config.live.warmup_bars,
                                poll_interval_s=live_cfg.poll_interval_s, websocket=live_cfg.use_websocket,
                                retry_backoff_s=live_cfg.retry_backoff_s, max_backoff_s=live_cfg.max_backoff_s)
        mode = "real" if args.real else "paper"
        broker = RealBroker(client, config.data.symbol, env_cfg, live_cfg, prices) if args.real else PaperBroker(env_cfg, prices)
    session = args.session or f"{mode}:{run_dir.name}:{config.data.symbol}:{config.data.timeframe}{replayed}"
    runner = LiveRunner(policy, source, broker, db, env_cfg=env_cfg, live_cfg=live_cfg, features_cfg=feats_cfg,
                        session_id=session, mode=mode, features=args.features, prices=prices, freeze_gc=mode != "replay",
                        patterns_cfg=config.patterns, banner=banner)
    summary = runner.run(max_bars=args.max_bars)
    trades = summary.trades
    wins = sum(1 for t in trades if t["pnl_usd"] > 0)
    lat = sorted(summary.latencies_s)
    print(f"session {session}: {summary.bars} bars, {summary.decisions} decisions, {len(trades)} closed trades"
          + (f" ({wins / len(trades):.0%} won)" if trades else ""))
    if summary.final_equity is not None:
        print(f"equity {summary.final_equity:.2f} USD; stopped by: {summary.stopped_by or 'the bar limit'}")
    if summary.lost_decisions:
        print(f"{summary.lost_decisions} decisions lost to exchange or database failures (see the risk events)")
    if lat:
        print(f"decision latency (new bar -> orders sent): median {lat[len(lat) // 2] * 1e3:.1f} ms, max {lat[-1] * 1e3:.1f} ms")
    print("predictions: aster-rl predictions --session " + repr(session))
    return 0


ACTIONS: dict[str, Callable[[argparse.Namespace, AppConfig], int]] = {"run": run_policy, "stop": stop}
