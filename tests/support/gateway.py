"""A real gateway for protocol tests: the shipped config moved to a free port, served in
this process (``config_on_port`` + ``servers.serve``) or as ``roam serve`` in a process of
its own (``gateway_process``)."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from gateway.config import Config, load_config
from gateway.keyfiles import generate_key_file

REPO = Path(__file__).resolve().parents[2]
# The demo's audit file is the repository's var/audit.jsonl: test gateways write theirs here
AUDIT_DIR = Path(tempfile.mkdtemp(prefix="roam-test-audit-"))
atexit.register(shutil.rmtree, AUDIT_DIR, ignore_errors=True)


def audit_file(port: int) -> Path:
    """The trail file of the test gateway on ``port``."""
    return AUDIT_DIR / f"{port}.jsonl"


DEMO_PASSWORD = "Roam@2026"
CITIZEN = "13800000001"  # c-0001 in config/directory.toml, level L2
SECRETS = {
    "changsha-gov": "changsha-demo-secret-4f1c2a",
    "yueyang-gov": "yueyang-demo-secret-9b7e3d",
    "hunan-data-api": "data-api-demo-secret-5d2e8a",
}


def config_on_port(port: int, *, clients: dict[str, dict[str, Any]] | None = None,
                   **store: str) -> Config:
    """config/roam.toml with the issuer on ``port``, store settings and clients changed.

    The shipped systems are the demo's ports, where nothing listens in a test: active
    health checks are off (else they would take the systems out of rotation while a test
    runs, and ``/go`` would fall back a level)."""
    base = load_config(REPO / "config" / "roam.toml", env={})
    gateway = base.settings.gateway.model_copy(
        update={"issuer": f"http://127.0.0.1:{port}", "port": port})
    store_section = base.settings.store.model_copy(update=store)
    health = base.settings.health.model_copy(update={"active": False})
    audit = base.settings.audit.model_copy(update={"path": str(audit_file(port))})
    settings = base.settings.model_copy(update={"gateway": gateway, "store": store_section,
                                                "health": health, "audit": audit})
    # The shipped clients' back-channel URIs point at the demo's fixed ports: a test must
    # not post logout tokens to a demo someone is running, so they are off unless asked.
    changes = clients or {}
    updated = tuple(c.model_copy(update={"backchannel_logout_uri": None,
                                         **changes.get(c.client_id, {})})
                    for c in base.clients)
    return base.revised(settings=settings, clients=updated)


def with_systems(config: Config, systems: Path, *, path_mode: bool = False) -> Config:
    """``config`` with another systems file; ``path_mode``: its proxied systems without
    hosts served under ``/s/<id>/`` (the opt-in), as tests that reach them so do."""
    settings = config.settings
    return config.revised(settings=settings.model_copy(update={
        "routing": settings.routing.model_copy(update={"systems_file": str(systems)}),
        "proxy": settings.proxy.model_copy(update={"path_mode": path_mode}),
    }))


def form_field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no {name} field on the page"
    return match.group(1)


def log_in(http: httpx.Client, authorize_url: str, username: str = CITIZEN,
           password: str = DEMO_PASSWORD) -> str:
    """Walk the login page like a browser would; returns the final redirect to the RP."""
    response = http.get(authorize_url)
    assert response.status_code == 303, response.text
    page = http.get(response.headers["location"])
    assert page.status_code == 200
    response = http.post("/login", data={
        "csrf_token": form_field(page.text, "csrf_token"),
        "r": form_field(page.text, "r"),
        "username": username,
        "password": password,
    })
    assert response.status_code == 303, response.text
    response = http.get(response.headers["location"])
    assert response.status_code == 302, response.text
    return response.headers["location"]


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def processes_env(directory: Path, redis_url: str, prefix: str) -> dict[str, str]:
    """What ``roam serve`` processes on one Redis share (it refuses them otherwise): the
    store, a key directory made in ``directory``, and the gateway's secret."""
    keys = directory / "keys"
    keys.mkdir(mode=0o700)
    for alg in ("RS256", "ES256"):
        generate_key_file(keys, alg)
    return {"ROAM_STORE_BACKEND": "redis", "ROAM_STORE_REDIS_URL": redis_url,
            "ROAM_STORE_PREFIX": prefix, "ROAM_GATEWAY_KEY_DIR": str(keys),
            "ROAM_SECRET": secrets.token_urlsafe(32)}


@contextlib.contextmanager
def gateway_process(port: int, *, env: Mapping[str, str] | None = None,
                    log: Path | None = None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``roam serve`` with the shipped config on ``port`` (no other ``ROAM_*`` of this
    environment), ``env`` added; yields its URL once ``/healthz`` answers, and the process
    (its stdout and stderr are pipes, or both go to the file ``log``: a process that runs
    long and logs much must not fill a pipe no one reads). Stopped with SIGTERM at the
    end, unless the test stopped it (SIGKILL too) already."""
    child = {k: v for k, v in os.environ.items() if not k.startswith("ROAM_")}
    child.update(ROAM_GATEWAY_PORT=str(port), ROAM_GATEWAY_ISSUER=f"http://127.0.0.1:{port}",
                 ROAM_AUDIT_PATH=str(audit_file(port)), PYTHONPATH=str(REPO))
    child.update(env or {})
    with contextlib.ExitStack() as files:
        out = files.enter_context(log.open("a", encoding="utf-8")) if log else subprocess.PIPE
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve"], cwd=REPO, env=child, text=True,
            stdout=out, stderr=subprocess.STDOUT if log else subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (log.read_text("utf-8") if log
                                            else process.communicate()[1])
            assert time.monotonic() < deadline, "roam serve did not start"
            time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
