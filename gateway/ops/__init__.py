"""Operations: the operators' console (accounts with two factors, their sessions, the
status page and admin API) and the probes load balancers ask (``probes``)."""

from gateway.ops.console import Board, Console, UnknownTarget
from gateway.ops.console_sessions import ConsoleSession, ConsoleSessions
from gateway.ops.operators import (
    Operator,
    OperatorLogin,
    OpsLoginRefused,
    Role,
    load_operators,
    new_totp_secret,
)
from gateway.ops.probes import Probes

__all__ = [
    "Board",
    "Console",
    "ConsoleSession",
    "ConsoleSessions",
    "Operator",
    "OperatorLogin",
    "OpsLoginRefused",
    "Probes",
    "Role",
    "UnknownTarget",
    "load_operators",
    "new_totp_secret",
]
