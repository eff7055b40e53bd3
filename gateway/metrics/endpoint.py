"""``GET /metrics``: the Prometheus exposition, for scrapers only.

Metrics tell who uses which system when; they are not public. With a token
(``[metrics] token`` from ``ROAM_METRICS_TOKEN``, or ``token_file``) a scraper must send
``Authorization: Bearer <token>`` (compared in constant time), else ``401``. Without one,
``/metrics`` answers only a connection from loopback that carries no forwarding header
(``X-Forwarded-For``, ``Forwarded``, ``X-Real-IP``): a load balancer on the same host
forwards the internet's requests from loopback too, and adds those headers. Anything else
is ``403``, saying to set a token. Errors are JSON (a scraper reads them), never cached.
"""

from __future__ import annotations

import hmac
import ipaddress

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.config import Config, check_metrics_token
from gateway.errors import ConfigError
from gateway.metrics.recorder import Metrics

__all__ = ["FORWARDING_HEADERS", "MetricsEndpoint", "metrics_token"]

FORWARDING_HEADERS = (b"x-forwarded-for", b"forwarded", b"x-real-ip")
NO_STORE = {"Cache-Control": "no-store"}


def metrics_token(config: Config) -> str | None:
    """The bearer secret scrapers must send, if ``[metrics]`` sets one (the environment's
    ``ROAM_METRICS_TOKEN`` or ``token_file``); ``ConfigError`` for a file that cannot be
    read or holds no good token."""
    section = config.settings.metrics
    if section.token is not None:
        return section.token.get_secret_value()
    if not section.token_file:
        return None
    path = config.path(section.token_file)
    try:
        return check_metrics_token(path.read_text("utf-8").strip())
    except OSError as exc:
        raise ConfigError([f"{config.source}: metrics.token_file: cannot read {path}: "
                           f"{exc.strerror}"]) from None
    except ValueError as exc:
        raise ConfigError([f"{config.source}: metrics.token_file: {path}: {exc}"]) from None


def _loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


class MetricsEndpoint:
    """``/metrics`` over ``metrics``, for holders of ``token`` (or loopback, without one)."""

    def __init__(self, metrics: Metrics, *, token: str | None) -> None:
        self.metrics = metrics
        self._token = token.encode() if token is not None else None

    async def handle(self, request: Request) -> Response:
        refusal = self.refusal(request)
        if refusal is not None:
            return refusal
        # Reading the worker files (multiprocess) and formatting: off the event loop.
        body, content_type = await anyio.to_thread.run_sync(
            self.metrics.exposition, request.headers.get("accept", ""))
        return Response(body, headers={**NO_STORE, "Content-Type": content_type})

    def refusal(self, request: Request) -> Response | None:
        if self._token is not None:
            scheme, _, presented = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                    presented.strip().encode(), self._token):
                return None
            return JSONResponse(
                {"error": "invalid_token", "error_description": "Metrics need the bearer "
                 "token of [metrics]."}, status_code=401,
                headers={**NO_STORE, "WWW-Authenticate": 'Bearer realm="roam-metrics"'})
        client = request.scope.get("client")
        forwarded = any(name in FORWARDING_HEADERS for name, _ in request.scope["headers"])
        if client and _loopback(str(client[0])) and not forwarded:
            return None
        return JSONResponse(
            {"error": "forbidden", "error_description": "Without a metrics token "
             "(ROAM_METRICS_TOKEN or [metrics] token_file), /metrics answers only direct "
             "connections from loopback."}, status_code=403, headers=NO_STORE)
