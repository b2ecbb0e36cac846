import math
from statistics import NormalDist

import numpy as np
import pytest

from aster_rl.evaluation import metrics as m


def test_bar_returns_and_total_return_by_hand():
    eq = [100.0, 110.0, 99.0, 108.9]
    np.testing.assert_allclose(m.bar_returns(eq), [0.10, -0.10, 0.10])
    assert m.total_return(eq) == pytest.approx(0.089)
    assert m.compound(np.array([0.10, -0.10, 0.10])) == pytest.approx(0.089)


def test_sharpe_and_sortino_by_hand():
    r = np.array([0.01, -0.02, 0.03, 0.0])
    mean = 0.005
    sd = math.sqrt(((0.005) ** 2 + 0.025**2 + 0.025**2 + 0.005**2) / 3)
    assert m.sharpe(r, 4) == pytest.approx(mean / sd * 2)
    downside = math.sqrt(0.02**2 / 4)  # 0.01
    assert m.sortino(r, 4) == pytest.approx(mean / downside * 2)
    assert m.sortino(r, 4) == pytest.approx(1.0)


def test_flat_curve_has_zero_sharpe_not_infinite():
    assert m.sharpe(np.zeros(10), 105_120) == 0.0
    assert m.sortino(np.full(10, 0.001), 105_120) == 0.0  # no downside: reported 0, not inf


def test_max_drawdown_and_calmar_by_hand():
    eq = [100, 120, 90, 130, 104]
    # peak 120 -> 90 is 25%; peak 130 -> 104 is 20%
    assert m.max_drawdown(eq) == pytest.approx(0.25)
    np.testing.assert_allclose(m.drawdown(eq), [0, 0, 0.25, 0, 0.2])
    # total 4% over 4 bars with 4 bars a year -> annualized 4%; calmar = 0.04 / 0.25
    assert m.calmar(0.04, 0.25, 4, 4) == pytest.approx(0.16)
    assert m.calmar(0.04, 0.0, 4, 4) == 0.0


def test_calmar_is_not_annualized_from_a_short_period():
    # 3 days of 5m bars up 10% with a 1% drawdown would annualize to ~1e5 (and Calmar 1e7): reported n/a
    assert math.isnan(m.calmar(0.10, 0.01, 3 * 288, 105_120))
    assert math.isfinite(m.calmar(0.10, 0.01, 30 * 288, 105_120))
    s = m.summarize(np.linspace(100, 110, 3 * 288), periods=105_120)
    assert math.isnan(s["calmar"])


def test_trade_stats_by_hand():
    ts = m.trade_stats([10.0, -5.0, 20.0, -5.0, 0.0])
    assert ts.n_trades == 5
    assert ts.win_rate == pytest.approx(0.4)
    assert ts.profit_factor == pytest.approx(30 / 10)
    assert ts.expectancy == pytest.approx(4.0)
    assert ts.avg_win == pytest.approx(15.0) and ts.avg_loss == pytest.approx(-5.0)
    assert m.trade_stats([1.0, 2.0]).profit_factor == math.inf
    assert m.trade_stats([-1.0]).profit_factor == 0.0
    assert m.trade_stats([]).n_trades == 0


def test_periods_per_year_for_5m_bars():
    assert m.periods_per_year(300) == pytest.approx(105_120)
    with pytest.raises(ValueError):
        m.periods_per_year(0)


def test_stationary_bootstrap_indices_are_blocky_and_in_range():
    rng = np.random.default_rng(0)
    idx = m.stationary_bootstrap_indices(100, 10, 50, rng)
    assert idx.shape == (50, 100)
    assert idx.min() >= 0 and idx.max() < 100
    continues = (np.diff(idx, axis=1) % 100 == 1).mean()
    assert 0.85 < continues < 0.95  # p(continue) = 1 - 1/10


def test_return_ci_excludes_zero_for_a_strong_drift():
    rng = np.random.default_rng(1)
    strong = rng.normal(0.002, 0.01, 3_000)
    ci = m.return_ci(strong, samples=300, block=20, seed=0)
    assert ci.low > 0
    assert ci.low <= ci.estimate <= ci.high


