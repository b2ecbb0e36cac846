"""Running the notebooks and feeding them: parameter injection, execution, rendering, run lookup.

- :func:`execute_notebook` works like papermill: the values in ``parameters`` go into a new
  cell (tagged ``injected-parameters``) right after the cell tagged ``parameters``; the
  notebook runs top to bottom with nbclient, and the executed copy is saved. The kernel is
  always the interpreter that runs this function (``sys.executable``), so a project
  virtual environment needs no ``ipykernel install`` step and no user-level kernelspec
  can redirect it.
- :func:`render_html` / :func:`save_images` make the copy for people who do not open
  Jupyter: one HTML page per notebook and every figure as a PNG (named by the cell's
  ``figure:<name>`` tag when it has one).
- :func:`ensure_run`, :func:`open_run`, :func:`agent_backtest`, :func:`tensorboard_scalars`
  and :func:`find_walkforward` are what the notebooks call to get a run and its results.
- :func:`notebook_market`, :func:`observation_by_tentacle`, :func:`train_with_progress` and
  :func:`paper_replay` are the steps of the quickstart notebook (the whole loop).
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.run_dir import WALKFORWARD_FILE, RunDir, Which
from aster_rl.config import AppConfig, load_config, replace
from aster_rl.errors import DataError

logger = logging.getLogger(__name__)

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = ("quickstart", "evaluate", "tentacles", "live")
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
FIGURE_TAG_PREFIX = "figure:"


# ---------------------------------------------------------------- notebook files

def read_notebook(path: str | Path):
    import nbformat

    return nbformat.read(str(path), as_version=4)


def parameters_cell_index(nb) -> int:
    """Position of the cell tagged ``parameters``."""
    for i, cell in enumerate(nb.cells):
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            return i
    raise DataError("the notebook has no cell tagged 'parameters'")


def inject_parameters(nb, parameters: dict[str, Any] | None):
    """A copy of ``nb`` with a cell assigning ``parameters`` after the parameters cell (replacing an earlier injection)."""
    import nbformat

    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    if not parameters:
        return nb
    at = parameters_cell_index(nb)
    lines = ["# Parameters injected by agents.notebooks.execute_notebook"]
    for name, value in parameters.items():
        if not str(name).isidentifier():
            raise ValueError(f"parameter name {name!r} is not a Python identifier")
        if isinstance(value, Path):
            value = str(value)
        lines.append(f"{name} = {value!r}")
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": [INJECTED_TAG]})
    nb.cells.insert(at + 1, cell)
    return nb


def strip_outputs(nb):
    """A copy of ``nb`` without outputs, execution counts or execution metadata (as stored in git)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.get("metadata", {}).pop("execution", None)
    return nb


def has_outputs(nb) -> bool:
    return any(c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None) for c in nb.cells)


def _kernel_manager():
    """A kernel manager whose ``python3`` kernel is this interpreter's ipykernel."""
    from ipykernel.kernelspec import RESOURCES, get_kernel_dict
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    class SameInterpreterKernelSpecs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str):
            if kernel_name == "python3":
                return self.kernel_spec_class(resource_dir=RESOURCES, **get_kernel_dict())
            return super().get_kernel_spec(kernel_name)

    return KernelManager(kernel_name="python3", kernel_spec_manager=SameInterpreterKernelSpecs())


