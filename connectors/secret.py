"""Connector settings that carry a shared secret: inline or named by environment variable."""

from __future__ import annotations

import os
from typing import Self

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator, model_validator

__all__ = ["MIN_SECRET_LENGTH", "SharedSecretSettings"]

MIN_SECRET_LENGTH = 32


class SharedSecretSettings(BaseModel):
    """``secret`` (≥ 32 characters) or ``secret_env`` naming the variable holding it —
    exactly one; an unset or short variable fails when the config loads, not per request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: SecretStr | None = None
    secret_env: str | None = None

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("secret, secret_env: give exactly one of them")
        self.resolved_secret()
        return self

    def resolved_secret(self) -> bytes:
        """The secret's bytes; ``ValueError`` naming the key if it is missing or short."""
        if self.secret is not None:
            return self.secret.get_secret_value().encode("utf-8")
        env_name = self.secret_env or ""
        value = os.environ.get(env_name)
        if value is None:
            raise ValueError(f"secret_env: environment variable {env_name} is not set")
        if len(value) < MIN_SECRET_LENGTH:
            raise ValueError(f"secret_env: environment variable {env_name} must hold at "
                             f"least {MIN_SECRET_LENGTH} characters")
        return value.encode("utf-8")
