"""The production verifier: an HTTP adapter to an authoritative real-name and face
verification service (its contract: ``demo/verification.py`` implements it).

``POST {base}/v1/realname/verify`` ``{"name", "id_number"}`` → ``{"result": "match" |
"mismatch"}``; ``POST {base}/v1/face/sessions`` ``{"name", "id_number"}`` →
``{"verification_id"}``; ``GET {base}/v1/face/sessions/{id}`` → ``{"status": "passed" |
"failed" | "pending", "id_number"}``. Every call carries ``Authorization: Bearer
<credential>``. The base URL is the operator's configuration, not a client's, so the
SSRF guard for client-registered URLs (gateway/outbound.py) does not apply; redirects
are never followed. Any transport error or unexpected answer is ``unavailable``, never
a pass.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx

from gateway.binding.verifier import FaceResult, FaceStatus, Refusal, VerifiedPerson

__all__ = ["HttpVerifier"]

log = logging.getLogger("roam.binding")
_STATUSES: tuple[FaceStatus, ...] = ("passed", "failed", "pending")


class HttpVerifier:
    def __init__(self, http: httpx.AsyncClient, *, base_url: str, credential: str) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {credential}"}

    async def _call(self, method: str, path: str,
                    body: dict[str, str] | None = None) -> dict[str, Any] | None:
        try:
            response = await self.http.request(method, self.base_url + path, json=body,
                                               headers=self._headers, follow_redirects=False)
        except httpx.HTTPError as exc:
            log.warning("verification service unreachable",
                        extra={"path": path, "cause": type(exc).__name__})
            return None
        if response.status_code not in (200, 201):
            log.warning("verification service refused",
                        extra={"path": path, "status": response.status_code})
            return None
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            log.warning("verification service answered no JSON object", extra={"path": path})
            return None
        return data

    async def verify_real_name(self, name: str, id_number: str) -> VerifiedPerson | Refusal:
        data = await self._call("POST", "/v1/realname/verify",
                                {"name": name, "id_number": id_number})
        if data is None:
            return Refusal("unavailable")
        result = data.get("result")
        if result == "match":
            return VerifiedPerson(id_number, name)
        return Refusal("mismatch" if result == "mismatch" else "unavailable")

    async def start_face(self, person: VerifiedPerson) -> str | Refusal:
        data = await self._call("POST", "/v1/face/sessions",
                                {"name": person.name, "id_number": person.id_number})
        verification_id = data.get("verification_id") if data else None
        if not isinstance(verification_id, str) or not verification_id:
            return Refusal("unavailable")
        return verification_id

    async def face_result(self, verification_id: str) -> FaceResult:
        data = await self._call("GET", "/v1/face/sessions/" + quote(verification_id, safe=""))
        if data is None:
            return FaceResult("unknown")
        status = data.get("status")
        number = data.get("id_number")
        if status not in _STATUSES or not isinstance(number, str):
            return FaceResult("unknown")
        return FaceResult(status, number)
