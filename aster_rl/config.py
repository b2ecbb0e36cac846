"""One typed, immutable configuration: code defaults < TOML file < ``--set`` overrides.

Every section is a frozen pydantic model with ``extra="forbid"``, so a typo in a file or
an override fails with the name of the unknown key. Secrets never live here: they come
from environment variables through :func:`load_secrets` and are masked when printed.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from aster_rl.errors import AsterError, ConfigError

MAX_VENUE_LEVERAGE = 125  # the highest leverage any perpetual venue offers; ccxt refuses more at the first order
MAX_FEE_RATE = 0.01  # maker/taker fee rates are fractions of notional below 1%
MAX_SEED = 2**32 - 1  # numpy's legacy seeding (used by SB3) takes 32-bit seeds

# Strict scalars: a bool is not a number, a float is not a count, text is not either.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]  # accepts ints; every float is finite (allow_inf_nan=False below)
Bool = Annotated[bool, Strict()]
Seed = Annotated[int, Strict(), Field(ge=0, le=MAX_SEED)]
Leverage = Annotated[int, Strict(), Field(ge=1, le=MAX_VENUE_LEVERAGE)]
FeeRate = Annotated[float, Strict(), Field(ge=0, lt=MAX_FEE_RATE)]


def _non_empty_path(value: Any) -> Any:
    if isinstance(value, (str, Path)) and not str(value).strip():
        raise ValueError("an empty path; give a file or directory name")
    return value


def _date_text(value: Any) -> Any:
    """A TOML date/datetime becomes its ISO text; text must parse as a date/time."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, str):
        import pandas as pd

        from aster_rl.data.timeframes import parse_utc_time

        try:
            stamp = parse_utc_time(value, "date")
        except AsterError:
            raise ValueError(f"{value!r} is not a date/time; use e.g. 2025-09-19 or 2025-09-19T12:00Z") from None
        if not pd.Timestamp("1970-01-01", tz="UTC") <= stamp < pd.Timestamp("2200-01-01", tz="UTC"):
            raise ValueError(f"{value!r} is outside 1970..2199")
    return value


def _timeframe_text(value: str) -> str:
    from aster_rl.data.timeframes import timeframe_to_timedelta

    try:
        timeframe_to_timedelta(value)
    except AsterError as e:
        raise ValueError(str(e)) from None
    return value


_RUN_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def check_run_name(name: str) -> str:
    """A run name is one plain path component: letters, digits, ``. _ -``; no ``..``, no separators."""
    if (
        not isinstance(name, str)
        or not name
        or len(name) > 128
        or not set(name) <= _RUN_NAME_CHARS
        or name.startswith((".", "-"))
        or ".." in name
    ):
        raise ValueError(
            f"run name {name!r} is not a plain name: use up to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no path separators, no '..')"
        )
    return name


def _non_empty_text(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("an empty value")
    if isinstance(value, str) and any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{value!r} holds control characters")
    return value


NonEmptyPath = Annotated[Path, BeforeValidator(_non_empty_path)]
NonEmptyText = Annotated[str, AfterValidator(_non_empty_text)]
RunName = Annotated[str, AfterValidator(check_run_name)]
DateText = Annotated[str, BeforeValidator(_date_text)]
Timeframe = Annotated[str, Strict(), AfterValidator(_timeframe_text)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class DataConfig(_Section):
    """Where market data lives and which market is traded."""

    data_dir: NonEmptyPath = Path("data")
    source: NonEmptyText = "synthetic"  # what load_market reads: "synthetic", an exchange id, or "import"
    database_url: str | None = None  # default: sqlite:///<data_dir>/aster_rl.db
    exchange_id: NonEmptyText = "aster"
    symbol: NonEmptyText = "ASTER/USDT:USDT"
    timeframe: Timeframe = "5m"
    btc_symbol: NonEmptyText = "BTC/USDT:USDT"
    eth_symbol: NonEmptyText = "ETH/USDT:USDT"
    since: DateText = "2025-09-19"
    api_url: str | None = None  # override the exchange's REST root (e.g. the loopback fake exchange)
    max_retries: Int = Field(5, ge=0, le=100)
    retry_backoff_s: Float = Field(0.5, ge=0, le=3_600)
    rate_limit_ms: Float | None = Field(None, ge=0, le=600_000)  # ccxt's spacing between requests; None = the exchange's own

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'aster_rl.db').as_posix()}"


