"""The dependency direction is one way: aster_rl <- envs <- agents (the CLI package excepted)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# outside library -> the only place it may be imported from
SINGLE_HOMES = {
    "ccxt": ("aster_rl/exchange/",),
    "sqlalchemy": ("aster_rl/storage/",),
    "torch": ("agents/",),
    "stable_baselines3": ("agents/", "envs/"),
    "fastapi": ("aster_rl/dashboard/",),
    "starlette": ("aster_rl/dashboard/",),
    "sse_starlette": ("aster_rl/dashboard/",),
    "uvicorn": ("aster_rl/cli/dashboard_cmd.py",),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _py_files(package: str):
    return sorted((ROOT / package).rglob("*.py"))


def test_the_packages_under_test_are_the_local_ones():
    import agents
    import aster_rl
    import envs

    for module in (aster_rl, envs, agents):
        assert Path(module.__file__).resolve().is_relative_to(ROOT), module.__file__


def test_aster_rl_never_imports_envs_or_agents_outside_the_cli():
    offenders = []
    for path in _py_files("aster_rl"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("aster_rl/cli/"):
            continue
        bad = _imports(path) & {"envs", "agents"}
        if bad:
            offenders.append(f"{rel}: {sorted(bad)}")
    assert not offenders, offenders


def test_envs_never_imports_agents():
    offenders = [p.relative_to(ROOT).as_posix() for p in _py_files("envs") if "agents" in _imports(p)]
    assert not offenders, offenders


def test_outside_libraries_are_imported_in_one_place_only():
    offenders = []
    for package in ("aster_rl", "envs", "agents"):
        for path in _py_files(package):
            rel = path.relative_to(ROOT).as_posix()
            for lib, homes in SINGLE_HOMES.items():
                if lib in _imports(path) and not rel.startswith(homes):
                    offenders.append(f"{rel} imports {lib}")
    assert not offenders, offenders


def test_tentacles_import_only_numpy_pandas_ta_and_the_project():
    allowed = {"numpy", "pandas", "ta", "aster_rl", "__future__", "dataclasses", "typing", "math", "functools", "collections", "datetime", "warnings", "logging", "hashlib", "json"}
    offenders = []
    for path in _py_files("aster_rl/features/tentacles"):
        extra = _imports(path) - allowed
        if extra:
            offenders.append(f"{path.name}: {sorted(extra)}")
    assert not offenders, offenders


def test_the_top_of_the_package_holds_only_a_few_shared_modules():
    top = sorted(p.name for p in (ROOT / "aster_rl").glob("*.py") if p.name != "__init__.py")
    assert len(top) <= 8, f"aster_rl/ has {len(top)} modules at its top; put new ones in a room: {top}"


def test_only_tests_and_benchmarks_import_the_test_kit():
    offenders = []
    for package in ("aster_rl", "envs", "agents"):
        for path in _py_files(package):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("aster_rl/testing/"):
                continue
            tree = ast.parse(path.read_text(), filename=rel)
            for node in ast.walk(tree):
                mod = node.module if isinstance(node, ast.ImportFrom) else None
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [mod or ""]
                if any(n.startswith("aster_rl.testing") for n in names):
                    offenders.append(rel)
    assert not offenders, offenders


def test_the_dashboard_never_imports_a_broker_or_the_runner():
    offenders = []
    for path in [*_py_files("aster_rl/dashboard"), ROOT / "aster_rl/cli/dashboard_cmd.py"]:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {m}" for m in mods if "broker" in m or m == "aster_rl.live.runner"]
    assert not offenders, offenders
