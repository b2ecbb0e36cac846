"""Seeded chaos schedules for the real broker: the live runner, the real ccxt client and the
loopback fake exchange, with faults drawn per bar (rejects, 429, 503, lost replies, timeouts,
partial fills, outside closes, price gaps through the stop) and the runner's process killed
at random requests (the runner object is abandoned mid-bar and a new one starts on the same
database, as after ``kill -9``; the abandoned runner's lease is released where a dead
process's would expire).

After every bar that completes: an open position has one resting reduce-only stop of its
size on the closing side, or a close in flight; no protective order rests without a
position. A bar whose decision a fault cost (the exchange did not answer past the client's
retries) is counted apart: nothing can place a stop then; the next bar that runs repairs. At the end (faults off, one more restart, then the kill switch's flatten): every
prediction is resolved, every order of ours on the exchange is stored once and every
opening order on the exchange is a stored entry, nothing rests, and the ledger (starting
balance + the PnL of every closed prediction) equals the exchange's wallet.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aster_rl.config import EnvConfig
from aster_rl.errors import AsterError
from aster_rl.testing.fake_exchange import FakeAsterExchange
from aster_rl.storage import live_store
from factories import make_market
from live_helpers import FixedPolicy, make_db
from real_harness import Killed, position_amount, real_client, real_runner, resting

ORDER = "/fapi/v3/order"
PATHS = (ORDER, "/fapi/v3/positionRisk", "/fapi/v3/balance", "/fapi/v3/openOrders", "/fapi/v3/userTrades", None)
FAULT_KINDS = ("reject", "429", "503", "lost reply", "timeout", "partial fill", "external close", "gap through stop", "kill -9")
START = 300  # bars of history before the schedule (the features' warm-up)
BALANCE = 10_000.0
MAX_RESTARTS = 300


@dataclass
class ScheduleResult:
    seed: int
    bars: int = 0
    faults: Counter = field(default_factory=Counter)
    restarts: int = 0
    crashes: int = 0  # restarts after an exchange error escaped the runner (no process kill)
    lost_decisions: int = 0  # bars whose decision a fault cost (the runner carried on)
    outage_unprotected: int = 0  # such bars that ended with a position short of its stop (the next bar that runs repairs)
    outage_orphans: int = 0  # ... with a protective order left without a position
    trades: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _check_bar(fake, broker, label: str) -> list[str]:
    """The per-bar invariants, read from the exchange itself."""
    out = []
    amount = position_amount(fake)
    protective = [o for t in ("STOP_MARKET", "TAKE_PROFIT_MARKET") for o in resting(fake).get(t, [])]
    if amount == 0:
        if protective:
            out.append(f"{label}: orphan protective order(s) {[o['clientOrderId'] for o in protective]} without a position")
        return out
    exit_side = "SELL" if amount > 0 else "BUY"
    stops = [o for o in resting(fake).get("STOP_MARKET", []) if o["reduceOnly"] and o["side"] == exit_side]
    covered = len(stops) == 1 and abs(float(stops[0]["origQty"]) - abs(amount)) < 1e-9
    if not covered and broker.flattening is None:
        out.append(f"{label}: position {amount:g} without a stop of its size (stops {[o['origQty'] for o in stops]})")
    return out


class FaultSchedule:
    """The faults of one seeded schedule, drawn bar by bar before each bar is processed
    (``before_bar`` of the harness); ``client`` is the exchange client of the running process."""

    def __init__(self, fake: FakeAsterExchange, rng: np.random.Generator, res: ScheduleResult, end: int,
                 timeout_s: float) -> None:
        self.fake, self.rng, self.res, self.end, self.timeout_s = fake, rng, res, end, timeout_s
        self.client: Any = None

    def __call__(self, i: int, bar: Any) -> None:
        if i >= self.end - 1:  # the last bar: faults off, the end checks follow
            self.fake.clear_faults()
            return
        pos = position_amount(self.fake)
        r = self.rng.random(9)
        self._replies(r)
        self._account(r, pos)
        if r[8] < 0.03:
            self._kill_process()

    def _replies(self, r: np.ndarray) -> None:
        """Rejections, rate limits, 503s, lost replies, timeouts."""
        fake, rng, faults = self.fake, self.rng, self.res.faults
        if r[0] < 0.04:
            code, msg = [(-2021, "Order would immediately trigger."), (-2019, "Margin is insufficient."),
                         (-4164, "Order's notional must be no smaller than 5.")][rng.integers(3)]
            fake.fail_next(1, 400, code=code, msg=msg, path=ORDER, method="POST", after=int(rng.integers(0, 3)))
            faults["reject"] += 1
        if r[1] < 0.05:
            fake.fail_next(int(rng.integers(1, 7)), 429, path=PATHS[rng.integers(len(PATHS))], after=int(rng.integers(0, 4)))
            faults["429"] += 1
        if r[2] < 0.06:
            fake.fail_next(int(rng.integers(1, 9)), 503, path=PATHS[rng.integers(len(PATHS))], after=int(rng.integers(0, 4)))
            faults["503"] += 1
        if r[3] < 0.05:
            fake.fail_next(int(rng.integers(1, 3)), 503, path=ORDER, method="POST", processed=True, after=int(rng.integers(0, 3)))
            faults["lost reply"] += 1
        if r[4] < 0.01:
            fake.fail_next(1, 504, path=ORDER, method="POST", processed=True, delay_s=self.timeout_s + 0.1)
            faults["timeout"] += 1

    def _account(self, r: np.ndarray, pos: float) -> None:
        """Partial fills, external closes, gaps through the stop."""
        fake, faults = self.fake, self.res.faults
        if r[5] < 0.06:
            fake.account.fill_partly_next(float(self.rng.uniform(0.2, 0.8)))
            faults["partial fill"] += 1
        if pos and r[6] < 0.03:
            fake.account.close_externally()
            faults["external close"] += 1
        stops = resting(fake).get("STOP_MARKET", [])
        if pos and stops and r[7] < 0.04:
            stop = float(stops[0]["stopPrice"])
            fake.gap_to(stop * (0.9 if pos > 0 else 1.1))  # trades through the stop: it fills at the gap
            fake.gap_to(None)
            faults["gap through stop"] += 1

    def _kill_process(self) -> None:
        """kill -9 before or after one of the next requests."""
        n = int(self.rng.integers(1, 12))
        when = "before" if self.rng.random() < 0.5 else "after"
        count = {"left": n}

        def kill_when(what: str, moment: str) -> bool:
            if moment != when:
                return False
            count["left"] -= 1
            return count["left"] == 0

        self.client.kill_when = kill_when
        self.res.faults["kill -9"] += 1


def _checked_bars(runner: Any, fake: FakeAsterExchange, res: ScheduleResult, seed: int) -> None:
    """After every bar the runner completes: the invariant checks (an outage's are counted apart)."""
    original = runner.process_bar

    def process_bar(bar, last=False):
        lost = runner.summary.lost_decisions
        original(bar, last)
        res.bars += 1
        problems = _check_bar(fake, runner.broker, f"seed {seed} bar {bar.time}")
        if runner.summary.lost_decisions > lost:  # the exchange did not answer this bar: the next one must repair
            res.outage_unprotected += any("without a stop" in p for p in problems)
            res.outage_orphans += any("orphan" in p for p in problems)
        else:
            res.violations.extend(problems)

    runner.process_bar = process_bar


def run_schedule(seed: int, bars: int, workdir: Path, *, timeout_s: float = 0.15, env: EnvConfig | None = None) -> ScheduleResult:
    """One seeded schedule of ``bars`` bars (on ``env``'s account settings, the default's when None); returns
    what was injected and every violation seen."""
    rng = np.random.default_rng(seed)
    res = ScheduleResult(seed)
    started = time.perf_counter()
    market = make_market(START + bars + 2, seed=1000 + seed)
    start, end = START, START + bars
    first_ms = int(market.candles.index[start].value // 1_000_000) - 1
    db = make_db(workdir, f"chaos-{seed}.db")
    policy = FixedPolicy(n_lev=3)
    with FakeAsterExchange(market, balance_usdt=BALANCE, now=first_ms) as fake:
        inject = FaultSchedule(fake, rng, res, end, timeout_s)

        def build():
            client = real_client(fake, fast_signing=True, timeout_ms=int(timeout_s * 1000))
            inject.client = client
            runner = real_runner(workdir, fake, db, market, policy, start=start, end=end, client=client, before_bar=inject,
                                 session=f"chaos-{seed}", env=env)
            _checked_bars(runner, fake, res, seed)
            return runner

        while True:
            runner = build()
            try:
                runner.run()
                res.lost_decisions += runner.summary.lost_decisions
                break
            except Killed:
                res.restarts += 1
            except AsterError:  # an exchange failure escaped the runner: it stops; it is started again
                res.restarts += 1
                res.crashes += 1
            res.lost_decisions += runner.summary.lost_decisions
            if res.restarts > MAX_RESTARTS:
                res.violations.append(f"seed {seed}: still failing after {MAX_RESTARTS} restarts")
                return res
        # the end: faults off, a restart (it reconciles), then the kill switch's flatten
        fake.clear_faults()
        runner = build()
        runner.start()
        runner._kill(None)
        res.violations.extend(_end_checks(fake, db, f"chaos-{seed}", seed))
        res.trades = int(live_store.predictions(db, session_id=f"chaos-{seed}")["status"].isin(["win", "loss"]).sum())
        db.dispose()
    res.seconds = time.perf_counter() - started
    return res


def _end_checks(fake, db, session: str, seed: int) -> list[str]:
    out = []
    preds = live_store.predictions(db, session_id=session)
    unresolved = preds[preds["status"].isin(["pending", "open"])]
    if len(unresolved):
        out.append(f"seed {seed}: {len(unresolved)} unresolved prediction(s): {unresolved[['ts', 'status']].to_dict('records')}")
    stored = {o["client_order_id"]: o for o in live_store.orders(db, session)}
    ours = [o for o in fake.account.orders.values() if o["clientOrderId"].startswith("ar")]
    ids = [o["clientOrderId"] for o in ours]
    if len(ids) != len(set(ids)):
        out.append(f"seed {seed}: a client order id reached the exchange twice")
    unknown = [cid for cid in ids if cid not in stored]
    if unknown:
        out.append(f"seed {seed}: orders on the exchange that were never stored: {unknown}")
    opening = [o for o in ours if o["type"] == "MARKET" and not o["reduceOnly"]]
    not_entries = [o["clientOrderId"] for o in opening if stored.get(o["clientOrderId"], {}).get("kind") != "entry"]
    if not_entries:
        out.append(f"seed {seed}: opening orders that are no stored entry: {not_entries}")
    if position_amount(fake) != 0 or resting(fake):
        out.append(f"seed {seed}: after the final flatten: position {position_amount(fake)}, resting {list(resting(fake))}")
    closed = preds[preds["status"].isin(["win", "loss"])]
    ledger = BALANCE + float(closed["pnl_usd"].sum())
    if abs(ledger - fake.account.wallet_usdt) > 1e-6:
        out.append(f"seed {seed}: ledger equity {ledger:.6f} != exchange wallet {fake.account.wallet_usdt:.6f}")
    return out


def chaos_table(results: list[ScheduleResult]) -> str:
    faults: Counter[str] = Counter()
    for r in results:
        faults.update(r.faults)
    violations = sum(len(r.violations) for r in results)
    lines = [
        f"schedules                 {len(results)}",
        f"bars processed            {sum(r.bars for r in results)}",
        f"closed trades             {sum(r.trades for r in results)}",
        f"restarts                  {sum(r.restarts for r in results)} ({sum(r.crashes for r in results)} after an exchange error escaped the runner)",
        f"decisions lost to faults  {sum(r.lost_decisions for r in results)} (the runner carried on)",
        (f"  of those bars, ended with a position short of its stop: {sum(r.outage_unprotected for r in results)}, "
         f"with an orphan order: {sum(r.outage_orphans for r in results)} (repaired by the next bar that ran)"),
        "faults injected by kind:",
        *[f"  {k:<22}  {faults.get(k, 0)}" for k in FAULT_KINDS],
        f"  {'total':<22}  {sum(faults.values())}",
        f"invariant violations      {violations}",
        f"seconds                   {sum(r.seconds for r in results):.1f}",
    ]
    return "\n".join(lines)


def _one(args: tuple[int, int, str, EnvConfig | None]) -> ScheduleResult:
    import logging
    import tempfile

    seed, bars, root, env = args
    logging.disable(logging.CRITICAL)  # thousands of injected faults: their warnings are expected
    with tempfile.TemporaryDirectory(dir=root) as d:
        return run_schedule(seed, bars, Path(d), env=env)


def run_chaos(seeds: range | list[int], bars: int, *, workers: int = 2, root: str | None = None,
              env: EnvConfig | None = None) -> list[ScheduleResult]:
    """Every schedule, ``workers`` at a time (each with its own fake exchange and database), on ``env``."""
    import multiprocessing
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    root = root or tempfile.gettempdir()
    jobs = [(int(s), int(bars), root, env) for s in seeds]
    if workers <= 1:
        return [_one(j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_one, jobs))
