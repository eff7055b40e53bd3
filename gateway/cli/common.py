"""What every ``roam`` command shares: the config, who runs it, the audit trail."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path

from gateway.audit import open_trail
from gateway.config import Config, load_config

__all__ = ["DEFAULT_CONFIG", "_audited", "_config", "_operator", "_user"]

DEFAULT_CONFIG = "config/roam.toml"


def _config(args: argparse.Namespace) -> Config:
    return load_config(Path(args.config))


def _operator() -> str:
    """Who runs the command, as the audit trail names an operator at the terminal."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _audited(config: Config, emit: Callable[[], None]) -> None:
    """Write what ``emit`` audits to the trail before the command returns."""
    async def write() -> None:
        trail = open_trail(config)
        async with trail.running():
            emit()
        if trail.written == 0:
            print(f"warning: the audit event was not written ({trail.last_error})",
                  file=sys.stderr)

    asyncio.run(write())


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a container)
        return str(os.getuid())
