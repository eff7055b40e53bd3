"""The version ranges pyproject.toml holds a dependency to, for tests of private APIs."""

from __future__ import annotations

import tomllib
from importlib.metadata import version

from packaging.requirements import Requirement

from tests.support.gateway import REPO

__all__ = ["installed_within_pin", "pin"]


def pin(distribution: str) -> Requirement:
    """The requirement ``pyproject.toml`` declares for ``distribution``."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        if requirement.name.lower() == distribution.lower():
            return requirement
    raise LookupError(f"pyproject.toml does not depend on {distribution}")


def installed_within_pin(distribution: str) -> tuple[str, str]:
    """``(installed version, declared range)``; the caller asserts the one is in the other."""
    return version(distribution), str(pin(distribution).specifier)
