"""The judge: benchmarks that mean what they say, and a verdict about excess, not level."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from agents.baselines import BUY, SELL, WAIT, buy_and_hold, leverage_index
from agents.evaluate import evaluate_policy, run_backtest, traded_notional
from agents.splits import Span, Splits
from aster_rl.sim.backtest import backtest
from aster_rl.config import AppConfig, EnvConfig, replace
from aster_rl.sim.prices import PriceArrays

CFG = EnvConfig()


class Market:
    """The few dataset attributes the evaluation reads: features, prices, column names."""

    def __init__(self, close: np.ndarray, features: np.ndarray | None = None, seed: int = 0):
        rng = np.random.default_rng(seed)
        n = len(close)
        open_ = np.concatenate(([close[0]], close[:-1]))
        high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n)))
        low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n)))
        self.prices = PriceArrays.from_arrays(open_, high, low, close, np.full(n, 5e7))
        self.matrix = (features if features is not None else rng.normal(size=(n, 3))).astype(np.float32)
        self.columns = [f"f{i}" for i in range(self.matrix.shape[1])]

    def column(self, name):
        return None

    def __len__(self):
        return len(self.prices)


def walk(n: int, drift: float, sd: float = 0.004, seed: int = 0) -> np.ndarray:
    return 1.0 * np.exp(np.cumsum(np.random.default_rng(seed).normal(drift, sd, n)))


def judge_splits(n: int, start: int = 100) -> Splits:
    return Splits(train=Span(0, 10), validation=Span(20, 30), test=Span(start, n), purge=0, warmup=0)


EVAL = {"bootstrap_samples": 300, "bootstrap_block": 48, "random_seeds": 2, "cost_multipliers": (0.0, 1.0)}


def config(**env) -> AppConfig:
    return replace(AppConfig(), env={"episode_length": 10_000, **env}, eval=EVAL)


def always(side: int, leverage: float, cfg: EnvConfig = CFG):
    act = np.array([side, leverage_index(cfg, leverage), 2], dtype=np.int64)
    return lambda obs: act


def market_move_and_cost_bound(prices: PriceArrays, span: Span, cfg: EnvConfig) -> tuple[float, float]:
    """The market's move from the first fill (next bar's open) to the last close, and what costs may take."""
    first = span.start + int(np.flatnonzero(prices.atr[span.start:span.end] > 0)[0])
    move = prices.close[span.end - 1] / prices.open[first + 1] - 1
    per_side = cfg.taker_fee_rate + cfg.slippage_bps / 1e4 + 0.01  # the impact term is tiny at these volumes
    return float(move), 2 * per_side * (1 + abs(move))


@pytest.mark.parametrize("drift", [0.0008, -0.0008])
def test_buy_and_hold_is_the_markets_own_move_within_costs(drift):
    m = Market(walk(3_000, drift, seed=1))
    bh = buy_and_hold(CFG)
    res = backtest(bh.policy, m.matrix, m.prices, bh.env, start=50)
    move, _ = market_move_and_cost_bound(m.prices, Span(50, len(m)), CFG)
    got = res.equity.iloc[-1] / res.equity.iloc[0] - 1
    assert len(res.trades) == 1 and res.trades["reason"].iloc[0] == "end"
    costs = (res.fees_usd + res.slippage_usd) / CFG.initial_equity_usd
    assert abs(got - move) < 3 * costs + 1e-4  # one entry and one exit, nothing else
    assert got < move  # costs are paid
    net, gross = res.exposure()
    assert net == pytest.approx(1.0, abs=0.01) and gross == pytest.approx(net)


def read_candles(path) -> PriceArrays:
    df = pd.read_csv(path)
    return PriceArrays.from_arrays(df["open"], df["high"], df["low"], df["close"], df["volume"],
                                   timestamps=df["timestamp"].to_numpy(np.int64) * 1_000_000)  # ms -> ns


def test_buy_and_hold_on_real_aster_candles_is_the_markets_move(real_data):
    prices = read_candles(real_data / "ASTERUSDT_5m.csv")
    features = np.zeros((len(prices), 1), dtype=np.float32)
    index = pd.to_datetime(prices.timestamps, utc=True)
    bh = buy_and_hold(CFG)
    spans = {"all": Span(0, len(prices)),
             "2025-10-15..2025-11-15": Span(int(index.searchsorted(pd.Timestamp("2025-10-15", tz="UTC"))),
                                           int(index.searchsorted(pd.Timestamp("2025-11-15", tz="UTC"))))}
    for name, span in spans.items():
        res = backtest(bh.policy, features, prices, bh.env, start=span.start, end=span.end)
        got = res.equity.iloc[-1] / res.equity.iloc[0] - 1
        move, bound = market_move_and_cost_bound(prices, span, CFG)
        print(f"\nASTER 5m {name}: market {move:+.2%}, buy_and_hold {got:+.2%}, fees {res.fees_usd:.2f} USD, "
              f"slippage {res.slippage_usd:.2f} USD")
        assert len(res.trades) == 1 and res.liquidations == 0
        assert move - bound <= got <= move


def test_always_long_10x_on_a_rising_market_is_no_edge():
    # margin fraction 0.1 x 10x = all equity long, re-entered after every stop or target: market direction, not skill
    n = 6_000
    m = Market(walk(n, 0.0004, seed=2))
    cfg = config()
    report = evaluate_policy(always(BUY, 10), m, cfg, judge_splits(n))
    agent = report.agent
    assert agent.ci_return.low > 0  # the level is high: a return CI would have called it an edge
    bh, em = report.baselines["buy_and_hold"], report.baselines["exposure_matched"]
    assert bh.metrics["net_return"] > 0.5
    assert em.metrics["net_exposure"] == pytest.approx(agent.metrics["net_exposure"], rel=0.05)
    assert not report.flags["edge"], report.verdict
    assert "no evidence of an edge" in report.verdict
    assert "evidence of an edge" not in report.verdict.replace("no evidence of an edge", "")
    table = report.table()
    for text in ("buy_and_hold", "exposure_matched", "excess over exposure_matched", "excess over flat", "DSR",
                 "deflated Sharpe"):
        assert text in table, text


def test_a_policy_with_real_foresight_gets_an_edge():
    # feature 0 is the sign of the next bar's return (foresight planted for this test): a real edge, at modest exposure
    n = 4_000
    close = walk(n, 0.0, sd=0.006, seed=3)
    nxt = np.sign(np.concatenate((np.log(close[1:] / close[:-1]), [0.0])))
    # the fill is at the next bar's open = this bar's close, so the next bar's return is what a position earns
    m = Market(close, np.column_stack([nxt, np.zeros(n)]))
    cfg = config()

    def oracle(obs):
        return np.array([BUY if obs[0] > 0 else SELL, leverage_index(CFG, 1), 2])

    report = evaluate_policy(oracle, m, cfg, judge_splits(n))
    assert report.flags["edge"], report.verdict
    assert "both intervals lie above 0: evidence of an edge" in report.verdict


def test_random_baseline_matches_traded_notional_and_the_real_leverage_mix():
    n = 3_000
    m = Market(walk(n, 0.0, seed=4))
    rng = np.random.default_rng(0)

    def trader(obs):
        if rng.random() < 0.03:
            return np.array([BUY if rng.random() < 0.5 else SELL, leverage_index(CFG, 5), 1])
        return np.array([WAIT, 0, 0])

    report = evaluate_policy(trader, m, config(), judge_splits(n))
    rnd = report.baselines["random"]
    agent_notional = traded_notional(report.agent.trades)
    assert rnd.extra["agent_traded_notional_usd"] == pytest.approx(agent_notional)
    assert rnd.extra["traded_notional_usd"] == pytest.approx(agent_notional, rel=0.35)
    assert set(rnd.trades["leverage"].round()) == {5.0}


def test_zero_cost_sweep_charges_no_liquidation_fee():
    n = 3_000
    m = Market(walk(n, -0.0015, sd=0.006, seed=5))
    report = evaluate_policy(always(BUY, 50), m, config(), judge_splits(n))
    assert report.agent.metrics["liquidations"] > 0
    free = report.cost_sweep["x0"]["agent"]
    assert free["fees_usd"] == 0.0 and free["slippage_usd"] == 0.0


def test_returns_start_at_the_first_bar_without_a_repeated_start():
    n = 1_000
    m = Market(walk(n, 0.001, seed=6))
    bh = buy_and_hold(CFG)
    res = run_backtest(bh.policy, m, bh.env, Span(100, n))
    report = evaluate_policy(always(BUY, 1), m, config(), judge_splits(n))
    bh_out = report.baselines["buy_and_hold"]
    assert len(bh_out.returns) == len(res.equity) - 1
    assert bh_out.returns[0] == pytest.approx(res.equity.iloc[1] / res.equity.iloc[0] - 1)
    assert bh_out.returns[0] != 0.0  # the first bar holds the first fill's move
    assert bh_out.metrics["bars"] == len(res.equity)
    assert math.isnan(report.agent.metrics["calmar"])  # 900 bars (~3 days): no annualized ratio


def test_backtest_cli_buy_and_hold_returns_the_printed_market_move(tmp_path, capsys):
    import json

    from aster_rl.cli import main

    args = ["--set", f"data.data_dir={tmp_path}", "--set", "synth.n_bars=2000"]
    assert main([*args, "backtest", "--policy", "buy_and_hold", "--out", str(tmp_path / "bt")]) == 0
    out = capsys.readouterr().out
    market = float(next(line for line in out.splitlines() if "market move" in line).split()[2].rstrip("%")) / 100
    metrics = json.loads((tmp_path / "bt" / "metrics.json").read_text())
    costs = (metrics["fees_usd"] + metrics["slippage_usd"] + abs(metrics["funding_usd"])) / metrics["start_equity_usd"]
    assert metrics["trades"] == 1 and metrics["net_exposure"] == pytest.approx(1.0, abs=0.02)
    assert abs(metrics["net_return"] - market) <= 1.5 * costs + 1e-5
