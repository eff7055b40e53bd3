"""gateway/store/base.py: the shared rules both stores apply."""

from __future__ import annotations

import pytest

from gateway.store.base import Kind, check_kind, check_ttl, check_version


def test_every_record_kind_is_a_valid_distinct_name() -> None:
    """The kinds the gateway writes: each a name both stores accept, none used twice."""
    values = [kind.value for kind in Kind]
    assert len(set(values)) == len(values)
    for kind in Kind:
        assert check_kind(kind) == kind.value


@pytest.mark.parametrize("kind", ["", "a:b", "a{b", "a}b"])
def test_kinds_that_would_make_keys_ambiguous_are_refused(kind: str) -> None:
    with pytest.raises(ValueError, match="kind must be"):
        check_kind(kind)


@pytest.mark.parametrize("ttl", [0, -1, 1.5, True, "60", None])
def test_ttls_that_are_not_positive_ints_are_refused(ttl: object) -> None:
    with pytest.raises(ValueError, match="ttl must be"):
        check_ttl(ttl)


def test_versions() -> None:
    assert check_version("abc") == "abc"
    assert check_version("", empty_ok=True) == ""
    for bad in ("", "a\nb"):
        with pytest.raises(ValueError, match="version"):
            check_version(bad)
