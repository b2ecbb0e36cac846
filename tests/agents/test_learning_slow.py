"""Learning runs (slow): PPO finds the planted edge, enters on the planted signal and invents no edge on the null market.

Each run trains PPO (``LEARNING_*`` below) on the demo's year of synthetic 5m bars
(``DEMO_SYNTH``) and is judged on the test split (the last ~73 days, never seen in training
or model selection). The six runs (planted and null market, seeds 0-2) go two at a time,
each in its own process with one torch thread.

What must hold is the judge's verdict, not a single number: on the planted market the excess
over ``exposure_matched`` and over ``flat`` is above 0 (evidence of an edge) in at least 2 of 3
seeds; at least half of the entries of at least 2 of 3 seeds fill within the planted horizon
after a planted signal (~21% by chance), and every seed with an edge is one of them; on the
null market no seed gets "evidence of an edge".

The settings: the order-flow tentacle alone; a charge on exposure (``env.exposure_penalty``
4e-4 per bar, times notional / equity) warmed up from 0 over the first 300k of 1M steps; one
10x rung; ``gamma`` 0.95; ``ent_coef`` 0; the checkpoint kept by the information ratio of the
validation excess over exposure_matched (``train.select_by = "excess_ir"``), from 300k steps
on. Why each, and everything else tried, below; the demo keeps its own settings.

The market has no trend-regime drift (``synth.trend_drift = 0``), so the planted signal is
the only edge; with the drift (the generator's default, and the demo's market) the agents
earned the trend momentum and entered after a signal barely more often than by chance
(27-28% of entries, ~21% by chance; edge in 1 of 3 seeds).

How the settings were chosen: on another market (``synth.seed`` 11) with other training
seeds (10, 11), never on the seeds below. Tried on training seed 10 beside the demo's
settings (log-equity reward, 1-10x ladder, 600k steps): ``env.reward = "trade_outcome"``,
``env.drawdown_penalty`` 0.005 / 0.05 / 0.2, a single 5x rung, three years of bars. Every
variant stayed in the market 83-96% of the time with 28-36% of its entries after a signal
and an excess interval that included 0; none was better than the demo's settings.

What did not hold with the demo's settings: entries following the signal (24-28%). The agents
are almost always in a position (the next entry comes one bar after an exit in most trades):
holding a random position and staying flat earn the same in expectation, so nothing teaches
PPO to wait between signals.

Tried for it, on the same tuning market (``synth.seed`` 11), training seed 10 (and 11 where
named), 600k steps, share of entries after a signal / time in the market / edge:
the demo's settings 29% / 92% / no; ``env.reward = "differential_sharpe"`` 31% / 96% / no;
``env.exposure_penalty`` 1e-4 25% / 92% / no and 2.5e-4 23% / 91% / no (both shrank the
leverage instead of waiting); 3e-4 with a single 5x rung 36% / 46% / no (seed 11: 28% / 89%);
5e-4 with a single 5x rung 33% / 23% / no (seed 11: 30% / 6%, 47 trades); 4e-4 with a single
5x rung and 1.5M steps 33% / 31% / no; ``env.action_mode = "target"`` (flat unless the policy
names a side) 35% / 52% / no (excess over flat [-0.6%, +120%]; seed 11: 34% / 67%); target
with exposure_penalty 3e-4 stopped trading (22 trades, 2% in the market). A charge on exposure
teaches waiting, but not entering on the signal: the entries stay near the chance rate, so
none of these is kept.

Why (the trained policies probed on the test split with a flat account): they trade the
drift's momentum a few bars after a signal, not the signal bar. At signal bars the side
head's most probable side was the signal's on 35% of them with target positions (8% with
only the market and order-flow tentacles; 66% with the demo's settings, whose policy, flat,
almost never prefers WAIT); 35 of 202 and 41 of 204 signals were entered within two bars,
and the other entries inside the horizon spread evenly over its 24 bars.
Entering on the bar itself is worth little more than entering on the momentum a few bars
later, and momentum also fires where no signal was. More of the same did not change it:
``ent_coef`` 0.001, ``min_hold_bars`` 12, a volume-weighted taker delta over 12 bars as an
extra column, only the market and order-flow tentacles, 1.2M steps: 25-38% after a signal;
``turnover_penalty`` 2e-3 with target positions stopped trading.

Closest: the order-flow tentacle alone (no price columns), so the signal bar is the only
thing to read. Then the agents answer it (70-81 of about 200 signals entered within two bars)
and show an edge in 4 of 7 runs, but they stay in the market and flip on the signals
(34-46% of entries after a signal; with ``turnover_penalty`` 5e-4 40%, with target positions
43% at low leverage and no edge, and with ``ent_coef`` 0 46% / 41%, no edge; with target
positions and 5e-4 no trade). With ``ent_coef`` 0 and an exposure
charge some seeds become waiters that trade only the signal, others stay flippers:
charge 1e-4: 49% (edge) / 84% (edge, 12% in the market); 1.5e-4: 35% / 51%; 2e-4, seeds
10-13: 84% (edge) / 52% / 35% / 29%; 2e-4 with a single 10x rung, seeds 12-13: 39% / 68%
(edge). Those figures are the checkpoints kept by validation, which in 4 of these 8 charged
runs was one from the first 150k steps, before the policy had settled. Their last
checkpoints: 2e-4, seeds 10-13: 89% (edge, 135 trades, 11% in the market) / 77% (17 trades,
no edge) / no trade / 93% (edge, 91 trades); 1e-4: 38% / 80% (edge); 1.5e-4: 42% (edge) /
57%. With 2e-4, ``ent_coef`` 0.001 and ``train.select_from`` 300k (no checkpoint from
before): seeds 10-13 49% (edge) / no trade / 72% (edge) / 79% (edge). So the charge does
teach the planted strategy to most seeds, but some collapse to never trading and others stay
just under half.

Then (``train.exposure_penalty_warmup`` added for it: the charge rises from 0 over the first
steps, so a random policy is not charged before it has found the signal): order flow alone,
600k steps, share of entries after a signal / time in the market / edge. Warm-up to 2e-4 over
15-50% of training, ``ent_coef`` 0, the ladder: seeds 10, 11 45% / 51% / edge and 40% / 97%
/ edge (at 1x: a ladder lets the policy dodge the charge with a small leverage); the same with
one 10x rung 37% / 96% / no and 40% / 97% / no. 2e-4 from the start with ``ent_coef`` 0.01
annealed to 0 over 20-60%: no trade (both seeds); target positions with the warm-up: no trade
(both). ``gamma`` 0.95 (a 20-bar horizon for the 24-bar edge), 2e-4 from the start, ladder,
``select_from`` 300k, seeds 10-13: 85% / 27% / edge, 66% / 39% / no, 38% / 37% / no, 49% / 48% /
no (11 traded nothing between 100k and
250k steps, 12 almost nothing between 200k and 350k; both then recovered); with the warm-up
over the first 30%: 45% (edge, 1x, 90% in the market) / 71% (edge) / 92% (edge) / 45% (edge,
1x, 98%); with one 10x rung: 86% / 20% / edge, 40% / 95% / no, 46% / 98% / edge, 89% / 25% /
edge; the same with the side head initialized to prefer WAIT: 1 trade and none (seeds 11, 12); with
``ent_coef`` 0.003 after 30%: seed 12 42% / 75% / edge; 4e-4 warmed up over the first 30%,
one 10x rung, seeds 10-13: 92% / 23% / edge, 3 trades / no, 93% / 17% / edge (a flipper until
250k steps, a waiter once the charge had reached it), 79% / 48% / edge; warmed up over the first
half: seed 11 36% / 91% / edge. So a seed becomes a waiter, a flipper (in the market at 10x,
turning on each signal) or stops trading, and a higher charge trades flippers for seeds that
stop trading.

That setting (4e-4 warmed up over 180k of 600k steps, one 10x rung, ``gamma`` 0.95,
``ent_coef`` 0, ``select_from`` 300k, the checkpoint chosen by net PnL) was tried on this file's
market once, with the demo's six tentacles replaced by order flow alone: none of planted seeds
0-2 traded on the test split (0 and 1 stopped by 200k and 250k steps, as the charge reached its
value; 2's validation backtests never traded). That failure is what pointed at the runs that
stop trading, so this file's seeds are not a clean hold-out for what followed.

What followed, on the tuning markets only. The validation histories showed the waiters' phases
with a Sharpe ratio of 10-17 beside the flippers' 5-9, often with a smaller excess (so net PnL
and excess kept flippers), and runs that stopped trading when the charge arrived often resumed
200k-300k steps later. Hence ``train.select_by = "excess_ir"`` (the steadiest excess; added for
it) and a slower warm-up, over 300k steps. 600k steps, entries after a signal (edge): market 11,
seeds 10-13: 97% (edge) / 100% (edge, 66 trades) / 93% (edge) / 98% (edge); market 12
(``synth.seed`` 12), seeds 14-17: 100% (edge) / 97% (edge) / 100% (edge, 24 trades) / 100%
(3 trades, no edge: it stopped trading at 400k). With 1M steps (whose first 600k are the same
run): seed 16 100% (edge, 75 trades), seed 17 100% (20 trades, no edge; it resumed at 700k).
Most of those agents trade one side only (all long or all short). This file's settings are that last
one: 1M steps.

This file with them (15 min 31 s for the six runs, 253-288 s of training each): planted seeds
0 and 1 enter after a signal on 100% and 92% of their entries (42 and 75 trades), with excess
over exposure_matched +84.61% [+42.43%, +139.91%] and +141.86% [+47.50%, +304.30%], both an
edge; planted seed 2 never trades: from the first validation (50k steps, the charge still
small) its policy WAITs on every bar, and its training rollouts end all WAIT. The same seed
never traded on validation with the earlier setting either; one 10x rung makes a random
policy's trades costly from the first step, which is where it stops. The criteria above are
two of three, so the file passes with it, and it is said here rather than asserted away. The
null market: seed 0 made 21 trades, +9.89% [-3.90%, +29.44%], no edge; seeds 1 and 2 never
traded.

A clean hold-out for these settings, since this file's seeds are not one: the same settings,
unchanged, once on a market and seeds nothing had seen (``synth.seed`` 13, training seeds
20-22): 96% of entries after a signal (69 trades, excess over exposure_matched +117.94%
[+44.50%, +233.12%]), 98% (54 trades, +71.03% [+25.05%, +134.15%]), 100% (139 trades,
+193.47% [+99.73%, +360.42%]); an edge in all three.
"""

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pandas as pd
import pytest

