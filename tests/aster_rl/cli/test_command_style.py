"""One command style: every command is a ``<noun>_cmd.py`` module with ``register`` and ``run``;
``--help`` lists each noun once; nouns with several actions take them as subcommands."""

import importlib
from pathlib import Path

import pytest

import aster_rl.cli as cli
from aster_rl.cli import build_parser, main

CLI_DIR = Path(cli.__file__).parent


def test_every_command_module_is_a_noun_with_register_and_run():
    on_disk = {p.stem for p in CLI_DIR.glob("*.py")} - {"__init__", "__main__"}
    assert on_disk == set(cli.COMMAND_MODULES), "every module of aster_rl.cli is a listed command"
    for name in cli.COMMAND_MODULES:
        assert name.endswith("_cmd"), name
        module = importlib.import_module(f"aster_rl.cli.{name}")
        assert callable(module.register) and callable(module.run), name


def test_help_lists_each_noun_once(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    nouns = [name.removesuffix("_cmd") for name in cli.COMMAND_MODULES]
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("    ") and not line.startswith("     ")]
    assert listed == nouns


@pytest.mark.parametrize(("argv", "action"), [
    (["patterns", "mine"], "mine"), (["patterns", "list"], "list"), (["patterns", "show", "3"], "show"),
    (["live", "run", "--run", "x"], "run"), (["live", "stop"], "stop"),
    (["data", "synth"], "synth"), (["data", "import", "f.csv"], "import"), (["data", "download"], "download"),
    (["db", "init"], "init"), (["db", "info"], "info"), (["config", "show"], "show"),
])
def test_actions_are_subcommands_run_by_the_nouns_run(argv, action):
    args = build_parser().parse_args(argv)
    module = importlib.import_module(f"aster_rl.cli.{argv[0]}_cmd")
    assert args.action == action and args.func is module.run and action in module.ACTIONS


@pytest.mark.parametrize("argv", [["mine-patterns"], ["patterns"], ["live"], ["live", "--run", "x"], ["data"], ["db"]])
def test_a_missing_or_removed_command_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err
