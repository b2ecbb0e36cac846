"""Notebook helpers (parameters, outputs, rendering, run lookup), the committed notebooks, the plots."""

import base64
import json
import sys
import time

import matplotlib

matplotlib.use("Agg")

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from aster_rl.evaluation import reporting as R
from aster_rl.errors import DataError

from agents import notebooks as N
from agents import plots as P
from agents.run_dir import WALKFORWARD_FILE

from agent_helpers import hand_made_run

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def notebook():
    return new_notebook(cells=[
        new_markdown_cell("# t"),
        new_code_cell("a = 1\nb = 'x'", metadata={"tags": ["parameters"]}),
        new_code_cell("print(a)", metadata={"tags": ["figure:main"]}),
    ])


def test_inject_parameters_goes_after_the_parameters_cell_and_replaces_an_earlier_injection():
    nb = N.inject_parameters(notebook(), {"a": 2, "path": N.NOTEBOOK_DIR})
    assert nb.cells[2].metadata["tags"] == [N.INJECTED_TAG]
    assert "a = 2" in nb.cells[2].source and f"path = {str(N.NOTEBOOK_DIR)!r}" in nb.cells[2].source
    again = N.inject_parameters(nb, {"a": 3})
    assert len(again.cells) == 4 and "a = 3" in again.cells[2].source
    assert len(N.inject_parameters(nb, None).cells) == 3
    with pytest.raises(ValueError, match="identifier"):
        N.inject_parameters(notebook(), {"not valid": 1})
    with pytest.raises(DataError, match="parameters"):
        N.inject_parameters(new_notebook(cells=[new_code_cell("x = 1")]), {"x": 2})


def test_outputs_images_strip_and_render(tmp_path):
    nb = notebook()
    png = base64.b64encode(PNG).decode()
    nb.cells[2].outputs = [new_output("display_data", data={"image/png": png, "text/plain": "fig"}),
                           new_output("display_data", data={"image/png": png})]
    nb.cells[2].execution_count = 1
    nb.cells[1].outputs = [new_output("display_data", data={"image/png": png})]
    assert N.has_outputs(nb)
    names = [n for n, _ in N.image_outputs(nb)]
    assert names == ["cell01", "main", "main_1"]
    paths = N.save_images(nb, tmp_path / "fig", prefix="nb_")
    assert [p.name for p in paths] == ["nb_cell01.png", "nb_main.png", "nb_main_1.png"]
    assert paths[0].read_bytes() == PNG
    html = N.render_html(nb, tmp_path / "nb.html").read_text()
    assert "data:image/png;base64" in html
    stripped = N.strip_outputs(nb)
    assert not N.has_outputs(stripped) and N.has_outputs(nb)


@pytest.mark.parametrize("name", N.NOTEBOOKS)
def test_committed_notebooks_have_no_outputs_a_parameters_cell_and_no_own_logic(name):
    nb = nbformat.read(N.NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert not N.has_outputs(nb), f"{name}.ipynb is stored with outputs; strip them (agents.notebooks.strip_outputs)"
    i = N.parameters_cell_index(nb)
    params = nb.cells[i].source
    assert "checkpoint_dir" in params and "data_dir" in params
    compile(params, name, "exec")
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "\ndef " not in "\n" + code and "\nclass " not in "\n" + code, "functions belong in the package"
    assert any(t.startswith(N.FIGURE_TAG_PREFIX) for c in nb.cells for t in c.metadata.get("tags", []))
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_the_kernel_is_this_interpreter():
    km = N._kernel_manager()
    assert km.kernel_spec.argv[0] == sys.executable
    assert km.kernel_spec.language == "python"


def test_tensorboard_scalars(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path / "tb" / "ppo_1"))
    for step in range(3):
        w.add_scalar("trade/win_rate", 0.1 * step, step)
        w.add_scalar("eval/net_return", -0.01 * step, step * 10)
    w.close()
    df = N.tensorboard_scalars(tmp_path)
    assert sorted(df["tag"].unique()) == ["eval/net_return", "trade/win_rate"]
    wr = df[df["tag"] == "trade/win_rate"]
    assert wr["step"].tolist() == [0, 1, 2] and wr["value"].tolist() == pytest.approx([0.0, 0.1, 0.2])
    assert N.tensorboard_scalars(tmp_path / "tb").shape == df.shape
    assert P.scalars(df, "trade/") is not None and P.scalars(df, "nothing/") is None


