"""Each malformed policy fails with one clear line: file, YAML path, what was expected.

The cases live as small files in ``malformed/``; ``malformed/expected.yaml`` says which
path and message fragment each must produce.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mpm.governance import PolicyError, load_policy
from mpm.governance.loader import read_yaml

MALFORMED = Path(__file__).parent / "malformed"
EXPECTED: dict[str, dict[str, str]] = read_yaml(
    (MALFORMED / "expected.yaml").read_bytes(), source="expected.yaml"
)


def test_every_malformed_file_has_an_expectation_and_there_are_at_least_25() -> None:
    files = {p.name for p in MALFORMED.iterdir() if p.name != "expected.yaml"}
    assert files == set(EXPECTED)
    assert len(files) >= 25


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_policy_gives_one_located_line(name: str) -> None:
    path = MALFORMED / name
    expected = EXPECTED[name]
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert "\n" not in message
    prefix = f"{path}: {expected['path']}: " if expected["path"] else f"{path}: "
    assert message.startswith(prefix), message
    assert expected["message"] in message, message
    assert info.value.path == expected["path"]
    assert info.value.source == str(path)
