"""Pretraining benchmark: ASTER walk-forward alone, and fine-tuned from one pretraining on the pooled Binance perps.

Pretrains once on BTC, ETH, LTC (2023-01 → 2024-05, before ASTER's first bar; :mod:`agents.pretrain`),
then runs the ASTER walk-forward of ``benchmarks/bench_real.py`` twice with the same settings
(``configs/real.toml``, the same PPO steps per run): (a) ASTER alone, (b) every fold × seed
starting from the pretrained run (``train.init_from``). Prints both tables and the wall times.

    .venv/bin/python benchmarks/bench_pretrain.py [--pretrain-markets BTC ETH LTC] [--pretrain-timesteps N]
        [--timesteps N] [--set k=v ...] [--keep DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from aster_rl.config import replace
from aster_rl.data.real import REAL_MARKETS

from agents.evaluate import jsonable
from agents.pretrain import fine_tune_config, pretrain
from agents.research import REAL_CONFIG, add_real_arguments, real_settings, walkforward_market

TARGET = "ASTER"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrain-markets", nargs="+", default=["BTC", "ETH", "LTC"], choices=REAL_MARKETS, metavar="NAME")
    parser.add_argument("--pretrain-timesteps", type=int, default=200_000, help="PPO steps of the pretraining run")
    add_real_arguments(parser, "PPO steps per ASTER run, both tables (default: configs/real.toml)")
    args = parser.parse_args()
    settings = real_settings(args)
    if settings is None:
        return 0
    data_dir, base = settings
    logging.getLogger("agents.pretrain").setLevel(logging.INFO)
    print(f"settings: {REAL_CONFIG.name}{' + ' + ', '.join(args.sets) if args.sets else ''}; "
          f"{base.eval.walkforward_folds} folds x {base.eval.walkforward_seeds} seeds, {base.train.total_timesteps} steps "
          f"per ASTER run; pretraining on {'+'.join(args.pretrain_markets)}: {args.pretrain_timesteps} steps", flush=True)
    started = time.perf_counter()
    echo = lambda line: print(line, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        t0 = time.perf_counter()
        pre_cfg = replace(base, train={"name": "real_aster", "checkpoint_dir": str(out),
                                       "total_timesteps": args.pretrain_timesteps})
        logging.getLogger("agents.data").setLevel(logging.INFO)  # the pooled markets and the columns left out
        pre = pretrain(pre_cfg, args.pretrain_markets, data_dir)
        logging.getLogger("agents.data").setLevel(logging.WARNING)
        best = pre.metrics.get("best_validation", {})
        pre_seconds = time.perf_counter() - t0
        print(f"\n== pretrained {pre.run_dir.name}: {pre.metrics['timesteps']} steps in {pre_seconds:.0f} s; "
              f"{pre.metrics.get('observation_columns')} observation columns; best validation "
              f"({pre.splits.validation.end - pre.splits.validation.start} bars of the last market) net PnL "
              f"{best.get('net_pnl_usd', float('nan')):+.2f} USD", flush=True)
        if pre.metrics.get("support_notice"):
            print(pre.metrics["support_notice"])
        print("\n(a) ASTER alone", flush=True)
        alone = walkforward_market(TARGET, base, out / "alone", data_dir, echo=echo)
        print("\n(b) ASTER fine-tuned from the pretrained run", flush=True)
        tuned = walkforward_market(TARGET, fine_tune_config(base, pre.run_dir), out / "fine_tuned", data_dir, echo=echo)
    if args.json:
        args.json.write_text(json.dumps(jsonable({
            "settings": args.sets, "timesteps": base.train.total_timesteps, "pretrain_markets": args.pretrain_markets,
            "pretrain_timesteps": args.pretrain_timesteps, "pretrain_seconds": pre_seconds, "pretrain": pre.metrics,
            "alone": alone, "fine_tuned": tuned}), indent=2))
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
