"""Health-check rules: ``[health]`` in the main file holds the defaults, a system's
``health`` table in the systems file overrides any of them for that system.

A system's table keeps only the keys it sets (``model_fields_set``), so a default changed
in ``roam.toml`` reaches every system that did not set its own. Whether a probe's timeout
fits its interval is judged on the merged rules (:func:`rule_problems`), where both are
known.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from gateway.config.files import Strict

__all__ = ["HealthRules", "HealthSection", "rule_problems", "rules_for"]

_PATH = re.compile(r"^/[\x21-\x7e]*$")  # printable ASCII, no space, starting with a slash


class HealthRules(Strict):
    """How one system's instances are checked (active) and judged by traffic (passive)."""

    active: bool = True  # probe each instance (one gateway process at a time)
    path: str = "/"  # probed under each instance's base URL; 2xx or 3xx is healthy
    interval: float = Field(default=10.0, ge=1, le=3600)  # seconds between probes
    timeout: float = Field(default=2.0, gt=0, le=60)  # a probe that takes longer failed
    healthy_threshold: int = Field(default=2, ge=1, le=100)  # probes in a row to come back
    unhealthy_threshold: int = Field(default=3, ge=1, le=100)  # failed probes in a row: out
    passive_failures: int = Field(default=3, ge=1, le=100)  # 5xx/timeouts/connect errors
    passive_cooldown: float = Field(default=30.0, ge=1, le=3600)  # then a half-open trial

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not _PATH.match(value) or "#" in value:
            raise ValueError(f"{value!r} is not a path starting with '/' (printable ASCII, "
                             "no spaces, no fragment)")
        segments = value.split("?", 1)[0].split("/")
        if any(s.lower() in ("..", ".", "%2e%2e", "%2e", ".%2e", "%2e.") for s in segments):
            raise ValueError(f"{value!r} has a dot segment")
        return value


class HealthSection(HealthRules):
    """``[health]``: the rules every system gets unless it sets its own, and how often
    each gateway process reads the shared picture."""

    refresh: float = Field(default=1.0, ge=0.1, le=60)  # seconds between reads of the store

    @model_validator(mode="after")
    def _timeout_fits(self) -> HealthSection:
        problems = rule_problems(self)
        if problems:
            raise ValueError(problems[0])
        return self


def rules_for(defaults: HealthRules, overrides: HealthRules | None) -> HealthRules:
    """``defaults`` with the keys ``overrides`` set (a system's ``health`` table)."""
    merged = {name: getattr(defaults, name) for name in HealthRules.model_fields}
    if overrides is not None:
        merged.update({name: getattr(overrides, name) for name in overrides.model_fields_set})
    return HealthRules.model_validate(merged)


def rule_problems(rules: HealthRules) -> list[str]:
    """What is wrong across keys: a probe must end before the next one is due."""
    if rules.timeout >= rules.interval:
        return [f"timeout ({rules.timeout:g} s) must be shorter than interval "
                f"({rules.interval:g} s)"]
    return []