def execute_notebook(
    path: str | Path,
    parameters: dict[str, Any] | None = None,
    output_path: str | Path | None = None,
    timeout: float = 600,
    cwd: str | Path | None = None,
):
    """Run the notebook at ``path`` with ``parameters``; save the executed copy to ``output_path``.

    ``cwd`` is the kernel's working directory (default: the repository root, so the
    default ``checkpoints/`` and ``data/`` are the project's). ``timeout`` is per cell, in
    seconds. On a failing cell the partly executed copy is still saved, then the error is raised.
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = inject_parameters(read_notebook(path), parameters)
    cwd = Path(cwd) if cwd is not None else NOTEBOOK_DIR.parent
    client = NotebookClient(
        nb,
        km=_kernel_manager(),
        timeout=int(timeout),
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
        coalesce_streams=True,  # one stdout / stderr output per cell; a text progress bar keeps its last state
    )
    logger.info("executing %s (kernel %s, cwd %s)", path.name, sys.executable, cwd)
    try:
        client.execute()
    finally:
        if output_path is not None:
            output_path = Path(output_path)
            output_path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, str(output_path))
    return nb


# ---------------------------------------------------------------- rendering

def image_outputs(nb) -> list[tuple[str, bytes]]:
    """``(name, png bytes)`` of every PNG output, in order; named ``<tag>`` or ``cell<NN>``, with ``_<k>`` for extras."""
    out: list[tuple[str, bytes]] = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = [t for t in cell.get("metadata", {}).get("tags", []) if t.startswith(FIGURE_TAG_PREFIX)]
        base = tags[0][len(FIGURE_TAG_PREFIX):] if tags else f"cell{i:02d}"
        k = 0
        for o in cell.get("outputs", []):
            data = o.get("data", {}) if o.get("output_type") in ("display_data", "execute_result") else {}
            if "image/png" in data:
                name = base if k == 0 else f"{base}_{k}"
                out.append((name, base64.b64decode(data["image/png"])))
                k += 1
    return out


def save_images(nb, out_dir: str | Path, prefix: str = "") -> list[Path]:
    """Write every PNG output of ``nb`` to ``out_dir/<prefix><name>.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in image_outputs(nb):
        p = out_dir / f"{prefix}{name}.png"
        p.write_bytes(png)
        paths.append(p)
    return paths


def render_html(nb, out_path: str | Path, exclude_input: bool = False) -> Path:
    """The executed notebook as one self-contained HTML page (images inlined)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    exporter.exclude_input = exclude_input
    body, _ = exporter.from_notebook_node(nb)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(body, encoding="utf-8")
    return out_path


# ---------------------------------------------------------------- runs for the notebooks

def tiny_config(
    base: AppConfig | None = None,
    *,
    data_dir: str | Path = "data",
    checkpoint_dir: str | Path = "checkpoints",
    timesteps: int = 4_096,
    n_bars: int | None = None,
    episode_length: int = 256,
    bootstrap_samples: int = 200,
    random_seeds: int = 3,
    name: str = "tiny",
) -> AppConfig:
    """A small, quick training configuration on ``base`` (default: the code defaults, i.e. the synthetic market)."""
    base = base if base is not None else AppConfig()
    n_envs = 4
    n_steps = max(32, min(256, timesteps // (2 * n_envs)))
    synth = {"n_bars": int(n_bars)} if n_bars else {}
    return replace(
        base,
        data={"data_dir": str(data_dir)},
        synth=synth,
        env={"episode_length": int(episode_length)},
        train={"name": name, "total_timesteps": int(timesteps), "n_envs": n_envs, "n_steps": n_steps,
               "batch_size": n_steps * n_envs // 2, "n_epochs": 2, "eval_freq": max(n_steps * n_envs, timesteps // 2),
               "net_arch": [32, 32], "checkpoint_dir": str(checkpoint_dir), "progress_bar": False},
        eval={"bootstrap_samples": int(bootstrap_samples), "random_seeds": int(random_seeds),
              "bootstrap_block": max(1, episode_length // 4)},
    )


def ensure_run(
    run: str | Path | None = None,
    *,
    checkpoint_dir: str | Path = "checkpoints",
    data_dir: str | Path = "data",
    config_path: str | Path | None = None,
    timesteps: int = 4_096,
    n_bars: int | None = None,
) -> Path:
    """``run`` if given; else the newest run with a test split under ``checkpoint_dir``; else a tiny run trained
    now on the configured market (the synthetic default) through :func:`agents.train.train`."""
    if run:
        return RunDir.resolve(run, checkpoint_dir).path
    newest = RunDir.newest(checkpoint_dir, where=RunDir.has_test_split)
    if newest is not None:
        logger.info("newest run under %s: %s", checkpoint_dir, newest.name)
        return newest.path
    from agents.data import build_dataset
    from agents.train import train

    base = load_config(config_path) if config_path else None
    config = tiny_config(base, data_dir=data_dir, checkpoint_dir=checkpoint_dir, timesteps=timesteps, n_bars=n_bars)
    logger.info("no run under %s: training a tiny one (%d timesteps)", checkpoint_dir, timesteps)
    return train(config, build_dataset(config)).run_dir


@dataclass
class RunContext:
    """A run with the data it was trained on, its splits and its policy."""

    run_dir: Path
    config: AppConfig
    dataset: Any  # agents.data.Dataset
    splits: Any  # agents.splits.Splits
    policy: Any  # agents.policy.LoadedPolicy


def open_run(run_dir: str | Path, which: Which = "best", dataset=None, wait_outside_support: bool | None = None) -> RunContext:
    """Load a run's config, rebuild its dataset (unless given), load its splits and policy (schema checked;
    ``wait_outside_support``: None keeps the run's own setting)."""
    from agents.data import build_dataset
    from agents.policy import load_policy
    from agents.splits import load_run_splits

    run_dir = Path(run_dir)
    config = RunDir(run_dir).load_config()
    dataset = dataset if dataset is not None else build_dataset(config)
    splits = load_run_splits(run_dir, dataset.prices.timestamps)
    policy = load_policy(run_dir, schema=dataset.schema, which=which, wait_outside_support=wait_outside_support)
    return RunContext(run_dir, config, dataset, splits, policy)


