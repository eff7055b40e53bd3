"""Running ``roam`` as operators do: a subprocess, its exit code and its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.gateway import REPO


def roam(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    """``roam *args`` with no ``ROAM_*`` (nor ``PROMETHEUS_MULTIPROC_DIR``) of the caller's
    environment, but ``env``."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith("ROAM_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    full_env.update(env or {})
    return subprocess.run(  # noqa: S603 - our own CLI, fixed argv
        [sys.executable, "-m", "gateway.cli", *args], cwd=cwd, env=full_env,
        capture_output=True, text=True, timeout=60, check=False)
