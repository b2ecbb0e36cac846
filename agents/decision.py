"""The policy's decision for one bar, for the master-brain report and the live runner's log.

The observation is the bar's feature row plus the account state of a flat account (the
report asks "what would the policy do now, with no position"). Entry is the bar's close
(the order fills at the next open); stop and target are the chosen exit profile's ATR
multiples around it. Confidence is the policy's probability of the chosen action.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from aster_rl.observation import account_state, build_observation
from aster_rl.prices import PriceArrays

from agents.policy import load_policy

logger = logging.getLogger(__name__)

SIDES = ("WAIT", "BUY", "SELL")
REASONING_TENTACLES = ("regime", "orderflow", "multi_timeframe", "strategy", "btc_cycle", "market")


def flat_observation(features_row: np.ndarray, price: float, cfg) -> np.ndarray:
    eq = np.array([cfg.initial_equity_usd])
    state = account_state([0], [0.0], cfg.max_leverage, [0.0], [0.0], [0], [price], [0.0], eq, eq)[0]
    return build_observation(np.asarray(features_row, dtype=np.float32), state)


def brain_decision(run_dir: str | Path, market: Any, features: Any, row_position: int = -1,
                   trust_run: bool = False) -> dict[str, Any]:
    """The run's policy decision at ``row_position`` of ``features`` (schema checked on load)."""
    policy = load_policy(run_dir, schema=features.schema, trust_run=trust_run)
    cfg = policy.config.env
    prices = PriceArrays.from_market(market)
    row = row_position % len(prices)
    price = float(prices.close[row])
    d = policy.decide(flat_observation(features.matrix[row], price, cfg))
    side = SIDES[int(d.action[0])]
    leverage = float(cfg.leverages[int(d.action[1])])
    profile_name = list(cfg.exit_profiles)[int(d.action[2])]
    profile = cfg.exit_profiles[profile_name]
    atr = float(prices.atr[row])
    stop = target = None
    if side == "BUY":
        stop, target = price - profile.stop_atr * atr, price + profile.target_atr * atr
    elif side == "SELL":
        stop, target = price + profile.stop_atr * atr, price - profile.target_atr * atr
    readings = features.readings(row)
    reasons = [readings[t] for t in REASONING_TENTACLES if t in readings]
    reasoning = f"policy {Path(policy.run_dir).name}: {side} with p={d.confidence:.2f}; " + "; ".join(reasons[:4])
    return {
        "side": side,
        "leverage": leverage if side != "WAIT" else 0.0,
        "profile": profile_name,
        "entry": price if side != "WAIT" else None,
        "stop": stop,
        "target": target,
        "confidence": d.confidence,
        "value": d.value,
        "reasoning": reasoning,
    }