from agents.data import build_dataset
from agents.evaluate import evaluate_run
from agents.train import train
from aster_rl.cli.demo_cmd import DEMO_SYNTH, DEMO_TRAIN
from aster_rl.config import AppConfig, replace
from aster_rl.data.synthetic import planted_signals, synthesize

pytestmark = pytest.mark.slow

SEEDS = (0, 1, 2)
# The order-flow tentacle alone: the signal bar (volume spike, one-sided taker flow) is the only thing to read.
LEARNING_TENTACLES = ["orderflow"]
# A charge on exposure, warmed up so the policy finds the signal before holding costs; one 10x rung (a ladder
# lets the policy dodge the charge with a small leverage); gamma 0.95 for the 24-bar edge.
LEARNING_ENV = {"episode_length": 512, "leverages": (10,), "exposure_penalty": 4e-4}
LEARNING_TRAIN = {**DEMO_TRAIN, "total_timesteps": 1_000_000, "tensorboard": False, "progress_bar": False,
                  "gamma": 0.95, "ent_coef": 0.0,
                  "exposure_penalty_warmup": 300_000, "select_from": 300_000, "select_by": "excess_ir"}
WORKERS = max(1, min(2, os.cpu_count() or 1))  # one torch thread per run: runs side by side, one per core


def _config(tmp_path, edge: str, seed: int) -> AppConfig:
    return replace(
        AppConfig(),
        features={"tentacles": LEARNING_TENTACLES},
        synth={**DEMO_SYNTH, "edge": edge, "trend_drift": 0.0},
        env=LEARNING_ENV,
        train={**LEARNING_TRAIN, "seed": seed, "checkpoint_dir": str(tmp_path)},
        eval={"random_seeds": 5, "bootstrap_samples": 500},
    )