def agent_backtest(ctx: RunContext, span=None):
    """The run's deterministic policy over ``span`` (default: the test split), with its per-bar actions."""
    from agents.evaluate import run_backtest

    return run_backtest(ctx.policy, ctx.dataset, ctx.config.env, span if span is not None else ctx.splits.test)


def tensorboard_scalars(path: str | Path) -> pd.DataFrame:
    """Every scalar in the TensorBoard event files under ``path`` (a run or its ``tb/``):
    long format ``tag, step, value, wall_time``, sorted by tag and step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = Path(path)
    root = RunDir(path).tensorboard if RunDir(path).tensorboard.is_dir() else path
    dirs = sorted({p.parent for p in root.rglob("events.out.tfevents.*")})
    rows: list[tuple[str, int, float, float]] = []
    for d in dirs:
        acc = EventAccumulator(str(d), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            rows.extend((tag, e.step, e.value, e.wall_time) for e in acc.Scalars(tag))
    frame = pd.DataFrame(rows, columns=["tag", "step", "value", "wall_time"])
    return frame.sort_values(["tag", "step"]).reset_index(drop=True)


def find_walkforward(checkpoint_dir: str | Path) -> tuple[Path, dict] | None:
    """The newest ``walkforward.json`` under ``checkpoint_dir``, with its contents; None if there is none."""
    root = Path(checkpoint_dir)
    found = sorted(root.glob(f"*/{WALKFORWARD_FILE}"), key=lambda p: p.stat().st_mtime, reverse=True) if root.exists() else []
    if not found:
        return None
    return found[0], json.loads(found[0].read_text())


# ---------------------------------------------------------------- a demonstration prediction log

DEMO_SESSION_PREFIX = "demo"  # session ids of demonstration replays: demo:<run>


def demo_prediction_log(
    db,
    *,
    run: str | Path | None = None,
    checkpoint_dir: str | Path = "checkpoints",
    data_dir: str | Path = "data",
    timesteps: int = 4_096,
    n_bars: int | None = None,
    pattern_min_trades: int = 5,
) -> str:
    """Fill empty ``predictions`` / ``pattern_history`` tables with a labelled demonstration.

    A trained policy (``run``, or see :func:`ensure_run`) is replayed over its test split by
    the live runner (:class:`aster_rl.live.runner.LiveRunner`, replay source, paper broker;
    session ``demo:<run>``), which logs every decision and its outcome. Each closed trade
    then updates a demonstration pattern named after the regime at the decision bar, the
    side and the exit profile (``pattern_min_trades`` closed trades make a pattern active),
    so the library's history has events. The replay runs with WAIT outside the training support off (a tiny
    run would only wait), as the description says. Returns a one-line description.
    """
    from aster_rl.config import PatternsConfig
    from aster_rl.patterns.language import Condition, Pattern
    from aster_rl.patterns.library import PatternLibrary
    from aster_rl.patterns.stats import PatternStats
    from aster_rl.storage.pattern_store import record_outcome, save_library

    from agents.evaluate import REGIME_NAMES

    run_dir = ensure_run(run, checkpoint_dir=checkpoint_dir, data_dir=data_dir, timesteps=timesteps, n_bars=n_bars)
    # a tiny run on a short market lies outside its training ranges on most later bars and would only WAIT:
    # the demonstration trades with that rule off, and says so
    ctx = open_run(run_dir, wait_outside_support=False)
    ds, cfg, span = ctx.dataset, ctx.config, ctx.splits.test
    session = f"{DEMO_SESSION_PREFIX}:{run_dir.name}"
    replay = paper_replay(ctx, db, session, span.start, span.end)
    summary, rows = replay.summary, replay.predictions
    closed = rows[rows["status"].isin(["win", "loss"]) & rows["pnl_usd"].notna()].sort_values("closed_at")
    regime = ds.column("regime_state")
    index = ds.index
    patterns_cfg = PatternsConfig(min_trades=pattern_min_trades)
    library = PatternLibrary(patterns_cfg)
    first_ms = int(index[span.start].value // 1_000_000)
    margin_usd = cfg.env.initial_equity_usd * cfg.env.margin_fraction
    outcomes = []
    for p in closed.itertuples():
        decided = pd.Timestamp(int(p.ts), unit="ms", tz="UTC")
        t = min(max(int(index.searchsorted(decided, side="right")) - 2, 0), len(index) - 1)  # the bar that closed at ts
        state = int(round(float(regime[t]))) if regime is not None else 0
        side = "long" if str(p.side).upper() == "BUY" else "short"
        pattern = Pattern((Condition("regime_state", "==", float(state)),), side, str(p.profile or "swing"))
        if pattern.name not in library:
            library.add(pattern, PatternStats(), {"selection": "demonstration"}, ts_ms=first_ms)
        net_return = float(p.pnl_usd) / margin_usd  # return on the posted margin (approximate: margin at the start)
        outcomes.append((pattern.name, net_return, REGIME_NAMES.get(state, "ranging"), int(p.closed_at or p.ts)))
    if len(library):
        save_library(db, library, replace_all=False)
    for name, net_return, state_name, ts_ms in outcomes:
        record_outcome(db, patterns_cfg, name, net_return, regime=state_name, ts_ms=ts_ms)
    return (f"live-runner replay {session!r} over the test split: {summary.bars} bars, {len(rows)} predictions, "
            f"{len(closed)} closed; {len(library)} demonstration patterns; WAIT outside the training support off")


@dataclass
class Replay:
    """A paper replay: the runner's summary, the session's rows of ``predictions`` and the share of the
    replayed bars outside the policy's training support (one line; empty without a support record)."""

    summary: Any  # aster_rl.live.runner.RunSummary
    predictions: pd.DataFrame
    support_line: str


