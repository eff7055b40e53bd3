"""Precise arrival (精准到达): the systems registry and route resolution.

``systems`` loads ``config/systems.toml`` (which city/county system handles which service
item, 事项); ``resolve`` picks the system and instance for an item in a region, walking up
county → prefecture → province.
"""
