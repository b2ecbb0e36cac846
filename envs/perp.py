"""``PerpEnv``: one isolated-margin account on the ASTER/USDT perpetual, as a Gymnasium env
(registered as ``AsterFutures-v0``; see the class docstring).

The mechanics live in :class:`aster_rl.sim.accounting.AccountBook` (shared with the batched
env, the backtester and the paper broker): one compiled kernel call per step advances the
account and writes the next observation.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from aster_rl.config import AppConfig, EnvConfig
from aster_rl.errors import ConfigError, DataError
from aster_rl.sim import kernels as K
from aster_rl.sim.accounting import SingleAccount, check_env_inputs
from aster_rl.sim.decision import gate_actions, rule_active, target_mode, timeframe_ns
from aster_rl.sim.observation import N_ACCOUNT
from aster_rl.sim.prices import PriceArrays
from envs.spaces import action_masks, action_space, observation_space

if TYPE_CHECKING:
    from aster_rl.config import FeaturesConfig
    from aster_rl.data.market import MarketBundle

logger = logging.getLogger(__name__)

_INT64 = np.dtype(np.int64)
SYNTHETIC_BARS = 14 * 288  # the bare env's market: two weeks of 5m bars


def step_info(equity: float, position: float, leverage: float, fees: float, funding: float, slippage: float) -> dict[str, Any]:
    """The small ``info`` dict every step carries (cumulative episode costs in USD)."""
    return {
        "equity": equity,
        "position": int(position),
        "leverage": leverage,
        "fees": fees,
        "funding": funding,
        "slippage": slippage,
    }


def latest_start(first_t: int, end: int, episode_length: int) -> int:
    """The last bar an episode may start at so that it fits before ``end``."""
    return max(first_t, end - 1 - episode_length)


def as_actions(action: Any, n: int) -> np.ndarray:
    """``action`` as a flat contiguous int64 array of ``3 * n`` entries (no copy when it is one)."""
    a = action
    if a.__class__ is not np.ndarray or a.dtype != _INT64 or a.ndim != 1:
        a = np.ascontiguousarray(np.asarray(action).astype(np.int64, copy=False).reshape(-1))
    if a.shape[0] != 3 * n:
        raise ValueError(f"action {np.asarray(action).tolist()}: expected {n} × (side, leverage index, profile index)")
    return a


def market_inputs(market: MarketBundle, features_cfg: FeaturesConfig) -> tuple[np.ndarray, PriceArrays]:
    """The feature matrix and price arrays of ``market``, from the first bar after the feature
    warm-up (the rows before it are not observations)."""
    from aster_rl.features.pipeline import build_features

    feats = build_features(market, features_cfg)
    prices = PriceArrays.from_market(market)
    w = feats.warmup
    if w >= len(prices) - 2:
        raise DataError(f"{market.symbol}: {len(prices)} bars leave none after the features' warm-up of {w} bars")
    return feats.matrix[w:], prices.slice(w, len(prices))


@functools.cache
def synthetic_inputs() -> tuple[np.ndarray, PriceArrays]:
    """The embedded synthetic market's features and prices (:data:`SYNTHETIC_BARS` bars, the default
    seed and tentacles), built once per process."""
    from aster_rl.config import FeaturesConfig, SynthConfig
    from aster_rl.data.synthetic import synthesize

    features, prices = market_inputs(synthesize(SynthConfig(n_bars=SYNTHETIC_BARS)), FeaturesConfig())
    features.setflags(write=False)
    return features, prices


def resolve_inputs(
    features: np.ndarray | None,
    prices: PriceArrays | None,
    cfg: EnvConfig | None,
    market: MarketBundle | None,
    config: AppConfig | None,
) -> tuple[np.ndarray, PriceArrays, EnvConfig]:
    """What an env steps over, from one of: ``features`` + ``prices`` (+ ``cfg``); ``market``
    (+ ``config``); nothing (the embedded synthetic market)."""
    if config is not None and not isinstance(config, AppConfig):
        raise ConfigError(f"config: expected an AppConfig, got {type(config).__name__}")
    if cfg is not None and config is not None:
        raise ConfigError("give cfg (an EnvConfig) or config (an AppConfig), not both")
    if (features is None) != (prices is None):
        raise DataError("give features and prices together (or a market, or neither)")
    if features is not None and market is not None:
        raise DataError("give features and prices, or a market, not both")
    env_cfg = cfg if cfg is not None else (config.env if config is not None else EnvConfig())
    if features is not None and prices is not None:
        return features, prices, env_cfg
    from aster_rl.config import FeaturesConfig

    features_cfg = config.features if config is not None else FeaturesConfig()
    if market is None and features_cfg == FeaturesConfig():
        return (*synthetic_inputs(), env_cfg)
    if market is None:
        from aster_rl.config import SynthConfig
        from aster_rl.data.synthetic import synthesize

        market = synthesize(SynthConfig(n_bars=SYNTHETIC_BARS))
    return (*market_inputs(market, features_cfg), env_cfg)


class PerpEnv(gym.Env[np.ndarray, np.ndarray]):
    """
    ## Description

    One isolated-margin account trading the ASTER/USDT perpetual future, bar by bar, over a
    feature matrix (one row per bar) and the bars' prices, with the venue's costs: taker fees,
    slippage and market impact, funding, margin brackets and liquidation.

    Timing (no look-ahead): the observation at bar ``t`` is feature row ``t`` (known at bar
    ``t``'s close) plus the account state marked at that close. The action chosen after seeing
    it is an order that fills at bar ``t + 1``'s **open**; funding settling inside bar ``t + 1``
    is charged, stop / target / liquidation are checked against its open, high and low, and
    the account is marked at its close, where the next observation stands. The rules are in
    :mod:`aster_rl.sim.accounting`.

    ## Action Space

    ``MultiDiscrete([3, len(env.leverages), len(env.exit_profiles)])`` (``[3, 8, 3]`` by default):

    | Num | Action         | Values                                                               |
    |-----|----------------|----------------------------------------------------------------------|
    | 0   | side           | 0 WAIT, 1 BUY, 2 SELL                                                |
    | 1   | leverage index | into ``env.leverages``, capped by ``env.max_leverage`` and brackets |
    | 2   | exit profile   | into ``env.exit_profiles`` (stop and target in ATRs at the decision) |

    BUY while flat opens a long, BUY while long holds, BUY while short **closes the short and
    stays flat** (reversing takes a second BUY, which keeps turnover deliberate); SELL mirrors
    it. Leverage and profile only matter when the step opens a position. With
    ``env.action_masks``, :meth:`action_masks` gives the valid choices (MaskablePPO style).

    ## Observation Space

    ``Box(-inf, inf, (n_features + 6,), float32)``: the feature row (scale-free tentacle
    columns, 141 with the default tentacles) followed by the account state:

    | Num             | Observation           | Min  | Max |
    |-----------------|-----------------------|------|-----|
    | n_features + 0  | account_side          | -1   | 1   |
    | n_features + 1  | account_leverage      | 0    | 1   |
    | n_features + 2  | account_upnl          | -Inf | Inf |
    | n_features + 3  | account_bars_in_trade | 0    | Inf |
    | n_features + 4  | account_liq_distance  | 0    | 1   |
    | n_features + 5  | account_equity_change | -Inf | Inf |

    (definitions in :mod:`aster_rl.sim.observation`).

    ## Rewards

    ``env.reward = "log_equity"`` (default): ``log(equity_t / equity_{t-1})``, the step's change of
    the marked-to-market equity, so every fee, funding payment, slippage and liquidation loss
    is inside it. ``"trade_outcome"``: on a step where trades close, the sum of their
    ``pnl_usd / equity at entry`` (net of every cost); 0 on other steps. ``"differential_sharpe"``:
    Moody & Saffell's differential Sharpe ratio of the step's net return ``equity_t / equity_{t-1} - 1``
    against moving moments of rate ``env.dsr_eta`` (reset with the episode; 0 on its first step,
    clipped to ±10). Each then subtracts
    ``env.drawdown_penalty × (1 − equity / peak equity)``, ``env.turnover_penalty × traded
    notional / equity before the step``, ``env.liquidation_penalty`` on a step with a
    liquidation and ``env.exposure_penalty × notional / equity`` of a position held through the
    step's close. The step kernel computes it (:func:`aster_rl.sim.kernels.step_accounts`).

    ``env.decision_every`` (k) and ``env.min_hold_bars`` apply the decision rule of
    :mod:`aster_rl.sim.decision` to every action before the step: WAIT on bars that are not
    decision bars, and a signal close of a position younger than the minimum refused. The
    env still steps one bar per action (masking, not action repeat; reasons there).

    ## Starting State

    Flat, holding ``env.initial_equity_usd``, at a random bar in ``[first, end - 1 -
    episode_length]`` (``first``: ``start`` moved to the first bar with a positive ATR), or
    at ``first`` with ``random_start=False``, or at ``options["start"]`` given to ``reset``.

    ## Episode End

    1. Termination: equity below ``env.bankruptcy_fraction × env.initial_equity_usd``.
    2. Truncation: ``episode_length`` steps, or the data's last bar.

    An open position at the episode's end is closed at the last close (reason ``"end"``);
    ``info["episode_stats"]`` then holds the episode's figures. Every ``info`` has
    ``equity position leverage fees funding slippage`` (cumulative costs in USD), plus
    ``closed_trades`` on a step where trades closed.

    ## Arguments

    ```python
    import gymnasium as gym
    import envs  # registers AsterFutures-v0

    env = gym.make("AsterFutures-v0")  # the embedded synthetic market (two weeks of 5m bars)
    env = gym.make("AsterFutures-v0", market=bundle, config=config)  # a MarketBundle, an AppConfig
    env = gym.make("AsterFutures-v0", features=matrix, prices=prices, cfg=config.env)
    ```

    | Parameter        | Type                       | Default          | Description                                            |
    |------------------|----------------------------|------------------|--------------------------------------------------------|
    | `features`       | **ndarray** (bars × F)     | `None`           | the feature matrix, with `prices`                      |
    | `prices`         | **PriceArrays**            | `None`           | the bars, aligned with `features`                      |
    | `cfg`            | **EnvConfig**              | `EnvConfig()`    | trading mechanics and episode shape                    |
    | `market`         | **MarketBundle**           | `None`           | a market to build features and prices from             |
    | `config`         | **AppConfig**              | `AppConfig()`    | its `features` and `env` sections (with `market`)      |
    | `start`, `end`   | **int**                    | `0`, all bars    | the bar range episodes are drawn from                  |
    | `episode_length` | **int**                    | `env.episode_length` | steps per episode                                  |
    | `random_start`   | **bool**                   | `True`           | draw each episode's first bar                          |
    | `render_mode`    | **str**                    | `None`           | `"ansi"`: one text line per bar                        |

    With `market` (or nothing), the rows before the features' warm-up are dropped.

    ## Version History

    * v0: Initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012  (gymnasium's class attribute; fps as its text envs)

    def __init__(
        self,
        features: np.ndarray | None = None,
        prices: PriceArrays | None = None,
        cfg: EnvConfig | None = None,
        *,
        market: MarketBundle | None = None,
        config: AppConfig | None = None,
        start: int = 0,
        end: int | None = None,
        episode_length: int | None = None,
        random_start: bool = True,
        render_mode: str | None = None,
    ):
        features, prices, cfg = resolve_inputs(features, prices, cfg, market, config)
        self.features, self._first_t, self._end, self.episode_length = check_env_inputs(
            features, prices, cfg, start, end, episode_length
        )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode = {render_mode!r}: expected None or 'ansi'")
        self.render_mode = render_mode
        self.cfg = cfg
        self.prices = prices
        self.random_start = bool(random_start)
        self.n_features = self.features.shape[1]
        self.observation_space = observation_space(self.n_features)
        self.action_space = action_space(cfg)
        self.account = SingleAccount(cfg, prices)
        self.book = self.account.book
        self._t = self._first_t
        self._t0 = self._first_t
        self._done = False
        self._ts, self._c = prices.timestamps, prices.close
        self._obs_dim = self.n_features + N_ACCOUNT
        self.book.set_episode_limits(self.episode_length, self._end)
        self._px = self.account._px
        # equity, side, leverage, fees, funding, slippage and the step's reward, in one view
        self._info_row = self.book.F[K.EQUITY : K.REWARD + 1, 0]
        self._gated = rule_active(cfg.decision_every, cfg.min_hold_bars, target_mode(cfg))
        self._tf_ns = timeframe_ns(prices.timeframe)

    # ------------------------------------------------------------------ helpers
    def _latest_start(self) -> int:
        return latest_start(self._first_t, self._end, self.episode_length)

    def _obs(self, t: int) -> np.ndarray:
        return self.account.observation(self.features, t)

    def _info(self) -> dict[str, Any]:
        return self._info_and_reward()[0]

    def _info_and_reward(self) -> tuple[dict[str, Any], float]:
        *values, reward = self._info_row.tolist()
        return step_info(*values), reward

    def episode_stats(self) -> dict[str, Any]:
        return self.account.episode_stats()

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        latest = self._latest_start()
        if options and "start" in options:
            t0 = int(options["start"])
            if not self._first_t <= t0 < self._end - 1:
                raise ValueError(f"options['start'] = {t0}: must be in {self._first_t}..{self._end - 2}")
        elif self.random_start and latest > self._first_t:
            t0 = int(self.np_random.integers(self._first_t, latest + 1))
        else:
            t0 = self._first_t
        self._t0 = self._t = t0
        self._done = False
        self.account.reset()
        self.book.t_bar[0] = t0
        return self._obs(t0), self._info()

    def step(self, action):
        if self._done:
            raise RuntimeError("PerpEnv.step called after the episode ended; call reset()")
        if action.__class__ is not np.ndarray or action.dtype != _INT64 or action.shape != (3,):
            action = as_actions(action, 1)
        if self._gated:
            action = gate_actions(action, self.book, self._ts, self._tf_ns, self.book.t_bar)
        obs = np.empty(self._obs_dim, dtype=np.float32)
        code = self.book.step(self._ts, self._px, action, self.features, obs)
        self._t += 1
        info, reward = self._info_and_reward()
        terminated = bool(code & K.ST_BANKRUPT)
        truncated = not terminated and bool(code & K.ST_DONE)
        if code >> K.ST_EVENTS_SHIFT:
            info["closed_trades"] = [trade for _, trade in self.book.closed]
        if terminated or truncated:
            self._done = True
            info["episode_stats"] = self.account.episode_stats()
        return obs, reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """Valid choices, concatenated per action dimension (see :func:`envs.spaces.action_masks`)."""
        return action_masks(self.book)[0]

    def render(self):
        if self.render_mode != "ansi":
            return None
        b = self.book
        t = self._t
        pos = {1: "LONG", -1: "SHORT", 0: "FLAT"}[int(b.side[0])]
        import pandas as pd

        when = pd.Timestamp(int(self._ts[t]), tz="UTC")
        line = (
            f"{when:%Y-%m-%d %H:%M} close={self._c[t]:.4f} {pos}"
            f" lev={b.lev[0]:g} equity={b.equity[0]:.2f} fees={b.fees[0]:.2f}"
            f" funding={b.funding[0]:.2f} trades={int(b.n_trades[0])}"
        )
        if b.side[0] != 0:
            line += f" entry={b.entry[0]:.4f} stop={b.stop[0]:.4f} target={b.target[0]:.4f} liq={b.liq[0]:.4f}"
        return line + "\n"

    def close(self) -> None:
        return None