def paper_replay(ctx: RunContext, db, session: str, start: int, end: int) -> Replay:
    """The run's policy driven bar by bar over bars ``[start, end)`` of its market by the live runner (replay
    source, paper broker), every decision logged in ``db`` under ``session``."""
    from aster_rl.evaluation.reporting import read_table
    from aster_rl.live.bars import LivePrices
    from aster_rl.live.brokers import PaperBroker
    from aster_rl.live.risk import live_settings
    from aster_rl.live.runner import LiveRunner
    from aster_rl.live.sources import ReplaySource

    cfg = ctx.config
    prices = LivePrices(cfg.data.timeframe)
    runner = LiveRunner(ctx.policy, ReplaySource(ctx.dataset.market, start, end), PaperBroker(cfg.env, prices), db,
                        env_cfg=cfg.env, live_cfg=live_settings(cfg), features_cfg=cfg.features, session_id=session,
                        mode="replay", prices=prices)
    summary = runner.run()
    rows = read_table(db, "predictions")
    rows = rows[rows["session_id"] == session] if "session_id" in rows else rows
    return Replay(summary, rows, runner.support.report().line() if runner.support is not None else "")


# ---------------------------------------------------------------- the quickstart's steps

def store_notebook_market(config: AppConfig, market, source: str):
    """``market`` stored in the configured database under ``source``; the config reading it back, and the
    market as loaded (so a run's saved config rebuilds exactly these bars)."""
    from aster_rl.storage import Database, store_market

    from agents.data import load_market_for

    config = replace(config, data={"source": source, "symbol": market.symbol, "timeframe": market.timeframe})
    db = Database.from_config(config.data)
    db.init_schema()
    store_market(db, market, config.data.source, config.data.btc_symbol, config.data.eth_symbol)
    return config, load_market_for(config)


