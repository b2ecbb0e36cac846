"""The live runner: one closed bar at a time, data -> features -> observation -> policy ->
risk guard -> broker -> prediction log, with its state in the database.

Per closed bar *t* (:meth:`LiveRunner.process_bar`):

1. append the bar to the price buffer (the accounting core's arrays);
2. the kill switch: if requested, flatten, record, stop; then the session's open commands
   (``live_commands``, written by the dashboard): ``pause`` (no new positions until
   ``resume``; an open position keeps its stop and target and may still be closed),
   ``resume``, ``flatten`` (through the broker's flatten, as the kill switch does), ``stop``
   (flatten and stop, as the kill switch does); each is marked done / refused / failed
   with what was done and stored as a ``command`` risk event;
3. the broker runs the bar: the order decided at *t - 1* fills at *t*'s open (paper), or
   the exchange's position is checked (real); trades that closed become outcomes of the
   predictions that opened them (win / loss, PnL after costs, exit reason, fees, funding);
4. the feature row of *t* (``features="batch"``: a matrix built once over the stored
   replay range, exact and fast, valid because every tentacle is causal, proven by the
   look-ahead tests; ``"incremental"``: the runner's one
   :class:`aster_rl.features.stream.FeatureStream`, started at start-up from the whole
   history known then and fed each bar only the last ``min_bars`` bars known at *t*'s
   close, so the cost per bar does not grow with the history), the observation (the
   env's code), the policy's decision;
5. the risk guard (refusals and caps are stored with their reasons);
6. ONE database transaction stores the prediction, the orders about to be sent (client
   order ids), the outcomes and the runner's state; only then are orders sent. An entry
   that opens no position resolves its prediction as ``skipped`` with the true reason
   (``exit_reason``; details such as the exchange's message in ``risk``): below the minimum
   notional in that same transaction (real: no order is placed), rejected or not filled
   in the one that follows the replies, with the state (paper: the core reports the skip
   at the fill, the next bar).

Faults: an exchange or database failure during a bar (after the client's own retries and
the database's busy timeout) costs that bar's decision, never the runner: one short line
is logged (the error's first line: never an SQL statement or an observation), a ``fault``
risk event is stored when the database is reachable, and what the bar produced (closed
trades) is kept in memory and stored with the next transaction that succeeds. An entry
whose decision could not be stored is never sent. The exchange source retries a failed
poll with a growing backoff (``live.retry_backoff_s`` doubling up to ``live.max_backoff_s``)
and keeps calling the runner between tries: data stale past ``live.stale_after_bars``
flattens the position (through the broker's flatten) once, and no position is opened
until fresh bars arrive. The kill switch also flattens through the broker, resolves every
pending entry with the reason, and stops.

One runner per session: a lease in the database (:func:`live_store.acquire_lease`) is
taken at start-up (a second runner is refused, named by pid and host), renewed in every
bar's transaction and between bars, released when :meth:`LiveRunner.run` returns; a
crashed runner's lease expires after ``live.lease_timeout_s``. A runner whose lease was
taken over stops (:class:`live_store.LeaseLost`). A restart reconciles the broker with the
exchange (``reconcile_orders``) before its first decision, and decides nothing until that
succeeded; so does a runner whose orders may have been sent when a failure struck.

Pattern library: an entry is matched against the stored library's active and promoted
patterns (loaded once when the session starts and kept in its state; see
:mod:`aster_rl.live.pattern_outcomes`); the best matching pattern of the entry's side is
named on the prediction, and when that trade closes, its net return updates the
pattern's statistics and status in the transaction that writes the outcome, exactly once.

A restart with the same ``session_id`` resumes from the stored state: bars already
processed are not processed again, so no prediction is lost or stored twice (the feature
stream is started again from the stored history up to the last processed bar, which gives
the rows it would have given without the restart), and an
order that was stored but maybe not sent is looked up by its client order id before it
is sent again (see :class:`aster_rl.live.real_broker.RealBroker`).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aster_rl.config import EnvConfig, FeaturesConfig, LiveConfig, PatternsConfig
from aster_rl.errors import DataError, ExchangeError, RiskRefusal, StorageError
from aster_rl.live.bars import Bar, LivePrices
from aster_rl.live.brokers import SIDE_NAMES, WAIT, BarResult
from aster_rl.live.pattern_outcomes import PatternMatcher, outcome_update
from aster_rl.interfaces import BarSource, Broker, Policy
from aster_rl.live.policy import decide, model_trained_at, model_version, run_id, tentacle_effects
from aster_rl.live.sources import ReplaySource
from aster_rl.evaluation.support import SupportTally, support_of
from aster_rl.live.risk import AccountView, RiskEvent, RiskGuard, Verdict, brief
from aster_rl.storage import live_store
from aster_rl.data.timeframes import timeframe_to_timedelta
from aster_rl.sim.decision import broker_position, gate_side, target_mode

logger = logging.getLogger(__name__)

STATE_VERSION = 1
TRANSIENT = (ExchangeError, StorageError)  # failures that cost a decision, never the runner


@dataclass
class RunSummary:
    session_id: str
    bars: int = 0
    decisions: int = 0
    trades: list[dict[str, Any]] = field(default_factory=list)
    actions: list[tuple[int, int, int]] = field(default_factory=list)  # as executed (after the risk guard)
    decision_times: list[pd.Timestamp] = field(default_factory=list)  # open time of each decision bar
    equity: list[float] = field(default_factory=list)  # after each processed bar
    latencies_s: list[float] = field(default_factory=list)  # new bar -> orders sent
    stopped_by: str | None = None
    final_equity: float | None = None
    lost_decisions: int = 0  # bars whose decision an exchange or database failure cost
    faults: list[str] = field(default_factory=list)  # one line per such failure


def readings_of_row(schema: Any, row: np.ndarray) -> dict[str, str]:
    """The tentacles' human readings of one feature row, by tentacle (empty ones left out)."""
    from aster_rl.features.brain import readings

    texts = readings(pd.Series(np.asarray(row, dtype=float), index=list(schema.names)), schema)
    return {name: text for name, text in texts.items() if text}