class SynthConfig(_Section):
    """The synthetic market: the embedded default when no exchange is reachable."""

    seed: Seed = 7
    n_bars: Int = Field(60 * 288, gt=0, le=10_000_000)  # 60 days of 5m bars
    start: DateText = "2025-03-01"  # day ~315 after the 2024-04-20 halving: bull market phase 1
    edge: Literal["planted", "null"] = "planted"
    edge_probability: Float = Field(0.75, ge=0, le=1)
    signal_rate: Float = Field(0.01, ge=0, le=0.2)  # share of bars (after the first 300) that are signal bars
    edge_drift: Float = Field(0.025, ge=0, le=0.5)  # total drift after a signal that pays off (0.025 = +2.5%)
    edge_horizon: Int = Field(24, gt=0)  # bars over which that drift is spread
    trend_drift: Float = Field(1e-4, ge=0, le=0.01)  # per-5m-bar drift of trend regimes (planted mode only)


class FeaturesConfig(_Section):
    """Which tentacles feed the observation, with their parameters."""

    tentacles: Annotated[tuple[str, ...], Field(min_length=1)] = (
        "market",
        "clock",
        "indicators",
        "orderflow",
        "whales",
        "price_history",
        "btc_cycle",
        "regime",
        "multi_timeframe",
        "strategy",
        "macro",
    )
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    whale_notional_usd: Float = Field(5_000.0, gt=0)
    # Funding interval (hours) for the clock tentacle when the market has no funding series
    # (with one, its spacing is used): 8 for Binance BTC/ETH/LTC perps, 4 for the ASTER perp.
    # The clock tentacle (hour of day, day of week, funding phase) is in the default list; leave
    # "clock" out of ``tentacles`` to switch it off.
    funding_interval_hours: Float = Field(8.0, gt=0, le=24)


class ExitProfile(_Section):
    stop_atr: Float = Field(gt=0)
    target_atr: Float = Field(gt=0)


class MarginBracket(_Section):
    """One maintenance-margin bracket: notional up to ``notional_cap_usd``."""

    notional_cap_usd: Float = Field(gt=0)
    max_leverage: Leverage
    maintenance_margin_rate: Float = Field(ge=0, lt=1)
    maintenance_amount_usd: Float = Field(0.0, ge=0)


def _default_brackets() -> tuple[MarginBracket, ...]:
    return (
        MarginBracket(notional_cap_usd=5_000, max_leverage=50, maintenance_margin_rate=0.01, maintenance_amount_usd=0),
        MarginBracket(notional_cap_usd=25_000, max_leverage=20, maintenance_margin_rate=0.025, maintenance_amount_usd=75),
        MarginBracket(notional_cap_usd=100_000, max_leverage=10, maintenance_margin_rate=0.05, maintenance_amount_usd=700),
        MarginBracket(notional_cap_usd=1_000_000, max_leverage=5, maintenance_margin_rate=0.1, maintenance_amount_usd=5_700),
        MarginBracket(notional_cap_usd=1e12, max_leverage=1, maintenance_margin_rate=0.5, maintenance_amount_usd=405_700),
    )


