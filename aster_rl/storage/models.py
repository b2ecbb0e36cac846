"""SQLAlchemy 2 declarative models: the tables of the project's memory.

Timestamps are integer epoch milliseconds (UTC) in ``BigInteger`` columns; only generic
types are used, so the same models work on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

# 3: live_leases. The unused regimes and btc_cycles tables left the models without a new
# version: a schema 3 database that still has them works (extra tables are never read).
# 4: live_commands (pause / resume / flatten / stop requested from the dashboard).
SCHEMA_VERSION = 4


class Base(DeclarativeBase):
    if TYPE_CHECKING:  # every model here maps one Table (SQLAlchemy types __table__ as the wider FromClause)
        __table__: ClassVar[Table]


class SchemaVersion(Base):
    __tablename__ = "schema_version"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)


class CandleSeries(Base):
    """One candle series: (source, symbol, timeframe). Candles refer to it by a small integer id,
    which keeps the candle key compact (inserts about 1.5x faster on SQLite than a text key)."""

    __tablename__ = "candle_series"
    __table_args__ = (UniqueConstraint("source", "symbol", "timeframe", name="uq_candle_series"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    timeframe: Mapped[str] = mapped_column(String(8))


class Candle(Base):
    """A bar, keyed by (series, open time); see :class:`CandleSeries` for source/symbol/timeframe."""

    __tablename__ = "candles"
    __table_args__ = ({"sqlite_with_rowid": False},)

    series_id: Mapped[int] = mapped_column(AutoId, ForeignKey("candle_series.id"), primary_key=True, autoincrement=False)
    ts: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # bar open time, epoch ms
    open: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    close: Mapped[float] = mapped_column(Float)
    volume: Mapped[float] = mapped_column(Float)
    quote_volume: Mapped[float | None] = mapped_column(Float, nullable=True)
    trades: Mapped[float | None] = mapped_column(Float, nullable=True)
    taker_buy_volume: Mapped[float | None] = mapped_column(Float, nullable=True)


class FundingRate(Base):
    __tablename__ = "funding_rates"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # settlement time, epoch ms
    funding_rate: Mapped[float] = mapped_column(Float)
    mark_price: Mapped[float | None] = mapped_column(Float, nullable=True)


class Trade(Base):
    __tablename__ = "trades"
    __table_args__ = (Index("ix_trades_source_symbol_ts", "source", "symbol", "ts"),)

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    trade_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    price: Mapped[float] = mapped_column(Float)
    amount: Mapped[float] = mapped_column(Float)
    side: Mapped[str] = mapped_column(String(4))  # the taker's side: "buy" / "sell"
    notional_usd: Mapped[float | None] = mapped_column(Float, nullable=True)


class OrderBookSnapshot(Base):
    __tablename__ = "orderbook_snapshots"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    best_bid: Mapped[float] = mapped_column(Float)
    best_ask: Mapped[float] = mapped_column(Float)
    bid_depth_usd: Mapped[float] = mapped_column(Float)
    ask_depth_usd: Mapped[float] = mapped_column(Float)
    largest_bid_usd: Mapped[float] = mapped_column(Float)
    largest_ask_usd: Mapped[float] = mapped_column(Float)


class Prediction(Base):
    """Every live decision and, later, its outcome."""

    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_run_ts", "run_id", "ts"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    ts: Mapped[int] = mapped_column(BigInteger, index=True)  # decision time (bar close), epoch ms
    symbol: Mapped[str] = mapped_column(String(64), default="")
    run_id: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(128))
    schema_hash: Mapped[str] = mapped_column(String(64))
    observation: Mapped[Any] = mapped_column(JSON, nullable=True)
    side: Mapped[str] = mapped_column(String(8))  # WAIT / BUY / SELL
    leverage: Mapped[int] = mapped_column(Integer, default=1)
    profile: Mapped[str | None] = mapped_column(String(16), nullable=True)
    entry_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    stop_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    target_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    value_estimate: Mapped[float | None] = mapped_column(Float, nullable=True)
    reasoning: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open / win / loss / ...
    pnl_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    fees_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    funding_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    closed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    pattern: Mapped[str | None] = mapped_column(String(128), nullable=True)
    session_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)  # live runner session
    mode: Mapped[str | None] = mapped_column(String(16), nullable=True)  # paper / real / replay
    action: Mapped[Any] = mapped_column(JSON, nullable=True)  # raw (side, leverage index, profile index)
    risk: Mapped[str | None] = mapped_column(Text, nullable=True)  # risk-guard refusals / caps, if any
    entry_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # fill time of the entry, epoch ms
    exit_price: Mapped[float | None] = mapped_column(Float, nullable=True)


class Pattern(Base):
    """The pattern library: one row per named pattern with its running statistics."""

    __tablename__ = "patterns"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    definition: Mapped[Any] = mapped_column(JSON)
    side: Mapped[str] = mapped_column(String(8))
    profile: Mapped[str | None] = mapped_column(String(16), nullable=True)
    trades: Mapped[int] = mapped_column(Integer, default=0)
    wins: Mapped[int] = mapped_column(Integer, default=0)
    losses: Mapped[int] = mapped_column(Integer, default=0)
    avg_win: Mapped[float | None] = mapped_column(Float, nullable=True)
    avg_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    profit_factor: Mapped[float | None] = mapped_column(Float, nullable=True)
    expectancy: Mapped[float | None] = mapped_column(Float, nullable=True)
    win_rate_lower_bound: Mapped[float | None] = mapped_column(Float, nullable=True)
    best_regime: Mapped[str | None] = mapped_column(String(32), nullable=True)
    best_cycle_phase: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="candidate")  # candidate/active/promoted/demoted
    updated_at: Mapped[int] = mapped_column(BigInteger)


class PatternHistory(Base):
    __tablename__ = "pattern_history"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    pattern_name: Mapped[str] = mapped_column(String(128), index=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(32))  # created / updated / promoted / demoted
    snapshot: Mapped[Any] = mapped_column(JSON, nullable=True)


class LiveOrder(Base):
    """Every order the live runner places, written before it is sent (client order id = key)."""

    __tablename__ = "live_orders"

    client_order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(128), index=True)
    prediction_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ts: Mapped[int] = mapped_column(BigInteger)  # decision time, epoch ms
    kind: Mapped[str] = mapped_column(String(16))  # entry / stop / target / exit
    side: Mapped[str] = mapped_column(String(8))  # buy / sell
    qty: Mapped[float] = mapped_column(Float)
    trigger_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="new")  # new / open / filled / canceled / rejected
    exchange_order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fill_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    filled_qty: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class LiveState(Base):
    """The live runner's state per session (account snapshot, pending order, last bar), as JSON."""

    __tablename__ = "live_state"

    session_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class RiskEvent(Base):
    """A risk-guard refusal (or cap), a flatten or stop, or a failure that cost a decision, with its reason."""

    __tablename__ = "risk_events"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(128), index=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    rule: Mapped[str] = mapped_column(String(32))  # a guard rule, or fault / data (a failure the runner survived)
    action: Mapped[str] = mapped_column(String(16))  # refused / capped / stopped / flattened / skipped / waiting
    reason: Mapped[str] = mapped_column(Text)


