"""Binding a mini-program channel identity to a citizen (issue 11, item 3): real-name
verification (L2), a face check fetched server to server (L3), and the resolution a
channel login asks for (:meth:`gateway.binding.bindings.Bindings.resolve`)."""

__all__: list[str] = []
