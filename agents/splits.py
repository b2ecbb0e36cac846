"""Chronological train / validation / test splits with purge gaps, and walk-forward folds.

Every split is a half-open range of bar positions ``[start, end)`` into the feature matrix.
Between consecutive splits lies a purge gap of ``warmup + episode_length`` bars: the
features at the first bar of a split look back at most ``warmup`` bars, and a training
episode never runs past its split's end, so no feature window and no episode straddles
two splits. The first ``warmup`` bars of the data are never used (the features there are
not yet meaningful).

A time range (``--timerange``, :class:`aster_rl.data.timeframes.TimeRange`) restricts the
splits to the bars inside it (:func:`range_splits`): the features of its first bars look
back at bars before it (past data), but no split starts before it or ends after it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aster_rl.data.timeframes import TimeRange, parse_timerange
from aster_rl.errors import DataError

from agents.run_dir import RunDir

SPLIT_NAMES = ("train", "validation", "test")


@dataclass(frozen=True)
class Span:
    """Bars ``[start, end)``."""

    start: int
    end: int

    def __len__(self) -> int:
        return max(0, self.end - self.start)


@dataclass(frozen=True)
class Splits:
    train: Span
    validation: Span
    test: Span
    purge: int
    warmup: int
    timerange: TimeRange | None = None  # the range the splits were cut inside, when one was named

    def spans(self) -> dict[str, Span]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def check(self) -> None:
        """Raise if splits overlap, run backwards, or the purge gap does not hold."""
        spans = [self.train, self.validation, self.test]
        if self.train.start < self.warmup:
            raise DataError(f"splits: train starts at bar {self.train.start}, inside the {self.warmup}-bar feature warm-up")
        for name, s in zip(SPLIT_NAMES, spans):
            if len(s) <= 0:
                raise DataError(f"splits: the {name} split is empty ({s.start}..{s.end}); use more data or a shorter episode")
        for (na, a), (nb, b) in zip(zip(SPLIT_NAMES, spans), zip(SPLIT_NAMES[1:], spans[1:])):
            if b.start - a.end < self.purge:
                raise DataError(f"splits: only {b.start - a.end} bars between {na} and {nb}; the purge gap is {self.purge}")

    def to_dict(self, timestamps: np.ndarray | pd.DatetimeIndex | None = None) -> dict:
        """Boundaries as indices and, when ``timestamps`` (bar open times: a DatetimeIndex or
        int64 ns) are given, as ISO times."""
        out: dict = {"purge_bars": self.purge, "warmup_bars": self.warmup}
        if self.timerange is not None:
            out["timerange"] = self.timerange.to_dict()
        ts = None
        if isinstance(timestamps, pd.DatetimeIndex):
            ts = timestamps
        elif timestamps is not None:  # int64 nanoseconds since the epoch
            ts = pd.DatetimeIndex(pd.to_datetime(np.asarray(timestamps, dtype=np.int64), unit="ns", utc=True))
        for name, s in self.spans().items():
            entry: dict = {"start": s.start, "end": s.end, "bars": len(s)}
            if ts is not None and len(s):
                entry["first_bar"] = ts[s.start].isoformat()
                entry["last_bar"] = ts[s.end - 1].isoformat()
            out[name] = entry
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Splits:
        return cls(
            train=Span(d["train"]["start"], d["train"]["end"]),
            validation=Span(d["validation"]["start"], d["validation"]["end"]),
            test=Span(d["test"]["start"], d["test"]["end"]),
            purge=int(d["purge_bars"]),
            warmup=int(d["warmup_bars"]),
            timerange=parse_timerange(d["timerange"]["text"]) if d.get("timerange") else None,
        )


def load_run_splits(run_dir: str | Path, timestamps: np.ndarray | pd.DatetimeIndex | None = None) -> Splits:
    """The splits saved with a trained run (``splits.json``).

    With ``timestamps`` (bar open times of the rebuilt data), each split's recorded first and
    last bar must sit at the same positions: if bars were added before (or removed from) the
    stored market, the positions would shift and the "test" split could land on bars the
    model trained on. A retrained run is refused: it trained on every bar before its
    hold-out and the hold-out chose it, so no untouched test split is left.
    """
    run_dir = Path(run_dir)
    d = RunDir(run_dir).read_splits()
    if "retrained_from" in d:
        raise DataError(
            f"{run_dir.name} was retrained from {d['retrained_from']} on every bar before its hold-out, which then chose it: "
            "it has no untouched test split"
        )
    splits = Splits.from_dict(d)
    if timestamps is None:
        return splits
    if splits.test.end > len(timestamps):
        raise DataError(f"{run_dir.name}: the test split ends at bar {splits.test.end} but the data has {len(timestamps)} bars")
    now = splits.to_dict(timestamps)
    for name in SPLIT_NAMES:
        for key in ("first_bar", "last_bar"):
            saved = d[name].get(key)
            if saved is not None and saved != now[name].get(key):
                raise DataError(
                    f"{run_dir.name}: the {name} split's {key.replace('_', ' ')} was {saved} when the run was trained but is "
                    f"{now[name].get(key)} in the data now; the stored market changed, so its bar positions no longer match"
                )
    return splits


def purge_bars(warmup: int, episode_length: int) -> int:
    """The gap between splits: the longest feature look-back plus one episode."""
    return int(warmup) + int(episode_length)


def make_splits(
    n_bars: int,
    *,
    warmup: int,
    episode_length: int,
    train_fraction: float,
    validation_fraction: float,
    offset: int = 0,
) -> Splits:
    """Split bars ``[offset + warmup, n_bars)`` by time; the test split gets what is left.

    The fractions apply to the usable bars after removing the warm-up and the two purge gaps.
    """
    if not 0 < train_fraction < 1 or not 0 < validation_fraction < 1 or train_fraction + validation_fraction >= 1:
        raise DataError(
            f"splits: train_fraction={train_fraction} and validation_fraction={validation_fraction} "
            "must be in (0, 1) and leave room for a test split"
        )
    purge = purge_bars(warmup, episode_length)
    first = offset + warmup
    usable = n_bars - first - 2 * purge
    if usable < 30:
        raise DataError(
            f"splits: {n_bars - offset} bars leave only {usable} usable after a {warmup}-bar warm-up and two "
            f"{purge}-bar purge gaps; use more data or a shorter env.episode_length"
        )
    n_train = int(usable * train_fraction)
    n_val = int(usable * validation_fraction)
    train = Span(first, first + n_train)
    validation = Span(train.end + purge, train.end + purge + n_val)
    test = Span(validation.end + purge, n_bars)
    splits = Splits(train, validation, test, purge, warmup)
    splits.check()
    return splits


def range_splits(
    index: pd.DatetimeIndex,
    timerange: TimeRange | None,
    *,
    warmup: int,
    episode_length: int,
    train_fraction: float,
    validation_fraction: float,
) -> Splits:
    """:func:`make_splits` over the bars of ``index`` (bar open times) inside ``timerange`` (every bar
    when None): train, validation and test as usual, the test split at the end of the range. The
    splits record the range."""
    if timerange is None:
        return make_splits(len(index), warmup=warmup, episode_length=episode_length,
                           train_fraction=train_fraction, validation_fraction=validation_fraction)
    lo, hi = timerange.bar_span(index)
    try:
        splits = make_splits(hi, warmup=warmup, episode_length=episode_length, train_fraction=train_fraction,
                             validation_fraction=validation_fraction, offset=max(lo - warmup, 0))
    except DataError as e:
        raise DataError(f"--timerange {timerange} ({hi - lo} bars from {index[lo]:%Y-%m-%d %H:%M}): {e}") from None
    return dataclasses.replace(splits, timerange=timerange)


def last_selection_bar(run_dir: str | Path) -> pd.Timestamp:
    """The open time of the last bar a trained run learned from or was selected on (``splits.json``):
    its validation split's last bar, or a retrained run's hold-out's last bar."""
    rd = RunDir(run_dir)
    d = rd.read_splits()
    if "retrained_from" in d:
        times = [d.get("holdout_to")]
    else:
        times = [d[name].get("last_bar") if isinstance(d.get(name), dict) else None for name in ("train", "validation")]
    if not times or any(t is None for t in times):
        raise DataError(f"{rd.name}: {rd.SPLITS} records no training and validation bar times; the run is incomplete")
    last = max(pd.Timestamp(t) for t in times)
    return last.tz_localize("UTC") if last.tzinfo is None else last.tz_convert("UTC")


