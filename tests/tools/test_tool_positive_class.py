"""The positive class is explicit: stated, named by the objective or the minority class,
always with its reason, and every binary figure is for it (breast_cancer: 0 = malignant)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mpm.tools.errors import DataError
from mpm.tools.positive_class import label_names, resolve_positive_class

NAMES = {"0": "malignant", "1": "benign"}
COUNTS = {0: 212, 1: 357}


def test_a_stated_name_resolves_to_its_label_value() -> None:
    chosen = resolve_positive_class([0, 1], counts=COUNTS, stated="Malignant", names=NAMES)
    assert (chosen["label"], chosen["name"], chosen["source"]) == (0, "malignant", "stated")
    assert chosen["display"] == "malignant (label 0)"
    # the label value itself is accepted too
    assert resolve_positive_class([0, 1], stated="1", names=NAMES)["label"] == 1


def test_a_stated_value_that_is_no_class_is_an_error_not_a_guess() -> None:
    with pytest.raises(DataError, match=r"positive_class: 'cancer' is not a class.*malignant"):
        resolve_positive_class([0, 1], stated="cancer", names=NAMES, target_column="target")


def test_the_objective_naming_a_class_decides_and_says_so() -> None:
    chosen = resolve_positive_class(
        [0, 1],
        counts={0: 400, 1: 100},  # malignant the majority here: the objective still decides
        objective="Rank biopsy measurements by the likelihood of malignancy",
        names=NAMES,
    )
    assert (chosen["label"], chosen["source"]) == (0, "objective")
    assert "names 'malignant'" in chosen["reason"]


def test_without_a_statement_the_minority_class_with_its_share() -> None:
    chosen = resolve_positive_class(
        ["no", "yes"], counts={"no": 900, "yes": 100}, objective="no patient-facing decisions"
    )
    # "no" in the objective names nothing: generic labels are never matched
    assert (chosen["label"], chosen["source"]) == ("yes", "minority")
    assert "10.0% of 1000 rows" in chosen["reason"]


def test_scikit_learn_names_its_labels() -> None:
    assert label_names("sklearn:breast_cancer") == NAMES
    assert label_names("synthetic:credit") == {}


@pytest.fixture(scope="module")
def cancer(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from mpm.tools.datasets import acquire_dataset, split_dataset

    d = tmp_path_factory.mktemp("cancer")
    acquired = acquire_dataset("sklearn:breast_cancer", str(d / "data"))
    split = split_dataset(
        acquired["path"], "target", str(d / "split"), seed=11, model_type="classification"
    )
    return {"dir": d, "split": split}


def _train(cancer: dict[str, Any], out: str, **kwargs: Any) -> dict[str, Any]:
    from mpm.tools.training import train_candidates

    split = cancer["split"]
    return train_candidates(
        split["train_path"],
        split["val_path"],
        "target",
        str(cancer["dir"] / out),
        model_type="classification",
        target_metric="f1",
        families=["logistic_regression"],
        recommendations=None,  # scaled, as EDA would recommend
        label_names=label_names("sklearn:breast_cancer"),
        seed=11,
        **kwargs,
    )


def test_breast_cancer_malignant_recall_is_reported(
    cancer: dict[str, Any], mlflow_store: dict[str, str], stage_run: str
) -> None:
    """positive_class: malignant -> training, the threshold and validation are for label 0;
    the reported recall equals scikit-learn's malignant recall on the same predictions."""
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.metrics import f1_score, precision_score, recall_score

    from mpm.tools import tracking
    from mpm.tools.evaluation import validate_model

    trained = _train(
        cancer,
        "train_malignant",
        positive_class="malignant",
        tracking_uri=mlflow_store["uri"],
        run_id=stage_run,
    )
    assert (trained["positive_class"], trained["positive_class_source"]) == (0, "stated")
    assert trained["threshold_tuning"]["positive_label"] == 0
    report = validate_model(
        trained["model_path"],
        cancer["split"]["test_path"],
        "target",
        str(cancer["dir"] / "validate_malignant"),
        model_type="classification",
        target_metric="recall",
        success_threshold=0.5,
        decision_threshold=trained["decision_threshold"],
        positive_class=trained["positive_class"],
        positive_class_reason=trained["positive_class_reason"],
    )
    # independently: the malignant probability against the tuned threshold
    test = pd.read_parquet(cancer["split"]["test_path"])
    pipe = joblib.load(trained["model_path"])
    p_malignant = pipe.predict_proba(test[report["input_columns"]])[:, list(pipe.classes_).index(0)]
    pred = np.where(p_malignant > trained["decision_threshold"], 0, 1)
    y = test["target"].to_numpy()
    assert report["positive_class"] == 0
    assert report["test_metrics"]["recall"] == pytest.approx(recall_score(y, pred, pos_label=0))
    assert report["test_metrics"]["precision"] == pytest.approx(
        precision_score(y, pred, pos_label=0)
    )
    assert report["test_metrics"]["f1"] == pytest.approx(f1_score(y, pred, pos_label=0))
    assert report["test_score"] == pytest.approx(recall_score(y, pred, pos_label=0))
    # ...and not benign recall (the old, larger-label convention)
    assert recall_score(y, pred, pos_label=0) != pytest.approx(recall_score(y, pred, pos_label=1))
    # the choice and its reason are in the model metadata
    run = tracking.client(mlflow_store["uri"]).get_run(trained["best_model_run_id"])
    assert run.data.tags["mpm.positive_class"] == "malignant (label 0)"
    assert "stated in the requirements" in run.data.tags["mpm.positive_class_reason"]
    assert run.data.params["positive_class"] == "malignant (label 0)"
    parent = tracking.client(mlflow_store["uri"]).get_run(stage_run)
    assert parent.data.params["positive_class_source"] == "stated"


def test_the_inferred_positive_class_is_stated_with_its_reason(cancer: dict[str, Any]) -> None:
    trained = _train(
        cancer,
        "train_inferred",
        objective="Rank biopsy measurements by the likelihood of malignancy",
    )
    assert trained["positive_class"] == 0 and trained["positive_class_source"] == "objective"
    assert trained["positive_class_reason"].startswith("inferred: the business objective names")
    protocol = Path(trained["protocol_path"]).read_text()
    assert "malignant (label 0)" in protocol