def signal_following(trades: pd.DataFrame, cfg: AppConfig) -> tuple[float, float]:
    """Shares of the agent's entries that fill within the planted horizon after a signal bar
    (``signal < fill <= signal + edge_horizon`` bars), and of those on the signal's side."""
    if not len(trades):
        return 0.0, 0.0
    sig = planted_signals(cfg.synth, timeframe=cfg.data.timeframe)
    sig_ts = sig.index.as_unit("ns").asi8
    bar_ns = pd.Timedelta(cfg.data.timeframe).value
    entry = pd.DatetimeIndex(trades["entry_time"]).as_unit("ns").asi8
    k = np.searchsorted(sig_ts, entry, side="left") - 1  # the last signal bar strictly before the fill
    ok = k >= 0
    lag = np.where(ok, entry - sig_ts[np.maximum(k, 0)], np.iinfo(np.int64).max)
    within = ok & (lag > 0) & (lag <= cfg.synth.edge_horizon * bar_ns)
    side = np.where(trades["side"].to_numpy() == "long", 1, -1)
    same_side = within & (side == sig["direction"].to_numpy()[np.maximum(k, 0)])
    return float(within.mean()), float(same_side.mean())


def learn(edge: str, seed: int, checkpoint_dir: str) -> dict:
    """One training run and its judgement on the test split (in a worker process): what the tests read."""
    cfg = _config(checkpoint_dir, edge, seed)
    dataset = build_dataset(cfg, market=synthesize(cfg.synth))
    result = train(cfg, dataset)
    report = evaluate_run(result.run_dir, cfg, dataset=dataset)
    within, same_side = signal_following(report.agent.trades, cfg)
    ex = report.excess
    text = (f"{edge} market, seed {seed}: {result.metrics['train_seconds']:.0f} s training; entries within the planted "
            f"horizon after a signal {within:.0%} (on the signal's side {same_side:.0%}); excess over exposure_matched "
            f"{ex['exposure_matched'].estimate:+.2%} [{ex['exposure_matched'].low:+.2%}, "
            f"{ex['exposure_matched'].high:+.2%}], over flat {ex['flat'].estimate:+.2%} [{ex['flat'].low:+.2%}, "
            f"{ex['flat'].high:+.2%}]; edge: {report.flags['edge']}\n{report.table()}")
    return {"edge": bool(report.flags["edge"]), "within": within, "verdict": report.verdict,
            "trades": int(report.agent.metrics["trades"]), "text": text}


