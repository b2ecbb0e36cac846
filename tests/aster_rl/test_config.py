import pytest

from aster_rl.cli import main
from aster_rl.config import AppConfig, load_config, load_secrets, replace, to_toml
from aster_rl.errors import ConfigError


def test_defaults_file_and_overrides_take_precedence_in_that_order(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[train]\nlearning_rate = 0.001\nseed = 3\n[env]\ntaker_fee_rate = 0.0005\n")
    cfg = load_config(path, ["train.seed=9", "env.leverages=[1, 2, 5]"])
    assert cfg.train.learning_rate == 0.001  # from the file
    assert cfg.train.seed == 9  # override beats the file
    assert cfg.env.taker_fee_rate == 0.0005
    assert cfg.env.leverages == (1, 2, 5)
    assert cfg.train.batch_size == AppConfig().train.batch_size  # untouched default


def test_config_is_immutable():
    cfg = load_config()
    with pytest.raises(Exception):
        cfg.train.seed = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lerning_rate=1e-4", "unknown key 'train.lerning_rate'"),
        ("nosuch.key=1", "unknown key 'nosuch'"),
        ("env.taker_fee_rate=-0.1", "env.taker_fee_rate"),
        ("env.leverages=[1, 75]", "env.leverages"),
        ("trainseed", "expected section.key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load_config(None, [override])


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[env]\nleverage_ladder = [1, 2]\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: unknown key 'env\.leverage_ladder'"):
        load_config(path)


def test_missing_and_malformed_files_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_printed_config_round_trips(tmp_path):
    cfg = load_config(None, ["train.seed=11", "synth.edge=null"])
    path = tmp_path / "resolved.toml"
    path.write_text(to_toml(cfg))
    assert load_config(path) == cfg


def test_replace_validates_again():
    cfg = replace(load_config(), train={"seed": 4})
    assert cfg.train.seed == 4
    with pytest.raises(ConfigError, match="train.seed"):
        replace(cfg, train={"seed": "not a number"})


def test_secrets_come_from_the_environment_and_never_print(capsys, monkeypatch):
    planted = "0x" + "ab" * 32
    monkeypatch.setenv("ASTER_PRIVATE_KEY", planted)
    secrets = load_secrets()
    assert secrets.has_trading_keys and secrets.private_key.get_secret_value() == planted
    assert planted not in repr(secrets) and planted not in str(secrets)
    assert main(["config", "show"]) == 0
    out = capsys.readouterr()
    assert planted not in out.out + out.err
    assert "private key set (hidden)" in out.out


def test_cli_reports_config_errors_in_one_line_with_exit_code(capsys):
    assert main(["--set", "env.max_leverage=0", "config", "show"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "env.max_leverage" in err[0]


def test_shipped_example_configuration_is_valid():
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.toml")):
        assert isinstance(load_config(path), AppConfig), path
