"""One back-channel logout delivery: what is told to which RP, and how far it got.

The record a delivery is kept as in the store (kind ``bcl_delivery``), by the process
delivering it and by any process that takes it over (``gateway.oidc.delivery_queue``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["RECORD_TTL", "Delivery", "Status"]

RECORD_TTL = 7 * 24 * 3600  # long enough for an operator to look into a failed delivery

Status = Literal["pending", "delivered", "failed", "refused"]


@dataclass
class Delivery:
    """One logout token's journey to one RP.

    ``jti`` is the first token's; retries send fresh tokens but keep this record id.
    ``sub`` is kept out of ``repr`` so a stray log line cannot leak it. ``owner`` and
    ``lease_until`` say which process works on it until when; ``first_attempt`` and
    ``next_attempt`` let another process go on with the same schedule.
    """

    jti: str
    client_id: str
    sid: str | None
    uri: str
    sub: str = field(repr=False)
    attempts: int = 0
    status: Status = "pending"
    last_error: str | None = None
    created: float = 0.0
    updated: float = 0.0
    first_attempt: float | None = None
    next_attempt: float = 0.0
    owner: str = ""
    lease_until: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Delivery:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
