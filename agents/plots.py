"""Matplotlib figures for the notebooks and the rendered report.

Every function takes already shaped data (from :mod:`aster_rl.evaluation.reporting` or saved results)
and returns a ``matplotlib.figure.Figure``; nothing here computes a result. matplotlib is
imported lazily, so importing this module costs nothing where no figure is drawn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from aster_rl.features.tentacles.regime import STATE_KEYS

STRATEGY_COLORS = {"agent": "tab:blue", "flat": "tab:gray", "buy_and_hold": "tab:green", "random": "tab:orange",
                   "rule_brain": "tab:purple", "exposure_matched": "tab:olive"}
REASON_COLORS = {"target": "tab:green", "stop": "tab:red", "liquidation": "black", "signal": "tab:blue",
                 "end": "tab:gray"}
REGIME_COLORS = dict(zip(STATE_KEYS, ("#dddddd", "#c8f0c8", "#f6caca", "#f7e3b5")))


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _figure(nrows: int = 1, ncols: int = 1, height: float = 3.2, width: float = 11.0, **kw):
    plt = _plt()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height * nrows), squeeze=False, **kw)
    return fig, axes


def save(fig, path) -> None:
    """Write ``fig`` as a PNG (parents created)."""
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")


# ---------------------------------------------------------------- evaluation

def equity_curves(equity: pd.DataFrame, title: str = "Equity on the test split"):
    fig, ax = _figure(height=4.0)
    ax = ax[0, 0]
    for name in equity.columns:
        ax.plot(equity.index, equity[name], label=name, color=STRATEGY_COLORS.get(name),
                lw=2.0 if name == "agent" else 1.1)
    ax.set_title(title)
    ax.set_ylabel("equity (USD)")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return fig


SPLIT_COLORS = {"train": "#dbe9f6", "validation": "#fbe5c8", "test": "#f6d5d5"}


def market_close(candles: pd.DataFrame, spans: dict[str, tuple[pd.Timestamp, pd.Timestamp]] | None = None,
                 title: str = "Close price"):
    """The close (and volume below), with the bars of each split shaded when ``spans`` (name -> first, last bar)."""
    fig, axes = _figure(2, 1, height=2.2, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax, vol = axes[0, 0], axes[1, 0]
    for name, (lo, hi) in (spans or {}).items():
        ax.axvspan(lo, hi, color=SPLIT_COLORS.get(name, "#eeeeee"), lw=0, label=name)
    ax.plot(candles.index, candles["close"], color="black", lw=0.8, label="close")
    ax.set_title(title)
    ax.set_ylabel("price")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    ax.grid(alpha=0.3)
    vol.fill_between(candles.index, candles["volume"], color="tab:gray", lw=0, step="mid")
    vol.set_ylabel("volume")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def drawdowns(dd: pd.DataFrame, title: str = "Drawdown below the running peak"):
    fig, ax = _figure()
    ax = ax[0, 0]
    for name in dd.columns:
        ax.plot(dd.index, -100 * dd[name], label=name, color=STRATEGY_COLORS.get(name), lw=1.6 if name == "agent" else 1.0)
    if "agent" in dd:
        ax.fill_between(dd.index, -100 * dd["agent"], 0, color="tab:blue", alpha=0.15)
    ax.set_title(title)
    ax.set_ylabel("drawdown (%)")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return fig


def trades_on_price(close: pd.Series, markers: dict[str, pd.DataFrame], title: str = "Agent trades on the price"):
    """Close price; entries as triangles (long up, short down), exits as dots coloured by exit reason."""
    fig, ax = _figure(height=4.5)
    ax = ax[0, 0]
    ax.plot(close.index, close, color="black", lw=0.8, label="close")
    e, x = markers["entries"], markers["exits"]
    for side, marker, color in (("long", "^", "tab:green"), ("short", "v", "tab:red")):
        sel = e[e["side"].str.lower().isin([side, "buy" if side == "long" else "sell", "1" if side == "long" else "-1"])]
        if len(sel):
            ax.scatter(sel["time"], sel["price"], marker=marker, s=60, color=color, label=f"entry {side}", zorder=3)
    for reason in sorted(x["reason"].unique()) if len(x) else []:
        sel = x[x["reason"] == reason]
        ax.scatter(sel["time"], sel["price"], marker="o", s=30, facecolor="none", lw=1.5,
                   edgecolor=REASON_COLORS.get(reason, "tab:olive"), label=f"exit: {reason}", zorder=3)
    for en, ex in zip(e.itertuples(), x.itertuples()):
        ax.plot([en.time, ex.time], [en.price, ex.price], color="tab:gray", lw=0.6, alpha=0.6)
    ax.set_title(title)
    ax.set_ylabel("price")
    ax.legend(loc="best", fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return fig


def action_mix(mix: dict[str, pd.DataFrame], title: str = "What the agent chose (rolling shares)"):
    fig, axes = _figure(3, 1, height=2.4, sharex=True)
    for ax, (key, frame) in zip(axes[:, 0], mix.items()):
        f = frame.fillna(0.0)
        used = [c for c in f.columns if f[c].max() > 0]
        if used:
            ax.stackplot(f.index, *[f[c].to_numpy() for c in used], labels=used, alpha=0.85)
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
        ax.set_ylabel(key)
        ax.set_ylim(0, 1)
    axes[0, 0].set_title(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def breakdowns(tables: dict[str, pd.DataFrame], title: str = "Agent trades by regime, cycle phase and exit profile"):
    fig, axes = _figure(1, max(1, len(tables)), height=3.6, width=12.0)
    for ax, (key, t) in zip(axes[0], tables.items()):
        if t.empty:
            ax.text(0.5, 0.5, "no trades", ha="center", va="center", transform=ax.transAxes)
        else:
            colors = ["tab:green" if v >= 0 else "tab:red" for v in t["pnl_usd"]]
            ax.bar(t.index.astype(str), t["pnl_usd"], color=colors)
            for i, (n, w) in enumerate(zip(t["trades"], t["win_rate"])):
                ax.annotate(f"{n:.0f} tr\n{w:.0%} win", (i, 0), ha="center", va="bottom", fontsize=7)
            ax.tick_params(axis="x", rotation=30, labelsize=8)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(key, fontsize=10)
        ax.set_ylabel("net PnL (USD)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def intervals(iv: pd.DataFrame, title: str = "Bootstrap confidence intervals"):
    stats = list(dict.fromkeys(iv["statistic"]))
    fig, axes = _figure(1, max(1, len(stats)), height=3.4, width=12.0)
    for ax, stat in zip(axes[0], stats):
        t = iv[iv["statistic"] == stat].reset_index(drop=True)
        y = np.arange(len(t))
        err = np.vstack([t["estimate"] - t["low"], t["high"] - t["estimate"]])
        ax.errorbar(t["estimate"], y, xerr=err, fmt="o", capsize=4, color="tab:blue")
        ax.set_yticks(y, t["strategy"])
        ax.axvline(0, color="black", lw=0.7)
        conf = t["confidence"].iloc[0] if len(t) else 0.95
        ax.set_title(f"{stat} ({conf:.0%} interval)", fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def cost_sweep(frame: pd.DataFrame, title: str = "Net return as fees and slippage scale"):
    fig, ax = _figure(height=3.4, width=7.0)
    ax = ax[0, 0]
    for name in frame.columns:
        ax.plot(frame.index, 100 * frame[name], marker="o", label=name, color=STRATEGY_COLORS.get(name))
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("cost multiplier (x fees and slippage)")
    ax.set_ylabel("net return (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def walkforward(frame: pd.DataFrame, title: str = "Walk-forward: out-of-sample net return per fold and seed"):
    fig, ax = _figure(height=3.4, width=9.0)
    ax = ax[0, 0]
    labels = [f"f{f} s{s}" for f, s in zip(frame["fold"], frame["seed"])]
    x = np.arange(len(frame))
    ax.bar(x - 0.2, 100 * frame["agent_net_return"].astype(float), width=0.4, label="agent")
    ax.bar(x + 0.2, 100 * frame["best_baseline_net_return"].astype(float), width=0.4, label="best baseline")
    ax.set_xticks(x, labels)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel("net return (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def scalars(frame: pd.DataFrame, prefix: str, max_tags: int = 12, ncols: int = 4):
    """One small line chart per TensorBoard tag under ``prefix`` (e.g. ``"trade/"``)."""
    tags = [t for t in dict.fromkeys(frame["tag"]) if t.startswith(prefix)][:max_tags]
    return _tag_grid(frame, tags, f"TensorBoard {prefix}* by timestep", ncols)


TRAINING_CURVES = ("train/value_loss", "train/entropy_loss", "train/approx_kl", "train/explained_variance",
                   "env/equity", "trade/win_rate", "eval/net_pnl_usd", "eval/net_return")


def training_curves(frame: pd.DataFrame, tags: tuple[str, ...] = TRAINING_CURVES, ncols: int = 4):
    """The PPO run at a glance: the TensorBoard tags of ``tags`` that the run logged, one chart each."""
    present = set(frame["tag"])
    return _tag_grid(frame, [t for t in tags if t in present], "Training curves (TensorBoard scalars by timestep)", ncols)


def _tag_grid(frame: pd.DataFrame, tags: list[str], title: str, ncols: int):
    from matplotlib.ticker import MaxNLocator

    if not tags:
        return None
    ncols = min(ncols, len(tags))
    nrows = int(np.ceil(len(tags) / ncols))
    fig, axes = _figure(nrows, ncols, height=2.2, width=12.0)
    for ax in axes.ravel()[len(tags):]:
        ax.set_visible(False)
    for ax, tag in zip(axes.ravel(), tags):
        t = frame[frame["tag"] == tag]
        ax.plot(t["step"], t["value"], marker="." if len(t) < 30 else None, lw=1.0)
        ax.set_title(tag, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(4))  # timesteps run to six digits: fewer labels, none overlapping
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- tentacles

def shade_states(ax, spans: pd.DataFrame, colors: dict[str, str] | None = None) -> None:
    colors = colors or REGIME_COLORS
    seen = set()
    for s in spans.itertuples():
        label = s.label if s.label not in seen else None
        seen.add(s.label)
        ax.axvspan(s.start, s.end, color=colors.get(s.label, "#eeeeee"), alpha=0.6, lw=0, label=label)


def price_levels(levels: pd.DataFrame, spans: pd.DataFrame | None = None,
                 title: str = "Price with support / resistance, shaded by regime"):
    fig, ax = _figure(height=4.2)
    ax = ax[0, 0]
    if spans is not None and len(spans):
        shade_states(ax, spans)
    ax.plot(levels.index, levels["close"], color="black", lw=0.9, label="close")
    ax.plot(levels.index, levels["support"], color="tab:green", lw=0.9, ls="--", label="support")
    ax.plot(levels.index, levels["resistance"], color="tab:red", lw=0.9, ls="--", label="resistance")
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def panels(frame: pd.DataFrame, groups: dict[str, list[str]], title: str, hlines: dict[str, list[float]] | None = None):
    """One panel per entry of ``groups`` (panel title -> columns of ``frame``)."""
    groups = {k: [c for c in v if c in frame] for k, v in groups.items()}
    groups = {k: v for k, v in groups.items() if v}
    fig, axes = _figure(max(1, len(groups)), 1, height=2.1, sharex=True)
    for ax, (name, cols) in zip(axes[:, 0], groups.items()):
        for c in cols:
            ax.plot(frame.index, frame[c], lw=0.9, label=c)
        for y in (hlines or {}).get(name, []):
            ax.axhline(y, color="gray", lw=0.6, ls=":")
        ax.set_ylabel(name, fontsize=8)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def heatmap(matrix: pd.DataFrame, title: str, cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None,
            annotate: bool = False, time_axis: bool = False):
    """A labelled heat map; with ``time_axis`` the rows are series over time (drawn as rows, time on x)."""
    plt = _plt()
    if time_axis:
        data = matrix.T
        fig, ax = _figure(height=max(2.0, 0.35 * data.shape[0] + 1.2))
        ax = ax[0, 0]
        im = ax.imshow(data.to_numpy(dtype=float), aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_yticks(range(data.shape[0]), data.index, fontsize=8)
        ticks = np.linspace(0, data.shape[1] - 1, min(6, data.shape[1])).astype(int)
        ax.set_xticks(ticks, [str(matrix.index[i])[:16] for i in ticks], fontsize=7, rotation=20)
    else:
        n = max(matrix.shape)
        fig, ax = _figure(height=min(9.0, 0.45 * n + 2.0), width=min(12.0, 0.55 * n + 3.0))
        ax = ax[0, 0]
        im = ax.imshow(matrix.to_numpy(dtype=float), cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(matrix.shape[0]), matrix.index, fontsize=8)
        if annotate:
            for i in range(matrix.shape[0]):
                for j in range(matrix.shape[1]):
                    v = matrix.iat[i, j]
                    if np.isfinite(v):
                        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.5 else "black")
    plt.colorbar(im, ax=ax, fraction=0.03)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def importance(frame: pd.DataFrame, title: str = "Permutation importance of each tentacle"):
    fig, axes = _figure(1, 2, height=3.8, width=12.0)
    t = frame.sort_values("net_return_drop")
    axes[0, 0].barh(t.index, 100 * t["net_return_drop"], xerr=100 * t["net_return_drop_std"], color="tab:blue")
    axes[0, 0].axvline(0, color="black", lw=0.6)
    axes[0, 0].set_xlabel("drop in net return when shuffled (pp)")
    axes[0, 1].barh(t.index, 1 - t["action_agreement"], color="tab:orange", label="any part")
    axes[0, 1].barh(t.index, 1 - t["side_agreement"], color="tab:red", alpha=0.7, label="side")
    axes[0, 1].set_xlabel("share of actions changed when shuffled")
    axes[0, 1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- prediction log

def decisions_over_time(predictions: pd.DataFrame, per_period: pd.DataFrame, title: str = "Decisions and outcomes"):
    fig, axes = _figure(2, 1, height=3.0, sharex=True)
    ax = axes[0, 0]
    colors = {"win": "tab:green", "loss": "tab:red", "open": "tab:gray", "none": "#cccccc"}
    for outcome, color in colors.items():
        sel = predictions[predictions["outcome"] == outcome]
        if len(sel):
            y = sel["side"].str.upper().map({"BUY": 1, "SELL": -1, "WAIT": 0}).fillna(0)
            ax.scatter(sel["ts"], y, s=14, color=color, label=outcome)
    ax.set_yticks([-1, 0, 1], ["SELL", "WAIT", "BUY"])
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    ax2 = axes[1, 0]
    ax2.plot(per_period.index, per_period["cum_pnl_usd"], color="tab:blue", marker=".")
    ax2.set_ylabel("cumulative PnL (USD)")
    ax2.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def calibration(table: pd.DataFrame, title: str = "Calibration of P(side)"):
    """Reliability diagram of :func:`aster_rl.evaluation.reporting.calibration_table` (P(side) vs the realized win rate)."""
    fig, axes = _figure(1, 2, height=3.8, width=11.0)
    ax = axes[0, 0]
    used = table[table["decisions"] > 0]
    ax.plot([0, 1], [0, 1], color="gray", ls="--", lw=0.8, label="perfectly calibrated")
    err = np.vstack([used["win_rate"] - used["win_rate_low"], used["win_rate_high"] - used["win_rate"]])
    ax.errorbar(used["mean_confidence"], used["win_rate"], yerr=err, fmt="o-", capsize=3, label="realized win rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("P(side): the side head's probability")
    ax.set_ylabel("win rate")
    ece = table.attrs.get("expected_calibration_error", float("nan"))
    brier = table.attrs.get("brier_score", float("nan"))
    ax.set_title(f"{title} (ECE {ece:.3f}, Brier {brier:.3f})", fontsize=10)
    ax.legend(fontsize=8)
    ax2 = axes[0, 1]
    ax2.bar((table["low"] + table["high"]) / 2, table["decisions"], width=(table["high"] - table["low"]) * 0.9)
    ax2.set_xlabel("P(side) bin")
    ax2.set_ylabel("closed decisions")
    fig.tight_layout()
    return fig


def pattern_history(history: pd.DataFrame, title: str = "Pattern library: events and win rates"):
    fig, axes = _figure(2, 1, height=3.0, sharex=True)
    ax = axes[0, 0]
    names = list(dict.fromkeys(history["pattern_name"]))
    events = list(dict.fromkeys(history["event"]))
    markers = dict(zip(events, "os^vDP*X"))
    for ev in events:
        sel = history[history["event"] == ev]
        ax.scatter(sel["ts"], [names.index(n) for n in sel["pattern_name"]], marker=markers.get(ev, "o"), label=ev, s=30)
    ax.set_yticks(range(len(names)), [n[:40] for n in names], fontsize=7)
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    ax2 = axes[1, 0]
    for n in names:
        sel = history[history["pattern_name"] == n]
        ax2.plot(sel["ts"], sel["win_rate"].astype(float), marker=".", lw=1.0, label=n[:40])
    ax2.set_ylabel("win rate")
    ax2.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def text_figure(lines: list[str], title: str = "") -> Any:
    """Lines of text as a figure (tentacle readings in the rendered report)."""
    fig, ax = _figure(height=0.28 * len(lines) + 0.8)
    ax = ax[0, 0]
    ax.axis("off")
    ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=8, transform=ax.transAxes)
    if title:
        ax.set_title(title, loc="left")
    return fig


def normalized_closes(closes: dict[str, pd.Series], title: str = "Close of each market (first bar = 1)"):
    fig, axes = _figure(1, max(1, len(closes)), height=3.0, width=12.0)
    for ax, (name, close) in zip(axes[0], closes.items()):
        ax.plot(close.index, close / close.iloc[0], lw=0.7)
        ax.set_title(name, fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