def test_return_ci_covers_the_true_growth_at_about_its_level():
    # iid returns with a small drift: the true median growth is exp(n * E[log(1 + r)]) - 1; a 90% interval
    # must cover it in roughly 90% of independent samples (not merely when the sample is demeaned)
    rng = np.random.default_rng(7)
    mu, sd, n, reps = 0.0005, 0.01, 400, 300
    truth = math.expm1(n * (math.log1p(mu) - sd**2 / 2))
    covered = [m.return_ci(rng.normal(mu, sd, n), samples=300, block=1, confidence=0.9, seed=i).contains(truth)
               for i in range(reps)]
    assert 0.83 <= np.mean(covered) <= 0.96


def test_sharpe_ci_point_matches_sharpe():
    r = np.random.default_rng(2).normal(0.001, 0.01, 500)
    ci = m.sharpe_ci(r, 105_120, samples=200, block=10, seed=0)
    assert ci.estimate == pytest.approx(m.sharpe(r, 105_120))
    assert ci.low < ci.estimate < ci.high


def test_bootstrap_is_seeded():
    r = np.random.default_rng(3).normal(0, 0.01, 400)
    a = m.return_ci(r, samples=100, block=10, seed=5)
    b = m.return_ci(r, samples=100, block=10, seed=5)
    assert a == b


def test_student_t_quantiles_match_the_tables():
    for df, q in ((1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (7, 2.3646), (30, 2.0423)):
        assert m.student_t_ppf(0.975, df) == pytest.approx(q, abs=1e-4)
    assert m.student_t_cdf(0.0, 5) == pytest.approx(0.5)
    assert m.student_t_ppf(0.025, 3) == pytest.approx(-3.1824, abs=1e-4)


def test_t_interval_by_hand():
    ci = m.t_interval([1.0, 2.0, 3.0], confidence=0.95)
    assert ci.estimate == pytest.approx(2.0)
    assert ci.high - 2.0 == pytest.approx(4.3027 * 1.0 / math.sqrt(3), abs=1e-3)
    one = m.t_interval([5.0])
    assert one.low == -math.inf and one.high == math.inf


def test_excess_ci_pairs_the_bars():
    # the agent is the market plus a small steady excess: paired, the market's noise cancels and the excess shows
    rng = np.random.default_rng(8)
    market = rng.normal(0.0, 0.01, 2_000)
    agent = (1 + market) * (1 + 0.0002) - 1
    ci = m.excess_ci(agent, market, samples=300, block=20, seed=0)
    assert ci.estimate == pytest.approx(math.expm1(2_000 * math.log1p(0.0002)))
    assert m.excess_growth(agent, market) == ci.estimate  # the estimate alone, without resampling
    assert ci.low > 0
    # the same excess measured against flat is buried in the market's noise
    assert m.return_ci(agent, samples=300, block=20, seed=0).contains(0.0)
    same = m.excess_ci(market, market, samples=50, block=20, seed=0)
    assert same.low == same.high == 0.0
    with pytest.raises(ValueError):
        m.excess_ci(agent, market[:-1])


def test_information_ratio_by_hand_and_noise_lowers_it():
    agent, bench = np.array([0.02, 0.0, 0.01]), np.array([0.01, 0.0, -0.01])
    d = np.log1p(agent) - np.log1p(bench)
    assert m.information_ratio(agent, bench, 4) == pytest.approx(d.mean() / d.std(ddof=1) * 2)
    assert m.information_ratio(bench, bench, 4) == 0.0  # no variation: 0, never a division by zero
    # the same steady excess with zero-mean exposure added on top: the ratio falls
    rng = np.random.default_rng(3)
    market = rng.normal(0.0, 0.01, 5_000)
    steady = (1 + market) * (1 + rng.normal(0.0005, 0.002, 5_000)) - 1  # a small edge on few bars' worth of risk
    noisy = (1 + steady) * (1 + rng.normal(0.0, 0.01, 5_000)) - 1
    assert m.information_ratio(noisy, market, 288) < m.information_ratio(steady, market, 288) / 3
    with pytest.raises(ValueError):
        m.information_ratio(agent, bench[:-1], 4)


def test_deflated_sharpe_by_hand_and_with_trials():
    rng = np.random.default_rng(9)
    r = rng.normal(0.0005, 0.01, 5_000)
    sr = r.mean() / r.std(ddof=1)
    z = (r - r.mean()) / r.std()
    g3, g4 = np.mean(z**3), np.mean(z**4)
    psr0 = NormalDist().cdf(sr * math.sqrt(4_999) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))
    assert m.probabilistic_sharpe(r) == pytest.approx(psr0)
    assert m.deflated_sharpe(r, 1) == pytest.approx(psr0)
    # expected max Sharpe of N null trials (Bailey & Lopez de Prado 2014), V = 1 / (T - 1)
    v = 1 / 4_999
    emax = math.sqrt(v) * ((1 - 0.5772156649) * NormalDist().inv_cdf(1 - 1 / 100)
                           + 0.5772156649 * NormalDist().inv_cdf(1 - 1 / (100 * math.e)))
    assert m.expected_max_sharpe(100, v) == pytest.approx(emax)
    dsr = [m.deflated_sharpe(r, n) for n in (1, 10, 100, 1_000)]
    assert dsr == sorted(dsr, reverse=True) and dsr[-1] < dsr[0]
    assert math.isnan(m.deflated_sharpe(np.zeros(100), 5))


