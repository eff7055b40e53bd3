"""What every config file shares: strict models, reading TOML, one line per problem."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from gateway.identity import KNOWN_CLAIMS

__all__ = ["ClaimNames", "Strict", "problems_of", "read_toml"]


class Strict(BaseModel):
    """A config table: unknown keys are errors (a misspelt key must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _known_claims(value: tuple[str, ...]) -> tuple[str, ...]:
    unknown = sorted(set(value) - KNOWN_CLAIMS)
    if unknown:
        raise ValueError(f"unknown claims {unknown}; known: {sorted(KNOWN_CLAIMS)}")
    return value


ClaimNames = Annotated[tuple[str, ...], AfterValidator(_known_claims)]
"""Claims a client or system is approved for: names some scope can release."""


def read_toml(path: Path, problems: list[str]) -> dict[str, Any]:
    """A TOML file's tables; a missing or broken file is one more problem, not an exception."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: not valid TOML: {exc}")
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror}")
    return {}


def problems_of(source: str, error: ValidationError, prefix: str = "",
                env_keys: Mapping[str, str] | None = None) -> list[str]:
    """One line per problem, naming file and key; a value that came from the environment
    names its variable instead."""
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        key = prefix + ".".join(str(part) for part in item["loc"])
        message = item["msg"]
        if env_keys and key in env_keys:
            problems.append(f"environment: {env_keys[key]} ({key}): {message}")
        else:
            problems.append(f"{source}: {key}: {message}")
    return problems
