import pandas as pd
import pytest

from aster_rl.data.timeframes import TimeRange, parse_timerange
from aster_rl.errors import DataError

UTC = "UTC"


def test_both_sides_are_utc_days_with_the_end_excluded():
    r = parse_timerange("20250919-20251031")
    assert r.start == pd.Timestamp("2025-09-19", tz=UTC) and r.end == pd.Timestamp("2025-10-31", tz=UTC)
    assert str(r) == "20250919-20251031"
    assert r.to_dict() == {"text": "20250919-20251031", "start": "2025-09-19T00:00:00+00:00",
                           "end": "2025-10-31T00:00:00+00:00"}


def test_open_sides():
    assert parse_timerange("20250919-") == TimeRange(pd.Timestamp("2025-09-19", tz=UTC), None, "20250919-")
    assert parse_timerange("-20251031") == TimeRange(None, pd.Timestamp("2025-10-31", tz=UTC), "-20251031")
    assert parse_timerange("-20251031").to_dict()["start"] is None


def test_unix_seconds_and_milliseconds_as_in_freqtrade():
    assert parse_timerange("1758240000-1761868800") == TimeRange(
        pd.Timestamp("2025-09-19", tz=UTC), pd.Timestamp("2025-10-31", tz=UTC), "1758240000-1761868800")
    assert parse_timerange("1758240000500-").start == pd.Timestamp("2025-09-19 00:00:00.500", tz=UTC)


@pytest.mark.parametrize("bad", ["", "-", "2025-09-19", "20250919", "2025091-", "20250919-2025103", "202509190000-",
                                 "20250919-20251031x", " 20250919-", "20250919--20251031", "２０２５０９１９-"])
def test_bad_forms_name_the_value_and_the_expected_form(bad):
    with pytest.raises(DataError) as e:
        parse_timerange(bad)
    line = str(e.value)
    assert "\n" not in line and line.startswith(f"--timerange {bad!r}") and "YYYYMMDD" in line


def test_a_day_that_does_not_exist():
    with pytest.raises(DataError, match=r"20251301 is not a calendar date"):
        parse_timerange("20251301-")
    with pytest.raises(DataError, match=r"20250230 is not a calendar date"):
        parse_timerange("-20250230")


@pytest.mark.parametrize("bad", ["20251031-20250919", "20250919-20250919", "1758240000-1758240000"])
def test_end_at_or_before_the_start(bad):
    with pytest.raises(DataError, match=r"is not after the start"):
        parse_timerange(bad, "--foo")
    with pytest.raises(DataError, match=r"^--foo "):
        parse_timerange(bad, "--foo")


def test_bar_span_is_start_inclusive_end_exclusive():
    index = pd.date_range("2025-03-01", periods=4 * 288, freq="5min", tz=UTC)  # 4 days of 5m bars
    lo, hi = parse_timerange("20250302-20250303").bar_span(index)
    assert (lo, hi) == (288, 576)
    assert index[lo] == pd.Timestamp("2025-03-02", tz=UTC) and index[hi - 1] == pd.Timestamp("2025-03-02 23:55", tz=UTC)
    assert parse_timerange("20250302-").bar_span(index) == (288, len(index))
    assert parse_timerange("-20250302").bar_span(index) == (0, 288)
    assert parse_timerange("20250201-20260101").bar_span(index) == (0, len(index))  # wider than the data: all of it


@pytest.mark.parametrize("text", ["20250310-", "-20250301", "20250201-20250215"])
def test_no_stored_bar_in_the_range_names_the_stored_range(text):
    index = pd.date_range("2025-03-01", periods=4 * 288, freq="5min", tz=UTC)
    with pytest.raises(DataError) as e:
        parse_timerange(text).bar_span(index)
    assert str(e.value) == (f"--timerange {text}: no stored bar lies in it; the stored market runs "
                            "2025-03-01 00:00 .. 2025-03-04 23:55 UTC")
