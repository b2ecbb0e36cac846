"""The risk guard: every decision that would open a position passes through it.

Rules (``LiveConfig``):

- ``kill``: the kill file exists (``aster-rl live stop`` writes it; a relative
  ``live.kill_file`` is under ``data.data_dir``, see :func:`kill_file_path`) -> flatten and stop;
- ``model``: the model is older than ``max_model_age_days``, or its feature schema differs
  from the runner's -> no new positions;
- ``stale``: the newest closed bar closed more than ``stale_after_bars`` bars ago -> no
  new positions (and the runner flattens: :meth:`RiskGuard.stale_reason`);
- ``daily_loss``: equity fell ``daily_loss_limit_fraction`` below the day's starting
  equity (UTC day) -> no new positions until the next day;
- ``open_positions``: ``max_open_positions`` already open -> no new position;
- ``leverage``: above ``max_leverage`` -> capped to the largest ladder step within it
  (refused if none is);
- ``notional``: margin x leverage above ``max_notional_usd`` -> leverage lowered down the
  ladder until it fits (refused if even the lowest step does not).

Closing a position is never refused. Each refusal or cap is returned as a
:class:`RiskEvent` (the runner stores it in the database) and logged with its reason.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from aster_rl.sim.accounting import WAIT
from aster_rl.config import AppConfig, EnvConfig, LiveConfig, replace
from aster_rl.data.timeframes import timeframe_to_timedelta

logger = logging.getLogger(__name__)


MESSAGE_CHARS = 200


def brief(e: BaseException) -> str:
    """An error as one short line (its first, cut to ``MESSAGE_CHARS``) for the log and the risk events."""
    lines = str(e).strip().splitlines()
    text = lines[0] if lines else type(e).__name__
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


def kill_file_path(live: LiveConfig, data_dir: Path) -> Path:
    """Where the kill file is: ``live.kill_file``, under ``data_dir`` when relative, made absolute
    (so ``aster-rl live stop`` from any directory reaches the runner)."""
    path = Path(live.kill_file)
    return (path if path.is_absolute() else Path(data_dir) / path).absolute()


def live_settings(config: AppConfig) -> LiveConfig:
    """The ``live`` section with the kill file resolved (a relative one is under ``data.data_dir``):
    what every runner is given, whoever starts it."""
    return replace(config.live, kill_file=kill_file_path(config.live, config.data.data_dir))


@dataclass(frozen=True)
class RiskEvent:
    rule: str
    action: str  # refused / capped / stopped
    reason: str

    def as_row(self, ts_ms: int) -> dict[str, Any]:
        return {"ts": ts_ms, "rule": self.rule, "action": self.action, "reason": self.reason}


@dataclass(frozen=True)
class Verdict:
    side: int
    lev_i: int
    prof_i: int
    events: tuple[RiskEvent, ...] = ()

    @property
    def refused(self) -> bool:
        return any(e.action == "refused" for e in self.events)


@dataclass
class AccountView:
    """What the guard needs to know about the account at a decision."""

    equity: float
    day_start_equity: float
    open_positions: int
    opening: bool  # the decision would open a new position


class RiskGuard:
    def __init__(self, live: LiveConfig, env: EnvConfig, timeframe: str, *, model_problem: str | None = None) -> None:
        self.live = live
        self.env = env
        self.bar = timeframe_to_timedelta(timeframe)
        self.model_problem = model_problem  # set at start-up by check_model

    # ------------------------------------------------------------ start-up checks
    @staticmethod
    def check_model(live: LiveConfig, trained_at: float | None, schema: Any, runner_schema: Any, now_s: float | None = None) -> str | None:
        """Why the model may not open positions (None when it may)."""
        if schema is not None and runner_schema is not None:
            differences = schema.diff(runner_schema) if hasattr(schema, "diff") else []
            if differences:
                return "the model's feature schema differs from the runner's: " + "; ".join(differences[:3])
        if trained_at is not None:
            age_days = ((time.time() if now_s is None else now_s) - trained_at) / 86_400
            if age_days > live.max_model_age_days:
                return f"the model is {age_days:.1f} days old, more than live.max_model_age_days = {live.max_model_age_days:g}; retrain it"
        return None

    def kill_requested(self) -> bool:
        return Path(self.live.kill_file).exists()

    # ------------------------------------------------------------ per decision
    def stale_reason(self, last_bar_open: pd.Timestamp, now: pd.Timestamp) -> str | None:
        age = now - (last_bar_open + self.bar)
        limit = self.bar * self.live.stale_after_bars
        if age > limit:
            return f"stale data: the newest bar closed {age} ago, more than {self.live.stale_after_bars:g} bars ({limit})"
        return None

    def review(
        self, side: int, lev_i: int, prof_i: int, account: AccountView, *, last_bar_open: pd.Timestamp, now: pd.Timestamp
    ) -> Verdict:
        """The decision as allowed: unchanged, with a capped leverage, or WAIT with the refusal."""
        if side == WAIT or not account.opening:
            return Verdict(side, lev_i, prof_i)

        def refuse(rule: str, reason: str) -> Verdict:
            logger.warning("risk guard refused a new position (%s): %s", rule, reason)
            return Verdict(WAIT, lev_i, prof_i, (RiskEvent(rule, "refused", reason),))

        if self.kill_requested():
            return refuse("kill", f"kill file {self.live.kill_file} exists")
        if self.model_problem:
            return refuse("model", self.model_problem)
        stale = self.stale_reason(last_bar_open, now)
        if stale:
            return refuse("stale", stale)
        if account.day_start_equity > 0:
            loss = 1.0 - account.equity / account.day_start_equity
            if loss >= self.live.daily_loss_limit_fraction:
                return refuse(
                    "daily_loss",
                    f"down {loss:.2%} today (equity {account.equity:.2f} from {account.day_start_equity:.2f}), "
                    f"limit {self.live.daily_loss_limit_fraction:.2%}",
                )
        if account.open_positions >= self.live.max_open_positions:
            return refuse(
                "open_positions", f"{account.open_positions} position(s) open, live.max_open_positions = {self.live.max_open_positions}"
            )
        ladder = list(self.env.leverages)
        events: list[RiskEvent] = []
        lev = ladder[lev_i]
        if lev > self.live.max_leverage:
            allowed = [i for i, v in enumerate(ladder) if v <= self.live.max_leverage]
            if not allowed:
                return refuse("leverage", f"leverage {lev}x above live.max_leverage = {self.live.max_leverage} and no ladder step fits")
            new_i = max(allowed, key=lambda i: ladder[i])
            events.append(RiskEvent("leverage", "capped", f"leverage {lev}x capped to {ladder[new_i]}x (live.max_leverage = {self.live.max_leverage})"))
            lev_i, lev = new_i, ladder[new_i]
        margin = self.env.margin_fraction * account.equity
        if margin * lev > self.live.max_notional_usd:
            fitting = [i for i, v in enumerate(ladder) if margin * v <= self.live.max_notional_usd]
            if not fitting:
                return refuse(
                    "notional",
                    f"notional {margin * min(ladder):.2f} USD at the lowest leverage {min(ladder)}x is above "
                    f"live.max_notional_usd = {self.live.max_notional_usd:g}",
                )
            new_i = max(fitting, key=lambda i: ladder[i])
            events.append(RiskEvent(
                "notional", "capped",
                f"notional {margin * lev:.2f} USD above live.max_notional_usd = {self.live.max_notional_usd:g}: leverage {lev}x -> {ladder[new_i]}x",
            ))
            lev_i = new_i
        for e in events:
            logger.warning("risk guard: %s", e.reason)
        return Verdict(side, lev_i, prof_i, tuple(events))