RUN_TIMEOUT = 3_600  # one training run; minutes on an idle machine, far longer on a busy one
ALL_RUNS_TIMEOUT = RUN_TIMEOUT * 2 * len(SEEDS) // WORKERS


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict[int, dict]]:
    """Every run of this file (planted and null, each seed), ``WORKERS`` at a time: {edge: {seed: result}}."""
    jobs = [(edge, seed) for edge in ("planted", "null") for seed in SEEDS]
    out: dict[str, dict[int, dict]] = {"planted": {}, "null": {}}
    with ProcessPoolExecutor(max_workers=WORKERS, mp_context=get_context("spawn")) as pool:
        futures = {job: pool.submit(learn, *job, str(tmp_path_factory.mktemp(f"{job[0]}{job[1]}"))) for job in jobs}
        for (edge, seed), future in futures.items():
            out[edge][seed] = future.result()
            print(f"\n{out[edge][seed]['text']}")
    return out


def _summary(runs: dict[int, dict]) -> dict[int, tuple[bool, float, int]]:
    """{seed: (edge, share of entries after a signal, trades)}"""
    return {seed: (r["edge"], round(r["within"], 3), r["trades"]) for seed, r in runs.items()}


@pytest.mark.timeout(ALL_RUNS_TIMEOUT)
def test_ppo_finds_the_planted_edge_in_most_seeds(runs):
    edges = [seed for seed, r in runs["planted"].items() if r["edge"]]
    assert len(edges) >= 2, _summary(runs["planted"])


@pytest.mark.timeout(ALL_RUNS_TIMEOUT)
def test_the_agents_entries_follow_the_planted_signal(runs):
    planted = runs["planted"]
    edges = [seed for seed, r in planted.items() if r["edge"]]
    following = [seed for seed, r in planted.items() if r["within"] >= 0.5]
    assert len(following) >= 2, _summary(planted)
    # an edge that does not come from the planted signal would be luck or a leak
    assert set(edges) <= set(following), _summary(planted)


@pytest.mark.timeout(ALL_RUNS_TIMEOUT)
def test_no_edge_is_invented_on_the_null_market(runs):
    claimed = {seed: r["verdict"] for seed, r in runs["null"].items() if r["edge"]}
    assert not claimed, claimed
    for r in runs["null"].values():
        assert "no evidence of an edge" in r["verdict"]