def check_unseen(run_dir: str | Path, timerange: TimeRange, first_bar: pd.Timestamp) -> None:
    """Refuse judging a run on a range whose first bar is not after every bar it trained or was selected on.

    Its features may look back before the range (past data); no decision or return before it counts.
    """
    last = last_selection_bar(run_dir)
    if first_bar <= last:
        raise DataError(
            f"--timerange {timerange}: its first bar {first_bar:%Y-%m-%d %H:%M} is not after the last bar "
            f"{Path(run_dir).name} trained or was selected on ({last:%Y-%m-%d %H:%M} UTC); a run is judged only on later bars"
        )


def walkforward_splits(
    n_bars: int,
    folds: int,
    *,
    warmup: int,
    episode_length: int,
    train_fraction: float,
    validation_fraction: float,
    start: int = 0,
) -> list[Splits]:
    """``folds`` chronological, non-overlapping blocks of bars ``[max(start, warmup), n_bars)``, each with
    its own train/validation/test.

    Consecutive blocks are separated by a purge gap as well, so a fold's test bars never
    feed the next fold's features through the warm-up window.
    """
    if folds < 1:
        raise DataError(f"walk-forward: need at least one fold, got {folds}")
    purge = purge_bars(warmup, episode_length)
    first = max(int(start), warmup)
    usable = n_bars - first - (folds - 1) * purge
    block = usable // folds
    out = []
    for k in range(folds):
        lo = first + k * (block + purge)
        hi = lo + block if k < folds - 1 else n_bars
        out.append(
            make_splits(
                hi,
                warmup=warmup,
                episode_length=episode_length,
                train_fraction=train_fraction,
                validation_fraction=validation_fraction,
                offset=lo - warmup,
            )
        )
    return out
