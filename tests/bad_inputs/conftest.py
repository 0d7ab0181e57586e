"""The reliability tests' fixtures: an MLflow store template the corpus workspace copies."""

from tests.reliability.conftest import mlflow_template  # noqa: F401 - a fixture, used by name
