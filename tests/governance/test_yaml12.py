"""The libyaml fast path reads every YAML file exactly as ruamel.yaml's YAML 1.2 safe loader
does, and hands anything it would read differently back to ruamel (which keeps its error
messages)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pytest

from mpm.governance import yaml12
from mpm.governance._files import YAMLBudgetError, load_yaml12

ROOT = Path(__file__).resolve().parents[2]


def ruamel_load(text: str) -> Any:
    from ruamel.yaml import YAML

    parser = YAML(typ="safe", pure=True)
    parser.version = (1, 2)
    return parser.load(io.StringIO(text))


def same(a: Any, b: Any) -> bool:
    """Equal, with types (True is not 1, 1.0 is not 1) and NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def yaml_files(shared_policies: Path) -> list[Path]:
    found = [*ROOT.joinpath("reference").rglob("*.y*ml"), *ROOT.joinpath("tests").rglob("*.y*ml")]
    return sorted({*found, *shared_policies.rglob("*.y*ml")})


def test_every_yaml_file_in_the_repository_reads_the_same_on_both_paths(
    shared_policies: Path,
) -> None:
    fast = 0
    files = yaml_files(shared_policies)
    assert len(files) > 100
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            expected: Any = ("ok", ruamel_load(text))
        except Exception as exc:  # noqa: BLE001 - the file is meant to be broken
            expected = ("error", type(exc).__name__)
        try:
            got: Any = ("ok", yaml12.load(text))
            fast += 1
        except yaml12.FastPathUnavailable:
            continue  # the ruamel path decides: nothing to compare
        except yaml12.OverBudget:
            got = ("over budget", None)
        if got[0] == "over budget":
            assert "alias" in path.name or "bomb" in str(path), path
            continue
        assert expected[0] == "ok", f"{path}: ruamel refuses it ({expected[1]}), fast path read it"
        assert same(got[1], expected[1]), path
    assert fast >= 0.8 * len(files), "the fast path should read almost every real file"


@pytest.mark.parametrize(
    "scalar",
    [
        "017", "0o17", "0b11", "0x1F", "1_000", "-_1", "1e3", "1.5e+3", ".5", "0.", "+.inf",
        "-.inf", ".nan", "1:20", "Yes", "no", "on", "OFF", "y", "TRUE", "false", "~", "null",
        "", "2024-01-01", "2024-01-01 10:00:00", "0b", "08", '"7"', "!!str 5", "[1, {a: b}]",
    ],
)  # fmt: skip
def test_yaml_1_2_scalars_mean_what_ruamel_says(scalar: str) -> None:
    text = f"v: {scalar}\n"
    assert same(yaml12.load(text), ruamel_load(text))


@pytest.mark.parametrize(
    "text",
    [
        "v: =\n",  # ruamel refuses the value tag
        "v: !!python/name:os.system\n",
        "{a: 1, a: 2}\n",  # duplicate key: ruamel reports it
        "a: &x {k: 1}\nb: {<<: *x}\n",  # merge keys
        "v: 2024-01-01T10:00:00+02:00\n",
        "v: [unclosed\n",
    ],
)
def test_what_the_fast_path_would_read_differently_goes_to_ruamel(text: str) -> None:
    with pytest.raises(yaml12.FastPathUnavailable):
        yaml12.load(text)


def test_alias_bomb_is_refused_on_the_fast_path() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    with pytest.raises(YAMLBudgetError, match="alias"):
        load_yaml12("\n".join(lines) + "\n")


def test_a_syntax_error_keeps_ruamels_position() -> None:
    from ruamel.yaml.error import MarkedYAMLError

    with pytest.raises(MarkedYAMLError) as info:
        load_yaml12("a: 1\nb: [unclosed\n")
    assert info.value.problem_mark is not None
