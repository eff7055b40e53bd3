"""A real PostgreSQL for tests (never a fake), shared as a pytest plugin.

Load it with ``pytest_plugins = ["tests.support.postgres"]``. The server is
``$POSTGRES_URL``, else the one answering on 127.0.0.1:5432 (trust authentication,
database ``test``), else a throwaway one started here with ``initdb`` and ``postgres``
(Debian's ``postgresql`` package; as root it runs as the ``postgres`` user, which
``postgres`` insists on). Tests may share that database with people, so each test gets a
schema of its own (:func:`audit_schema`) and drops only that schema afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from tests.support.redis_server import unused_port

__all__ = ["audit_schema", "drop_schema", "postgres_dsn", "postgres_server_dsn"]

_LOCAL_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def _answers(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _as_postgres(argv: list[str]) -> list[str]:
    """``postgres`` and ``initdb`` refuse to run as root: run them as ``postgres`` then."""
    if os.geteuid() != 0:
        return argv
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("running as root and there is no postgres user to run "
                           "PostgreSQL as: apt-get install postgresql") from None
    return ["runuser", "-u", "postgres", "--", *argv]


@contextlib.contextmanager
def _own_server() -> Iterator[str]:
    initdb, postgres = _binary("initdb"), _binary("postgres")
    if initdb is None or postgres is None:
        # Fail, never skip: a silently skipped audit suite would hide a broken trail.
        raise RuntimeError("no POSTGRES_URL, nothing on 127.0.0.1:5432 and no initdb/postgres: "
                           "apt-get install postgresql")
    with tempfile.TemporaryDirectory(prefix="roam-pg-") as workdir:
        os.chmod(workdir, 0o777)  # noqa: S103 - a throwaway directory the postgres user fills
        data = os.path.join(workdir, "data")
        subprocess.run(_as_postgres([initdb, "-D", data, "-A", "trust", "-U", "postgres",  # noqa: S603
                                     "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        port = unused_port()
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            _as_postgres([postgres, "-D", data, "-p", str(port), "-h", "127.0.0.1",
                          "-k", workdir, "-F"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        try:
            deadline = time.monotonic() + 30
            while not _answers(admin):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"postgres on port {port} did not start")
                time.sleep(0.1)
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("CREATE DATABASE test")
            yield f"postgresql://postgres@127.0.0.1:{port}/test"
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def postgres_server_dsn() -> Iterator[str]:
    """Yield a connection string of a working PostgreSQL database."""
    from_env = os.environ.get("POSTGRES_URL")
    if from_env:
        yield from_env
        return
    if _answers(_LOCAL_DSN):
        yield _LOCAL_DSN
        return
    with _own_server() as dsn:
        yield dsn


def drop_schema(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The session's PostgreSQL."""
    with postgres_server_dsn() as dsn:
        yield dsn


@pytest.fixture
def audit_schema(postgres_dsn: str) -> Iterator[str]:
    """A schema of this test's own, dropped afterwards (nothing else is touched)."""
    schema = f"roamtest_{uuid4().hex[:16]}"
    yield schema
    drop_schema(postgres_dsn, schema)
