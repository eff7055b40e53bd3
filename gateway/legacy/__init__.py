"""Logins for legacy systems that are not OIDC clients: the gateway's server halves of the
``cas`` and ``ticket`` connectors, and the gate every way into a system passes.

``access`` is that gate (a live session at the system's level), which the proxy and
``/go`` use too; ``cas`` is the CAS 3.0 server; ``ticket`` issues and redeems one-time
tickets.
"""

from gateway.legacy.access import Gate, Refusal
from gateway.legacy.cas import CasServer
from gateway.legacy.ticket import TicketEndpoints

__all__ = ["CasServer", "Gate", "Refusal", "TicketEndpoints"]
