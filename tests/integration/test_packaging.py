"""The installed shape: one `mmflow` namespace, built from the four source folders.

The wheel is built once per module and read with ``zipfile``; the import checks run the venv's interpreter
outside the repository, so only what is installed can be imported.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Source folder -> installed package (pyproject.toml [tool.setuptools.package-dir]).
SOURCE_ROOTS = {
    "mmflow": "mmflow",
    "connectors": "mmflow.connectors",
    "flows": "mmflow.flows",
    "cli": "mmflow.cli",
}

# Not copied into the build tree: a stale build/lib would put files into the wheel that pyproject no
# longer lists (setuptools reuses it), and the rest is local state.
NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "out",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """`python -m pip wheel . --no-deps -w <tmp>` from the root of a clean copy of the repository."""
    root = tmp_path_factory.mktemp("source") / "mmflow"
    shutil.copytree(REPO, root, ignore=NOT_SOURCES)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-w", str(out)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, f"pip wheel failed:\n{built.stdout}\n{built.stderr}"
    wheels = sorted(out.glob("mmflow-*.whl"))
    assert len(wheels) == 1, f"expected one mmflow wheel, got {wheels}"
    with zipfile.ZipFile(wheels[0]) as archive:
        yield archive


def dist_info(archive: zipfile.ZipFile) -> str:
    (name,) = {n.split("/")[0] for n in archive.namelist() if n.split("/")[0].endswith(".dist-info")}
    return name


def installed_path(folder: str, relative: Path) -> str:
    """`connectors/kafka_io.py` -> `mmflow/connectors/kafka_io.py`."""
    return "/".join([*SOURCE_ROOTS[folder].split("."), *relative.parts])


def run_python(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The venv's interpreter outside the repository, without a PYTHONPATH that could reach it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_wheel_has_only_the_mmflow_namespace(wheel: zipfile.ZipFile) -> None:
    top = {name.split("/")[0] for name in wheel.namelist()}
    assert "mmflow" in top
    stray = sorted(
        t for t in top if t != "mmflow" and not (t.startswith("mmflow-") and t.endswith(".dist-info"))
    )
    assert not stray, f"top-level entries besides mmflow/ and mmflow-*.dist-info/: {stray}"


def test_wheel_holds_every_source_file(wheel: zipfile.ZipFile) -> None:
    expected = {
        installed_path(folder, path.relative_to(REPO / folder))
        for folder in SOURCE_ROOTS
        for path in (REPO / folder).rglob("*.py")
    }
    assert "mmflow/connectors/kafka_io.py" in expected and "mmflow/strategy/market.py" in expected
    missing = sorted(expected - set(wheel.namelist()))
    assert not missing, (
        "source files missing from the wheel (is their package listed in pyproject's "
        f"[tool.setuptools] packages?): {missing}"
    )


def test_wheel_declares_the_mmflow_command(wheel: zipfile.ZipFile) -> None:
    entry_points = configparser.ConfigParser()
    entry_points.read_string(wheel.read(f"{dist_info(wheel)}/entry_points.txt").decode())
    assert entry_points.has_section("console_scripts"), "no console_scripts in entry_points.txt"
    assert entry_points["console_scripts"].get("mmflow") == "mmflow.cli.main:main"


@pytest.mark.parametrize("old_name", ["connectors", "flows"])
def test_old_top_level_names_are_not_importable(tmp_path: Path, old_name: str) -> None:
    result = run_python(["-c", f"import {old_name}"], cwd=tmp_path)
    assert result.returncode != 0, f"`import {old_name}` worked outside the repository"
    assert f"ModuleNotFoundError: No module named '{old_name}'" in result.stderr, result.stderr


def test_installed_modules_import_outside_the_repository(tmp_path: Path) -> None:
    code = (
        "import mmflow.connectors.kafka_io, mmflow.flows.engine, mmflow.cli.main\n"
        "print(mmflow.cli.main.main.__module__)\n"
    )
    result = run_python(["-c", code], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "mmflow.cli.main"


def test_cli_help_runs_outside_the_repository(tmp_path: Path) -> None:
    result = run_python(["-m", "mmflow.cli", "--help"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
