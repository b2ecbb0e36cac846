"""Parity of a live session with the backtester: the same run on the same stored bars.

For a session's stored decisions (the prediction rows), the run that made them is loaded
(:func:`agents.policy.load_policy`), the features are built from the stored market up to the
last decision's bar (as ``aster-rl backtest`` and a replay do), and the backtester
(:func:`aster_rl.sim.backtest.backtest`) decides on the same bars from the first stored
decision on. Compared per bar: the executed (side, leverage, profile) of the prediction row
against the backtester's action; a divergent row that carries a risk event (the guard refused
or capped it) is counted apart and the first divergence shows its event. A decision the risk guard refused, a restart, or any
difference in the features or the account makes the two paths diverge from that bar on, so
the first divergent bar is the figure to look at.

Feature drift: per tentacle, the share of the compared bars whose features lie outside the
run's training ranges (``support.json``, :class:`aster_rl.evaluation.support.ObservationSupport`)
in any of the tentacle's kept columns; the features are the rebuilt ones, those the backtester
saw (the stored observations of a replay with batch features are the same rows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aster_rl.config import AppConfig, replace
from aster_rl.data.timeframes import timeframe_to_timedelta
from aster_rl.errors import DataError
from aster_rl.features.brain import SIDE_NAMES
from aster_rl.features.pipeline import build_features
from aster_rl.sim.backtest import backtest
from aster_rl.sim.prices import PriceArrays
from aster_rl.storage import Database, live_store, load_market

from agents.data import fill_warmup
from agents.policy import LoadedPolicy, load_policy
from agents.run_dir import RunDir, Which


def _which(model_version: Any) -> Which:
    """The weights a prediction names (``<run>/<file>@<digest>``): the last ones or the best."""
    return "last" if "_last" in str(model_version or "") else "best"


def _action_text(action: tuple[int, int, int], policy: LoadedPolicy) -> str:
    env = policy.config.env
    side, lev, prof = action
    return f"{SIDE_NAMES[side]} {env.leverages[lev]}x {list(env.exit_profiles)[prof]}"


def compare(policy: LoadedPolicy, market: Any, preds: pd.DataFrame, bar_ms: int) -> dict[str, Any]:
    """The backtester's decisions against the stored ones (``preds``: ts = bar close ms, side, leverage, profile)."""
    env = policy.config.env
    index = market.candles.index
    opened = pd.to_datetime(preds["ts"].astype("int64") - bar_ms, unit="ms", utc=True)
    pos = index.get_indexer(opened)
    found = pos >= 0
    if not found.any():
        raise DataError("none of the session's decision bars is among the stored candles")
    start, end = int(pos[found].min()), min(int(pos[found].max()) + 2, len(index))
    features = fill_warmup(build_features(market, policy.config.features))
    if start < features.warmup:
        raise DataError(f"the session's first decision (bar {index[start]}) lies inside the features' warm-up")
    res = backtest(policy.predict, features.matrix, PriceArrays.from_market(market), env, start=start, end=end)
    ref = {t: (int(a[0]), int(a[1]), int(a[2])) for t, a in zip(res.actions.index, res.actions.to_numpy())}
    side_of = {name: i for i, name in enumerate(SIDE_NAMES)}
    lev_of = {int(lev): i for i, lev in enumerate(env.leverages)}
    prof_of = {name: i for i, name in enumerate(env.exit_profiles)}
    compared, divergent, guarded, first = 0, 0, 0, None
    risks = preds["risk"] if "risk" in preds else pd.Series([None] * len(preds))
    for ts, when, side, lev, prof, risk in zip(preds["ts"], opened, preds["side"], preds["leverage"], preds["profile"], risks):
        theirs = ref.get(when)
        if theirs is None:
            continue
        compared += 1
        live = (side_of.get(str(side), -1), lev_of.get(int(lev), -1), prof_of.get(str(prof), -1))
        if live != theirs:
            divergent += 1
            risk = risk if isinstance(risk, str) and risk else None
            guarded += risk is not None
            if first is None:
                shown = _action_text(live, policy) if min(live) >= 0 else f"{side} {lev}x {prof}"
                first = {"ts": int(ts), "bar_open": when.isoformat(), "live": shown, "backtest": _action_text(theirs, policy),
                         "risk": risk}
    rows = features.matrix[pos[found][np.isin(index[pos[found]], res.actions.index)]]
    return {
        "bars_compared": compared,
        "divergent": divergent,
        "divergent_share": divergent / compared if compared else None,
        "divergent_by_guard": guarded,  # divergent rows where the risk guard refused or capped the decision
        "first_divergence": first,
        "not_compared": int(len(preds) - compared),
        "drift": drift(policy, rows),
    }


def drift(policy: LoadedPolicy, rows: np.ndarray) -> dict[str, Any] | None:
    """Share of ``rows`` (full feature rows) outside the training ranges: any kept column, and per tentacle."""
    if policy.support is None or not len(rows):
        return None
    outside = np.asarray(policy.support.outside(rows), dtype=bool)  # bars × kept columns
    per = {t: float(outside[:, idx].any(axis=1).mean()) for t, idx in policy.tentacle_positions().items() if idx}
    return {"bars": int(len(rows)), "outside_share": float(outside.any(axis=1).mean()),
            "tentacles": dict(sorted(per.items(), key=lambda kv: -kv[1]))}


def session_parity(config: AppConfig, db: Database, session_id: str, *, wait_outside_support: bool | None = None) -> dict[str, Any]:
    """:func:`compare` for a stored session: its run (under ``train.checkpoint_dir``) and its market from ``db``."""
    preds = live_store.predictions(db, session_id=session_id)
    if preds.empty:
        raise DataError(f"session {session_id!r} has no stored decisions")
    state = live_store.load_state(db, session_id) or {}
    run = str(state.get("run_id") or preds["run_id"].iloc[-1])
    run_dir = Path(config.train.checkpoint_dir) / run
    if not RunDir(run_dir).has_model():
        raise DataError(f"session {session_id!r}: its run {run!r} is not under {config.train.checkpoint_dir}/")
    which = _which(preds["model_version"].iloc[-1])
    policy = load_policy(run_dir, which=which, wait_outside_support=wait_outside_support)
    mode = state.get("mode") or preds["mode"].iloc[-1]
    data = config.data if mode == "replay" else replace(config.data, source=config.data.exchange_id)
    bar_ms = int(timeframe_to_timedelta(data.timeframe).total_seconds() * 1000)
    last_open = int(preds["ts"].max()) - bar_ms
    market = load_market(db, data, end=pd.Timestamp(last_open + bar_ms, unit="ms", tz="UTC"))
    out = compare(policy, market, preds, bar_ms)
    stored = preds["model_version"].iloc[-1]
    return {"session_id": session_id, "run_id": run, "weights": which, "model_version": policy.model_version,
            "same_weights": stored == policy.model_version, "last_bar_ts": state.get("last_bar_ts"), **out}
