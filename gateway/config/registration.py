"""``[registration]``: city and county systems registering themselves (RFC 7591/7592).

What a registration may have without an operator looking at it (``auto_approve``), which
claims and levels need one, how long a rotated secret keeps working, and how soon every
process sees a change. docs/configuration.md documents every key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from gateway.config.files import ClaimNames, Strict

__all__ = ["RegistrationSection"]

Level = Literal["L1", "L2", "L3", "L4"]


class RegistrationSection(Strict):
    # POST /register and /register/{client_id}; off: both 404 and discovery omits them
    enabled: bool = True
    # "basic": a registration asking no sensitive claim and no level above
    # max_auto_level is active at once; "none": every registration waits for an operator
    auto_approve: Literal["basic", "none"] = "basic"
    # claims a client has only once an operator approved them (最小必要)
    sensitive_claims: ClaimNames = ("id_number", "phone_number", "uscc", "org_name", "agent")
    # the highest default_acr_values a registration may ask without approval
    max_auto_level: Level = "L2"
    # seconds a client's previous secret still works after the gateway made a new one
    secret_overlap: int = Field(default=86400, ge=0, le=30 * 86400)
    # seconds between two looks at the store's client version, in every process
    reload_interval: float = Field(default=0.5, ge=0.1, le=10)
    # software statements (RFC 7591 §2.3) accepted from these issuers: iss -> JWKS file
    software_statement_issuers: dict[str, str] = Field(default_factory=dict)

    @field_validator("software_statement_issuers")
    @classmethod
    def _issuers(cls, value: dict[str, str]) -> dict[str, str]:
        for issuer, path in value.items():
            if not issuer or not path:
                raise ValueError("each issuer names a non-empty JWKS file")
        return value
