"""Data shaping for reports and notebooks: saved evaluation results, prediction logs, features.

Pure pandas/numpy on saved results (``RUN/eval/results.json``, ``equity_<name>.csv``,
``trades_<name>.csv``), on prediction rows and on feature frames; plotting lives in
``agents.plots``. The readers here only read files or tables; nothing is fitted.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aster_rl.evaluation import metrics as M
from aster_rl.errors import DataError

logger = logging.getLogger(__name__)

SIDE_NAMES = ("wait", "buy", "sell")
BREAKDOWN_KEYS = ("regime", "cycle_phase", "exit_profile")
WIN_STATUSES = ("win",)
LOSS_STATUSES = ("loss", "liquidated", "liquidation")


# ---------------------------------------------------------------- saved evaluation results

@dataclass
class EvaluationResults:
    """One run's saved evaluation: the JSON summary, equity curves and trades per strategy."""

    results: dict[str, Any]
    equity: pd.DataFrame  # one column per strategy (agent first), indexed by bar time
    trades: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def strategies(self) -> list[str]:
        return list(self.equity.columns)


def _number(x: Any) -> float:
    """JSON numbers, with the strings ``"inf"``/``"-inf"``/``"nan"`` the results use for non-finite values."""
    if isinstance(x, str):
        return float(x)
    return float(x) if x is not None else float("nan")


def load_evaluation(eval_dir: str | Path) -> EvaluationResults:
    """Read ``results.json`` and every ``equity_<name>.csv`` / ``trades_<name>.csv`` in ``eval_dir``."""
    eval_dir = Path(eval_dir)
    path = eval_dir / "results.json"
    if not path.exists():
        raise DataError(f"{eval_dir}: no results.json; run `aster-rl evaluate RUN` first")
    results = json.loads(path.read_text())
    names = ["agent", *results.get("baselines", {}).keys()]
    curves, trades = {}, {}
    for name in names:
        eq_path = eval_dir / f"equity_{name}.csv"
        if eq_path.exists():
            frame = pd.read_csv(eq_path, index_col=0)
            frame.index = pd.to_datetime(frame.index, utc=True)
            curves[name] = frame.iloc[:, 0].astype(float)
        tr_path = eval_dir / f"trades_{name}.csv"
        if tr_path.exists() and tr_path.stat().st_size > 1:
            tr = pd.read_csv(tr_path)
            for col in ("entry_time", "exit_time"):
                if col in tr:
                    tr[col] = pd.to_datetime(tr[col], utc=True)
            trades[name] = tr
        else:
            trades[name] = pd.DataFrame()
    if not curves:
        raise DataError(f"{eval_dir}: results.json has no equity_<name>.csv beside it")
    equity = pd.DataFrame(curves).sort_index()
    return EvaluationResults(results=results, equity=equity, trades=trades)


def drawdown_frame(equity: pd.DataFrame) -> pd.DataFrame:
    """Drawdown (positive fraction below the running peak) of every equity column."""
    return equity.apply(lambda s: pd.Series(M.drawdown(s.ffill().to_numpy(dtype=float)), index=s.index))