class LiveRunner:
    """Drives a policy over a bar source through a broker (see the module docstring)."""

    def __init__(
        self,
        policy: Policy,
        source: BarSource,
        broker: Broker,
        db: Any,
        *,
        env_cfg: EnvConfig,
        live_cfg: LiveConfig,
        features_cfg: FeaturesConfig,
        session_id: str,
        mode: str = "paper",
        features: str = "auto",
        prices: LivePrices | None = None,
        store_observations: bool = True,
        after_store: Callable[[int], None] | None = None,
        freeze_gc: bool = False,
        patterns_cfg: PatternsConfig | None = None,
        use_patterns: bool = True,
        wall_clock: Callable[[], float] = time.time,
        banner: str | None = None,
    ) -> None:
        if features not in ("auto", "batch", "incremental"):
            raise ValueError(f"features = {features!r}: use 'auto', 'batch' or 'incremental'")
        if features == "batch" and not isinstance(source, ReplaySource):
            raise ValueError("features = 'batch' needs the replay source; live bars use 'incremental'")
        self.policy = policy
        self.source = source
        self.broker = broker
        self.db = db
        self.env_cfg = env_cfg
        self.live_cfg = live_cfg
        self.features_cfg = features_cfg
        self.session_id = session_id
        self.mode = mode
        self.feature_mode = ("batch" if isinstance(source, ReplaySource) else "incremental") if features == "auto" else features
        self.prices = prices if prices is not None else broker.prices
        self.store_observations = store_observations
        self.after_store = after_store  # called after the bar is stored, before orders are sent (tests)
        # After start-up, move every object alive then (history, model, caches) out of the garbage
        # collector's generations: a full collection over them takes 50-100 ms and would otherwise
        # land inside a bar now and then. Process-wide, so for a process that runs the runner.
        self.freeze_gc = freeze_gc
        self.patterns_cfg = patterns_cfg if patterns_cfg is not None else PatternsConfig()
        self.use_patterns = use_patterns
        self.patterns: PatternMatcher | None = None  # the library's usable patterns, loaded at start-up
        self.tf = timeframe_to_timedelta(source.timeframe)
        self.run_id = run_id(policy)
        self.model_version = model_version(policy)
        self.profile_names = list(env_cfg.exit_profiles)
        self.guard: RiskGuard | None = None
        self.schema: Any = None
        self._batch: Any = None
        self._batch_pos: dict[int, int] = {}
        self._stream: Any = None  # the FeatureStream of the incremental mode
        self._pending_pred: tuple[int, int | None] | None = None  # (decision ts ms, prediction id) of the pending entry
        self._position_pred: int | None = None  # prediction id of the open position
        self._pending_pattern: dict[str, Any] | None = None  # matched pattern (name, regime, phase) of the pending entry
        self._position_pattern: dict[str, Any] | None = None  # ... of the open position
        self._day: str | None = None
        self._day_start_equity = float(env_cfg.initial_equity_usd)
        self.summary = RunSummary(session_id)
        support = support_of(policy)
        self.support = SupportTally(support) if support is not None else None  # out-of-support share so far
        self._stop = False
        self.wall_clock = wall_clock  # the lease's clock (seconds), not the source's
        self.banner = banner  # e.g. "NOT DEPLOYABLE: ... — paper only", logged at start-up
        self.lease: live_store.Lease | None = None
        self._lease_renewed_s = 0.0
        self._unsaved_outcomes: list[dict[str, Any]] = []  # produced, not yet stored (a failed transaction)
        self._unsaved_events: list[dict[str, Any]] = []
        self._needs_reconcile = False  # no decision until the broker was reconciled with the exchange
        self._stale_flattened = False  # flattened for the current stretch of stale data
        self._kill_failed = False  # a failed kill flatten was recorded (once per stretch of failures)
        self._backlog: list[Bar] = []
        self._paused = False  # a dashboard "pause": no new positions until "resume"
        self._readings: dict[str, str] = {}  # the last decision's tentacle readings (in the state, for the dashboard)
        self._effects: dict[str, float] | None = None  # the last decision's P(side) moved per tentacle (idem)

    @property
    def risk(self) -> RiskGuard:
        """The risk guard (made by :meth:`start`)."""
        if self.guard is None:
            raise RuntimeError(f"live runner {self.session_id}: start() first")
        return self.guard

    # ------------------------------------------------------------ start-up
    def start(self) -> None:
        """Check the kill switch, rebuild the state (price buffer, broker, open trade) from the database."""
        if RiskGuard(self.live_cfg, self.env_cfg, self.source.timeframe).kill_requested():
            raise RiskRefusal(f"kill file {self.live_cfg.kill_file} exists: the runner was stopped; remove the file to start again")
        self.lease = live_store.acquire_lease(self.db, self.session_id, timeout_s=self.live_cfg.lease_timeout_s,
                                              now_ms=self._wall_ms())
        self._lease_renewed_s = self.wall_clock()
        try:
            self._start()
        except BaseException:
            self.release()
            raise

    def _start(self) -> None:
        state = live_store.load_state(self.db, self.session_id)
        history = self.source.history()
        backlog: list[Bar] = []
        if state is not None and state.get("last_bar_ts") is not None:
            last = pd.Timestamp(int(state["last_bar_ts"]), unit="ms", tz="UTC")
            if isinstance(self.source, ReplaySource):
                after = history[-1].time if history else pd.Timestamp(0, tz="UTC") - self.tf
                history = history + self.source.bars_between(after, last)
                self.source.resume_after = last
            else:
                backlog = [b for b in history if b.time > last]
                history = [b for b in history if b.time <= last]
        for bar in history:
            self.prices.append(bar)
        self._backlog = backlog
        self._setup_features()
        if self.use_patterns and self.schema is not None:
            kept = state.get("patterns") if state is not None else None  # the session's set, as first loaded
            if kept is not None:
                self.patterns = PatternMatcher.from_snapshot(kept, self.patterns_cfg, self.schema.names)
            else:
                self.patterns = PatternMatcher.load(self.db, self.patterns_cfg, self.schema.names)
        trained = model_trained_at(self.policy)
        problem = RiskGuard.check_model(self.live_cfg, trained, getattr(self.policy, "schema", None), self.schema)
        if problem:
            logger.warning("risk guard: %s; no new positions will be opened", problem)
        self.guard = RiskGuard(self.live_cfg, self.env_cfg, self.source.timeframe, model_problem=problem)
        if state is not None:
            self._restore(state)
        else:
            self._fresh_start()
        if self.freeze_gc:
            gc.collect()
            gc.freeze()
        self._renew_lease()  # a long warm-up must not let the lease lapse
        logger.info(
            "live runner %s: %s mode, %s features, %d bars of history, run %s (%s)",
            self.session_id, self.mode, self.feature_mode, len(self.prices), self.run_id, self.model_version,
        )
        if self.banner:
            logger.warning("live runner %s: %s", self.session_id, self.banner)

    def _fresh_start(self) -> None:
        self.broker.prepare()
        if self.broker.reconciles:  # a position already there is tracked and protected first
            self._needs_reconcile = True
            try:
                self._unsaved_outcomes += self._outcomes(self.broker.reconcile_orders(self.db, self.session_id, None), None)
                self._needs_reconcile = False  # (its outcomes are stored with the first bar)
            except TRANSIENT as e:
                logger.warning("session %s: reconciliation with the exchange failed (%s); no decision until it succeeds",
                               self.session_id, brief(e))

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise DataError(f"session {self.session_id}: stored state version {state.get('version')}, expected {STATE_VERSION}")
        self.broker.restore(state["broker"])
        pp = state.get("pending_prediction")
        self._pending_pred = (int(pp[0]), pp[1]) if pp else None
        if self._pending_pred is not None and self._pending_pred[1] is None:  # stored with its decision: look it up now
            ts = self._pending_pred[0]
            self._pending_pred = (ts, live_store.prediction_id_at(self.db, self.session_id, ts))
        self._position_pred = state.get("position_prediction")
        self._pending_pattern = state.get("pending_pattern")
        self._position_pattern = state.get("position_pattern")
        self._day = state.get("day")
        self._paused = bool(state.get("paused", False))
        self._day_start_equity = float(state.get("day_start_equity", self.env_cfg.initial_equity_usd))
        self._needs_reconcile = self.broker.reconciles
        self._reconcile(state.get("last_bar_ts"))
        logger.info("session %s resumed after bar %s", self.session_id, state.get("last_bar_ts"))

    def _reconcile(self, last_bar_ts: int | None) -> bool:
        """Reconcile the broker with the exchange if needed; False (logged) while that fails."""
        if not self._needs_reconcile:
            return True
        try:
            fresh_after_ms = int((self.source.now() - self.tf).value // 1_000_000)
            result = self.broker.reconcile_orders(self.db, self.session_id, fresh_after_ms)
            self._needs_reconcile = False
            self._unsaved_outcomes += self._outcomes(result, None)
            self._save(last_bar_ts)
        except TRANSIENT as e:
            logger.warning("session %s: reconciliation with the exchange failed (%s); no decision until it succeeds",
                           self.session_id, brief(e))
            return not self._needs_reconcile
        return True

    def _setup_features(self) -> None:
        from aster_rl.features.pipeline import build_features

        if self.feature_mode == "batch":
            if not isinstance(self.source, ReplaySource):
                raise ValueError("features = 'batch' needs the replay source")
            end = self.source.end
            market = self.source.market.window(None, self.source.market.candles.index[end - 1])
            self._batch = build_features(market, self.features_cfg)
            self._batch_pos = {int(v): i for i, v in enumerate(market.candles.index.as_unit("ns").asi8)}
            self.schema = self._batch.schema
        else:
            from aster_rl.features.stream import FeatureStream

            if not len(self.prices):
                raise DataError("live runner: no history bars; the features need a warm-up")
            last = pd.Timestamp(int(self.prices.timestamps[-1]), tz="UTC")
            market = self.source.market_at(last)
            # One stream for the whole session, started from the whole history known at the last
            # bar already seen (after a restart: the last processed bar), as the batch matrix is.
            self._stream = FeatureStream(self.features_cfg, self.source.timeframe)
            try:
                self._stream.update(market)
            except DataError as e:
                logger.warning("features at %s not ready: %s", last, e)  # the next bar starts the stream again
            if self._stream.columns:
                self.schema = self._stream.schema
            else:
                recent = market.window(market.candles.index[max(0, len(market) - 600)], None)
                self.schema = build_features(recent, self.features_cfg).schema

    def _feature_row(self, bar: Bar) -> np.ndarray | None:
        if self.feature_mode == "batch":
            pos = self._batch_pos.get(bar.ts_ns)
            if pos is None:
                raise DataError(f"replay: bar {bar.time} is not in the feature matrix")
            if pos < self._batch.warmup:
                return None
            row = self._batch.matrix[pos]
        else:
            stream = self._stream
            try:
                if stream.last_time is None or stream.last_time >= bar.time:
                    market = self.source.market_at(bar.time)  # (re)start from the whole history known now
                else:  # the last min_bars bars, reaching back to the stream's previous bar
                    market = self.source.recent_market(bar.time, stream.min_bars, since=stream.last_time)
                row = stream.update(market)
            except DataError as e:
                logger.warning("features at %s not ready: %s", bar.time, e)
                return None
        return row if np.isfinite(row).all() else None

    # ------------------------------------------------------------ state
    def _wall_ms(self) -> int:
        return int(self.wall_clock() * 1000)

    def _save(self, last_bar_ts: int | None, *, prediction: dict[str, Any] | None = None,
              orders: Sequence[dict[str, Any]] = (), events: Sequence[dict[str, Any]] = ()) -> int | None:
        """ONE transaction: the state, ``prediction``, ``orders``, ``events`` and everything an earlier
        failed transaction left unsaved; the lease is renewed in it. On failure the outcomes and
        events stay queued for the next one (the prediction and orders do not: that decision is lost)."""
        outcomes = self._unsaved_outcomes
        risk_events = self._unsaved_events + list(events)
        pred_id = live_store.record_bar(
            self.db, self.session_id, state=self._state(last_bar_ts), prediction=prediction, outcomes=outcomes,
            orders=list(orders), risk_events=risk_events, lease=self.lease, now_ms=self._wall_ms(),
        )
        self._unsaved_outcomes, self._unsaved_events = [], []
        self._lease_renewed_s = self.wall_clock()
        return pred_id

    def release(self) -> None:
        """Give the session's lease up (when this runner still holds it)."""
        lease, self.lease = self.lease, None
        if lease is None:
            return
        try:
            live_store.release_lease(self.db, lease)
        except StorageError as e:
            logger.warning("session %s: lease not released (%s); it expires after %g s", self.session_id, brief(e),
                           lease.timeout_s)

    def _renew_lease(self) -> None:
        """Between bars: renew the lease now and then (each bar's transaction renews it too)."""
        if self.lease is None or self.wall_clock() - self._lease_renewed_s < self.lease.timeout_s / 4:
            return
        try:
            live_store.renew_lease(self.db, self.lease, self._wall_ms())
            self._lease_renewed_s = self.wall_clock()
        except StorageError as e:
            logger.warning("session %s: lease not renewed (%s)", self.session_id, brief(e))

    def _state(self, last_bar_ts: int | None) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "last_bar_ts": last_bar_ts,
            "broker": self.broker.state(),
            "pending_prediction": list(self._pending_pred) if self._pending_pred else None,
            "position_prediction": self._position_pred,
            "pending_pattern": self._pending_pattern,
            "position_pattern": self._position_pattern,
            "patterns": self.patterns.snapshot() if self.patterns is not None else [],
            "day": self._day,
            "day_start_equity": self._day_start_equity,
            "equity": float(self.broker.equity),
            "paused": self._paused,
            "readings": self._readings,
            "effects": self._effects,  # P(side | all) - P(side | tentacle blanked), when the policy can say
            # the bars this runner process checked against the run's training support (for the dashboard)
            "support": self._support_counts(),
            "run_id": self.run_id,
            "model_version": self.model_version,
            "mode": self.mode,
        }

    def _support_counts(self) -> dict[str, Any] | None:
        """Bars this process checked against the run's training support, those outside it, the top columns."""
        if self.support is None:
            return None
        report = self.support.report()
        return {"bars": report.bars, "outside_bars": report.outside_bars, "top_columns": dict(report.top)}

    def _outcomes(self, result: BarResult, bar_ts_ns: int | None) -> list[dict[str, Any]]:
        """Closed trades and fills as updates of the predictions that opened them."""
        out: list[dict[str, Any]] = []
        pending_id = None
        if self._pending_pred is not None:
            pending_id = self._pending_pred[1]
            if pending_id is None:
                pending_id = live_store.prediction_id_at(self.db, self.session_id, self._pending_pred[0])
        opened_id = (result.opened or {}).get("prediction_id") or pending_id  # a broker that adopted a position names it
        if result.opened is not None and opened_id is not None:
            o = result.opened
            out.append({
                "prediction_id": opened_id, "status": "open", "entry_price": o["entry_price"],
                "entry_time": int(o["time"]) // 1_000_000,
                **({"stop_price": o["stop_price"]} if o.get("stop_price") is not None else {}),
                **({"target_price": o["target_price"]} if o.get("target_price") is not None else {}),
            })
        if result.skipped:
            pid = result.skipped_prediction_id if result.skipped_prediction_id is not None else pending_id
            if pid is not None:
                out.append({"prediction_id": pid, "status": "skipped", "exit_reason": result.skip_reason,
                            **({"risk_note": result.skip_detail} if result.skip_detail else {})})
            if pid is not None and pid == pending_id:  # that entry is resolved: nothing is pending any more
                self._pending_pred = None
                self._pending_pattern = None
                pending_id = None
        for tr in result.closed:
            same_bar = result.opened is not None and int(tr["entry_time"]) == int(result.opened["time"])
            pid = (opened_id if same_bar else self._position_pred) if tr.get("prediction_id") is None else tr["prediction_id"]
            if pid is None and pending_id is not None and self._position_pred is None:
                pid = pending_id
            ctx = self._pending_pattern if pid is not None and pid == pending_id else self._position_pattern
            out.append({
                "prediction_id": pid, "status": "win" if tr["pnl_usd"] > 0 else "loss", "pnl_usd": float(tr["pnl_usd"]),
                "exit_reason": tr["reason"], "fees_usd": float(tr["fees_usd"]), "funding_usd": float(tr["funding_usd"]),
                "closed_at": int(tr["exit_time"]) // 1_000_000, "exit_price": float(tr["exit_price"]),
                "pattern_update": outcome_update(tr, ctx, self.patterns_cfg),
            })
            self.summary.trades.append(tr)
            if pid == self._position_pred:
                self._position_pred = None
                self._position_pattern = None
        if result.opened is not None and opened_id is not None:
            still_open = not any(int(tr["entry_time"]) == int(result.opened["time"]) for tr in result.closed)
            if still_open:
                self._position_pred = opened_id
                self._position_pattern = self._pending_pattern
        if bar_ts_ns is not None or result.opened is not None:
            self._pending_pred = None  # the decision of the bar before has been carried out
            self._pending_pattern = None
        return out

    # ------------------------------------------------------------ the loop
    def run(self, max_bars: int | None = None) -> RunSummary:
        """Process bars until the source ends, the kill switch, bankruptcy or ``max_bars``; the
        lease is released however this returns."""
        try:
            if self.guard is None:
                self.start()
            for bar, last in self._backlog_then_source():
                self.process_bar(bar, last)
                if self._stop or (max_bars is not None and self.summary.bars >= max_bars):
                    break
            self.summary.final_equity = float(self.broker.equity)
            if self._unsaved_outcomes or self._unsaved_events:
                try:
                    self._save(self._last_ts())
                except StorageError as e:
                    logger.error("session %s: the last outcomes and events were not stored (%s)", self.session_id, brief(e))
            return self.summary
        finally:
            self.release()

    def _backlog_then_source(self) -> Iterator[tuple[Bar, bool]]:
        for bar in self._backlog:
            yield bar, False
        for sb in self.source.bars(on_tick=self._on_tick, on_error=self._on_source_error):
            yield sb.bar, sb.last

    def _on_tick(self, price: float | None, now: pd.Timestamp) -> bool:
        """Between bars (exchange source, also while it retries): kill switch, lease, stale data,
        and the paper broker's stop / target watch."""
        if self.risk.kill_requested():
            self._kill(None)
            return not self._stop
        self._renew_lease()
        if not len(self.prices):
            return True
        t = len(self.prices) - 1
        try:
            if not self._stale_flattened:
                stale = self.risk.stale_reason(pd.Timestamp(int(self.prices.timestamps[t]), tz="UTC"), now)
                if stale is not None:
                    self._flatten(t, "stale", RiskEvent("stale", "flattened", f"{stale}: flattened until fresh bars"),
                                  ts_ms=int(now.value // 1_000_000))
                    self._stale_flattened = True
            if price is not None:
                closed = self.broker.watch(price, int(now.value))
                if closed:
                    self._unsaved_outcomes += self._outcomes(BarResult(closed=closed), None)
            if self._unsaved_outcomes or self._unsaved_events:
                self._save(self._last_ts())
        except TRANSIENT as e:
            logger.warning("session %s: between bars: %s", self.session_id, brief(e))
        return not self._stop

    def _on_source_error(self, error: BaseException, attempt: int) -> None:
        """The source failed to fetch new bars (it retries): a risk event at the first failure of a stretch."""
        if attempt != 1:
            return
        now_ms = int(self.source.now().value // 1_000_000)
        self._unsaved_events.append(RiskEvent("data", "waiting", f"no new bars: {brief(error)}").as_row(now_ms))
        try:
            self._save(self._last_ts())
        except StorageError as e:
            logger.warning("session %s: risk event not stored yet (%s)", self.session_id, brief(e))

    def _last_ts(self) -> int | None:
        return int(self.prices.timestamps[-1]) // 1_000_000 if len(self.prices) else None

    def _flatten(self, t: int, reason: str, event: RiskEvent, *, ts_ms: int, all_pending: bool = False) -> None:
        """Close the position through the broker and resolve the pending entry (``all_pending``: every
        entry of the session still pending in the database) as skipped with ``reason``; the outcomes
        and ``event`` are queued for the next transaction. Raises (nothing queued) if the broker fails."""
        closed = self.broker.flatten(t, reason)
        outcomes = self._outcomes(BarResult(closed=closed), None)
        resolved = {o["prediction_id"] for o in outcomes}
        pending = [self._pending_pred[1]] if self._pending_pred is not None else []
        self._pending_pred = None
        self._pending_pattern = None
        if all_pending:
            try:
                pending += live_store.pending_prediction_ids(self.db, self.session_id)
            except StorageError as e:
                logger.warning("session %s: pending entries not read (%s)", self.session_id, brief(e))
        note = f"{event.rule} {event.action}: {event.reason}; the entry was not carried out"
        for pid in dict.fromkeys(pending):
            if pid is not None and pid not in resolved:
                outcomes.append({"prediction_id": pid, "status": "skipped", "exit_reason": reason, "risk_note": note})
        self._unsaved_outcomes += outcomes
        self._unsaved_events.append(event.as_row(ts_ms))
        logger.warning("session %s: %s %s: %s", self.session_id, event.rule, event.action, event.reason)

    def _kill(self, t: int | None, why: str | None = None) -> None:
        """Flatten, resolve every pending entry, record, stop; a failing broker is tried again at the next check."""
        t = len(self.prices) - 1 if t is None else t
        why = why or f"kill file {self.live_cfg.kill_file} exists"
        reason = f"{why}: flattened and stopped"
        try:
            self._flatten(t, "kill", RiskEvent("kill", "stopped", reason), ts_ms=self._last_ts() or 0, all_pending=True)
        except TRANSIENT as e:  # the broker left the stop and target resting: the position stays protected
            logger.warning("session %s: kill: flatten failed (%s); trying again at the next check", self.session_id, brief(e))
            if not self._kill_failed:  # recorded once per stretch of failures
                self._kill_failed = True
                self._unsaved_events.append(RiskEvent("kill", "waiting", f"{why}: flatten FAILED ({brief(e)}); the stop "
                                                      "stays; trying again").as_row(self._last_ts() or 0))
                try:
                    self._save(self._last_ts())
                except StorageError as e2:
                    logger.warning("session %s: risk event not stored yet (%s)", self.session_id, brief(e2))
            return
        self.summary.stopped_by = "kill"
        self._stop = True
        try:
            self._save(self._last_ts())
        except StorageError as e:
            logger.warning("session %s: kill not stored yet (%s)", self.session_id, brief(e))

    def process_bar(self, bar: Bar, last: bool = False) -> None:
        """One closed bar (see the module docstring); an exchange or database failure costs its decision."""
        started = time.perf_counter()
        t = self.prices.append(bar)
        self.summary.bars += 1
        if self.risk.kill_requested():
            self._kill(t)
            return
        close_ms = (bar.ts_ns + int(self.tf.value)) // 1_000_000
        self._commands(t, close_ms)
        if self._stop:
            return
        try:
            self._process(bar, t, last, close_ms, started)
        except TRANSIENT as e:
            self._lost(bar, t, close_ms, e)

    def _commands(self, t: int, close_ms: int) -> None:
        """The session's open commands, oldest first (see the module docstring). A command whose
        flatten failed stays open and is tried again at the next bar (the stop stays meanwhile)."""
        try:
            pending = live_store.open_commands(self.db, self.session_id)
        except StorageError as e:
            logger.warning("session %s: commands not read (%s)", self.session_id, brief(e))
            return
        for cmd in pending:
            outcome = self._command(str(cmd["command"]), t, close_ms)
            if outcome is not None:
                try:
                    if self._unsaved_outcomes or self._unsaved_events:  # stored before the command reads as handled
                        self._save(self._last_ts())
                    live_store.finish_command(self.db, int(cmd["id"]), outcome[0], outcome[1], now_ms=self._wall_ms())
                except StorageError as e:
                    logger.warning("session %s: command %s not marked handled (%s)", self.session_id, cmd["id"], brief(e))
            if self._stop:
                break

    def _command(self, command: str, t: int, close_ms: int) -> tuple[str, str] | None:
        """Carry one command out: (status, note), or None when it stays open (a stop whose flatten failed)."""
        if command == "stop":
            self._kill(t, "stop requested from the dashboard")
            return ("done", "flattened and stopped") if self._stop else None
        if command == "flatten":
            event = RiskEvent("command", "flattened", "flatten requested from the dashboard")
            try:
                self._flatten(t, "command", event, ts_ms=close_ms)
            except TRANSIENT as e:
                note = f"flatten FAILED ({brief(e)}); the stop stays"
                self._unsaved_events.append(RiskEvent("command", "failed", note).as_row(close_ms))
                return "failed", note
            return "done", "flattened"
        if command in ("pause", "resume"):
            was, self._paused = self._paused, command == "pause"
            note = ("paused: no new positions until resume; an open position keeps its stop and target"
                    if self._paused else "resumed: new positions allowed")
            if was == self._paused:
                note = f"already {'paused' if was else 'running'}"
            self._unsaved_events.append(RiskEvent("command", "paused" if self._paused else "resumed", note).as_row(close_ms))
            return "done", note
        note = f"unknown command {command!r}"
        self._unsaved_events.append(RiskEvent("command", "refused", note).as_row(close_ms))
        return "refused", note

    def _lost(self, bar: Bar, t: int, close_ms: int, error: BaseException) -> None:
        """The bar's decision is lost to ``error``: one line, a risk event (stored if the database answers)."""
        what = "database" if isinstance(error, StorageError) else "exchange"
        line = f"bar {bar.time:%Y-%m-%d %H:%M}: decision lost to a {what} failure: {brief(error)}"
        logger.warning("session %s: %s", self.session_id, line)
        self.summary.lost_decisions += 1
        self.summary.faults.append(line)
        self._unsaved_events.append(RiskEvent("fault", "skipped", line).as_row(close_ms))
        try:
            self._save(bar.ts_ms)
        except StorageError as e:
            logger.warning("session %s: risk event not stored yet (%s)", self.session_id, brief(e))

    def _process(self, bar: Bar, t: int, last: bool, close_ms: int, started: float) -> None:
        if not self._reconcile(self._last_ts()):
            raise ExchangeError("not reconciled with the exchange yet")
        result = self.broker.on_bar(t, last=last)
        self._unsaved_outcomes += self._outcomes(result, bar.ts_ns)
        equity = float(self.broker.equity)
        self.summary.equity.append(equity)
        day = str(pd.Timestamp(close_ms, unit="ms", tz="UTC").date())
        if day != self._day:
            self._day, self._day_start_equity = day, equity
        if result.bankrupt or last:
            self.summary.stopped_by = "bankrupt" if result.bankrupt else "end"
            self._stop = True
            self._save(bar.ts_ms)
            return
        now = self.source.now()
        stale = self.risk.stale_reason(bar.time, now)
        if stale is None:
            self._stale_flattened = False
        elif not self._stale_flattened:
            self._flatten(t, "stale", RiskEvent("stale", "flattened", f"{stale}: flattened until fresh bars"), ts_ms=close_ms)
            self._stale_flattened = True
        row = self._feature_row(bar) if self.prices.atr[t] > 0 else None
        if row is None:  # warm-up: no decision, the account only runs
            self._save(bar.ts_ms)
            return
        self._decide(bar, t, row, equity, now, close_ms)
        self.summary.latencies_s.append(time.perf_counter() - started)

    def _decide(self, bar: Bar, t: int, row: np.ndarray, equity: float, now: pd.Timestamp, close_ms: int) -> None:
        """The policy's decision on bar ``t``, reviewed, stored with its orders, then sent."""
        obs = self.broker.observation(row, t)
        if self.support is not None:
            self.support.check(row, bar.time)
        d = decide(self.policy, obs)
        side, lev_i, prof_i = d.action
        self._effects = tentacle_effects(self.policy, obs, side) if 0 <= side <= 2 else None
        if not (0 <= side <= 2 and 0 <= lev_i < len(self.env_cfg.leverages) and 0 <= prof_i < len(self.profile_names)):
            raise ValueError(f"policy action {d.action} outside the action space (3, {len(self.env_cfg.leverages)}, {len(self.profile_names)})")
        side = gate_side(side, bar.ts_ns, int(self.tf.value), self.env_cfg.decision_every, self.env_cfg.min_hold_bars,
                         *broker_position(self.broker), target_mode(self.env_cfg))  # the decision rule, as in training
        intent = self.broker.intended(side)
        view = AccountView(equity=equity, day_start_equity=self._day_start_equity, open_positions=self.broker.open_positions(),
                           opening=intent.startswith("open"))
        verdict = self.risk.review(side, lev_i, prof_i, view, last_bar_open=bar.time, now=now)
        if self._paused and not verdict.refused and self.broker.intended(verdict.side).startswith("open"):
            pause = RiskEvent("pause", "refused", "paused from the dashboard: no new positions")
            verdict = Verdict(WAIT, verdict.lev_i, verdict.prof_i, (*verdict.events, pause))
        side, lev_i, prof_i = verdict.side, verdict.lev_i, verdict.prof_i
        intent = self.broker.intended(side)
        prediction = self._prediction(bar, t, obs, row, d, (side, lev_i, prof_i), intent, verdict, close_ms)
        matched = self.patterns.match(row, intent) if self.patterns is not None and intent.startswith("open") else None
        prediction["pattern"] = matched["pattern"] if matched else None
        skip = self.broker.entry_skip_reason(t, side, lev_i) if intent.startswith("open") and not verdict.refused else None
        if skip is not None:  # no order can carry this entry out: the prediction is resolved here, with the bar
            logger.warning("entry at %s skipped: %s", bar.time, skip[1])
            prediction["status"], prediction["exit_reason"] = "skipped", skip[0]
            prediction["risk"] = "; ".join(x for x in (prediction["risk"], f"broker skipped: {skip[1]}") if x)
            intent = "none"
        orders = self.broker.planned_orders(t, side, lev_i, prof_i, close_ms, self.session_id) if skip is None else []
        if skip is None:
            self.broker.submit(t, side, lev_i, prof_i)
        if intent.startswith("open"):
            self._pending_pred = (close_ms, None)  # its id is looked up by time when the entry fills
            self._pending_pattern = matched
        try:
            pred_id = self._save(bar.ts_ms, prediction=prediction, orders=orders,
                                 events=[e.as_row(close_ms) for e in verdict.events])
        except StorageError:  # not stored: the decision is not carried out
            self._pending_pred = None
            self._pending_pattern = None
            self.broker.withdraw()
            raise
        if intent.startswith("open"):
            self._pending_pred = (close_ms, pred_id)
        self.summary.decisions += 1
        self.summary.actions.append((side, lev_i, prof_i))
        self.summary.decision_times.append(bar.time)
        if self.after_store is not None:
            self.after_store(t)
        if orders:
            self._send(orders, intent, bar)

    def _send(self, orders: list[dict[str, Any]], intent: str, bar: Bar) -> None:
        """Send the stored orders; their outcomes and the state are stored in one transaction."""
        self._needs_reconcile = self.broker.reconciles  # until the replies are in
        done = self.broker.execute(orders, self.db)
        self._needs_reconcile = False
        self._unsaved_outcomes += self._outcomes(done, None)  # a skipped entry resolves its prediction here (true reason)
        if done.opened is None and intent.startswith("open"):
            self._pending_pred = None
            self._pending_pattern = None
        if self._unsaved_outcomes or done.opened is not None or done.skipped:
            self._save(bar.ts_ms)

    def _prediction(self, bar, t, obs, row, d, action, intent, verdict, close_ms) -> dict[str, Any]:
        side, lev_i, prof_i = action
        profile = self.profile_names[prof_i]
        self._readings = readings_of_row(self.schema, row) if self.schema is not None else {}
        entry = stop = target = None
        if intent.startswith("open"):
            sgn = 1.0 if intent == "open_long" else -1.0
            atr = float(self.prices.atr[t])
            p = self.env_cfg.exit_profiles[profile]
            entry = float(bar.close)  # estimate: the fill is at the next bar's open
            stop, target = entry - sgn * p.stop_atr * atr, entry + sgn * p.target_atr * atr
        if verdict.refused:
            status = "refused"
        elif intent.startswith("open"):
            status = "pending"
        elif intent == "close":
            status = "exit"
        elif self.broker.open_positions():
            status = "hold"
        else:
            status = "wait"
        return {
            "ts": close_ms,
            "symbol": self.source.symbol,
            "run_id": self.run_id,
            "model_version": self.model_version,
            "schema_hash": getattr(self.schema, "hash", "") or "",
            "observation": [float(x) for x in obs] if self.store_observations else None,
            "side": SIDE_NAMES[side] if not verdict.refused else "WAIT",
            "action": [int(a) for a in d.action],
            "leverage": int(self.env_cfg.leverages[lev_i]),
            "profile": profile,
            "entry_price": entry,
            "stop_price": stop,
            "target_price": target,
            "confidence": d.confidence,
            "value_estimate": d.value,
            "reasoning": "; ".join(x for x in (d.reason, "; ".join(self._readings.values())) if x) or None,
            # an overridden decision says why first
            "status": status,
            "risk": "; ".join(f"{e.rule} {e.action}: {e.reason}" for e in verdict.events) or None,
            "session_id": self.session_id,
            "mode": self.mode,
        }
