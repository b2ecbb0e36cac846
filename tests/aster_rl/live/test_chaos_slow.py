"""Chaos: seeded fault schedules against the real broker (see ``chaos.py`` for what is
injected and what is checked). At least 50 schedules of a few hundred bars each."""

from __future__ import annotations

import os

import pytest

from chaos import FAULT_KINDS, chaos_table, run_chaos

SCHEDULES = int(os.environ.get("ASTER_CHAOS_SCHEDULES", "50"))
BARS = int(os.environ.get("ASTER_CHAOS_BARS", "200"))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_chaos_schedules_keep_every_invariant(tmp_path):
    results = run_chaos(range(SCHEDULES), BARS, workers=2, root=str(tmp_path))
    table = chaos_table(results)
    print(table)
    assert len(results) == SCHEDULES >= 50
    injected = {k for r in results for k, n in r.faults.items() if n}
    assert injected == set(FAULT_KINDS)  # every kind of fault happened
    assert sum(r.trades for r in results) > 10 * SCHEDULES  # the runner did trade through them
    violations = [v for r in results for v in r.violations]
    assert not violations, "\n".join(violations[:20])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_chaos_with_target_positions_keeps_every_invariant(tmp_path):
    """The same faults with ``env.action_mode = "target"`` (a WAIT is a close): more closes through the real broker."""
    from aster_rl.config import EnvConfig

    results = run_chaos(range(100, 110), BARS, workers=2, root=str(tmp_path), env=EnvConfig(action_mode="target"))
    print(chaos_table(results))
    assert {k for r in results for k, n in r.faults.items() if n} == set(FAULT_KINDS)
    assert sum(r.trades for r in results) > 10 * len(results)
    violations = [v for r in results for v in r.violations]
    assert not violations, "\n".join(violations[:20])
