"""Browser-facing pages: Jinja2 templates and the Chinese error page with a reference id."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from gateway.errors import PageError

__all__ = ["Pages"]

log = logging.getLogger("roam.pages")

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; form-action 'self' http: https:",
    "Referrer-Policy": "no-referrer",
}


class Pages:
    def __init__(self, directory: Path | None = None) -> None:
        directory = directory or Path(__file__).parent / "templates"
        self.env = Environment(
            loader=FileSystemLoader(directory), autoescape=select_autoescape(["html"])
        )

    def render(self, template: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    def error(self, exc: PageError) -> HTMLResponse:
        log.warning("page error", extra={"ref": exc.ref, "status": exc.status,
                                         "detail": exc.detail})
        page = self.render(
            "error.html",
            {"title": exc.title, "detail": exc.detail, "ref": exc.ref},
            status=exc.status,
        )
        page.headers.update(exc.headers)
        return page
