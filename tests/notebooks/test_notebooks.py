"""The notebooks execute top to bottom on the synthetic default (tiny runs, small markets) and draw their figures.

One ``aster-rl report`` run executes all four (as the rendered copy is made), so the test
also proves the command: HTML pages with the images inlined and one PNG per figure. The
quickstart trains its own run in a temporary folder, beside the one the others share.
"""

import json
import re
import time

import nbformat
import pytest

from aster_rl.evaluation import reporting as R
from aster_rl.cli import main
from aster_rl.storage import Database

from agents.notebooks import DEMO_SESSION_PREFIX, image_outputs
from agents.run_dir import WALKFORWARD_FILE, RunDir

EXPECTED = {
    "quickstart": {"market", "training_curves", "equity", "decisions"},
    "evaluate": {"equity", "drawdown", "trades", "action_mix", "breakdown", "intervals", "cost_sweep", "walkforward",
                 "tb_trade", "tb_env", "tb_actions", "tb_eval", "tb_train"},
    "tentacles": {"price_levels", "indicators", "orderflow", "whales", "multi_timeframe", "cycle", "readings",
                  "tentacle_correlation", "importance"},
    "live": {"decisions", "calibration", "pattern_history"},
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_report_executes_every_notebook_and_renders_its_figures(tmp_path, capsys):
    checkpoints, data, out = tmp_path / "checkpoints", tmp_path / "data", tmp_path / "reports"
    # a walk-forward summary as `aster-rl walkforward` writes it, so the evaluate notebook draws that section too
    wf_dir = checkpoints / "tiny__walkforward__1"
    wf_dir.mkdir(parents=True)
    (wf_dir / WALKFORWARD_FILE).write_text(json.dumps({
        "summary": {"verdict": "mean out-of-sample net return CI [-1.00%, +1.00%] includes 0: no evidence of an edge"},
        "runs": [{"fold": k, "seed": 0, "test_first_bar": "2025-03-01T00:00:00+00:00", "test_last_bar": "2025-03-02T00:00:00+00:00",
                  "agent_net_return": 0.01 * k, "best_baseline": "flat", "best_baseline_net_return": 0.0,
                  "beats_best_baseline": k > 0} for k in range(2)],
    }))
    started = time.perf_counter()
    rc = main([
        "--set", f"train.checkpoint_dir={checkpoints}", "--set", f"data.data_dir={data}",
        "report", "--out", str(out),
        "--param", "synth_bars=3456", "--param", "tiny_timesteps=2048",
        "--param", "bootstrap_samples=100", "--param", "random_seeds=2",
        "--param", "importance_repeats=1", "--param", "range_bars=288",
        "--param", "n_bars=3456", "--param", "timesteps=2048", "--param", "replay_bars=96",
    ])
    seconds = time.perf_counter() - started
    assert rc == 0, capsys.readouterr()
    assert seconds < 300, f"the notebooks took {seconds:.0f} s together"
    printed = capsys.readouterr().out

    runs = RunDir.all(checkpoints)
    assert len(runs) == 1, "a tiny run was trained on the synthetic default"
    assert runs[0].eval.results.exists()

    for name, expected in EXPECTED.items():
        nb = nbformat.read(out / "notebooks" / f"{name}.ipynb", as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors
        images = dict(image_outputs(nb))
        assert expected <= set(images), f"{name}: missing figures {sorted(expected - set(images))}"
        for fig in expected:
            png = out / "figures" / f"{name}_{fig}.png"
            assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5_000, png
        html = (out / f"{name}.html").read_text()
        assert html.count("data:image/png;base64") >= len(expected)

    check_quickstart(nbformat.read(out / "notebooks" / "quickstart.ipynb", as_version=4))
    assert "quickstart:" in printed

    db = Database(f"sqlite:///{data / 'aster_rl.db'}")
    predictions = R.read_table(db, "predictions")
    assert len(predictions) > 0 and predictions["session_id"].str.startswith(DEMO_SESSION_PREFIX + ":").all()
    assert predictions["confidence"].notna().any() and predictions["status"].isin(["win", "loss"]).any()
    closed = int(predictions["status"].isin(["win", "loss"]).sum())
    assert len(R.read_table(db, "pattern_history")) > closed  # a created event per pattern + one per closed trade


def text_of(cell) -> str:
    parts = []
    for o in cell.outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type in ("display_data", "execute_result"):
            parts.append(o.get("data", {}).get("text/plain", "") + o.get("data", {}).get("text/markdown", ""))
    return "\n".join(parts)


def check_quickstart(nb) -> None:
    """Each step of the loop printed what it did: env renders, a finished progress bar, the judge's table and
    verdict, a replay that logged decisions."""
    text = "\n".join(text_of(c) for c in nb.cells if c.cell_type == "code")
    assert "Master brain:" in text and "Tentacles" in text
    assert text.count("equity=") >= 3 and "LONG" in text, "the env's ansi render, step by step"
    assert "account" in text and "indicators" in text, "the observation grouped by tentacle"
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        assert "2048/2048" in text, "the text progress bar ran to the end"
    for name in ("buy_and_hold", "exposure_matched", "flat", "random"):
        assert name in text
    assert "verdict:" in text and "**Verdict:**" in text
    replay = re.search(r"(\d+) bars replayed into .*: (\d+) decisions", text)
    assert replay and int(replay.group(1)) > 0 and int(replay.group(2)) > 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_report_renders_the_research_notebook_on_the_shared_real_data(real_data, tmp_path, capsys):
    """Train by dates on a real perp, judge on a later month, cost sweep, walk-forward and the gate, on small
    settings; the runs and database go to the notebook's own temporary folder."""
    out = tmp_path / "reports"
    rc = main([
        "report", "--out", str(out), "--notebooks", "research",
        "--param", "market='LTC'", "--param", "n_bars=60000", "--param", "timesteps=2048",
        "--param", "train_range='20231101-20240101'", "--param", "test_range='20240115-20240215'",
        "--param", "walkforward_range='20240101-'", "--param", "folds=3", "--param", "seeds=1",
    ])
    assert rc == 0, capsys.readouterr()
    nb = nbformat.read(out / "notebooks" / "research.ipynb", as_version=4)
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    images = dict(image_outputs(nb))
    assert {"markets", "equity", "cost_sweep", "walkforward"} <= set(images)
    for fig in ("markets", "equity", "cost_sweep", "walkforward"):
        assert (out / "figures" / f"research_{fig}.png").read_bytes()[:8] == PNG_MAGIC
    text = "\n".join(text_of(c) for c in nb.cells if c.cell_type == "code")
    assert "real 8-hourly funding" in text
    assert re.search(r"gate: (edge on validation: deployable|no edge found: this run will not trade real money)", text)
    assert "**Verdict on 20240115-20240215:**" in text
    assert "LTC walk-forward verdict: over 3 folds" in text
    assert re.search(r"the gate would deploy \d+ of 3 runs", text)
