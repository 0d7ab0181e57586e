"""Names derived from user input, made safe for paths, MLflow names and registry names.

A project's MLflow experiment and registered model are shared by every thread of that
project and by nobody else. The slug alone cannot promise that: "Churn (EU)" and
"churn eu" slug to the same string, and an emoji or a name in a non-Latin script slugs
to nothing. So the names mpm gives MLflow carry the project's *key*: the slug (or
``project`` when the slug is empty) plus the first 8 hex digits of the SHA-256 of the
canonical project name (Unicode NFKC, surrounding and repeated whitespace collapsed;
case is kept, so names that differ only in case are different projects, as their slugs
would otherwise make them the same one)::

    project_name "Churn (EU)"  -> key churn_eu_016c19d1
    experiment   ml_pipeline_churn_eu_016c19d1
    registered   pipeline_churn_eu_016c19d1

The key depends on nothing but the exact name, so a resumed thread, another worker or
another machine on the same tracking server derives the same names.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

DIGEST_CHARS = 8
"""Hex digits of the name's SHA-256 in the key: 32 bits, ample to keep apart the handful
of projects whose names share a slug."""
EMPTY_SLUG = "project"
EXPERIMENT_PREFIX = "ml_pipeline_"
REGISTERED_MODEL_PREFIX = "pipeline_"


def project_slug(name: str) -> str:
    """Lower-case ``[a-z0-9_]`` only, never empty, at most 64 chars: safe in paths and run
    names. Compatibility forms are folded and accents dropped first (``Ｃａｆé`` -> ``cafe``)."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    slug = re.sub(r"[^a-z0-9]+", "_", plain.lower()).strip("_")[:64].strip("_")
    return slug or EMPTY_SLUG


def canonical_project_name(name: str) -> str:
    """The form of the name the key is computed from: NFKC, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", name).split())


def project_key(name: str) -> str:
    """``<slug>_<8 hex digits>``: distinct for distinct canonical names, stable for one."""
    digest = hashlib.sha256(canonical_project_name(name).encode("utf-8")).hexdigest()
    return f"{project_slug(name)}_{digest[:DIGEST_CHARS]}"


def experiment_name(name: str) -> str:
    """The MLflow experiment of the project named ``name`` (the seed's ``ml_pipeline_…``)."""
    return EXPERIMENT_PREFIX + project_key(name)


def registered_model_name(name: str) -> str:
    """The registered model of the project named ``name`` (the seed's ``pipeline_…``)."""
    return REGISTERED_MODEL_PREFIX + project_key(name)


def registered_model_for_experiment(experiment: str) -> str | None:
    """The registered model name that belongs with an experiment mpm named, or None.

    A thread records its experiment when it plans; deriving the registry name from that
    record keeps the two together on resume even if the naming scheme changed since."""
    if not experiment.startswith(EXPERIMENT_PREFIX):
        return None
    return REGISTERED_MODEL_PREFIX + experiment.removeprefix(EXPERIMENT_PREFIX)
