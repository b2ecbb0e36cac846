"""Mining on the synthetic market: the correction removes the null's false discoveries and keeps the planted edge."""

import numpy as np
import pytest

from aster_rl.config import EnvConfig, FeaturesConfig, PatternsConfig, SynthConfig
from aster_rl.features.pipeline import build_features
from aster_rl.patterns.miner import benjamini_hochberg, conditions_for, mine
from aster_rl.sim.prices import PriceArrays
from aster_rl.data.synthetic import synthesize

COLUMNS = (
    "market_volume_ratio",
    "orderflow_taker_buy_ratio",
    "indicators_rsi_14",
    "market_return_12",
    "whales_skew_sum_12",
    "multi_timeframe_alignment",
    "regime_state",
)


def mine_synthetic(edge: str, days: int = 60, columns=COLUMNS, profiles=("scalp", "swing")):
    market = synthesize(SynthConfig(n_bars=288 * days, edge=edge))
    features = build_features(market, FeaturesConfig())
    prices = PriceArrays.from_market(market)
    return mine(features.frame(), prices, PatternsConfig(), EnvConfig(), columns=columns, first_bar=features.warmup, profiles=profiles)


def is_planted_like(pattern) -> bool:
    """Conditions on the flow's direction (taker-buy ratio) matching the side, or a volume spike with it."""
    for c in pattern.conditions:
        if c.column == "orderflow_taker_buy_ratio":
            if pattern.side == "long" and c.op == ">=" and c.threshold >= 0.55:
                return True
            if pattern.side == "short" and c.op == "<=" and c.threshold <= 0.45:
                return True
    return False


def test_null_market_corrected_finds_nothing_naive_finds_many():
    result = mine_synthetic("null")
    print(f"\nnull market: {result.evaluated} candidates, naive {len(result.naive)}, corrected {len(result.corrected)}")
    assert result.evaluated > 1000
    assert len(result.naive) >= 10  # uncorrected p < 0.05 over thousands of candidates: false discoveries
    assert len(result.corrected) == 0


def test_planted_market_finds_the_planted_condition_among_the_top():
    result = mine_synthetic("planted")
    top = result.corrected[:10]
    print(f"\nplanted market: {result.evaluated} candidates, naive {len(result.naive)}, corrected {len(result.corrected)}")
    for m in top:
        print(f"  {m.name}  trades {m.stats.trades}  win {m.stats.win_rate:.0%}  p {m.p_value:.2g}")
    assert len(result.corrected) > 0
    assert any(is_planted_like(m.pattern) for m in top)
    # every kept pattern has enough trades and a positive expectancy after costs
    assert all(m.stats.trades >= 30 and m.stats.expectancy > 0 for m in result.corrected)


def test_benjamini_hochberg_by_hand():
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    reject, cutoff = benjamini_hochberg(p, 0.05)
    # k*q/m = 0.005, 0.01, 0.015, ...: only the first two pass
    assert reject.tolist() == [True, True] + [False] * 8 and cutoff == 0.008
    assert not benjamini_hochberg([0.5, 0.9], 0.1)[0].any()


def test_conditions_from_training_quantiles():
    v = np.arange(1000, dtype=float)
    conds = conditions_for(v, "x", min_support=30)
    assert {c.op for c in conds} == {">=", "<="}
    assert all(int(c.mask(v).sum()) >= 30 for c in conds)
    cats = conditions_for(np.array([0, 1, 2, 3] * 50, dtype=float), "regime_state", min_support=30)
    assert [c.op for c in cats] == ["=="] * 4


@pytest.mark.slow
def test_one_year_null_and_planted_counts():
    for edge in ("null", "planted"):
        r = mine_synthetic(edge, days=365, columns=None, profiles=None)
        print(f"\n{edge}: {r.evaluated} candidates in {r.seconds:.1f} s; naive {len(r.naive)}, corrected {len(r.corrected)}")
        if edge == "null":
            assert len(r.corrected) <= max(1, int(0.1 * len(r.naive)))  # at most what the FDR allows
        if edge == "planted":
            ranks = [i for i, m in enumerate(r.corrected) if is_planted_like(m.pattern)]
            print(f"planted-like patterns among the corrected: {len(ranks)}, best rank {ranks[0] + 1 if ranks else None}")
            assert ranks
