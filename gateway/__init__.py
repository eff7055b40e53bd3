"""Roam: the single sign-on gateway for a province's government services."""

__version__ = "0.1.0"