class EnvConfig(_Section):
    """Trading mechanics and the episode shape (also used by the backtester and paper broker)."""

    initial_equity_usd: Float = Field(10_000.0, gt=0)
    leverages: Annotated[tuple[Leverage, ...], Field(min_length=1)] = (1, 2, 3, 5, 10, 20, 30, 50)
    max_leverage: Leverage = 50
    margin_fraction: Float = Field(0.1, gt=0, le=1)  # share of equity posted as margin per trade
    maker_fee_rate: FeeRate = 0.0001
    taker_fee_rate: FeeRate = 0.00035
    # per-side cost of a market fill (aster_rl.sim.accounting): half-spread + impact_coef·σ_daily·√(Q/V_daily)
    # + slippage_bps. impact_coef is Y of the square-root law (of order 1: Tóth et al. 2011); 1.0, the upper
    # end of the measured range, because an order here is one market order, not a metaorder worked over time.
    slippage_bps: Float = Field(0.0, ge=0, lt=10_000)  # fixed extra per side (stress tests); 10,000 would fill a sell at 0
    impact_coef: Float = Field(1.0, ge=0)  # Y of the square-root impact law
    spread_mult: Float = Field(1.0, ge=0)  # multiplies the half-spread (max(price_tick / 2, the book's)): cost sweeps
    brackets: tuple[MarginBracket, ...] = Field(default_factory=_default_brackets, min_length=1)
    exit_profiles: dict[str, ExitProfile] = Field(
        min_length=1,
        default_factory=lambda: {
            "scalp": ExitProfile(stop_atr=1.0, target_atr=1.5),
            "swing": ExitProfile(stop_atr=2.0, target_atr=4.0),
            "position": ExitProfile(stop_atr=4.0, target_atr=10.0),
        }
    )
    min_notional_usd: Float = Field(5.0, ge=0)
    qty_step: Float = Field(0.01, gt=0)
    price_tick: Float = Field(0.0001, gt=0)  # the contract's tick (ASTER/USDT perp: 0.0001): prices and the half-spread floor
    episode_length: Int = Field(2_048, gt=0)
    # differential_sharpe: Moody & Saffell's differential Sharpe ratio of each step's net return, with
    # moving moments of rate dsr_eta (about 1 / dsr_eta bars of memory); see aster_rl.sim.kernels.
    reward: Literal["log_equity", "trade_outcome", "differential_sharpe"] = "log_equity"
    dsr_eta: Float = Field(0.01, gt=0, lt=1)
    drawdown_penalty: Float = Field(0.0, ge=0)
    turnover_penalty: Float = Field(0.0, ge=0)
    liquidation_penalty: Float = Field(1.0, ge=0)
    # a charge per bar on the gross exposure held through the bar's close (notional / equity): a risk
    # adjustment that makes holding without an expected move cost something, so waiting is learnable
    exposure_penalty: Float = Field(0.0, ge=0)
    bankruptcy_fraction: Float = Field(0.1, ge=0, lt=1)  # equity below this share of the start ends the episode
    action_masks: Bool = False
    # The decision rule (aster_rl.sim.decision), the same in the envs, the backtester and the live runner:
    # the policy acts only on bars whose open time satisfies (open // timeframe) % decision_every == 0 (WAIT on
    # the others: no entry, no signal close; stops and targets still fire), and a signal close of a position
    # held fewer than min_hold_bars bars is refused. 1 and 0: every bar, no minimum (off).
    decision_every: Int = Field(1, ge=1, le=10_000)
    min_hold_bars: Int = Field(0, ge=0)
    # "target": the side head names the position wanted (0 flat, 1 long, 2 short; flat closes), not an order
    action_mode: Literal["orders", "target"] = "orders"

    @model_validator(mode="after")
    def _check_cross_fields(self) -> EnvConfig:
        """The rules between fields (each field's own bounds are on the field)."""
        outside = [lev for lev in self.leverages if lev > self.max_leverage]
        if outside:
            raise ValueError(f"env.leverages: {outside} outside 1..env.max_leverage={self.max_leverage}")
        caps = [b.notional_cap_usd for b in self.brackets]
        if any(b <= a for a, b in itertools.pairwise(caps)):
            raise ValueError(f"env.brackets: notional_cap_usd must increase from bracket to bracket, got {caps}")
        return self


