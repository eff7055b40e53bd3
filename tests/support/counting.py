"""The real TOML directory, counting the password verifications it really runs.

Lockout and throttle tests count checks here rather than mocking anything: the argon2
verification still runs, the count says how many did.
"""

from __future__ import annotations

from gateway.login.directory import TomlDirectory

__all__ = ["CountingDirectory"]


class CountingDirectory(TomlDirectory):
    """Every instance adds to the class's ``verified`` (a test's gateways count together)."""

    verified = 0

    async def _verify(self, password_hash: str, password: str) -> bool:
        type(self).verified += 1
        return await super()._verify(password_hash, password)
