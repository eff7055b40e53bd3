"""Roam: the single sign-on gateway for a province's government services.

The package is layered (docs/architecture.md): foundation modules (``errors``, ``ids``,
``urls``, ``identity``, ``keys``, ``store``, ...) below ``connectors`` and ``config``; the
services (``sessions``, ``oidc``, ``login``, ``legacy``, ``routing``, ``proxy``) above them;
``wiring`` builds them, ``app`` serves them, ``cli`` runs them. Import what you need from
the subpackage that owns it; this package itself exports only its version.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
