"""Permutation importance of each tentacle for a policy, on one evaluation range.

For a tentacle, its feature columns are shuffled *together* (the same row permutation for
all of them, so the tentacle's internal structure stays and only its link to time is
broken) inside ``[start, end)``; everything else is untouched. Two effects are measured
against the unshuffled run:

- ``net_return_drop``: the policy's net return (a backtest through the accounting core,
  fees and funding included) minus the net return with the tentacle shuffled. Positive:
  the policy earns less without this tentacle's information.
- ``action_agreement``: on the observations of the unshuffled run, with only this
  tentacle's features replaced by the shuffled rows, the share of bars where the policy
  still picks the same action (all three parts); ``side_agreement`` compares the side only.
  This isolates the feature effect from the account path.

Means and standard deviations are over ``repeats`` permutations (seeded).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from aster_rl.evaluation import metrics as M
from aster_rl.sim.backtest import backtest
from aster_rl.config import EnvConfig
from aster_rl.errors import DataError

logger = logging.getLogger(__name__)

COLUMNS = ("n_columns", "net_return_drop", "net_return_drop_std", "net_return", "action_agreement",
           "side_agreement", "side_agreement_std")


def _actions(policy: Callable, observations: np.ndarray) -> np.ndarray:
    """Actions for a batch of observations (one call when the policy takes batches)."""
    predict = getattr(policy, "predict", None)
    if predict is not None:
        try:
            out = np.asarray(predict(observations))
            if out.shape == (len(observations), 3):
                return out.astype(np.int64)
        except (ValueError, TypeError, RuntimeError):
            pass
    return np.stack([np.asarray(policy(o)).reshape(3) for o in observations]).astype(np.int64)


def permutation_importance(
    policy: Callable,
    matrix: np.ndarray,
    prices,
    cfg: EnvConfig,
    groups: dict[str, list[str]],
    columns: list[str],
    *,
    start: int,
    end: int,
    repeats: int = 3,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per tentacle of ``groups`` (tentacle -> column names): see the module docstring.

    ``policy``: ``policy(obs) -> action`` (a :class:`agents.policy.LoadedPolicy` is batched).
    ``attrs["base_net_return"]`` holds the unshuffled net return.
    """
    if repeats < 1:
        raise ValueError(f"repeats = {repeats}: need at least one permutation")
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.shape[1] != len(columns):
        raise DataError(f"matrix has {matrix.shape[1]} columns but {len(columns)} column names were given")
    if not 0 <= start < end <= len(matrix):
        raise DataError(f"range [{start}, {end}) outside the {len(matrix)} rows of the feature matrix")
    position = {c: i for i, c in enumerate(columns)}

    observations: list[np.ndarray] = []

    def recording(obs: np.ndarray) -> np.ndarray:
        observations.append(np.array(obs, dtype=np.float32, copy=True))
        return policy(obs)

    base = backtest(recording, matrix, prices, cfg, start=start, end=end)
    base_return = M.total_return(np.concatenate(([cfg.initial_equity_usd], base.equity.to_numpy(dtype=float))))
    obs = np.stack(observations)
    first = int(np.searchsorted(np.asarray(prices.timestamps), base.equity.index[0].value)) if len(base.equity) else start
    rows = first + np.arange(len(obs))  # the bar each observation was taken at
    base_actions = _actions(policy, obs)

    rng = np.random.default_rng(seed)
    out = []
    for name, cols in groups.items():
        idx = [position[c] for c in cols if c in position]
        if not idx:
            continue
        drops, full, side = [], [], []
        for _ in range(repeats):
            shuffled = matrix.copy()
            perm = start + rng.permutation(end - start)
            shuffled[start:end, idx] = matrix[perm][:, idx]
            res = backtest(policy, shuffled, prices, cfg, start=start, end=end)
            ret = M.total_return(np.concatenate(([cfg.initial_equity_usd], res.equity.to_numpy(dtype=float))))
            drops.append(base_return - ret)
            o = obs.copy()
            o[:, idx] = shuffled[rows][:, idx]
            acts = _actions(policy, o)
            full.append(float((acts == base_actions).all(axis=1).mean()))
            side.append(float((acts[:, 0] == base_actions[:, 0]).mean()))
        out.append({
            "tentacle": name,
            "n_columns": len(idx),
            "net_return_drop": float(np.mean(drops)),
            "net_return_drop_std": float(np.std(drops)),
            "net_return": float(base_return - np.mean(drops)),
            "action_agreement": float(np.mean(full)),
            "side_agreement": float(np.mean(side)),
            "side_agreement_std": float(np.std(side)),
        })
        logger.info("importance %s: net return drop %+.4f, action agreement %.2f", name, out[-1]["net_return_drop"],
                    out[-1]["action_agreement"])
    frame = pd.DataFrame(out).set_index("tentacle") if out else pd.DataFrame(columns=COLUMNS)
    frame = frame.sort_values("net_return_drop", ascending=False) if len(frame) else frame
    frame.attrs["base_net_return"] = float(base_return)
    frame.attrs["bars"] = int(len(obs))
    return frame


def tentacle_importance(ctx, span=None, *, repeats: int = 3, seed: int = 0) -> pd.DataFrame:
    """:func:`permutation_importance` of every tentacle of a run (``agents.notebooks.RunContext``)
    on ``span`` (default: its test split)."""
    span = span if span is not None else ctx.splits.test
    ds = ctx.dataset
    return permutation_importance(
        ctx.policy, ds.matrix, ds.prices, ctx.config.env, ds.schema.column_groups(), ds.columns,
        start=span.start, end=span.end, repeats=repeats, seed=seed,
    )