def shared_real_market(config: AppConfig, name: str, n_bars: int | None = None):
    """The shared real market ``name`` (:func:`aster_rl.data.real.real_market`; its last ``n_bars`` bars, all
    when None) stored in the configured database (source ``real-<name>-<last bar>-<bars>``), with its
    contract's settings (:func:`aster_rl.data.real.contract_settings`): the config reading it back, and the market."""
    from aster_rl.data.real import contract_settings
    from aster_rl.data.real import real_market as shared_market

    market = shared_market(name)
    if n_bars:
        market = market.window(market.candles.index[-min(int(n_bars), len(market))], None)
    config = replace(config, **contract_settings(name))
    return store_notebook_market(config, market, f"real-{name.lower()}-{market.candles.index[-1]:%Y%m%d%H%M}-{len(market)}")


def notebook_market(config: AppConfig, real_files: Sequence[str] | None = None, n_bars: int | None = None):
    """The market a notebook trains on, stored in the configured database under a source naming exactly these
    bars, so a run's saved config rebuilds them; returns the config reading it and the market as loaded.

    Without ``real_files``: the synthetic market of ``config.synth`` (source ``synthetic-<edge>-s<seed>-<bars>``).
    With them: the last ``n_bars`` bars (all when None) of the named candle files in the shared real-data
    folder (:func:`aster_rl.paths.real_data_dir`), see :func:`real_market` (source ``real-<tf>-<last bar>-<bars>``).
    """
    from aster_rl.data.synthetic import synthesize

    if real_files:
        market = real_market(real_files, n_bars, config.data.btc_symbol, config.data.eth_symbol)
        return store_notebook_market(config, market, f"real-{market.timeframe}-{market.candles.index[-1]:%Y%m%d%H%M}-{len(market)}")
    s = config.synth
    market = synthesize(s, timeframe=config.data.timeframe, symbol=config.data.symbol)
    return store_notebook_market(config, market, f"synthetic-{s.edge}-s{s.seed}-{s.n_bars}")


