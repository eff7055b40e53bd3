"""``python -m demo [--config PATH]``: what ``make demo`` runs (see ``demo.run``)."""

from __future__ import annotations

__all__ = ["main"]

import argparse
import asyncio
import contextlib
import logging
import os
import sys

from demo.run import run_demo
from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo",
                                     description="Roam with demo city systems, on loopback")
    parser.add_argument("--config", default=os.environ.get("ROAM_CONFIG", "config/roam.toml"),
                        help="main config file (default: $ROAM_CONFIG or config/roam.toml)")
    args = parser.parse_args(argv)
    configure_logging(logging.INFO)  # the gateway's JSON lines, as `roam serve` writes them
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print("configuration problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
