"""A small backtester: any policy, bar by bar, through the same accounting core as the env.

The decision rule of ``env.decision_every`` / ``env.min_hold_bars`` (:mod:`aster_rl.sim.decision`)
applies to every action, as in the env.

``policy(obs) -> (side, leverage index, profile index)`` is called once per bar with the
observation the env would give at that bar's close (the env's own code,
``SingleAccount.observation``), and the order fills at the next bar's open. Stepping ``PerpEnv(random_start=False)`` over
the same range gives the same trades and equity (tested). Deterministic.

``net_exposure`` is the signed position notional over equity at each bar's close
(+1: all equity long at 1x; -2: short twice the equity); its mean and the mean of its
absolute value are a policy's net and gross exposure.

For cost sweeps pass a modified config, e.g. ``scale_costs(cfg, 2.0)`` or
``replace(cfg, taker_fee_rate=0.0)`` (:func:`aster_rl.config.replace`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from aster_rl.config import EnvConfig, replace
from aster_rl.errors import ConfigError
from aster_rl.interfaces import Policy
from aster_rl.sim.accounting import TRADE_KEYS, SingleAccount, check_env_inputs
from aster_rl.sim.decision import gate_side, rule_active, target_mode, timeframe_ns
from aster_rl.sim.prices import PriceArrays

logger = logging.getLogger(__name__)


@dataclass
class BacktestResult:
    trades: pd.DataFrame
    equity: pd.Series
    actions: pd.DataFrame
    fees_usd: float
    funding_usd: float
    slippage_usd: float
    liquidations: int
    n_skipped_orders: int
    stats: dict = field(default_factory=dict)
    net_exposure: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))

    def exposure(self) -> tuple[float, float]:
        """Mean signed (net) and mean absolute (gross) notional / equity over the bars after the first."""
        x = self.net_exposure.to_numpy(dtype=float)[1:]
        if not len(x):
            return 0.0, 0.0
        return float(x.mean()), float(np.abs(x).mean())


COST_FIELDS = ("maker_fee_rate", "taker_fee_rate", "slippage_bps", "impact_coef", "spread_mult")


def scale_costs(cfg: EnvConfig, multiplier: float) -> EnvConfig:
    """``cfg`` with fees, half-spread, impact and fixed slippage (:data:`COST_FIELDS`) multiplied by ``multiplier``: the
    one cost scaling of every cost sweep. A liquidation's loss is the margin, not a cost that scales.
    The scaled config is validated: a multiplier that pushes a fee past its bound is a ConfigError."""
    if not (isinstance(multiplier, (int, float)) and np.isfinite(multiplier) and multiplier >= 0):
        raise ConfigError(f"cost multiplier = {multiplier!r}: must be a finite number >= 0")
    return replace(cfg, **{k: getattr(cfg, k) * float(multiplier) for k in COST_FIELDS})


def backtest(
    policy: Policy,
    features: np.ndarray,
    prices: PriceArrays,
    cfg: EnvConfig | None = None,
    *,
    start: int = 0,
    end: int | None = None,
) -> BacktestResult:
    """Run ``policy`` from bar ``start`` (moved to the first bar with a positive ATR) to
    ``end - 1``; open positions are closed at the last close (reason ``"end"``). Stops early,
    like the env, when the account goes bankrupt."""
    cfg = EnvConfig() if cfg is None else cfg
    feats, first, end, _ = check_env_inputs(features, prices, cfg, start, end)
    acc = SingleAccount(cfg, prices)
    book = acc.book
    n_steps = end - 1 - first
    equity = np.full(n_steps + 1, np.nan)
    equity[0] = cfg.initial_equity_usd
    position = np.zeros(n_steps + 1)  # signed quantity at each bar's close
    acts = np.zeros((n_steps, 3), dtype=np.int64)
    trades: list[dict] = []
    gated = rule_active(cfg.decision_every, cfg.min_hold_bars, target_mode(cfg))
    tf_ns = timeframe_ns(prices.timeframe)
    t = first
    done = 0
    for k in range(n_steps):
        a = np.asarray(policy(acc.observation(feats, t))).reshape(-1)
        if a.shape[0] != 3:
            raise ValueError(f"policy returned {a!r}: expected 3 ints (side, leverage index, profile index)")
        if gated:  # the decision rule (aster_rl.sim.decision), as in the env; the actions record what was done
            a = a.astype(np.int64, copy=True)
            a[0] = gate_side(int(a[0]), int(prices.timestamps[t]), tf_ns, cfg.decision_every, cfg.min_hold_bars,
                             int(np.sign(book.side[0])), int(book.entry_time[0]), target_mode(cfg))
        acts[k] = a
        bankrupt = acc.advance(t, int(a[0]), int(a[1]), int(a[2]), k == n_steps - 1)
        t += 1
        equity[k + 1] = book.equity[0]
        position[k + 1] = book.side[0] * book.qty[0]
        done = k + 1
        if book.closed:
            trades.extend(tr for _, tr in book.closed)
        if bankrupt:
            logger.info("backtest: bankrupt at bar %d; stopping", t)
            break
    equity[done + 1 :] = book.equity[0]
    index = pd.to_datetime(prices.timestamps[first:end], utc=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        net = np.where(equity > 0, position * prices.close[first:end] / np.where(equity > 0, equity, 1.0), 0.0)
    trade_df = pd.DataFrame(trades, columns=[*list(TRADE_KEYS), "slippage_usd"])
    for col in ("entry_time", "exit_time"):
        trade_df[col] = pd.to_datetime(trade_df[col].astype("int64"), utc=True)
    return BacktestResult(
        trades=trade_df,
        equity=pd.Series(equity, index=index, name="equity"),
        actions=pd.DataFrame(acts[:done], columns=["side", "leverage", "profile"], index=index[:done]),
        fees_usd=float(book.fees[0]),
        funding_usd=float(book.funding[0]),
        slippage_usd=float(book.slippage[0]),
        liquidations=int(book.liquidations[0]),
        n_skipped_orders=int(book.n_skipped[0]),
        stats=acc.episode_stats(),
        net_exposure=pd.Series(net, index=index, name="net_exposure"),
    )
