"""gateway/oidc/server.py leans on authlib's internals in two places; if a release moves
them, these fail loudly (pyproject.toml holds authlib to the release line tested)."""

from __future__ import annotations

import ast
import inspect
import textwrap

from authlib.oauth2.rfc6749 import AuthorizationServer
from authlib.oauth2.rfc6749.grants.base import BaseGrant
from packaging.specifiers import SpecifierSet

from gateway.oidc.server import RoamAuthorizationServer
from tests.support.pins import installed_within_pin


def _calls(function: object) -> list[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))  # type: ignore[arg-type]
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    calls.sort(key=lambda node: (node.lineno, node.col_offset))  # in the order written
    return [ast.unparse(node.func) for node in calls]


def test_authlib_is_within_the_release_line_tested() -> None:
    installed, declared = installed_within_pin("authlib")
    assert SpecifierSet(declared).contains(installed), (installed, declared)
    assert "<" in declared, "a mirrored internal is pinned from above too"


def test_token_response_still_mirrors_authlibs_create_token_response() -> None:
    """``token_response`` is authlib's ``create_token_response`` with the store's
    single-use step between checking and issuing: the same calls, in the same order."""
    assert _calls(AuthorizationServer.create_token_response) == [
        "self.create_oauth2_request", "self.get_token_grant", "self.handle_error_response",
        "grant.validate_token_request", "grant.create_token_response", "self.handle_response",
        "self.handle_error_response"]
    ours = _calls(RoamAuthorizationServer.token_response)
    checked = ["self.get_token_grant", "grant.validate_token_request", "self._use_up"]
    assert [call for call in ours if call in checked] == checked
    used_up = ours.index("self._use_up")
    assert ours.index("grant.create_token_response") > used_up  # nothing minted before
    assert ours.index("self.handle_response") > used_up


def test_the_grant_hook_roam_overrides_keeps_its_signature() -> None:
    """``RefreshTokensOfRoam.generate_token`` calls authlib's with these keywords."""
    assert list(inspect.signature(BaseGrant.generate_token).parameters) == [
        "self", "user", "scope", "grant_type", "expires_in", "include_refresh_token"]
