"""What the proxy needs of a request's head, found in one pass over its headers."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["RequestFacts"]


class RequestFacts(NamedTuple):
    """What the proxy needs of the request headers, found in one pass (Starlette's
    ``Headers.get`` scans the list once per name)."""

    host: str
    cookie: str
    length: str | None  # Content-Length as sent
    chunked: bool  # a Transfer-Encoding was sent
    foreign: bool  # sent by another site's page, not as a top-level GET navigation
    # (Fetch Metadata: a frame's navigation is Sec-Fetch-Dest: iframe, not document)

    @classmethod
    def of(cls, raw: list[tuple[bytes, bytes]], method: str) -> RequestFacts:
        host = cookie = ""
        length: str | None = None
        chunked = False
        site = mode = dest = b""
        for name, value in raw:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"cookie":
                cookie = value.decode("latin-1")  # one header, as Starlette reads it
            elif name == b"content-length":
                length = value.decode("latin-1")
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"sec-fetch-site":
                site = value.lower()
            elif name == b"sec-fetch-mode":
                mode = value.lower()
            elif name == b"sec-fetch-dest":
                dest = value.lower()
        foreign = site in (b"same-site", b"cross-site") and not (
            mode == b"navigate" and dest == b"document" and method in ("GET", "HEAD"))
        return cls(host, cookie, length, chunked, foreign)
