"""Timeframe strings every command accepts, their limits, and the grid bars open on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aster_rl.errors import DataError
from aster_rl.data.timeframes import (
    grid_origin,
    off_grid,
    timedelta_to_timeframe,
    timeframe_to_timedelta,
)


@pytest.mark.parametrize(
    "timeframe, problem",
    [
        ("999999999w", "longer than 4w"), ("5w", "longer than 4w"), ("40321m", "longer than 4w"),
        ("1" + "0" * 40 + "m", "longer than 4w"), ("0m", "must be positive"), ("05m", "leading zeros"),
        ("-5m", "whole number"), ("+5m", "whole number"), ("5_0m", "whole number"), (" 5m", "whole number"),
        ("1.5h", "whole number"), ("5M", "whole number"), ("\u0665m", "whole number"), ("", "whole number"),
        (5, "whole number"), (None, "whole number"),
    ],
)
def test_absurd_timeframes_raise_one_data_error(timeframe, problem):
    with pytest.raises(DataError, match=problem):
        timeframe_to_timedelta(timeframe)


def test_longest_and_shortest_timeframes():
    assert timeframe_to_timedelta("1m") == pd.Timedelta(minutes=1)
    assert timeframe_to_timedelta("4w") == timeframe_to_timedelta("40320m") == pd.Timedelta(weeks=4)


@pytest.mark.parametrize("timeframe", ["1m", "5m", "15m", "90m", "1h", "4h", "1d", "3d", "1w", "2w"])
def test_spacing_names_its_timeframe(timeframe):
    assert timedelta_to_timeframe(timeframe_to_timedelta(timeframe)) == timeframe


def test_spacing_that_is_no_timeframe():
    for step in (pd.Timedelta(seconds=17), pd.Timedelta(minutes=5, seconds=1), pd.Timedelta(weeks=5), pd.Timedelta(0)):
        assert timedelta_to_timeframe(step) is None
    assert timedelta_to_timeframe(pd.Timedelta(minutes=60)) == "1h"


def test_grid_counts_from_the_epoch_and_weeks_from_a_monday():
    t = pd.DatetimeIndex(["2025-03-03 00:00", "2025-03-03 00:05", "2025-03-03 00:05:17", "2025-03-06"], tz="UTC")
    ns = t.as_unit("ns").asi8
    np.testing.assert_array_equal(off_grid(ns, "5m"), [False, False, True, False])
    np.testing.assert_array_equal(off_grid(ns, "1w"), [False, True, True, True])  # 2025-03-03 is a Monday
    assert grid_origin("1w").day_name() == "Monday" and grid_origin("1d") == pd.Timestamp(0, tz="UTC")
