"""Installing mpm adds exactly one top-level import name, ``mpm``, and ships every package.

The repository keeps the design's folders at its root (``graph/``, ``tools/`` ...); only
``pyproject.toml``'s package-dir mapping makes them ``mpm.graph``, ``mpm.tools`` ...  A
folder added without being listed there would silently be missing from a real install,
so the wheel is built from a copy of the tracked files and its contents are checked.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAPPED = ("agents", "cli", "governance", "graph", "reference", "tools")


def _tracked_copy(dest: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.split()
    for name in files:
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    if shutil.which("git") is None:
        pytest.fail("git is needed to list the tracked files")
    src = _tracked_copy(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("mpm-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_adds_only_the_mpm_import_name(wheel: zipfile.ZipFile) -> None:
    tops = {n.split("/")[0] for n in wheel.namelist() if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"mpm"}


def test_every_package_folder_and_data_file_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for folder in MAPPED:
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.relative_to(REPO).as_posix()
            assert f"mpm/{rel}" in names, (
                f"{rel} is not in the wheel: list its package in pyproject.toml"
            )
    for data in [
        *(REPO / "reference").rglob("*.y*ml"),
        *(REPO / "reference").rglob("*.md"),
        *(REPO / "governance" / "templates").glob("*.j2"),
        *(REPO / "graph" / "templates").glob("*.j2"),
    ]:
        rel = data.relative_to(REPO).as_posix()
        assert f"mpm/{rel}" in names, f"{rel} is not in the wheel"
    assert "mpm/cli/main.py" in names and "mpm/graph/server.py" in names
