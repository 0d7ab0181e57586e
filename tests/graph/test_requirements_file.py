"""Requirements files: every example validates; each kind of mistake is one clear line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mpm.graph.requirements_file import RequirementsError, load_requirements
from tests.conftest import EXAMPLES
from tests.graph.helpers import example, mpm


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_bundled_example_validates(path: Path) -> None:
    req = load_requirements(path)
    assert req.project_name and req.data_sources


def _write(tmp_path: Path, data: object, name: str = "req.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            {"model_type": "clustering"},
            "model_type: Input should be 'classification', 'regression' or 'llm'",
        ),
        ({"success_threshold": "high"}, "success_threshold: Input should be a valid number"),
        (
            {"target_metric": "accuracy", "model_type": "regression"},
            "target_metric 'accuracy' is not a regression metric",
        ),
        ({"target_metric": "speed"}, "target_metric: expected one of accuracy"),
        ({"data_sources": []}, "data_sources: List should have at least 1 item"),
        (
            {"data_sources": [{"name": "x", "uri": "sklearn:iris", "sensitivity": "secret"}]},
            "data_sources.0.sensitivity",
        ),
        ({"risk_level": "extreme"}, "risk_level: Input should be 'low', 'medium' or 'high'"),
        ({"deadline": "next week"}, "deadline: Input should be a valid date"),
        ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_wrong_field_is_named_with_what_was_expected(
    tmp_path: Path, change: dict, fragment: str
) -> None:
    path = _write(tmp_path, example("breast_cancer", **change))
    with pytest.raises(RequirementsError) as info:
        load_requirements(path)
    message = str(info.value)
    assert message.startswith(str(path) + ": ")
    assert fragment in message
    assert "\n" not in message


def test_missing_required_field_is_named(tmp_path: Path) -> None:
    data = example("breast_cancer")
    del data["business_objective"]
    with pytest.raises(RequirementsError, match=r"business_objective: Field required"):
        load_requirements(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "the file is empty"),
        (
            "- just\n- a list\n",
            "expected a mapping of requirement fields at the top level; got list",
        ),
        ("project_name: [unclosed\n", "YAML syntax error at line"),
    ],
)
def test_unusable_files_get_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(RequirementsError, match=fragment):
        load_requirements(_write(tmp_path, text))


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("project_name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(RequirementsError, match="not UTF-8"):
        load_requirements(path)


def test_cli_exits_2_with_one_line_and_creates_no_thread(tmp_path: Path, workspace: Path) -> None:
    path = _write(tmp_path, example("breast_cancer", model_type="clustering"))
    result = mpm(
        "kickoff", "--requirements", str(path), "--workspace", str(workspace), "--thread", "bad1"
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "model_type" in lines[0]
    assert not (workspace / "checkpoints.db").exists()
    assert not (workspace / "runs" / "bad1").exists()


def test_an_oversized_requirements_file_is_refused_with_one_line(
    tmp_path: Path, workspace: Path
) -> None:
    big = tmp_path / "big.yaml"
    valid = (EXAMPLES / "breast_cancer.yaml").read_text()
    big.write_text(valid + "# padding\n" * 120_000, encoding="utf-8")  # ~1.2 MB
    run = mpm("kickoff", "-r", str(big), "-w", str(workspace), "-t", "big")
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.count("\n") == 1
    assert (
        "big.yaml: file of 1,2" in run.stderr
        and "exceeds the limit of 1,000,000 bytes" in run.stderr
    )
    assert list(workspace.iterdir()) == [], "nothing was written"


def test_an_oversized_or_exploding_answers_file_is_refused(tmp_path: Path) -> None:
    from mpm.governance._files import yaml_budget_problem

    assert "exceeds the limit of 1,000,000 bytes" in (yaml_budget_problem("x" * 1_000_001) or "")
    recursive = "a: &a [*a]\n"
    assert yaml_budget_problem(recursive, ruamel=False) is not None
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 6)
    )
    assert "more than 100,000 YAML nodes" in (yaml_budget_problem(bomb, ruamel=False) or "")
    assert "more than 100,000 YAML nodes" in (yaml_budget_problem(bomb) or "")
    small = bomb.rsplit("\n", 3)[0]  # three levels: 10,000 nodes, fine
    assert yaml_budget_problem(small) is None