def test_find_walkforward(tmp_path):
    assert N.find_walkforward(tmp_path) is None
    hand_made_run(tmp_path / "wf" / "fold0__seed0", created=time.time())
    (tmp_path / "wf" / WALKFORWARD_FILE).write_text(json.dumps({"summary": {"verdict": "v"}, "runs": []}))
    path, wf = N.find_walkforward(tmp_path)
    assert path.parent.name == "wf" and wf["summary"]["verdict"] == "v"


def test_tiny_config_is_small_and_consistent(tmp_path):
    cfg = N.tiny_config(data_dir=tmp_path / "d", checkpoint_dir=tmp_path / "c", timesteps=2048, n_bars=3456)
    t = cfg.train
    assert t.total_timesteps == 2048 and t.n_steps * t.n_envs % t.batch_size == 0
    assert cfg.synth.n_bars == 3456 and str(cfg.data.data_dir) == str(tmp_path / "d")
    assert not t.progress_bar and cfg.eval.bootstrap_samples <= 200


def test_report_command_is_registered_and_parses_params():
    from aster_rl.cli import build_parser
    from aster_rl.cli.report_cmd import parse_params

    args = build_parser().parse_args(["report", "--run", "r", "--out", "o", "--notebooks", "live"])
    assert args.command == "report" and args.notebooks == ["live"] and args.out == "o"
    assert parse_params(["n=3", "s=abc", "l=[1, 2]", "x=None"]) == {"n": 3, "s": "abc", "l": [1, 2], "x": None}
    with pytest.raises(DataError, match="NAME=VALUE"):
        parse_params(["novalue"])


def test_plots_draw_from_shaped_data(tmp_path):
    idx = pd.date_range("2025-03-01", periods=50, freq="5min", tz="UTC")
    eq = pd.DataFrame({"agent": np.linspace(100, 90, 50), "flat": 100.0}, index=idx)
    trades = pd.DataFrame({"entry_time": [idx[3]], "exit_time": [idx[9]], "side": ["short"], "entry_price": [1.0],
                           "exit_price": [0.9], "reason": ["target"], "pnl_usd": [3.0]})
    actions = pd.DataFrame({"side": np.arange(50) % 3, "leverage": 0, "profile": 1}, index=idx)
    table = pd.DataFrame({"trades": [2.0], "win_rate": [0.5], "pnl_usd": [-1.0], "expectancy_usd": [-0.5]}, index=["ranging"])
    iv = pd.DataFrame({"strategy": ["agent"], "statistic": ["net_return"], "estimate": [0.1], "low": [0.0], "high": [0.2],
                       "confidence": [0.95]})
    cal = R.calibration_table(np.linspace(0, 1, 20), np.arange(20) % 2, 4)
    preds = R.prediction_frame(pd.DataFrame({"id": [1, 2], "ts": [idx[0].value // 10**6, idx[5].value // 10**6],
                                             "side": ["BUY", "WAIT"], "status": ["win", "open"], "pnl_usd": [1.0, None]}))
    figs = [
        P.equity_curves(eq), P.drawdowns(R.drawdown_frame(eq)),
        P.trades_on_price(pd.Series(1.0, index=idx), R.trade_markers(trades)),
        P.action_mix(R.action_mix_over_time(actions, (1, 5), ("a", "b", "c"))),
        P.breakdowns({"regime": table, "cycle_phase": table.iloc[:0]}), P.intervals(iv),
        P.cost_sweep(pd.DataFrame({"agent": [0.1, 0.0]}, index=[0.0, 1.0])),
        P.walkforward(R.walkforward_frame({"runs": [{"fold": 0, "seed": 0, "agent_net_return": 0.1,
                                                      "best_baseline_net_return": 0.0}]})),
        P.heatmap(pd.DataFrame(np.eye(3), index=list("abc"), columns=list("abc")), "h", annotate=True),
        P.heatmap(pd.DataFrame(np.zeros((50, 2)), index=idx, columns=["1h", "4h"]), "t", time_axis=True),
        P.calibration(cal), P.decisions_over_time(preds, R.outcomes_over_time(preds, "1h")),
        P.text_figure(["a: b"], "t"),
    ]
    for i, fig in enumerate(figs):
        P.save(fig, tmp_path / f"{i}.png")
        assert (tmp_path / f"{i}.png").read_bytes()[:8] == PNG[:8]
        matplotlib.pyplot.close(fig)


def test_ensure_run_skips_runs_without_a_test_split(tmp_path):
    now = time.time()
    normal = hand_made_run(tmp_path / "a__0__1", now - 100, splits={"train": {}, "validation": {}, "test": {}})
    hand_made_run(tmp_path / "a-retrain__0__2", now,
                  splits={"retrained_from": str(normal), "train": [0, 1], "holdout": [2, 3]})
    assert N.ensure_run(checkpoint_dir=tmp_path) == normal.path
