"""A third-party connector, as a plug-in package would ship it: it imports only the
``connectors`` package (tests/test_public_names.py holds it to that).

The test builds a ``dist-info`` beside this package with the entry point::

    [roam.connectors]
    example-header = roam_example_connector:ExampleConfig
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from connectors import (
    ConnectorContext,
    Identity,
    Outgoing,
    Route,
    drop_headers,
    strip_client_identity,
)


class ExampleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    header: str = "X-Example-User"

    def open(self, ctx: ConnectorContext) -> ExampleHeader:
        return ExampleHeader(header=self.header)


@dataclass(frozen=True)
class ExampleHeader:
    header: str
    type_name: str = "example-header"

    def present(self, identity: Identity, outgoing: Outgoing, route: Route, *,
                now: float) -> None:
        headers = drop_headers(strip_client_identity(outgoing.headers),
                               names=frozenset({self.header.lower()}))
        headers.append((self.header, identity.subject))
        outgoing.headers[:] = headers
