"""The policy's decision for one bar, for the master-brain report and the live runner's log.

The observation is the bar's feature row plus the account state of a flat account (the
report asks "what would the policy do now, with no position"). Entry is the bar's close
(the order fills at the next open); stop and target are the chosen exit profile's ATR
multiples around it. Confidence is P(side), the side head's probability of the chosen
side; the leverage and profile heads' probabilities and the policy's entropy come beside it.
The support check says whether the bar's inputs lie inside the policy's training ranges,
and on what share of the bars since the training split ended they did not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aster_rl.config import EnvConfig
from aster_rl.sim.observation import account_state, build_observation
from aster_rl.sim.prices import PriceArrays
from aster_rl.evaluation.support import support_of

from agents.policy import load_policy
from agents.run_dir import RunDir

logger = logging.getLogger(__name__)

SIDES = ("WAIT", "BUY", "SELL")
REASONING_TENTACLES = ("regime", "orderflow", "multi_timeframe", "strategy", "btc_cycle", "market")


def flat_observation(features_row: np.ndarray, price: float, cfg: EnvConfig) -> np.ndarray:
    eq = np.array([cfg.initial_equity_usd])
    state = account_state([0], [0.0], cfg.max_leverage, [0.0], [0.0], [0], [price], [0.0], eq, eq)[0]
    return build_observation(np.asarray(features_row, dtype=np.float32), state)


def brain_decision(run_dir: str | Path | Sequence[str | Path], market: Any, features: Any, row_position: int = -1,
                   trust_run: bool = False) -> dict[str, Any]:
    """The run's policy decision at ``row_position`` of ``features`` (schema checked on load); with several
    runs, their seed ensemble's (:func:`agents.ensemble.load_ensemble`: WAIT, saying so, when they disagree)."""
    if isinstance(run_dir, (str, Path)):
        policy: Any = load_policy(run_dir, schema=features.schema, trust_run=trust_run)
        run_name = policy.run_dir.name if policy.run_dir is not None else Path(run_dir).name
    else:
        from agents.ensemble import load_ensemble

        policy = load_ensemble(list(run_dir), schema=features.schema, trust_run=trust_run)
        run_name = f"ensemble of {len(policy.members)} ({', '.join(Path(m.run_dir).name for m in policy.members)})"
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
    said = f"{side} with P(side)={d.confidence:.2f}" if d.confidence is not None else side
    reasoning = f"policy {run_name}: {said}; " + "; ".join(x for x in (d.reason, *reasons[:4]) if x)
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
        "side_probabilities": tuple(float(p) for p in d.probabilities[0]),
        "leverage_probability": d.leverage_probability,
        "profile_probability": d.profile_probability,
        "entropy": d.entropy,
        "support": support_summary(policy, features, row),
    }


def training_end(run_dir: str | Path) -> pd.Timestamp | None:
    """Open time of the run's last training bar (from ``splits.json``), when known."""
    path = RunDir(run_dir).splits
    try:
        last = json.loads(path.read_text())["train"]["last_bar"]
    except (OSError, KeyError, TypeError, ValueError):
        return None
    ts = pd.Timestamp(last)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def support_summary(policy: Any, features: Any, row: int) -> dict[str, Any] | None:
    """The support check for the brain report: the bar's columns outside the training range, and
    the share of bars out of support from the end of the training split up to this bar."""
    support = support_of(policy)
    if support is None:
        return None
    end = training_end(policy.run_dir) if policy.run_dir is not None else None
    first = int(features.index.searchsorted(end, side="right")) if end is not None else row
    first = min(max(first, features.warmup), row)
    rep = support.report(features.matrix[first : row + 1])
    return {"bar_outside": support.outside_columns(features.matrix[row]), **rep.to_dict(),
            "since": features.index[first].isoformat()}
