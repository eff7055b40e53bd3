"""A relying party's back-channel logout endpoint, for tests: records what it is sent."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Receiver:
    """Logout tokens received per path (``/changsha``, ``/yueyang``...)."""

    tokens: dict[str, list[str]] = field(default_factory=dict)
    status: int = 200
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            form = await request.form()
            token = form.get("logout_token")
            with self.arrived:
                self.tokens.setdefault(request.path_params["rp"], []).append(str(token))
                self.arrived.notify_all()
            return Response(status_code=self.status)

        return Starlette(routes=[Route("/{rp}", receive, methods=["POST"])])

    def wait_for(self, rp: str, count: int = 1, timeout: float = 10.0) -> list[str]:
        """Block until ``rp`` has received ``count`` tokens; fail loudly otherwise."""
        with self.arrived:
            ok = self.arrived.wait_for(lambda: len(self.tokens.get(rp, [])) >= count, timeout)
        assert ok, f"{rp} received {len(self.tokens.get(rp, []))} logout tokens, wanted {count}"
        return self.tokens[rp]
