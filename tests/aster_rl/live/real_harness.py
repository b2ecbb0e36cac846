"""The live runner with the real broker and the REAL ccxt client against the loopback fake
exchange, on a replayed market whose bars move the fake's clock: what the invariant,
regression and chaos tests drive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from aster_rl.config import DataConfig, EnvConfig, FeaturesConfig, Secrets
from aster_rl.exchange.client import ExchangeClient, make_exchange
from aster_rl.live.bars import LivePrices
from aster_rl.live.real_broker import RealBroker
from aster_rl.live.runner import LiveRunner
from aster_rl.live.sources import ReplaySource
from live_helpers import permissive_live

TEST_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"  # throwaway, never funded
SYMBOL = "ASTER/USDT:USDT"
FEATS = FeaturesConfig(tentacles=("market", "indicators"))


class Killed(BaseException):
    """The runner's process dies here (``kill -9``): nothing of it runs on, no handler catches it."""


class ScriptPolicy:
    """Decision ``i`` (0-based, counted over the policy's life) takes ``plan[i]``, else WAIT."""

    run_id = "script-policy"
    model_version = "script-policy@1"

    def __init__(self, plan: dict[int, tuple[int, int, int]] | None = None, default: Callable[[int], tuple] | None = None) -> None:
        self.plan = dict(plan or {})
        self.default = default
        self.calls = 0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.predict(obs)

    def predict(self, obs: np.ndarray) -> np.ndarray:
        i = self.calls
        self.calls += 1
        if i in self.plan:
            return np.array(self.plan[i])
        return np.array(self.default(i) if self.default else (0, 0, 0))


class SyncedReplay(ReplaySource):
    """Replay whose every bar first sets the fake exchange's clock to just before that bar's
    close (the fake's last price is then the bar's close), then calls ``before_bar(i, bar)``."""

    def __init__(self, market, start, end, fake, before_bar: Callable[[int, Any], None] | None = None) -> None:
        super().__init__(market, start, end)
        self.fake = fake
        self.before_bar = before_bar
        self.index = 0

    def bars(self, on_tick=None, on_error=None):
        for sb in super().bars(on_tick, on_error):
            close_ms = sb.bar.ts_ms + int(self._tf.value // 1_000_000)
            self.fake.set_now(close_ms - 1)
            self.index = int(self.market.candles.index.searchsorted(sb.bar.time))
            if self.before_bar is not None:
                self.before_bar(self.index, sb.bar)
            yield sb


class CrashingClient(ExchangeClient):
    """An exchange client whose process can be killed before or after a given request."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.kill_when: Callable[[str, str], bool] | None = None  # (what, "before" | "after") -> die now?
        self.calls = 0

    def call(self, what, fn, *args, **kwargs):
        self.calls += 1
        if self.kill_when is not None and self.kill_when(what, "before"):
            raise Killed(f"before {what}")
        out = super().call(what, fn, *args, **kwargs)
        if self.kill_when is not None and self.kill_when(what, "after"):
            raise Killed(f"after {what}")
        return out


def real_client(fake, *, max_retries: int = 3, fast_signing: bool = False, timeout_ms: int | None = None) -> CrashingClient:
    """The real ccxt ``aster`` client pointed at ``fake``. ``fast_signing`` swaps the EIP-712
    signature (about 8 ms of pure Python per request) for a constant: the fake accepts any
    signature, and the signing itself is covered by the tests that keep it."""
    cfg = DataConfig(api_url=fake.url, rate_limit_ms=0, retry_backoff_s=0, max_retries=max_retries)
    ex = make_exchange(cfg, Secrets(private_key=TEST_KEY))
    if fast_signing:
        ex.sign_message = lambda message, key: "0x" + "11" * 65
        ex.eth_encode_structured_data = lambda domain, types, values: b""
    if timeout_ms is not None:
        ex.timeout = timeout_ms
    return CrashingClient(ex, max_retries=max_retries, retry_backoff_s=0)


def real_runner(tmp_path, fake, db, market, policy, *, start: int, end: int, client=None, before_bar=None,
                session: str = "real-s", env: EnvConfig | None = None, **kw) -> LiveRunner:
    env = env or EnvConfig()
    client = client or real_client(fake)
    prices = LivePrices(market.timeframe)
    live = permissive_live(tmp_path)
    broker = RealBroker(client, SYMBOL, env, live, prices)
    source = SyncedReplay(market, start, end, fake, before_bar)
    return LiveRunner(policy, source, broker, db, env_cfg=env, live_cfg=live, features_cfg=FEATS, session_id=session,
                      mode="real", features="batch", prices=prices, store_observations=False, **kw)


def resting(fake) -> dict[str, list[dict[str, Any]]]:
    """The fake's open orders by type."""
    out: dict[str, list[dict[str, Any]]] = {}
    for o in fake.account.orders.values():
        if o["status"] in ("NEW", "PARTIALLY_FILLED"):
            out.setdefault(o["type"], []).append(o)
    return out


def position_amount(fake) -> float:
    pos = fake.account.positions.get("ASTERUSDT")
    return float(pos.amount) if pos is not None else 0.0
