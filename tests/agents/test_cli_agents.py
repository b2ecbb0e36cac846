import json

from agent_helpers import tiny_config  # noqa: F401

from agents.run_dir import RunDir
from aster_rl.cli import main


def test_demo_quick_runs_the_whole_loop(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["--set", f"data.data_dir={tmp_path / 'data'}", "--set", f"train.checkpoint_dir={tmp_path / 'ck'}",
                 "demo", "--quick"])
    out = capsys.readouterr().out
    assert code == 0
    for text in ("1/4 synthetic market", "3/4 training PPO", "buy_and_hold", "rule_brain", "verdict:", "TensorBoard:",
                 "demo wall time"):
        assert text in out, text
    run = next((tmp_path / "ck").glob("demo_quick__*"))
    results = json.loads((RunDir(run).eval.results).read_text())
    assert set(results["baselines"]) == {"flat", "buy_and_hold", "exposure_matched", "random", "rule_brain"}
    assert set(results["excess"]) == {"exposure_matched", "flat"}
    # evaluate the same run again from the CLI: same numbers from the stored market
    code = main(["--set", f"train.checkpoint_dir={tmp_path / 'ck'}", "evaluate", "latest"])
    assert code == 0
    evaluated = capsys.readouterr().out
    for text in ("buy_and_hold ", "exposure_matched ", "excess over exposure_matched (paired block bootstrap):",
                 "excess over flat (paired block bootstrap):", "95% CI [", "deflated Sharpe", "for 1 trial",
                 "net x", "gross x", "verdict: the agent's out-of-sample growth over exposure_matched"):
        assert text in evaluated, text
    again = json.loads((RunDir(run).eval.results).read_text())
    assert again["agent"]["metrics"] == results["agent"]["metrics"]
    # and the brain report with the policy's decision
    source = next(line for line in out.splitlines() if line.startswith("brain:")).split("data.source=")[1].split()[0]
    code = main(["--set", f"data.data_dir={tmp_path / 'data'}", "--set", f"data.source={source}", "brain", "--run", str(run)])
    brain = capsys.readouterr().out
    assert code == 0
    assert "Decision" in brain and "P(side)" in brain and "entropy" in brain
    assert "Support     this bar:" in brain and "out of support" in brain
    assert "out of training support:" in out  # the evaluation's line


def test_evaluate_missing_run_is_one_line_exit_2(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1


def test_report_notebook_parameters():
    import argparse

    from aster_rl.cli.report_cmd import NOTEBOOK_NAMES, notebook_parameters
    from aster_rl.config import AppConfig

    args = argparse.Namespace(run="ck/some_run")
    for name in NOTEBOOK_NAMES:
        params = notebook_parameters(name, args, AppConfig())
        assert "checkpoint_dir" in params and "data_dir" in params
        assert ("database_url" in params) == (name == "live")
        if name in ("quickstart", "research"):  # they train their own runs in a new temporary folder
            assert params["checkpoint_dir"] is None and params["data_dir"] is None and "run" not in params
        else:
            assert params["run"] == "ck/some_run"
