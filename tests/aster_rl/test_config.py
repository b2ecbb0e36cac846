import pytest
from pydantic import ValidationError

from aster_rl.cli import main
from aster_rl.config import AppConfig, EnvConfig, MarginBracket, load_config, load_secrets, replace, to_toml
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
    with pytest.raises(ValidationError, match="frozen"):
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
    with pytest.raises(ConfigError, match=r"train\.seed"):
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


# ---------------------------------------------------------------- bounds a venue would accept

@pytest.mark.parametrize(
    "override, message",
    [
        ("env.taker_fee_rate=1.5", "env.taker_fee_rate: Input should be less than 0.01"),
        ("env.maker_fee_rate=2", "env.maker_fee_rate: Input should be less than 0.01"),
        ("env.taker_fee_rate=0.01", "env.taker_fee_rate"),
        ("env.max_leverage=1000", "env.max_leverage: Input should be less than or equal to 125"),
        ("live.max_leverage=126", "live.max_leverage"),
        ("env.leverages=[1, 2, 200]", "env.leverages.2"),
        ("env.initial_equity_usd=inf", "env.initial_equity_usd: Input should be a finite number"),
        ("env.initial_equity_usd=nan", "env.initial_equity_usd"),
        ("live.max_notional_usd=inf", "live.max_notional_usd"),
        ("env.min_notional_usd=-inf", "env.min_notional_usd"),
        ("train.n_envs=true", "train.n_envs: Input should be a valid integer"),
        ("train.total_timesteps=1.5", "train.total_timesteps"),
        ("train.learning_rate=false", "train.learning_rate"),
        ("train.tensorboard=1", "train.tensorboard"),
        ("env.leverages=[true, 2]", "env.leverages.0"),
        ("train.n_envs=0", "train.n_envs"),
        ("synth.seed=-1", "synth.seed"),
        ("train.seed=4294967296", "train.seed"),
        ("train.batch_size=1", "train.batch_size"),
        ("live.kill_file=", "live.kill_file: an empty path"),
        ('data.data_dir=""', "data.data_dir: an empty path"),
        ("train.checkpoint_dir=   ", "train.checkpoint_dir: an empty path"),
        ("data.symbol=", "data.symbol: an empty value"),
        ("data.since=yesterday-ish", "data.since"),
        ("synth.start=2025-13-45", "synth.start"),
        ("synth.start=1677-01-01", "synth.start: '1677-01-01' is outside 1970..2199"),
        ("data.since=2262-05-01", "data.since"),
        ("synth.n_bars=100000000", "synth.n_bars"),
        ("data.timeframe=7x", "data.timeframe"),
        ("train.validation_fraction=0.5", "must stay below 1"),
        ("patterns.demote_win_rate=0.9", "patterns.demote_win_rate=0.9 must be below"),
        ("train.name=../../x", "train.name: run name '../../x' is not a plain name"),
    ],
)
def test_values_no_venue_would_accept_are_refused_by_name(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert message in str(info.value)
    assert f"--set {override}" in str(info.value) or "train.validation_fraction" in override or "patterns." in override


def test_fee_and_leverage_limits_are_the_venue_ones():
    cfg = load_config(None, ["env.taker_fee_rate=0.0099", "env.maker_fee_rate=0", "env.max_leverage=125",
                             "env.leverages=[1, 125]", "live.max_leverage=125"])
    assert cfg.env.taker_fee_rate == 0.0099 and cfg.env.max_leverage == 125 and cfg.env.leverages == (1, 125)


def test_bracket_leverage_is_bounded_in_a_file(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text("[[env.brackets]]\nnotional_cap_usd = 1e12\nmax_leverage = 500\nmaintenance_margin_rate = 0.01\n")
    with pytest.raises(ConfigError, match=r"b\.toml: env\.brackets\.0\.max_leverage"):
        load_config(path)


@pytest.mark.parametrize("override, field, expected", [
    ("data.since=2025-09-19", "since", "2025-09-19"),
    ("data.since=2025-09-19T12:00:00Z", "since", "2025-09-19T12:00:00Z"),
    ('data.since="2025-09-19"', "since", "2025-09-19"),
    ("synth.start=2025-01-01", "start", "2025-01-01"),
])
def test_dates_are_accepted_as_set_values(override, field, expected):
    cfg = load_config(None, [override])
    section = cfg.data if override.startswith("data") else cfg.synth
    assert getattr(section, field) == expected


def test_unquoted_dates_in_a_file_are_accepted(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text("[data]\nsince = 2025-09-19\n[synth]\nstart = 2025-03-01T00:00:00Z\n")
    cfg = load_config(path)
    assert cfg.data.since == "2025-09-19"
    assert cfg.synth.start == "2025-03-01T00:00:00+00:00"


def test_text_fields_take_set_values_as_typed():
    cfg = load_config(None, ["train.name=2024", "data.exchange_id=aster"])
    assert cfg.train.name == "2024"
    # a newline cannot smuggle a second key into an override
    with pytest.raises(ConfigError, match=r"train\.seed"):
        load_config(None, ["train.seed=1\nlearning_rate = 0.5"])


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "a\\b", "..", ".", ".hidden", "", "a..b", "x" * 129, "-x"])
def test_run_names_are_plain_names(name):
    with pytest.raises(ConfigError, match=r"train\.name"):
        replace(AppConfig(), train={"name": name})


def test_binary_and_directory_config_files_are_config_errors(tmp_path):
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xd0\xff\xfe")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        load_config(binary)
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_an_empty_tentacle_list_is_refused():
    with pytest.raises(ConfigError, match=r"features\.tentacles"):
        load_config(None, ["features.tentacles=[]"])


_FLAT_BRACKETS = (
    MarginBracket(notional_cap_usd=5_000, max_leverage=50, maintenance_margin_rate=0.01),
    MarginBracket(notional_cap_usd=5_000, max_leverage=20, maintenance_margin_rate=0.02),
)


@pytest.mark.parametrize(
    "key, value",
    [
        ("taker_fee_rate", -0.001),
        ("slippage_bps", float("nan")),
        ("margin_fraction", 1.5),
        ("initial_equity_usd", 0.0),
        ("episode_length", 0),
        ("leverages", ()),
        ("leverages", (1, 75)),
        ("exit_profiles", {}),
        ("brackets", _FLAT_BRACKETS),
    ],
)
def test_bad_env_values_are_the_same_one_line_error_however_they_come(key, value):
    from aster_rl.sim.accounting import validate_env_config

    with pytest.raises(ConfigError) as section:
        replace(EnvConfig(), **{key: value})
    with pytest.raises(ConfigError) as whole:
        replace(AppConfig(), env={key: value})
    with pytest.raises(ConfigError) as bypass:  # model_copy skips pydantic: the accounting core validates again
        validate_env_config(EnvConfig().model_copy(update={key: value}))
    messages = [str(e.value) for e in (section, whole, bypass)]
    assert all("\n" not in m and f"env.{key}" in m for m in messages), messages
    assert messages[0].startswith("replace(): ") and messages[2].startswith("env config: ")
    assert len({m.split(": ", 1)[1] for m in messages}) == 1, messages


def test_replace_changes_a_section_or_a_field_and_keeps_the_rest():
    env = replace(EnvConfig(), taker_fee_rate=0.0, exit_profiles={"only": {"stop_atr": 1.0, "target_atr": 2.0}})
    assert env.taker_fee_rate == 0.0 and list(env.exit_profiles) == ["only"]  # a dict field is replaced
    assert env.leverages == EnvConfig().leverages
    cfg = replace(AppConfig(), env={"taker_fee_rate": 0.0}, train={"seed": 4})
    assert cfg.env.taker_fee_rate == 0.0 and cfg.env.maker_fee_rate == EnvConfig().maker_fee_rate  # a section is merged
    assert cfg.train.seed == 4 and isinstance(cfg.env, EnvConfig)
    with pytest.raises(ConfigError, match="unknown key 'nosuch'"):
        replace(AppConfig(), nosuch={"a": 1})