class LiveLease(Base):
    """Which runner holds a live session: one runner per session. The holder renews it every bar
    (and between bars); one not renewed for ``timeout_s`` may be taken over."""

    __tablename__ = "live_leases"

    session_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    token: Mapped[str] = mapped_column(String(64))  # the holding runner's random id
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[int] = mapped_column(BigInteger)  # epoch ms (wall clock)
    renewed_at: Mapped[int] = mapped_column(BigInteger)
    timeout_s: Mapped[float] = mapped_column(Float)  # the holder's own lease timeout


class LiveCommand(Base):
    """A control request for a live session (pause / resume / flatten / stop), written by the
    dashboard; the runner reads the open ones once per bar, acts on each (or refuses it) and
    records what it did here and as a risk event."""

    __tablename__ = "live_commands"
    __table_args__ = (Index("ix_live_commands_session_status", "session_id", "status"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(128))
    command: Mapped[str] = mapped_column(String(16))  # pause / resume / flatten / stop
    requested_at: Mapped[int] = mapped_column(BigInteger)  # epoch ms (wall clock)
    source: Mapped[str] = mapped_column(String(64), default="dashboard")  # who asked (never a token)
    status: Mapped[str] = mapped_column(String(16), default="new")  # new / done / refused / failed
    handled_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)  # what the runner did, or why it refused
