import json

import pandas as pd

from aster_rl.cli import main


def test_features_command_exports_matrix_and_schema(tmp_path, capsys):
    base = ["--set", f"data.data_dir={tmp_path.as_posix()}", "--set", "synth.n_bars=1500"]
    assert main([*base, "data", "synth"]) == 0
    out = tmp_path / "f.csv"
    assert main([*base, "features", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1500 bars x" in printed and "warm-up" in printed
    frame = pd.read_csv(out, index_col=0)
    schema = json.loads((tmp_path / "f.schema.json").read_text())
    assert list(frame.columns) == schema["names"] and len(frame) == 1500
    assert main([*base, "features"]) == 0
    assert (tmp_path / "features_ASTERUSDT_5m.parquet").exists()


def test_features_command_rejects_unknown_extension(tmp_path, capsys):
    base = ["--set", f"data.data_dir={tmp_path.as_posix()}", "--set", "synth.n_bars=300"]
    assert main([*base, "data", "synth"]) == 0
    assert main([*base, "features", "--out", str(tmp_path / "f.xlsx")]) == 2
    assert "use a .parquet or .csv" in capsys.readouterr().err
