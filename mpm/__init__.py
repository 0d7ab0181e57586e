"""mpm: a governed ML project manager agent.

The one import name an installation adds. The repository keeps the design's top-level
folders (``graph/``, ``agents/``, ``tools/``, ``governance/``, ``reference/``, ``cli/``);
``pyproject.toml`` maps each of them under this package (``mpm.graph``, ``mpm.agents``, ...),
so a user's environment never gains generic names such as ``tools`` or ``graph``.
"""

__version__ = "0.1.0"
