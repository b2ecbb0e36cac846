"""The compiled accounting core equals the straightforward numpy one (``accounting_reference``)
on random action sequences: every state field, every closed trade, every observation."""

import numpy as np
import pytest

import accounting_reference as ref
from aster_rl.sim.accounting import R_END, AccountBook, SingleAccount
from aster_rl.config import EnvConfig
from aster_rl.sim.prices import PriceArrays

FIELDS = (
    "cash", "margin", "side", "qty", "entry", "lev", "stop", "target", "liq", "mmr", "mamt", "entry_time", "bars",
    "profile", "entry_equity", "trade_fees", "trade_funding", "trade_slip", "p_kind", "p_profile", "p_lev",
    "p_stop_dist", "p_target_dist", "equity", "upnl", "peak", "fees", "funding", "slippage", "liquidations",
    "n_trades", "n_skipped", "liquidated_now", "turnover_now", "closed_return_now",
)


def market(n=700, seed=0, vol=0.01, jump_p=0.08):
    rng = np.random.default_rng(seed)
    close = 2.0 * np.exp(np.cumsum(rng.normal(0, vol, n)))
    jumps = np.where(rng.random(n) < jump_p, rng.normal(0, 5 * vol, n), 0.0)  # opens past stops and targets
    open_ = np.concatenate(([2.0], close[:-1])) * np.exp(rng.normal(0, vol / 3, n) + jumps)  # gaps
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, vol, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, vol, n)))
    funding = np.zeros(n)
    funding[::8] = rng.normal(0, 5e-4, len(funding[::8]))
    half_spread = np.where(rng.random(n) < 0.5, rng.uniform(0, 5e-4, n), 0.0)  # a book on half the bars
    return PriceArrays.from_arrays(open_, high, low, close, rng.uniform(1e4, 1e6, n), funding_rate=funding,
                                   half_spread=half_spread)


CONFIGS = [
    EnvConfig(),
    EnvConfig(margin_fraction=1.0, slippage_bps=5.0, impact_coef=2.0, spread_mult=3.0, min_notional_usd=50.0),
    EnvConfig(margin_fraction=0.5, taker_fee_rate=0.001, initial_equity_usd=300.0),
]


def assert_same_book(new, old):
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(new, name), getattr(old, name), err_msg=name)
    assert new.dirty == old.dirty
    by_account = lambda closed: sorted(closed, key=lambda it: it[0])  # noqa: E731
    assert by_account(new.closed) == by_account(old.closed)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_book_equals_reference_on_random_actions(cfg):
    prices = market()
    n = 24
    rng = np.random.default_rng(1)
    new, old = AccountBook(cfg, n), ref.AccountBook(cfg, n)
    t = rng.integers(20, 100, n)  # each account at its own bar
    names = list(cfg.exit_profiles.values())
    n_closed = 0
    gap_exits = {"target": 0, "stop": 0}  # exits at a bar's open, the rule most easily got wrong
    for step in range(500):
        side = rng.choice(3, n, p=[0.5, 0.25, 0.25])
        lev = np.asarray(cfg.leverages, dtype=np.float64)[rng.integers(0, len(cfg.leverages), n)]
        prof = rng.integers(0, len(names), n)
        atr = prices.atr[t]
        stop = np.array([names[k].stop_atr for k in prof]) * atr
        target = np.array([names[k].target_atr for k in prof]) * atr
        for book in (new, old):
            book.submit(side, lev, stop, target, prof)
        t = t + 1
        args = (prices.timestamps[t], prices.open[t], prices.high[t], prices.low[t], prices.close[t],
                prices.costs[t], prices.funding_rate[t])
        side_before, stop_before, target_before = old.side.copy(), old.stop.copy(), old.target.copy()
        new.process_bar(*args)
        old.process_bar(*args)
        if step % 37 == 5:  # end some episodes: close at the close, then start them afresh
            idx = np.flatnonzero(rng.random(n) < 0.3)
            for book in (new, old):
                book.close_positions(idx, prices.close[t[idx]], prices.costs[t[idx]], prices.timestamps[t[idx]], R_END)
            assert_same_book(new, old)
            new.reset(idx)
            old.reset(idx)
        n_closed += len(old.closed)
        for i, tr in old.closed:
            o, exit_level = prices.open[t[i]], {"target": target_before[i], "stop": stop_before[i]}.get(tr["reason"])
            if exit_level is not None and side_before[i] != 0:
                sign = side_before[i] if tr["reason"] == "target" else -side_before[i]
                gap_exits[tr["reason"]] += bool(sign * (o - exit_level) >= 0)
        assert_same_book(new, old)
        t = np.where(t >= len(prices) - 2, rng.integers(20, 100, n), t)
    assert n_closed > 300
    if cfg.margin_fraction < 1:  # (with all the equity as margin, liquidation mostly comes first)
        assert min(gap_exits.values()) > 10, gap_exits
    assert old.liquidations.sum() > 0 and old.n_skipped.sum() >= 0


