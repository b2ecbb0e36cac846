"""``aster-rl train``: PPO on the training split of the configured market, with TensorBoard."""

from __future__ import annotations

import argparse
import sys

from aster_rl.config import AppConfig, replace


def register(sub) -> None:
    p = sub.add_parser("train", help="train a PPO agent (train/validation splits only; the test split is left for evaluate)")
    p.add_argument("--name", help="run name (default: train.name)")
    p.add_argument("--seed", type=int, help="random seed (default: train.seed)")
    p.add_argument("--timesteps", type=int, help="total environment steps (default: train.total_timesteps)")
    p.add_argument(
        "--timerange", metavar="START-END",
        help="use only bars in this UTC range, e.g. 20250919-20251031 (YYYYMMDD, either side may be empty, the end "
        "excluded); it is split into train, validation and test as usual, the test split at its end, and the "
        "range is recorded in splits.json. Judge the run on a later range with `evaluate RUN --timerange`",
    )
    p.add_argument(
        "--pretrain", metavar="MARKETS",
        help="first pretrain on these shared real markets pooled (e.g. BTC,ETH,LTC: their whole files, which must end "
        "before the first training bar), then train from that run (train.pretrain_markets; train.init_from names a run)",
    )
    p.set_defaults(func=run)


def with_overrides(config: AppConfig, args) -> AppConfig:
    changes = {}
    if getattr(args, "name", None):
        changes["name"] = args.name
    if getattr(args, "seed", None) is not None:
        changes["seed"] = args.seed
    if getattr(args, "timesteps", None) is not None:
        changes["total_timesteps"] = args.timesteps
    if getattr(args, "pretrain", None):
        changes["pretrain_markets"] = args.pretrain.split(",")
    return replace(config, train=changes) if changes else config


def run(args: argparse.Namespace, config: AppConfig) -> int:
    from agents.data import build_dataset
    from agents.pretrain import fine_tune_config, pretrain_for
    from agents.train import default_splits, train
    from aster_rl.data.timeframes import parse_timerange

    config = with_overrides(config, args)
    timerange = parse_timerange(args.timerange) if getattr(args, "timerange", None) else None
    tty = sys.stderr.isatty()
    dataset = build_dataset(config, progress=tty)
    splits = default_splits(config, dataset, timerange)
    if config.train.pretrain_markets:
        pre = pretrain_for(config, dataset.index[splits.train.start], progress_bar=config.train.progress_bar and tty)
        print(f"pretrained: {pre.run_dir}" + (f" ({pre.gate.line()})" if pre.gate else ""))
        config = fine_tune_config(config, pre.run_dir)
    result = train(config, dataset, splits=splits, progress_bar=config.train.progress_bar and tty)
    m = result.metrics
    best = m.get("best_validation", {})
    print(f"run: {result.run_dir}")
    index = dataset.index
    print(("timerange " + str(timerange) + ": " if timerange else "") + "; ".join(
        f"{name} {index[s.start]:%Y-%m-%d %H:%M} .. {index[s.end - 1]:%Y-%m-%d %H:%M}"
        for name, s in splits.spans().items()) + " UTC")
    if m.get("support_notice"):
        print(m["support_notice"])
    print(f"trained {m['timesteps']} steps in {m['train_seconds']:.0f} s ({m['fps']:.0f} fps)")
    if m.get("stopped_early"):
        print(f"stopped early at {m['stopped_at_timesteps']} steps (train.patience = {config.train.patience})")
    if best:
        excess = best.get("excess_exposure_matched")
        print(f"kept the checkpoint at {best['timesteps']:.0f} steps (best validation {m.get('select_by', 'net_pnl')}): "
              f"net PnL {best['net_pnl_usd']:+.2f} USD ({best['net_return']:+.2%}, {best['trades']:.0f} trades)"
              + (f", excess over exposure_matched {excess:+.2%}" if excess is not None else ""))
    if m.get("tensorboard_dir"):
        print(f"TensorBoard: tensorboard --logdir {m['tensorboard_dir']}")
    later = ""
    if timerange is not None and timerange.end is not None:  # the bars after the range were never read
        end = timerange.end
        later = f" (or a later range: --timerange {end:%Y%m%d}-)" if end == end.normalize() else \
            f" (or a later range: --timerange {int(end.timestamp())}-)"
    if result.gate is not None:
        print(result.gate.line())
    print(f"next: aster-rl evaluate {result.run_dir}{later}")
    return 0