class TrainConfig(_Section):
    """PPO hyperparameters, splits and run bookkeeping."""

    name: RunName = "ppo"
    seed: Seed = 0
    total_timesteps: Int = Field(200_000, gt=0)
    n_envs: Int = Field(8, gt=0, le=1_024)
    learning_rate: Float = Field(3e-4, gt=0, le=1)
    n_steps: Int = Field(512, gt=0)
    batch_size: Int = Field(1_024, gt=1)  # PPO normalizes advantages over a batch: at least 2
    n_epochs: Int = Field(5, gt=0)
    gamma: Float = Field(0.99, gt=0, le=1)
    gae_lambda: Float = Field(0.95, gt=0, le=1)
    clip_range: Float = Field(0.2, gt=0)
    ent_coef: Float = Field(0.01, ge=0)
    vf_coef: Float = Field(0.5, ge=0)
    max_grad_norm: Float = Field(0.5, gt=0)
    net_arch: tuple[Annotated[int, Strict(), Field(gt=0, le=65_536)], ...] = (64, 64)
    normalize_observations: Bool = True
    torch_threads: Int = Field(1, ge=1, le=1_024)
    train_fraction: Float = Field(0.6, gt=0, lt=1)
    validation_fraction: Float = Field(0.2, gt=0, lt=1)
    eval_freq: Int = Field(20_000, gt=0)  # timesteps between validation evaluations
    # which validation checkpoint is kept as "best": "net_pnl" = the highest net PnL; "excess" = the highest excess
    # growth over exposure_matched (buy-and-hold at the checkpoint's mean net exposure), the estimate the judge reports;
    # "excess_ir" = the highest information ratio of that excess (steadiness: exposure that adds only noise lowers it)
    select_by: Literal["net_pnl", "excess", "excess_ir"] = "net_pnl"
    patience: Int = Field(0, ge=0)  # stop after this many validations in a row without a better score (0 = never)
    # validations before this many timesteps are recorded but never kept (nor counted by patience): an early policy that
    # has not settled can score well on validation by luck; the last one is kept if training ends before it
    select_from: Int = Field(0, ge=0)
    # env.exposure_penalty rises linearly from 0 to its value over the first this many timesteps (0 = full from the
    # start): charged at once, a random policy's every trade looks bad before it has found what pays, and it stops trading
    exposure_penalty_warmup: Int = Field(0, ge=0)
    checkpoint_dir: NonEmptyPath = Path("checkpoints")
    tensorboard: Bool = True
    progress_bar: Bool = True
    trials: Int = Field(1, ge=1)  # tries (seeds, configurations, retrains) that led to this run; deflates its Sharpe
    # pretraining: the real markets pooled before training (agents.pretrain); init_from: the run whose weights,
    # observation statistics and observation columns training starts from
    pretrain_markets: tuple[Annotated[str, Strict(), Field(min_length=1)], ...] = ()
    init_from: NonEmptyPath | None = None

    @model_validator(mode="after")
    def _check_shapes(self) -> TrainConfig:
        if self.train_fraction + self.validation_fraction >= 1:
            raise ValueError(
                f"train.train_fraction + train.validation_fraction = {self.train_fraction + self.validation_fraction:g}: "
                "must stay below 1 to leave a test split"
            )
        if self.n_steps * self.n_envs < 2:
            raise ValueError("train.n_steps * train.n_envs must be at least 2 (a rollout of one step cannot be normalized)")
        return self


class EvalConfig(_Section):
    """Out-of-sample evaluation."""

    bootstrap_samples: Int = Field(1_000, gt=0)
    bootstrap_block: Int = Field(288, gt=0)  # block length in bars (a day of 5m bars)
    confidence: Float = Field(0.95, gt=0, lt=1)
    cost_multipliers: tuple[Annotated[float, Strict(), Field(ge=0, le=100)], ...] = (0.0, 1.0, 2.0)
    random_seeds: Int = Field(20, gt=0)
    walkforward_folds: Int = Field(4, gt=1)
    walkforward_seeds: Int = Field(2, gt=0)


class PatternsConfig(_Section):
    """Pattern mining and the pattern library's thresholds (the seed's 80% / 60%)."""

    min_trades: Int = Field(30, gt=0)
    max_conditions: Int = Field(2, ge=1, le=4)
    fdr: Float = Field(0.1, gt=0, lt=1)
    permutations: Int = Field(200, gt=0)
    promote_win_rate: Float = Field(0.8, gt=0, le=1)
    demote_win_rate: Float = Field(0.6, ge=0, lt=1)
    max_hold_bars: Int = Field(288, gt=0)

    @model_validator(mode="after")
    def _check_thresholds(self) -> PatternsConfig:
        if self.demote_win_rate >= self.promote_win_rate:
            raise ValueError(
                f"patterns.demote_win_rate={self.demote_win_rate} must be below patterns.promote_win_rate={self.promote_win_rate}"
            )
        return self


