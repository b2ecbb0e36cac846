"""Generated ``--set section.key=value`` overrides: exit 0 or one line and exit 2, never a traceback.

A failing ``db init`` must also leave an existing database exactly as it was.
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aster_rl.cli import main
from aster_rl.config import AppConfig, load_config

KEYS = sorted(
    f"{section}.{key}"
    for section, field in AppConfig.model_fields.items()
    for key in field.annotation.model_fields
)
DATA_KEYS = [k for k in KEYS if k.startswith("data.")]  # the ones that choose the database

VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.booleans().map(lambda b: "true" if b else "false"),
    st.just(""),
    st.text(max_size=24),
    st.text(max_size=12).map(json.dumps),
    st.dates().map(str),
    st.datetimes().map(lambda d: d.isoformat()),
    st.lists(st.integers(min_value=-300, max_value=300), max_size=4).map(lambda xs: "[" + ", ".join(map(str, xs)) + "]"),
    st.sampled_from(["[", "{", "[[1]]", "{a = 1}", "1e999", "-0", "0x10", "nan", "-inf", "\n[x]\ny = 1", "../..", "/"]),
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _cli(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def _assert_clean(code: int, err: str, argv: list[str]) -> None:
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code == 2:
        assert len(err.strip().splitlines()) == 1, (argv, err)


@FUZZ
@given(key=st.sampled_from(KEYS), value=VALUES)
@example(key="data.symbol", value="ASTER\nUSDT")
@example(key="data.symbol", value="tab\tand\x7fdel\x00")
@example(key="data.since", value="2025-09-19")
@example(key="live.kill_file", value="")
def test_set_any_value_on_a_real_key_is_accepted_or_one_line(key, value):
    argv = ["--set", f"{key}={value}", "config", "show"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    _assert_clean(code, err.getvalue(), argv)
    if code == 0:  # what was accepted prints as TOML that loads back to the same configuration
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "shown.toml"
            path.write_text(out.getvalue(), encoding="utf-8")
            assert load_config(path) == load_config(None, [f"{key}={value}"]), argv


def _dump(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return list(conn.iterdump())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.one_of(st.sampled_from(DATA_KEYS), st.sampled_from(KEYS)), value=VALUES)
@example(key="data.database_url", value="notaurl")
@example(key="data.database_url", value="nosuchdb://x")
@example(key="data.data_dir", value="/proc/aster_rl_nowhere")
@example(key="data.data_dir", value="data/aster_rl.db")
def test_db_init_with_any_override_leaves_the_database_unchanged(key, value):
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        data_dir = Path(tmp) / "data"
        base = ["--set", f"data.data_dir={data_dir.as_posix()}"]
        assert _cli([*base, "db", "init"])[0] == 0
        db_file = data_dir / "aster_rl.db"
        before = _dump(db_file)
        argv = [*base, "--set", f"{key}={value}", "db", "init"]
        _assert_clean(*_cli(argv), argv)
        assert _dump(db_file) == before
