"""Names derived from user input, made safe for paths, MLflow names and registry names."""

from __future__ import annotations

import re


def project_slug(name: str) -> str:
    """Lower-case ``[a-z0-9_]`` only, never empty, at most 64 chars: safe in paths and run names."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:64].strip("_")
    return slug or "project"
