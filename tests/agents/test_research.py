"""The real-data walk-forward table: the gate's deployments and the losing runs among them are counted right."""

from __future__ import annotations

import math

from agents.research import walkforward_intervals, walkforward_table


def _row(fold: int, seed: int, net: tuple[float, float, float], deployable: bool) -> dict:
    ci = {"estimate": net[0], "low": net[1], "high": net[2], "confidence": 0.95}
    return {"fold": fold, "seed": seed, "test_first_bar": "2024-01-01T00:00", "test_last_bar": "2024-02-01T00:00",
            "net_ci": ci, "excess_em": ci, "trades_per_month": 12.0, "exposure": 0.5, "out_of_support": 0.1,
            "break_even_bps": 7.0, "captured_bps": math.nan, "deployable": deployable}


def test_the_table_counts_deployed_runs_and_those_that_lost_with_an_interval_below_flat():
    rows = [_row(0, 0, (-0.05, -0.08, -0.01), True), _row(0, 1, (0.02, -0.01, 0.05), True),
            _row(1, 0, (-0.09, -0.12, -0.02), False)]
    text = walkforward_table("LTC", rows, {"verdict": "no evidence of an edge"})
    assert "LTC gate: deploys 2 of 3 runs; of those, 1 with a test net-return interval entirely below flat" in text
    assert [line.rsplit(" ", 1)[-1] for line in text.splitlines()[1:4]] == ["deploy", "deploy", "abstain"]
    assert "n/a" in text  # a NaN captured move prints as n/a, never as a number
    frame = walkforward_intervals(rows)
    assert len(frame) == 6 and set(frame["statistic"]) == {"net_return", "excess_over_exposure_matched"}
    assert frame.loc[0, "strategy"] == "fold 0 seed 0" and frame.loc[0, "high"] == -0.01
