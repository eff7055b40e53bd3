"""A clock tests move by hand (stores, sessions and counters take one)."""

from __future__ import annotations

__all__ = ["Clock"]


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
