"""The lock (``constraints.txt``) pins every dependency ``pyproject.toml`` declares, for
the extras CI installs, and CI installs from it: adding a dependency without refreshing
the lock fails here instead of floating on whatever PyPI serves that day."""

from __future__ import annotations

import re
import tomllib

from tests.graph.helpers import REPO

EXTRAS = ("dev", "postgres", "server", "local")


def _normal(name: str) -> str:
    """PEP 503: case and runs of ``-_.`` do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(requirement: str) -> str:
    return _normal(re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0])


def test_lock_pins_every_declared_dependency_exactly() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    for extra in EXTRAS:
        declared |= {_name(r) for r in project["optional-dependencies"][extra]}
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[_normal(name)] = version
    missing = sorted(declared - set(pins) - {"mpm"})
    assert not missing, f"not in constraints.txt (refresh the lock): {missing}"


def test_ci_installs_from_the_lock() -> None:
    assert (
        'pip install -q -c constraints.txt -e ".[dev,postgres,server]"'
        in (REPO / ".ci" / "run").read_text()
    )