class LiveConfig(_Section):
    """The live runner: paper by default; real trading needs --real, keys and a confirmation."""

    mode: Literal["paper", "real"] = "paper"
    poll_interval_s: Float = Field(1.0, gt=0)
    use_websocket: Bool = True  # ccxt.pro candle stream as an early bar-close signal; REST stays the source
    max_leverage: Leverage = 20
    max_notional_usd: Float = Field(5_000.0, gt=0)
    max_open_positions: Int = Field(1, ge=0)
    daily_loss_limit_fraction: Float = Field(0.05, gt=0, le=1)
    stale_after_bars: Float = Field(3.0, gt=0)
    max_model_age_days: Float = Field(30.0, gt=0)
    kill_file: NonEmptyPath = Path("KILL")  # a relative path is under data.data_dir
    warmup_bars: Int = Field(1_000, gt=0)
    retry_backoff_s: Float = Field(2.0, gt=0)  # first wait after a failed fetch of new bars; doubles per failure
    max_backoff_s: Float = Field(60.0, gt=0)  # ... up to this
    lease_timeout_s: Float = Field(120.0, gt=0)  # a session whose runner renewed nothing for this long may be taken over
    # WAIT (no new position) on a bar whose features lie outside the run's training support; evaluation,
    # the deployment gate and the backtests of a loaded run apply the same switch, so the judge measures what would trade
    wait_outside_support: Bool = True


class AppConfig(_Section):
    data: DataConfig = DataConfig()
    synth: SynthConfig = SynthConfig()
    features: FeaturesConfig = FeaturesConfig()
    env: EnvConfig = EnvConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    patterns: PatternsConfig = PatternsConfig()
    live: LiveConfig = LiveConfig()

    @field_validator("*", mode="before")
    @classmethod
    def _none_is_default(cls, value: Any) -> Any:
        return {} if value is None else value


# ---------------------------------------------------------------- loading

def _is_text_type(annotation: Any) -> bool:
    """Whether a field holds text: ``str``, ``Path``, a literal of strings (optionally ``| None``)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _is_text_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(_is_text_type(a) for a in args)
    if origin is Literal:
        return all(isinstance(a, str) for a in typing.get_args(annotation))
    return annotation in (str, Path)


def _field_annotation(keys: list[str]) -> Any:
    """The annotation of the configuration field at ``keys``, or None when it is not a model field."""
    model: Any = AppConfig
    annotation: Any = None
    for key in keys:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or key not in model.model_fields:
            return None
        annotation = model.model_fields[key].annotation
        model = annotation
    return annotation


def _parse_override_value(raw: str, keys: list[str] | None = None) -> Any:
    """Read ``raw`` as a TOML value (numbers, booleans, arrays, quoted strings); else a bare string.

    A field that holds text takes the text as typed (``data.since=2025-09-19``, ``train.name=2024``)
    unless it is quoted.
    """
    try:
        parsed = tomllib.loads(f"v = {raw}")
    except (tomllib.TOMLDecodeError, RecursionError):
        return raw
    if set(parsed) != {"v"}:  # a newline smuggled in more keys: it is text
        return raw
    value = parsed["v"]
    if not isinstance(value, str) and keys is not None and _is_text_type(_field_annotation(keys)):
        return raw
    return value


def _apply_override(tree: dict[str, Any], assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected section.key=value, e.g. train.learning_rate=1e-4")
    try:
        assignment.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"--set {assignment!r}: not valid UTF-8 text") from None
    dotted, raw = assignment.split("=", 1)
    keys = [k.strip() for k in dotted.strip().split(".")]
    if len(keys) < 2 or not all(keys):
        raise ConfigError(f"--set {assignment!r}: expected section.key=value, e.g. train.learning_rate=1e-4")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {assignment!r}: {key!r} is a value, not a section")
        node = child
    node[keys[-1]] = _parse_override_value(raw.strip(), keys)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _format_validation_error(
    err: ValidationError,
    source: str,
    overrides: dict[tuple[str, ...], str] | None = None,
    prefix: tuple[str, ...] = (),
) -> str:
    """One line per problem, naming the key (under ``prefix``) and where it came from (the ``--set``
    that set it, or ``source``)."""
    lines = []
    for item in err.errors():
        loc = prefix + tuple(str(p) for p in item["loc"])
        where = ".".join(loc) or "(top level)"
        origin = source
        for keys, assignment in (overrides or {}).items():
            unknown_here = item["type"] == "extra_forbidden" and keys[: len(loc)] == loc
            if loc[: len(keys)] == keys or unknown_here:
                origin = f"--set {assignment}"
        if item["type"] == "extra_forbidden":
            lines.append(f"{origin}: unknown key {where!r}")
        else:
            msg = item["msg"].removeprefix("Value error, ")
            named = msg.startswith(f"{where}.")  # a rule between fields names its keys itself
            lines.append(f"{origin}: {msg}" if named else f"{origin}: {where}: {msg}")
    return "; ".join(lines)


def _read_toml(path: Path) -> dict[str, Any]:
    """The table in the TOML file at ``path``; ConfigError on anything but a readable UTF-8 TOML file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory; give a TOML file") from None
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path}: not a UTF-8 text file (byte {e.start} is {data[e.start]:#04x})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: not valid TOML ({e})") from None


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> AppConfig:
    """Resolve the configuration: defaults < TOML file at ``path`` < ``overrides``."""
    tree: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        tree = _read_toml(path)
    override_tree: dict[str, Any] = {}
    for assignment in overrides:
        _apply_override(override_tree, assignment)
    if overrides:
        source = f"{source} + --set overrides"
    named = {tuple(k.strip() for k in a.split("=", 1)[0].strip().split(".")): a for a in overrides}
    try:
        return AppConfig.model_validate(_merge(tree, override_tree))
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, source, named)) from None


