"""Progress bars for command-line work only; silent when stderr is not a terminal."""

from __future__ import annotations

import sys
from typing import TypeVar
from collections.abc import Iterable

from tqdm import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "", enabled: bool | None = None):
    """A tqdm bar that appears only on a TTY (or when ``enabled`` forces it)."""
    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(iterable, total=total, desc=desc, disable=not show, mininterval=2, leave=False)
