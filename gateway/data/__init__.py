"""Data files shipped with the gateway (``hunan_regions.json``, made by
``scripts/regions.py``); read through :mod:`gateway.regions`, no code here."""

__all__: list[str] = []
