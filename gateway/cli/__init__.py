"""``roam``: the operators' command line (``gateway.cli.commands``; the client commands in
``gateway.cli.clients``)."""

from gateway.cli.commands import main, parser

__all__ = ["main", "parser"]
