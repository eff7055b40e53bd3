"""A real local stand-in for the authoritative real-name and face verification service
(the contract gateway/binding/http_verifier.py speaks), for the tests and ``roam demo``.

It knows a register of (name, ID number) pairs, demands its bearer credential, and keeps
face checks in memory. ``POST /v1/face/sessions/{id}/scan`` ``{"outcome": "passed" |
"failed"}`` plays the person's face scan in the mini-program: the client talks to the
service, and the gateway learns the outcome only by asking the service.

``demo_verification`` is how ``make demo`` runs it: on a port of its own, over the demo
directory's people, with the gateway's ``[binding]`` pointed at it (verifier ``http``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from demo import free_port
from gateway.config import Config
from gateway.login.directory import load_entries

__all__ = ["DEMO_CREDENTIAL", "demo_verification", "verification_app"]

DEMO_CREDENTIAL = "demo-verification-credential-not-a-real-one"  # fictional, as the WeChat one


def verification_app(register: Iterable[tuple[str, str]], *, credential: str) -> Starlette:
    """The service over ``register`` (name, ID number) that accepts ``credential``."""
    people = {number.upper(): name for name, number in register}
    checks: dict[str, dict[str, str]] = {}
    calls: list[str] = []

    def authorised(request: Request) -> bool:
        calls.append(request.url.path)
        return secrets.compare_digest(request.headers.get("authorization", ""),
                                      f"Bearer {credential}")

    def denied() -> Response:
        return JSONResponse({"error": "unauthorized"}, status_code=401)

    async def body(request: Request) -> dict[str, str]:
        try:
            data = await request.json()
        except ValueError:
            return {}
        return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(
            data, dict) else {}

    async def verify(request: Request) -> Response:
        if not authorised(request):
            return denied()
        data = await body(request)
        number, name = data.get("id_number", "").upper(), data.get("name", "")
        if not number or not name:
            return JSONResponse({"error": "bad_request"}, status_code=400)
        return JSONResponse({"result": "match" if people.get(number) == name else "mismatch"})

    async def start(request: Request) -> Response:
        if not authorised(request):
            return denied()
        data = await body(request)
        number = data.get("id_number", "").upper()
        if people.get(number) != data.get("name"):
            return JSONResponse({"error": "mismatch"}, status_code=400)
        verification_id = secrets.token_urlsafe(18)
        checks[verification_id] = {"status": "pending", "id_number": number}
        return JSONResponse({"verification_id": verification_id}, status_code=201)

    async def scan(request: Request) -> Response:  # the person's side: no credential
        check = checks.get(request.path_params["vid"])
        outcome = (await body(request)).get("outcome")
        if check is None or check["status"] != "pending" or outcome not in ("passed", "failed"):
            return JSONResponse({"error": "not_found"}, status_code=404)
        check["status"] = outcome
        return JSONResponse({"status": outcome})

    async def result(request: Request) -> Response:
        if not authorised(request):
            return denied()
        check = checks.get(request.path_params["vid"])
        if check is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        return JSONResponse(check)

    app = Starlette(routes=[
        Route("/v1/realname/verify", verify, methods=["POST"]),
        Route("/v1/face/sessions", start, methods=["POST"]),
        Route("/v1/face/sessions/{vid}", result, methods=["GET"]),
        Route("/v1/face/sessions/{vid}/scan", scan, methods=["POST"]),
    ])
    app.state.calls = calls
    return app


def demo_verification(config: Config) -> tuple[Config, dict[str, str], tuple[Starlette, int]]:
    """``config`` whose binding asks this service (verifier ``http``) on a free loopback
    port, the environment the gateway then needs (the credential's variable, which the
    config names), and the service with its port. The register is the people of the
    config's directory file, so the demo binds exactly the people it can log in."""
    entries = load_entries(config.path(config.settings.login.directory_file))
    register = [(str(e.claims.get("name", "")), e.id_number) for e in entries]
    port = free_port()
    binding = config.settings.binding.model_copy(update={
        "verifier": "http", "base_url": f"http://127.0.0.1:{port}", "credential_file": ""})
    revised = config.revised(settings=config.settings.model_copy(update={"binding": binding}))
    app = verification_app(register, credential=DEMO_CREDENTIAL)
    return revised, {binding.credential_env: DEMO_CREDENTIAL}, (app, port)