def real_market(files: Sequence[str], n_bars: int | None, btc_symbol: str, eth_symbol: str):
    """A market from candle files in the shared real-data folder: the one file whose symbol is neither
    ``btc_symbol`` nor ``eth_symbol`` is traded (its last ``n_bars`` bars); the BTC / ETH files, when
    named, give the companions over the same bars. Symbols and timeframes come from the file names."""
    from aster_rl.data.importer import read_candle_file
    from aster_rl.data.market import MarketBundle
    from aster_rl.paths import real_data_dir

    root = real_data_dir()
    if not root.is_dir():
        raise DataError(f"real_files: the shared real-data folder {root} does not exist (set ASTER_REAL_DATA)")
    parsed = [read_candle_file(root / name) for name in files]
    companions = {btc_symbol: "btc", eth_symbol: "eth"}
    traded = [p for p in parsed if p.symbol not in companions]
    if len(traded) != 1:
        raise DataError(f"real_files {list(files)}: expected one traded market besides {btc_symbol} and {eth_symbol}, "
                        f"got {[p.symbol for p in traded] or 'none'}")
    main = traded[0]
    other = [p for p in parsed if p.timeframe != main.timeframe]
    if other:
        raise DataError(f"real_files: {other[0].path.name} is {other[0].timeframe}, {main.path.name} is {main.timeframe}")
    candles = main.candles.iloc[-int(n_bars):] if n_bars else main.candles
    lo, hi = candles.index[0], candles.index[-1]
    parts = {companions[p.symbol]: p.candles.loc[lo:hi] for p in parsed if p.symbol in companions}
    return MarketBundle(symbol=main.symbol, timeframe=main.timeframe, candles=candles, **parts)


def observation_by_tentacle(observation: np.ndarray, schema) -> pd.DataFrame:
    """One row per tentacle (and the account state at the end): its number of columns in ``observation``
    and their values, ``name=value`` with the tentacle's prefix left out."""
    from aster_rl.sim.observation import ACCOUNT_COLUMNS

    groups = {**schema.column_groups(), "account": list(ACCOUNT_COLUMNS)}
    width = sum(len(cols) for cols in groups.values())
    obs = np.asarray(observation, dtype=float).ravel()
    if obs.shape[0] != width:
        raise DataError(f"the observation has {obs.shape[0]} values; the schema and the account state name {width}")
    rows, at = {}, 0
    for name, cols in groups.items():
        values = obs[at : at + len(cols)]
        at += len(cols)
        short = [c[len(name) + 1:] if c.startswith(name + "_") else c for c in cols]
        rows[name] = {"columns": len(cols), "values": ", ".join(f"{c}={v:.3g}" for c, v in zip(short, values))}
    return pd.DataFrame.from_dict(rows, orient="index")


def _notebook_tqdm():
    """A tqdm class for a notebook: the widget bar when ipywidgets is installed, else a text bar on stdout."""
    try:
        import ipywidgets  # noqa: F401  (tqdm.notebook draws with it)
    except ImportError:
        from tqdm.std import tqdm as text_tqdm

        return functools.partial(text_tqdm, file=sys.stdout, mininterval=1.0, unit="step", desc="PPO")
    from tqdm.notebook import tqdm as widget_tqdm

    return functools.partial(widget_tqdm, unit="step", desc="PPO")


@contextmanager
def notebook_progress_bar() -> Iterator[None]:
    """While inside, stable-baselines3's training progress bar (``learn(progress_bar=True)``) is drawn for a
    notebook instead of with rich (which needs ipywidgets in Jupyter and draws nothing without it)."""
    import stable_baselines3.common.callbacks as sb3_callbacks

    saved = sb3_callbacks.tqdm
    sb3_callbacks.tqdm = _notebook_tqdm()
    try:
        yield
    finally:
        sb3_callbacks.tqdm = saved


def train_with_progress(config: AppConfig, dataset, **kw):
    """:func:`agents.train.train` with a notebook progress bar; returns its ``TrainResult``."""
    from agents.train import train

    with notebook_progress_bar():
        return train(config, dataset, progress_bar=True, **kw)
