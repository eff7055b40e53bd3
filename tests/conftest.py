"""Shared fixtures for the whole test tree."""

pytest_plugins = ["tests.support.redis_server", "tests.support.postgres", "tests.support.browser",
                  "tests.support.demo", "tests.support.cluster", "tests.support.stores"]

import atexit  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

# authlib 1.9 prefers the httpx2 fork and warns on import of its httpx client; importing
# it here, under an "ignore", keeps the one-time warning out of every test run.
import authlib.deprecate  # noqa: E402 - installs its "always" filter first
import pytest  # noqa: E402

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    import authlib.integrations.httpx_client  # noqa: F401

from tests.support.tls import make_ca  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    """TLS clients made in tests — thousands of httpx clients, and the gateways'
    own — trust one CA of the suite's own instead of certifi's bundle of ~140: OpenSSL
    parses that bundle for every new client, 27 ms each, two minutes of the suite's CPU.
    ``SSL_CERT_FILE`` is how httpx and OpenSSL are told where trust is, in production
    too; no test reaches a public server, and TLS tests still trust only their own CA."""
    directory = Path(tempfile.mkdtemp(prefix="roam-test-ca-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    os.environ["SSL_CERT_FILE"] = str(make_ca(directory).ca_file)
    os.environ.pop("SSL_CERT_DIR", None)