@pytest.mark.parametrize("cfg", CONFIGS)
def test_single_account_equals_reference(cfg):
    prices = market(seed=2)
    features = np.random.default_rng(3).normal(size=(len(prices), 4)).astype(np.float32)
    rng = np.random.default_rng(4)
    new, old = SingleAccount(cfg, prices), ref.SingleAccount(cfg, prices)
    t, k, trades = 20, 0, 0
    while t < len(prices) - 2:
        np.testing.assert_array_equal(new.observation(features, t), old.observation(features, t))
        side, lev_i, prof_i = int(rng.choice(3, p=[0.4, 0.3, 0.3])), int(rng.integers(len(cfg.leverages))), int(
            rng.integers(len(cfg.exit_profiles)))
        last = k % 50 == 49
        assert new.advance(t, side, lev_i, prof_i, last) == old.advance(t, side, lev_i, prof_i, last)
        t += 1
        k += 1
        assert_same_book(new.book, old.book)
        assert (new.steps, new.in_market, new.quiet) == (old.steps, old.in_market, old.quiet)
        assert new.max_drawdown == old.max_drawdown and new.prev_equity == old.prev_equity
        trades += len(old.book.closed)
        if last or old.book.equity[0] < old._bankrupt:
            assert new.episode_stats() == old.episode_stats()
            new.reset()
            old.reset()
    assert trades > 50


@pytest.mark.parametrize("reward", ["log_equity", "trade_outcome"])
def test_env_rewards_equal_reference(reward):
    """Each PerpEnv step's reward (from the step kernel) is the reference formula of the step's
    equity, peak, closed return, turnover and liquidation."""
    from envs import PerpEnv

    prices = market(seed=7)
    features = np.random.default_rng(8).normal(size=(len(prices), 3)).astype(np.float32)
    cfg = EnvConfig(reward=reward, episode_length=150, drawdown_penalty=0.3, turnover_penalty=0.01,
                    liquidation_penalty=2.0, exposure_penalty=0.002, margin_fraction=0.5)
    env = PerpEnv(features, prices, cfg)
    env.reset(seed=0)
    env.action_space.seed(0)
    b = env.book
    penalized = {"closed": 0, "liquidated": 0, "turnover": 0, "exposure": 0}
    for _ in range(600):
        _, r, te, tr, _ = env.step(env.action_space.sample())
        held = b.side != 0
        exposure = np.where(held, b.qty * prices.close[b.t_bar] / np.maximum(b.equity, 1e-12), 0.0)
        want = ref.step_rewards(cfg, b.prev_equity, b.equity, b.peak, b.closed_return_now, b.turnover_now,
                                b.liquidated_now, exposure)
        np.testing.assert_allclose(r, want[0], rtol=1e-12, atol=1e-15)
        penalized["exposure"] += bool(held[0])
        penalized["closed"] += bool(b.closed_return_now[0])
        penalized["liquidated"] += bool(b.liquidated_now[0])
        penalized["turnover"] += bool(b.turnover_now[0])
        if te or tr:
            env.reset()
    assert min(penalized.values()) > 0, penalized


def test_account_state_equals_reference():
    from aster_rl.sim.observation import account_state

    rng = np.random.default_rng(6)
    n = 1000
    side = rng.choice([-1.0, 0.0, 1.0], n)
    args = (side, rng.choice([0.0, 5.0, 20.0], n), 50, rng.normal(0, 50, n), rng.uniform(0, 1e3, n) * (side != 0),
            rng.integers(0, 3000, n), rng.uniform(1, 3, n), rng.uniform(-1, 3, n), rng.uniform(1, 2e4, n), 1e4)
    np.testing.assert_allclose(account_state(*args), ref.account_state(*args), rtol=1e-6, atol=1e-7)
