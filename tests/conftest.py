"""Shared fixtures for the whole test tree."""

pytest_plugins = ["tests.support.redis_server"]
