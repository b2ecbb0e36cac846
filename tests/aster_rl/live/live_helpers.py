"""Shared pieces of the live-runner tests: a fixed deterministic policy and runner wiring."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from aster_rl.config import EnvConfig, FeaturesConfig, LiveConfig
from aster_rl.interfaces import PolicyDecision
from aster_rl.live.bars import LivePrices
from aster_rl.live.brokers import PaperBroker
from aster_rl.live.runner import LiveRunner
from aster_rl.storage import Database


class FixedPolicy:
    """Deterministic, observation-driven and trading often: a hash of the observation picks
    the side, leverage and profile (the account part included, so positions change it)."""

    run_id = "fixed-policy"
    model_version = "fixed-policy@1"

    def __init__(self, n_lev: int = 8, n_prof: int = 3, trade_every: int = 1) -> None:
        self.n_lev, self.n_prof = n_lev, n_prof
        self.calls = 0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.predict(obs)

    def predict(self, obs: np.ndarray) -> np.ndarray:
        self.calls += 1
        x = np.asarray(obs, dtype=np.float64)
        h = int(abs(np.round(x[:-6:5].sum() * 1e3)))  # coarse: robust to 1e-6 feature differences
        side = h % 3
        if x[-6] != 0:  # in a position: mostly hold, sometimes close
            side = 0 if h % 4 else (2 if x[-6] > 0 else 1)
        return np.array([side, (h // 3) % self.n_lev, (h // 7) % self.n_prof])


class DecidingPolicy(FixedPolicy):
    def decide(self, obs: np.ndarray) -> PolicyDecision:
        a = self.predict(obs)
        return PolicyDecision(action=(int(a[0]), int(a[1]), int(a[2])), confidence=0.5, value=1.25)


def permissive_live(tmp_path: Path, **changes) -> LiveConfig:
    base = dict(
        max_leverage=50, max_notional_usd=1e12, max_open_positions=1, daily_loss_limit_fraction=1.0,
        stale_after_bars=1e9, max_model_age_days=1e9, kill_file=tmp_path / "KILL",
    )
    base.update(changes)
    return LiveConfig(**base)


def make_db(tmp_path: Path, name: str = "live.db", url: str | None = None) -> Database:
    """A fresh database with the schema: the SQLite file ``name`` in ``tmp_path``, or the one at ``url``."""
    db = Database(url or f"sqlite:///{tmp_path / name}")
    db.init_schema()
    return db


def paper_runner(policy, source, db, tmp_path, *, env: EnvConfig | None = None, live: LiveConfig | None = None,
                 features: str = "auto", session: str = "test-session", feats: FeaturesConfig | None = None, **kw) -> LiveRunner:
    env = env or EnvConfig()
    prices = LivePrices(source.timeframe, capacity=64)  # small: the buffer must grow during the tests
    broker = PaperBroker(env, prices)
    return LiveRunner(
        policy, source, broker, db, env_cfg=env, live_cfg=live or permissive_live(tmp_path), features_cfg=feats or FeaturesConfig(),
        session_id=session, mode="replay" if source.kind == "replay" else "paper", features=features, prices=prices, **kw,
    )


HOLD_LOCK = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
con.execute("CREATE TABLE IF NOT EXISTS other_writer (x INTEGER)")
con.execute("INSERT INTO other_writer VALUES (1)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
"""


class LockHolder:
    """Another process holding a write transaction on ``path`` for ``seconds`` (as a large import does)."""

    def __init__(self, path, seconds: float) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "locked"
        self.since = time.monotonic()

    def wait(self) -> None:
        assert self.proc.wait(timeout=60) == 0