Model = TypeVar("Model", bound=BaseModel)


def _section_of(cls: type[BaseModel]) -> str:
    """The dotted place of a model in :class:`AppConfig` (``"env"``), for error messages."""
    if cls is AppConfig:
        return ""
    return next((name for name, f in AppConfig.model_fields.items() if f.annotation is cls), cls.__name__)


def _rebuilt(model: Model, changes: dict[str, Any], source: str) -> Model:
    tree = model.model_dump()
    for key, value in changes.items():
        is_section = isinstance(getattr(model, key, None), BaseModel) and isinstance(value, dict)
        tree[key] = {**tree[key], **value} if is_section else value
    try:
        return type(model).model_validate(tree)
    except ValidationError as e:
        section = _section_of(type(model))
        message = _format_validation_error(e, source, prefix=(section,) if section else ())
        raise ConfigError(message) from None


def replace(model: Model, **changes: Any) -> Model:
    """A copy of ``model`` (the whole configuration or one section) with some fields changed,
    validated again: ``replace(config, train={"seed": 4})``, ``replace(config.env, taker_fee_rate=0.0)``.

    A dict given for a section sets those of its fields (each one replaced whole, dicts too);
    any other value replaces the field. A bad value is a one-line :class:`ConfigError` naming the key, as from
    a file or ``--set``.
    """
    return _rebuilt(model, changes, "replace()")


def revalidated(model: Model, source: str) -> Model:
    """``model`` validated again (one built by ``model_copy(update=...)`` or ``model_construct`` skipped
    pydantic); ``source`` names it in the one-line :class:`ConfigError`."""
    return _rebuilt(model, {}, source)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if value is None:
        return '""'
    return _toml_string(str(value))


def _toml_key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    return key if bare else _toml_string(key)


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, plus DEL, which TOML forbids raw."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def to_toml(config: AppConfig) -> str:
    """The resolved configuration as TOML (no secrets are ever part of it)."""
    lines: list[str] = []
    for section, values in config.model_dump(mode="json").items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if value is None:
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- secrets

class Secrets(BaseModel):
    """Credentials read from the environment only; printing them shows ``**********``."""

    model_config = ConfigDict(frozen=True)

    private_key: SecretStr | None = None
    wallet_address: str | None = None

    @property
    def has_trading_keys(self) -> bool:
        return self.private_key is not None and bool(self.private_key.get_secret_value())


SECRET_ENV_VARS = {"private_key": "ASTER_PRIVATE_KEY", "wallet_address": "ASTER_WALLET_ADDRESS"}


def load_secrets(environ: dict[str, str] | None = None) -> Secrets:
    env = os.environ if environ is None else environ
    values = {field: env.get(var) for field, var in SECRET_ENV_VARS.items() if env.get(var)}
    return Secrets(**values)
