"""Tuning wall time: the same 4-trial study sequential vs ``--workers 2`` on PostgreSQL.

A throwaway PostgreSQL cluster on loopback (``tests/postgres.py``) holds both studies. Both
train the same four configurations (a 2 x 2 grid of learning rate and leverage cap, no
pruning) with small PPO settings on the synthetic market; the dataset is built and the numba
kernels compiled once, before either timing, and the workers are forked from that process. Printed: each study's wall time, the
ratio (aim >= 1.3x on 2 cores), how many trials ran at once on average (the summed trial
time over the wall time), the load average around the runs (the machine is shared),
and whether both studies found the same value for every configuration.

    .venv/bin/python benchmarks/bench_tune.py [--timesteps 16384]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root))
sys.path.append(str(root / "tests"))

from postgres import PostgresCluster  # noqa: E402

from agents.data import build_dataset  # noqa: E402
from agents.tune import TuneSpec, load_study, tune, values_by_hash  # noqa: E402
from aster_rl.config import AppConfig, replace  # noqa: E402

GRID = ("train.learning_rate", "env.max_leverage")


def bench_config(workdir: Path, timesteps: int) -> AppConfig:
    return replace(
        AppConfig(),
        data={"data_dir": str(workdir / "data")},
        synth={"n_bars": 30 * 288, "seed": 7},
        env={"episode_length": 512},
        train={"total_timesteps": timesteps, "n_envs": 8, "n_steps": 256, "batch_size": 512, "n_epochs": 4,
               "eval_freq": timesteps // 2, "net_arch": [64, 64], "checkpoint_dir": str(workdir / "checkpoints"),
               "progress_bar": False, "tensorboard": False},
        eval={"bootstrap_samples": 200},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=16_384, help="PPO steps per trial")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_tune_") as tmp:
        workdir = Path(tmp)
        config = bench_config(workdir, args.timesteps)
        t0 = time.perf_counter()
        dataset = build_dataset(config)
        print(f"dataset: {len(dataset)} bars, {dataset.matrix.shape[1]} features, built in {time.perf_counter() - t0:.1f} s")
        cluster = PostgresCluster.start()
        try:
            url = cluster.new_database("bench")
            warm = TuneSpec(config=replace(config, train={"total_timesteps": 512, "eval_freq": 256}), storage=url,
                            study="warmup", trials=1, params=GRID, sampler="grid", pruner="none")
            tune(warm, 1, dataset=dataset)  # compiles the numba kernels once, before either timing
            times, values = {}, {}
            for study, workers in (("sequential", 1), ("two_workers", 2)):
                spec = TuneSpec(config=config, storage=url, study=study, trials=4, params=GRID, sampler="grid", pruner="none")
                load = os.getloadavg()[0]
                started = time.perf_counter()
                tune(spec, workers, dataset=dataset)
                times[study] = time.perf_counter() - started
                done = load_study(url, study)
                values[study] = values_by_hash(done)
                busy = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done.trials
                           if t.datetime_start and t.datetime_complete)
                print(f"{study}: 4 trials, {workers} worker(s), {times[study]:.1f} s; {busy / times[study]:.2f} trials running "
                      f"on average (load average {load:.2f} before, {os.getloadavg()[0]:.2f} after, {os.cpu_count()} cores)")
        finally:
            cluster.stop()
    ratio = times["sequential"] / times["two_workers"]
    same = values["sequential"] == values["two_workers"]
    print(f"speed-up with 2 workers on PostgreSQL: {ratio:.2f}x (aim >= 1.3x); "
          f"same value for every configuration: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