def test_deflated_sharpe_is_calibrated_on_noise():
    # the best of 20 noise strategies: its PSR(0) is often high, its DSR for 20 trials rarely is
    rng = np.random.default_rng(10)
    best_psr, best_dsr = [], []
    for _ in range(200):
        trials = rng.normal(0.0, 0.01, (20, 500))
        best = trials[np.argmax(trials.mean(axis=1) / trials.std(axis=1, ddof=1))]
        best_psr.append(m.probabilistic_sharpe(best) > 0.95)
        best_dsr.append(m.deflated_sharpe(best, 20) > 0.95)
    assert np.mean(best_psr) > 0.4
    assert np.mean(best_dsr) < 0.1


def test_summarize_collects_everything():
    s = m.summarize([100, 120, 90, 130, 104], [10, -5], periods=4, exposure=0.5, avg_leverage=3, fees_usd=1.5)
    assert s["net_return"] == pytest.approx(0.04)
    assert s["net_pnl_usd"] == pytest.approx(4.0)
    assert s["max_drawdown"] == pytest.approx(0.25)
    assert s["trades"] == 2 and s["win_rate"] == 0.5 and s["profit_factor"] == 2.0
    assert s["exposure"] == 0.5 and s["avg_leverage"] == 3 and s["fees_usd"] == 1.5
    assert s["trials"] == 1 and 0 <= s["deflated_sharpe"] <= 1


def test_block_bootstrap_widens_the_interval_for_dependent_returns():
    # AR(1) returns with phi = 0.9: the sample mean's sd is about sqrt(19) times the iid one,
    # so an interval that ignored the dependence (blocks of 1) would be far too narrow
    rng = np.random.default_rng(4)
    e = rng.normal(0.0, 0.001, 4_000)
    r = np.empty_like(e)
    r[0] = e[0]
    for t in range(1, len(e)):
        r[t] = 0.9 * r[t - 1] + e[t]
    iid = m.return_ci(r, samples=400, block=1, seed=0)
    blocks = m.return_ci(r, samples=400, block=100, seed=0)
    assert (blocks.high - blocks.low) > 2.5 * (iid.high - iid.low)


def test_trade_costs_by_hand():
    from aster_rl.evaluation.metrics import trade_costs

    # long 10 @ 100 (notional 1000): pnl +8 after fees 1.5, funding 0.5, slippage 1 -> costs 3 = 30 bps, gross 11 = 110 bps
    # short 5 @ 200 (notional 1000): pnl -4 after fees 1, funding -0.2, slippage 0.2 -> costs 1 = 10 bps, gross -3 = -30 bps
    out = trade_costs([100.0, 200.0], [10.0, -5.0], [8.0, -4.0], [1.5, 1.0], [0.5, -0.2], [1.0, 0.2])
    assert out["break_even_bps"] == pytest.approx(20.0)
    assert out["captured_bps"] == pytest.approx(40.0)
    assert all(np.isnan(v) for v in trade_costs([], [], [], [], [], []).values())
