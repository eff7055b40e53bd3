"""``python -m gateway.cli``: the ``roam`` command."""

import sys

from gateway.cli.commands import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
