"""Names are unique per project: two projects whose names slug to the same string, or to
nothing (emoji, a non-Latin script), get distinct MLflow names, and a thread keeps its
names when it resumes (tools/naming.py). Real runs: tests/graph/test_registry_entry.py."""

from __future__ import annotations

import re
from pathlib import Path

from mpm.tools.naming import (
    experiment_name,
    project_key,
    project_slug,
    registered_model_for_experiment,
    registered_model_name,
)

COLLIDING = ["Churn (EU)", "churn eu", "CHURN-EU", "🚀 📉", "🎉", "Прогноз оттока", "解約予測"]
KEY = re.compile(r"^[a-z0-9_]{1,64}_[0-9a-f]{8}$")


def test_names_that_slug_alike_or_to_nothing_get_distinct_keys() -> None:
    slugs = {project_slug(n) for n in COLLIDING}
    assert slugs == {"churn_eu", "project"}  # the slug alone would merge them into two
    keys = [project_key(n) for n in COLLIDING]
    assert len(set(keys)) == len(COLLIDING), keys
    assert all(KEY.match(k) for k in keys), keys
    assert len({experiment_name(n) for n in COLLIDING}) == len(COLLIDING)
    assert len({registered_model_name(n) for n in COLLIDING}) == len(COLLIDING)
    # the key depends only on the canonical name: the same project always gets it
    assert project_key("Churn (EU)") == project_key("  Churn   (EU) ") == keys[0]
    assert project_key("Ｃｈｕｒｎ (EU)") == keys[0]  # NFKC: full-width letters are the same name
    assert registered_model_for_experiment(experiment_name("🎉")) == registered_model_name("🎉")
    assert registered_model_for_experiment("someone_elses_experiment") is None


def test_a_resumed_thread_keeps_the_experiment_it_planned_with(tmp_path: Path) -> None:
    """The registry name follows the experiment the thread recorded, so a thread resumed
    after its names were planned registers where it tracked."""
    from mpm.agents.base import StageContext
    from mpm.agents.mlops_engineer import MLOpsToolkit
    from mpm.tools import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = tracking.client(uri)
    recorded = tracking.ensure_experiment(c, "ml_pipeline_planned_before_0123abcd", tmp_path)
    ctx = StageContext(
        stage="mlops",
        stage_dir=tmp_path / "runs" / "t1" / "mlops",
        workspace_root=tmp_path,
        requirements={"project_name": "Renamed Since"},
        tracking_uri=uri,
        experiment_id=recorded,
    )
    assert MLOpsToolkit(ctx)._registered_name() == "pipeline_planned_before_0123abcd"
    ctx.experiment_id = None
    assert MLOpsToolkit(ctx)._registered_name() == registered_model_name("Renamed Since")
