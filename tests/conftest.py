"""Shared fixtures for the whole test tree."""

pytest_plugins = ["tests.support.redis_server", "tests.support.postgres", "tests.support.browser",
                  "tests.support.demo", "tests.support.cluster", "tests.support.stores"]

# authlib 1.9 prefers the httpx2 fork and warns on import of its httpx client; importing
# it here, under an "ignore", keeps the one-time warning out of every test run.
import warnings  # noqa: E402

import authlib.deprecate  # noqa: E402 - installs its "always" filter first

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    import authlib.integrations.httpx_client  # noqa: F401
