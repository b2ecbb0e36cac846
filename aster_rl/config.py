"""One typed, immutable configuration: code defaults < TOML file < ``--set`` overrides.

Every section is a frozen pydantic model with ``extra="forbid"``, so a typo in a file or
an override fails with the name of the unknown key. Secrets never live here: they come
from environment variables through :func:`load_secrets` and are masked when printed.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from aster_rl.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(_Section):
    """Where market data lives and which market is traded."""

    data_dir: Path = Path("data")
    source: str = "synthetic"  # what load_market reads: "synthetic", an exchange id, or "import"
    database_url: str | None = None  # default: sqlite:///<data_dir>/aster_rl.db
    exchange_id: str = "aster"
    symbol: str = "ASTER/USDT:USDT"
    timeframe: str = "5m"
    btc_symbol: str = "BTC/USDT:USDT"
    eth_symbol: str = "ETH/USDT:USDT"
    since: str = "2025-09-19"
    api_url: str | None = None  # override the exchange's REST root (e.g. the loopback fake exchange)
    max_retries: int = Field(5, ge=0)
    retry_backoff_s: float = Field(0.5, ge=0)
    rate_limit_ms: float | None = Field(None, ge=0)  # ccxt's spacing between requests; None = the exchange's own

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'aster_rl.db').as_posix()}"


class SynthConfig(_Section):
    """The synthetic market: the embedded default when no exchange is reachable."""

    seed: int = 7
    n_bars: int = Field(60 * 288, gt=0)  # 60 days of 5m bars
    start: str = "2025-03-01"  # day ~315 after the 2024-04-20 halving: bull market phase 1
    edge: Literal["planted", "null"] = "planted"
    edge_probability: float = Field(0.75, ge=0, le=1)
    signal_rate: float = Field(0.01, ge=0, le=0.2)  # share of bars (after the first 300) that are signal bars
    edge_drift: float = Field(0.025, ge=0, le=0.5)  # total drift after a signal that pays off (0.025 = +2.5%)
    edge_horizon: int = Field(24, gt=0)  # bars over which that drift is spread
    trend_drift: float = Field(1e-4, ge=0, le=0.01)  # per-5m-bar drift of trend regimes (planted mode only)


class FeaturesConfig(_Section):
    """Which tentacles feed the observation, with their parameters."""

    tentacles: tuple[str, ...] = (
        "market",
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
    whale_notional_usd: float = Field(5_000.0, gt=0)


class ExitProfile(_Section):
    stop_atr: float = Field(gt=0)
    target_atr: float = Field(gt=0)


class MarginBracket(_Section):
    """One maintenance-margin bracket: notional up to ``notional_cap_usd``."""

    notional_cap_usd: float = Field(gt=0)
    max_leverage: int = Field(gt=0)
    maintenance_margin_rate: float = Field(ge=0, lt=1)
    maintenance_amount_usd: float = 0.0


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

    initial_equity_usd: float = Field(10_000.0, gt=0)
    leverages: tuple[int, ...] = (1, 2, 3, 5, 10, 20, 30, 50)
    max_leverage: int = Field(50, ge=1)
    margin_fraction: float = Field(0.1, gt=0, le=1)  # share of equity posted as margin per trade
    maker_fee_rate: float = Field(0.0001, ge=0)
    taker_fee_rate: float = Field(0.00035, ge=0)
    slippage_bps: float = Field(1.0, ge=0)
    impact_coef: float = Field(0.1, ge=0)  # extra slippage = impact_coef * order_qty / bar_volume
    brackets: tuple[MarginBracket, ...] = Field(default_factory=_default_brackets)
    exit_profiles: dict[str, ExitProfile] = Field(
        default_factory=lambda: {
            "scalp": ExitProfile(stop_atr=1.0, target_atr=1.5),
            "swing": ExitProfile(stop_atr=2.0, target_atr=4.0),
            "position": ExitProfile(stop_atr=4.0, target_atr=10.0),
        }
    )
    min_notional_usd: float = Field(5.0, ge=0)
    qty_step: float = Field(0.01, gt=0)
    price_tick: float = Field(0.0001, gt=0)
    episode_length: int = Field(2_048, gt=0)
    reward: Literal["log_equity", "trade_outcome"] = "log_equity"
    drawdown_penalty: float = Field(0.0, ge=0)
    turnover_penalty: float = Field(0.0, ge=0)
    liquidation_penalty: float = Field(1.0, ge=0)
    bankruptcy_fraction: float = Field(0.1, ge=0, lt=1)  # equity below this share of the start ends the episode
    action_masks: bool = False

    @model_validator(mode="after")
    def _check_ladder(self) -> "EnvConfig":
        if not self.leverages:
            raise ValueError("env.leverages: the leverage ladder is empty")
        too_high = [lev for lev in self.leverages if lev > self.max_leverage or lev < 1]
        if too_high:
            raise ValueError(f"env.leverages: {too_high} outside 1..env.max_leverage={self.max_leverage}")
        if not self.exit_profiles:
            raise ValueError("env.exit_profiles: at least one exit profile is needed")
        return self


class TrainConfig(_Section):
    """PPO hyperparameters, splits and run bookkeeping."""

    name: str = "ppo"
    seed: int = 0
    total_timesteps: int = Field(200_000, gt=0)
    n_envs: int = Field(8, gt=0)
    learning_rate: float = Field(3e-4, gt=0)
    n_steps: int = Field(512, gt=0)
    batch_size: int = Field(1_024, gt=0)
    n_epochs: int = Field(5, gt=0)
    gamma: float = Field(0.99, gt=0, le=1)
    gae_lambda: float = Field(0.95, gt=0, le=1)
    clip_range: float = Field(0.2, gt=0)
    ent_coef: float = Field(0.01, ge=0)
    vf_coef: float = Field(0.5, ge=0)
    max_grad_norm: float = Field(0.5, gt=0)
    net_arch: tuple[int, ...] = (64, 64)
    normalize_observations: bool = True
    torch_threads: int = Field(1, ge=1)
    train_fraction: float = Field(0.6, gt=0, lt=1)
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    eval_freq: int = Field(20_000, gt=0)  # timesteps between validation evaluations
    checkpoint_dir: Path = Path("checkpoints")
    tensorboard: bool = True
    progress_bar: bool = True
    trials: int = Field(1, ge=1)  # tries (seeds, configurations, retrains) that led to this run; deflates its Sharpe


class EvalConfig(_Section):
    """Out-of-sample evaluation."""

    bootstrap_samples: int = Field(1_000, gt=0)
    bootstrap_block: int = Field(288, gt=0)  # block length in bars (a day of 5m bars)
    confidence: float = Field(0.95, gt=0, lt=1)
    cost_multipliers: tuple[float, ...] = (0.0, 1.0, 2.0)
    random_seeds: int = Field(20, gt=0)
    walkforward_folds: int = Field(4, gt=1)
    walkforward_seeds: int = Field(2, gt=0)


class PatternsConfig(_Section):
    """Pattern mining and the pattern library's thresholds (the seed's 80% / 60%)."""

    min_trades: int = Field(30, gt=0)
    max_conditions: int = Field(2, ge=1, le=4)
    fdr: float = Field(0.1, gt=0, lt=1)
    permutations: int = Field(200, gt=0)
    promote_win_rate: float = Field(0.8, gt=0, le=1)
    demote_win_rate: float = Field(0.6, ge=0, lt=1)
    max_hold_bars: int = Field(288, gt=0)


class LiveConfig(_Section):
    """The live runner: paper by default; real trading needs --real, keys and a confirmation."""

    mode: Literal["paper", "real"] = "paper"
    poll_interval_s: float = Field(1.0, gt=0)
    use_websocket: bool = True  # ccxt.pro candle stream as an early bar-close signal; REST stays the source
    max_leverage: int = Field(20, ge=1)
    max_notional_usd: float = Field(5_000.0, gt=0)
    max_open_positions: int = Field(1, ge=0)
    daily_loss_limit_fraction: float = Field(0.05, gt=0, le=1)
    stale_after_bars: float = Field(3.0, gt=0)
    max_model_age_days: float = Field(30.0, gt=0)
    kill_file: Path = Path("KILL")  # a relative path is under data.data_dir
    warmup_bars: int = Field(1_000, gt=0)
    retry_backoff_s: float = Field(2.0, gt=0)  # first wait after a failed fetch of new bars; doubles per failure
    max_backoff_s: float = Field(60.0, gt=0)  # ... up to this
    lease_timeout_s: float = Field(120.0, gt=0)  # a session whose runner renewed nothing for this long may be taken over


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

def _parse_override_value(raw: str) -> Any:
    """Read ``raw`` as a TOML value (numbers, booleans, arrays, quoted strings); else a bare string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_override(tree: dict[str, Any], assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected section.key=value, e.g. train.learning_rate=1e-4")
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
    node[keys[-1]] = _parse_override_value(raw.strip())


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = []
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key {where!r}")
        else:
            lines.append(f"{source}: {where}: {item['msg']}")
    return "; ".join(lines)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> AppConfig:
    """Resolve the configuration: defaults < TOML file at ``path`` < ``overrides``."""
    tree: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            tree = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path}: not valid TOML ({e})") from None
    override_tree: dict[str, Any] = {}
    for assignment in overrides:
        _apply_override(override_tree, assignment)
    if overrides:
        source = f"{source} + --set overrides"
    try:
        return AppConfig.model_validate(_merge(tree, override_tree))
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, source)) from None


def replace(config: AppConfig, **sections: dict[str, Any]) -> AppConfig:
    """A copy of ``config`` with some section fields changed, validated again."""
    tree = config.model_dump()
    for name, changes in sections.items():
        tree[name] = _merge(tree[name], changes)
    try:
        return AppConfig.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, "replace()")) from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if value is None:
        return '""'
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


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
