import json

from aster_rl.cli import main


def test_backtest_a_baseline_over_the_stored_market(tmp_path, capsys):
    args = ["--set", f"data.data_dir={tmp_path}", "--set", "synth.n_bars=1500"]
    assert main([*args, "backtest", "--policy", "buy_and_hold", "--out", str(tmp_path / "bt")]) == 0
    out = capsys.readouterr().out
    assert "buy_and_hold over" in out and "net of fees, funding and slippage" in out
    metrics = json.loads((tmp_path / "bt" / "metrics.json").read_text())
    assert metrics["trades"] >= 1 and metrics["fees_usd"] > 0
    assert (tmp_path / "bt" / "equity.csv").read_text().count("\n") > 100


def test_backtest_refuses_an_agent_without_a_run_and_a_bad_time(tmp_path, capsys):
    args = ["--set", f"data.data_dir={tmp_path}", "--set", "synth.n_bars=1500"]
    assert main([*args, "backtest", "--policy", "agent"]) == 2
    assert "needs --run" in capsys.readouterr().err
    assert main([*args, "backtest", "--start", "yesterday-ish"]) == 2
    assert "--start 'yesterday-ish'" in capsys.readouterr().err
