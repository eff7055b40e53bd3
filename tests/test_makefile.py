"""The Makefile does the set-up itself: a fresh machine needs only `make demo` or
`make test`, and CI runs nothing but `make test`."""

from __future__ import annotations

import subprocess

from tests.support.gateway import REPO


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", *args],  # noqa: S603, S607
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def test_a_missing_system_package_names_the_command_that_installs_it() -> None:
    """Not root (or told not to install): stop, naming the one command to run."""
    result = make("system-packages", "CHROMIUM=/nonexistent/chromium",
                  "INSTALL_SYSTEM_PACKAGES=no")
    assert result.returncode == 2
    assert "missing system packages: chromium" in result.stderr
    assert "install them with: sudo apt-get install -y chromium" in result.stderr


def test_make_test_sets_up_before_it_runs_anything() -> None:
    plan = make("-n", "-B", "test").stdout
    order = [plan.index(step) for step in (
        "redis-server", "-m venv", 'pip install --quiet -e ".[test,demo,regions]"',
        "ruff check", "mypy", "pytest")]
    assert order == sorted(order)


def test_make_demo_installs_only_what_the_demo_needs() -> None:
    plan = make("-n", "-B", "demo").stdout
    assert 'pip install --quiet -e ".[demo]"' in plan
    assert plan.rstrip().endswith("-m demo")
    assert "chromium" not in plan


def test_ci_runs_the_readme_test_command_and_nothing_else() -> None:
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text("utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[-1] == "exec make test"
    assert lines[:-1] == ["set -euo pipefail", 'cd "$(dirname "$0")/.."']
    assert "make test" in (REPO / "README.md").read_text("utf-8")