def metrics_frame(results: dict[str, Any], keys: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Strategy x metric table from ``results.json``."""
    rows = {"agent": results["agent"]["metrics"]}
    rows.update({n: b["metrics"] for n, b in results.get("baselines", {}).items()})
    frame = pd.DataFrame({n: {k: _number(v) for k, v in m.items()} for n, m in rows.items()}).T
    return frame[list(keys)] if keys else frame


def interval_frame(results: dict[str, Any]) -> pd.DataFrame:
    """Bootstrap intervals: one row per (strategy, statistic) with estimate, low, high, confidence
    (the agent's excess over each benchmark included)."""
    rows = []
    outcomes = {"agent": results["agent"], **results.get("baselines", {})}
    for name, o in outcomes.items():
        for key, stat in (("ci_net_return", "net_return"), ("ci_sharpe", "sharpe")):
            ci = o.get(key)
            if ci:
                rows.append({"strategy": name, "statistic": stat, **{k: _number(v) for k, v in ci.items()}})
    for bench, ci in results.get("excess", {}).items():  # the agent's paired excess over a benchmark
        rows.append({"strategy": "agent", "statistic": f"excess_over_{bench}", **{k: _number(v) for k, v in ci.items()}})
    return pd.DataFrame(rows, columns=["strategy", "statistic", "estimate", "low", "high", "confidence"])


def cost_sweep_frame(results: dict[str, Any], metric: str = "net_return") -> pd.DataFrame:
    """Cost multiplier (rows, ascending) x strategy (columns) of ``metric``."""
    sweep = results.get("cost_sweep", {})
    data = {float(k.lstrip("x")): {n: _number(v[metric]) for n, v in d.items()} for k, d in sweep.items()}
    frame = pd.DataFrame(data).T.sort_index()
    frame.index.name = "cost_multiplier"
    return frame


def breakdown_frame(results: dict[str, Any], key: str) -> pd.DataFrame:
    """The agent's trades grouped by ``key`` (regime / cycle_phase / exit_profile): trades, win rate, PnL."""
    table = results.get("breakdown", {}).get(key, {})
    frame = pd.DataFrame({label: {k: _number(v) for k, v in row.items()} for label, row in table.items()}).T
    if frame.empty:
        return pd.DataFrame(columns=["trades", "win_rate", "pnl_usd", "expectancy_usd"])
    frame.index.name = key
    return frame


def walkforward_frame(walkforward: dict[str, Any]) -> pd.DataFrame:
    """One row per (fold, seed) of a ``walkforward.json``: agent net return, its excesses, and the best baseline."""
    runs = walkforward.get("runs", [])
    cols = ["fold", "seed", "test_first_bar", "test_last_bar", "agent_net_return", "agent_excess_exposure_matched",
            "agent_excess_flat", "edge", "best_baseline", "best_baseline_net_return", "beats_best_baseline"]
    return pd.DataFrame([{c: r.get(c) for c in cols} for r in runs], columns=cols)


# ---------------------------------------------------------------- actions over time

def action_mix_over_time(
    actions: pd.DataFrame,
    leverages: tuple[int, ...] | list[int],
    profiles: tuple[str, ...] | list[str],
    window: int = 48,
) -> dict[str, pd.DataFrame]:
    """Rolling shares over ``window`` bars of the chosen side, and of the leverage and exit
    profile among BUY/SELL actions (NaN where the window has none).

    ``actions``: columns ``side, leverage, profile`` of ladder indices, one row per bar.
    """
    if not {"side", "leverage", "profile"} <= set(actions.columns):
        raise DataError(f"actions need columns side, leverage, profile; got {list(actions.columns)}")
    window = max(1, int(window))
    side = actions["side"].astype(int)
    roll = lambda s: s.astype(float).rolling(window, min_periods=1).sum()  # noqa: E731
    sides = pd.DataFrame({n: roll(side == i) for i, n in enumerate(SIDE_NAMES)}, index=actions.index)
    sides = sides.div(sides.sum(axis=1), axis=0)
    active = side != 0
    n_active = roll(active)

    def shares(col: str, labels) -> pd.DataFrame:
        values = actions[col].astype(int)
        out = pd.DataFrame({str(lab): roll(active & (values == i)) for i, lab in enumerate(labels)}, index=actions.index)
        return out.div(n_active.where(n_active > 0), axis=0)

    return {
        "side": sides,
        "leverage": shares("leverage", [f"{lev:g}x" for lev in leverages]),
        "profile": shares("profile", list(profiles)),
    }


def trade_markers(trades: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Entries (by side) and exits (by reason) of a trades table, for marking a price chart."""
    if trades is None or not len(trades):
        return {"entries": pd.DataFrame(columns=["time", "price", "side"]),
                "exits": pd.DataFrame(columns=["time", "price", "reason", "pnl_usd"])}
    entries = pd.DataFrame({"time": trades["entry_time"], "price": trades["entry_price"], "side": trades["side"].astype(str)})
    exits = pd.DataFrame({
        "time": trades["exit_time"],
        "price": trades["exit_price"],
        "reason": trades["reason"].astype(str) if "reason" in trades else "exit",
        "pnl_usd": trades["pnl_usd"].astype(float) if "pnl_usd" in trades else np.nan,
    })
    return {"entries": entries.reset_index(drop=True), "exits": exits.reset_index(drop=True)}


# ---------------------------------------------------------------- features

def support_resistance_levels(candles: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """Support and resistance prices from the price_history tentacle's distances (fractions of close)."""
    sup = [c for c in features.columns if c.startswith("price_history_support_dist_")]
    res = [c for c in features.columns if c.startswith("price_history_resistance_dist_")]
    if not sup or not res:
        raise DataError("the features have no price_history_support_dist_* / price_history_resistance_dist_* columns")
    close = candles["close"].reindex(features.index).astype(float)
    return pd.DataFrame(
        {"close": close, "support": close * (1.0 - features[sup[0]]), "resistance": close * (1.0 + features[res[0]])},
        index=features.index,
    )


def state_spans(values: pd.Series, names: dict[int, str] | None = None) -> pd.DataFrame:
    """Runs of a constant integer state (e.g. ``regime_state``): start, end (exclusive: next run's start), label."""
    if not len(values):
        return pd.DataFrame(columns=["start", "end", "state", "label"])
    v = values.round().astype(int)
    change = v.ne(v.shift()).to_numpy()
    starts = np.flatnonzero(change)
    idx = values.index
    step = idx[-1] - idx[-2] if len(idx) > 1 else pd.Timedelta(0)
    ends = [idx[s] for s in starts[1:]] + [idx[-1] + step]
    states = v.to_numpy()[starts]
    labels = [(names or {}).get(int(s), str(int(s))) for s in states]
    return pd.DataFrame({"start": idx[starts], "end": ends, "state": states, "label": labels})


def informative_columns(features: pd.DataFrame) -> list[str]:
    """Columns that vary over the frame (constant ones have no correlation)."""
    std = features.std(axis=0)
    return [c for c in features.columns if np.isfinite(std[c]) and std[c] > 1e-12]


def tentacle_correlation(features: pd.DataFrame, groups: dict[str, list[str]], method: str = "spearman") -> pd.DataFrame:
    """Tentacle x tentacle: mean absolute correlation between their (varying) columns.

    The diagonal is the mean over distinct column pairs inside a tentacle (NaN if it has one column).
    """
    cols = informative_columns(features)
    corr = features[cols].corr(method=method).abs()
    names = [g for g, c in groups.items() if any(x in corr.index for x in c)]
    out = pd.DataFrame(np.nan, index=names, columns=names)
    for a in names:
        ca = [c for c in groups[a] if c in corr.index]
        for b in names:
            cb = [c for c in groups[b] if c in corr.index]
            block = corr.loc[ca, cb].to_numpy()
            if a == b:
                block = block[~np.eye(len(ca), dtype=bool)]
            out.loc[a, b] = float(np.nanmean(block)) if block.size else np.nan
    return out


def top_correlated_pairs(features: pd.DataFrame, n: int = 15, method: str = "spearman") -> pd.DataFrame:
    """The ``n`` most correlated pairs of distinct columns (by absolute correlation)."""
    cols = informative_columns(features)
    corr = features[cols].corr(method=method)
    upper = corr.where(np.triu(np.ones(corr.shape, dtype=bool), k=1))
    pairs = upper.stack().rename("correlation").reset_index()
    pairs.columns = ["a", "b", "correlation"]
    return pairs.reindex(pairs["correlation"].abs().sort_values(ascending=False).index).head(n).reset_index(drop=True)


# ---------------------------------------------------------------- prediction log

def read_table(db, table: str) -> pd.DataFrame:
    """A whole table of ``db`` (an ``aster_rl.storage.Database``) as a DataFrame."""
    db.init_schema()
    return pd.read_sql_table(table, db.engine)


def prediction_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Prediction rows with times as UTC timestamps and an ``outcome`` of win / loss / open / none.

    WAIT decisions have outcome ``none``; a closed trade with a status that is neither a win
    nor a loss counts by its PnL sign.
    """
    df = rows.copy()
    for col in ("ts", "closed_at"):
        if col in df:
            df[col] = pd.to_datetime(df[col], unit="ms", utc=True)
    status = df.get("status", pd.Series("open", index=df.index)).astype(str).str.lower()
    pnl = df.get("pnl_usd", pd.Series(np.nan, index=df.index)).astype(float)
    side = df.get("side", pd.Series("", index=df.index)).astype(str).str.upper()
    outcome = np.where(side == "WAIT", "none",
              np.where(status.isin(WIN_STATUSES), "win",
              np.where(status.isin(LOSS_STATUSES), "loss",
              np.where(pnl.notna(), np.where(pnl > 0, "win", "loss"), "open"))))
    df["outcome"] = outcome
    return df.sort_values("ts").reset_index(drop=True)


def outcomes_over_time(predictions: pd.DataFrame, freq: str = "1D") -> pd.DataFrame:
    """Per period: decisions by side, closed trades, wins, win rate and PnL."""
    p = predictions.set_index("ts")
    closed = p["outcome"].isin(["win", "loss"])
    out = pd.DataFrame({
        "buy": (p["side"].str.upper() == "BUY").resample(freq).sum(),
        "sell": (p["side"].str.upper() == "SELL").resample(freq).sum(),
        "wait": (p["side"].str.upper() == "WAIT").resample(freq).sum(),
        "closed": closed.resample(freq).sum(),
        "wins": (p["outcome"] == "win").resample(freq).sum(),
        "pnl_usd": p["pnl_usd"].where(closed).fillna(0.0).resample(freq).sum(),
    })
    out["win_rate"] = out["wins"] / out["closed"].where(out["closed"] > 0)
    out["cum_pnl_usd"] = out["pnl_usd"].cumsum()
    return out


def calibration_table(confidence: np.ndarray | pd.Series, won: np.ndarray | pd.Series, bins: int = 5) -> pd.DataFrame:
    """Binned confidence against the realized win rate (a reliability diagram's data).

    ``confidence`` is the policy's P(side) logged with each closed BUY / SELL decision, ``won``
    whether that trade won. Bins are equal-width on [0, 1]; each row: bin edges, decisions,
    mean confidence, realized win rate, and a Wilson 95% interval of the win rate. ``attrs``
    holds ``expected_calibration_error`` (the decision-weighted mean |confidence - win rate|)
    and ``brier_score`` (the mean of (confidence - won)², 0 is perfect, 0.25 a constant 0.5).
    """
    c = np.asarray(confidence, dtype=float)
    w = np.asarray(won, dtype=float)
    if c.shape != w.shape:
        raise ValueError(f"confidence and won differ in length: {c.shape} vs {w.shape}")
    ok = np.isfinite(c) & np.isfinite(w)
    c, w = np.clip(c[ok], 0.0, 1.0), w[ok]
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    which = np.clip(np.digitize(c, edges[1:-1], right=False), 0, bins - 1)
    rows = []
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        rate = float(w[sel].mean()) if n else np.nan
        lo, hi = _wilson(rate, n)
        rows.append({"low": edges[b], "high": edges[b + 1], "decisions": n,
                     "mean_confidence": float(c[sel].mean()) if n else np.nan,
                     "win_rate": rate, "win_rate_low": lo, "win_rate_high": hi})
    table = pd.DataFrame(rows)
    used = table["decisions"] > 0
    total = table.loc[used, "decisions"].sum()
    table.attrs["expected_calibration_error"] = float(
        (table.loc[used, "decisions"] * (table.loc[used, "mean_confidence"] - table.loc[used, "win_rate"]).abs()).sum() / total
    ) if total else float("nan")
    table.attrs["brier_score"] = float(np.mean((c - w) ** 2)) if len(c) else float("nan")
    return table


def _wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0 or not np.isfinite(p):
        return float("nan"), float("nan")
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(centre - half), float(centre + half)


def pattern_history_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """``pattern_history`` rows with time, event, and the snapshot's status / trades / win rate spread out."""
    df = rows.copy()
    if "ts" in df:
        df["ts"] = pd.to_datetime(df["ts"], unit="ms", utc=True)
    snaps = df.get("snapshot", pd.Series([None] * len(df), index=df.index))
    for key in ("status", "trades", "win_rate", "win_rate_lower_bound"):
        df[key] = [(_snapshot(s) or {}).get(key) for s in snaps]
    return df.sort_values(["ts", "id"] if "id" in df else ["ts"]).reset_index(drop=True)


def _snapshot(value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return value if isinstance(value, dict) else None
