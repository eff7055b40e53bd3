"""One behaviour, two stores: every test here runs against MemoryStore and a real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.store import Store
from gateway.store.base import MAX_REUSE, VERSION_HISTORY, Advanced, load_payload
from tests.store.conftest import Elapse, Expiries, FakeClock

PAYLOAD: dict[str, Any] = {
    "client_id": "rp-changsha",
    "sub": "c0ffee",
    "name": "张三",
    "scope": ["openid", "profile"],
    "claims": {"acr": "L2", "nested": {"n": 1, "f": 1.5, "none": None, "t": True}},
}


async def test_upsert_then_find_round_trips(store: Store) -> None:
    await store.upsert("code", "abc", PAYLOAD, 60)
    assert await store.find("code", "abc") == PAYLOAD


async def test_find_missing_is_none(store: Store) -> None:
    assert await store.find("code", "nope") is None
    assert await store.find_text("code", "nope") is None


async def test_find_text_is_the_stored_json(store: Store) -> None:
    await store.upsert("code", "abc", PAYLOAD, 60)
    text = await store.find_text("code", "abc")
    assert text is not None
    assert load_payload(text) == PAYLOAD
    assert text == await store.find_text("code", "abc")  # unchanged record, same text
    await store.upsert("code", "abc", {**PAYLOAD, "scope": ["openid"]}, 60)
    assert await store.find_text("code", "abc") != text


async def test_kinds_are_separate_namespaces(store: Store) -> None:
    await store.upsert("code", "same", {"k": "code"}, 60)
    await store.upsert("ticket", "same", {"k": "ticket"}, 60)
    assert await store.find("code", "same") == {"k": "code"}
    assert await store.find("ticket", "same") == {"k": "ticket"}


async def test_upsert_replaces(store: Store) -> None:
    await store.upsert("session", "s1", {"v": 1, "old": True}, 60)
    await store.upsert("session", "s1", {"v": 2}, 60)
    assert await store.find("session", "s1") == {"v": 2}


async def test_payloads_are_isolated_from_callers(store: Store) -> None:
    given: dict[str, Any] = {"list": [1, 2], "inner": {"a": 1}}
    await store.upsert("session", "s1", given, 60)
    given["list"].append(3)
    given["inner"]["a"] = 99

    found = await store.find("session", "s1")
    assert found == {"list": [1, 2], "inner": {"a": 1}}
    found["list"].append(4)
    found["inner"]["a"] = 42
    used = await store.consume("session", "s1")
    assert used is not None
    used[0]["inner"]["a"] = 7

    assert await store.find("session", "s1") == {"list": [1, 2], "inner": {"a": 1}}


async def test_destroy(store: Store) -> None:
    await store.upsert("code", "abc", PAYLOAD, 60)
    await store.destroy("code", "abc")
    assert await store.find("code", "abc") is None
    assert await store.consume("code", "abc") is None
    await store.destroy("code", "abc")  # absent is fine


async def test_records_expire(store: Store, elapse: Elapse) -> None:
    await store.upsert("ticket", "t1", PAYLOAD, 1)
    await store.upsert("ticket", "t2", PAYLOAD, 1)
    await store.upsert("ticket", "long", PAYLOAD, 60)
    assert await store.find("ticket", "t1") == PAYLOAD
    assert await store.consume("ticket", "t2") == (PAYLOAD, True)

    await elapse(1.2)

    assert await store.find("ticket", "t1") is None
    assert await store.consume("ticket", "t1") is None
    assert await store.find("ticket", "t2") is None, "consume must keep the TTL"
    assert await store.find("ticket", "long") == PAYLOAD


async def test_consume_is_single_use_under_concurrency(store: Store) -> None:
    await store.upsert("code", "race", PAYLOAD, 60)
    results = await asyncio.gather(*(store.consume("code", "race") for _ in range(50)))
    assert all(result is not None for result in results)
    firsts = [first for result in results if result is not None for first in [result[1]]]
    assert firsts.count(True) == 1
    assert firsts.count(False) == 49
    assert all(result is not None and result[0] == PAYLOAD for result in results)


async def test_consume_missing_is_none(store: Store) -> None:
    assert await store.consume("code", "nope") is None


async def test_consumed_record_stays_for_replay_detection(store: Store) -> None:
    await store.upsert("code", "abc", PAYLOAD, 60)
    assert await store.consume("code", "abc") == (PAYLOAD, True)
    assert await store.find("code", "abc") == PAYLOAD
    assert await store.consume("code", "abc") == (PAYLOAD, False)


async def test_upsert_resets_consumed(store: Store) -> None:
    await store.upsert("ticket", "t", PAYLOAD, 60)
    await store.consume("ticket", "t")
    await store.upsert("ticket", "t", {"fresh": True}, 60)
    assert await store.consume("ticket", "t") == ({"fresh": True}, True)


async def test_revoke_by_grant_removes_every_kind_of_that_grant(store: Store) -> None:
    await store.upsert("code", "c1", {"grant_id": "g1"}, 60)
    await store.upsert("refresh", "r1", {"grant_id": "g1", "n": 1}, 3600)
    await store.upsert("access", "a1", {"grant_id": "g1"}, 600)
    await store.consume("code", "c1")
    await store.upsert("code", "c2", {"grant_id": "g2"}, 60)
    await store.upsert("refresh", "r2", {"grant_id": "g2"}, 3600)
    await store.upsert("session", "s1", {"sub": "x"}, 600)

    assert await store.revoke_by_grant("g1") == 3

    for kind, id in [("code", "c1"), ("refresh", "r1"), ("access", "a1")]:
        assert await store.find(kind, id) is None
    assert await store.find("code", "c2") == {"grant_id": "g2"}
    assert await store.find("refresh", "r2") == {"grant_id": "g2"}
    assert await store.find("session", "s1") == {"sub": "x"}
    assert await store.revoke_by_grant("g1") == 0


async def test_find_by_grant_lists_live_records_of_that_grant(store: Store,
                                                               elapse: Elapse) -> None:
    await store.upsert("session_rp", "s1.a", {"grant_id": "sid:1", "client_id": "a"}, 60)
    await store.upsert("session_rp", "s1:b{x}", {"grant_id": "sid:1", "client_id": "b"}, 60)
    await store.upsert("session_rp", "s2.a", {"grant_id": "sid:2", "client_id": "a"}, 60)
    await store.upsert("short", "s1.c", {"grant_id": "sid:1", "client_id": "c"}, 1)
    found = sorted(await store.find_by_grant("sid:1"))
    assert [(k, i, p["client_id"]) for k, i, p in found] == [
        ("session_rp", "s1.a", "a"), ("session_rp", "s1:b{x}", "b"), ("short", "s1.c", "c")]
    assert await store.find_by_grant("sid:none") == []
    await elapse(1.2)
    assert [i for _, i, _ in await store.find_by_grant("sid:1")] != []
    assert "s1.c" not in [i for _, i, _ in await store.find_by_grant("sid:1")]


async def test_find_by_grant_skips_records_moved_or_destroyed(store: Store) -> None:
    await store.upsert("k", "1", {"grant_id": "g"}, 60)
    await store.upsert("k", "2", {"grant_id": "g"}, 60)
    await store.upsert("k", "1", {"grant_id": "other"}, 60)
    await store.destroy("k", "2")
    assert await store.find_by_grant("g") == []
    assert [i for _, i, _ in await store.find_by_grant("other")] == ["1"]


async def test_forget_takes_a_record_out_of_its_grant_index(store: Store) -> None:
    await store.upsert("bcl_delivery", "d1", {"grant_id": "queue", "n": 1}, 60)
    await store.upsert("bcl_delivery", "d2", {"grant_id": "queue", "n": 2}, 60)
    await store.upsert("bcl_delivery", "d1", {"n": 1, "done": True}, 60)  # left the queue
    await store.forget("queue", "bcl_delivery", "d1")
    await store.forget("queue", "bcl_delivery", "never")  # absent is fine
    assert [i for _, i, _ in await store.find_by_grant("queue")] == ["d2"]
    # out of the index whatever it holds: no longer found, nor revoked, through it
    await store.forget("queue", "bcl_delivery", "d2")
    assert await store.find_by_grant("queue") == []
    assert await store.revoke_by_grant("queue") == 0
    assert await store.find("bcl_delivery", "d1") == {"n": 1, "done": True}, "records kept"
    assert await store.find("bcl_delivery", "d2") == {"grant_id": "queue", "n": 2}


async def test_revoke_unknown_grant_is_zero(store: Store) -> None:
    assert await store.revoke_by_grant("never-seen") == 0


async def test_revoke_counts_only_records_still_there(store: Store) -> None:
    await store.upsert("code", "c1", {"grant_id": "g1"}, 60)
    await store.upsert("code", "c2", {"grant_id": "g1"}, 60)
    await store.destroy("code", "c1")
    assert await store.revoke_by_grant("g1") == 1


async def test_revoke_spares_a_record_moved_to_another_grant(store: Store) -> None:
    await store.upsert("refresh", "r", {"grant_id": "g1"}, 60)
    await store.upsert("refresh", "r", {"grant_id": "g2"}, 60)
    await store.upsert("session", "s", {"grant_id": "g1"}, 60)
    await store.upsert("session", "s", {"sub": "no grant now"}, 60)

    assert await store.revoke_by_grant("g1") == 0
    assert await store.find("refresh", "r") == {"grant_id": "g2"}
    assert await store.find("session", "s") == {"sub": "no grant now"}
    assert await store.revoke_by_grant("g2") == 1


@pytest.mark.parametrize("ttl", [0, -1, 1.5, True, None, "60"])
async def test_bad_ttl_is_refused_and_writes_nothing(store: Store, ttl: Any) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await store.upsert("code", "abc", {"grant_id": "g"}, ttl)
    assert await store.find("code", "abc") is None
    assert await store.revoke_by_grant("g") == 0


@pytest.mark.parametrize("kind", ["", "a:b", "{x}"])
async def test_ambiguous_kind_is_refused(store: Store, kind: str) -> None:
    with pytest.raises(ValueError, match="kind"):
        await store.upsert(kind, "id", PAYLOAD, 60)
    with pytest.raises(ValueError, match="kind"):
        await store.find(kind, "id")


async def test_ids_may_hold_any_characters(store: Store) -> None:
    odd = ["a:b", "}{", "*", "中文", "x}y{z", "a b\n"]
    for n, id in enumerate(odd):
        await store.upsert("code", id, {"n": n, "grant_id": id}, 60)
    for n, id in enumerate(odd):
        assert await store.find("code", id) == {"n": n, "grant_id": id}
        assert await store.revoke_by_grant(id) == 1


async def test_nothing_survives_without_a_ttl(store: Store, expiries: Expiries) -> None:
    for n in range(5):
        await store.upsert("code", f"c{n}", {"grant_id": f"g{n % 2}"}, 30 + n)
        await store.upsert("refresh", f"r{n}", {"grant_id": f"g{n % 2}"}, 3600)
        await store.upsert("session", f"s{n}", {"sub": n}, 600)
        await store.incr("login_failures", f"f{n}", 900)
    await store.consume("code", "c0")
    await store.consume("code", "c1")
    await store.upsert("code", "c0", {"grant_id": "g9"}, 5)
    await store.destroy("session", "s0")
    await store.revoke_by_grant("g1")

    left = await expiries()
    assert left, "the store should hold something"
    # every key expires; a grant index may outlive its longest member by a few seconds
    assert all(0 < seconds <= 3605 for seconds in left), left


async def test_versioned_record_round_trips(store: Store) -> None:
    await store.upsert("grant", "g", PAYLOAD, 60, version="v1")
    assert await store.find_versioned("grant", "g") == (PAYLOAD, "v1", ())
    assert await store.find("grant", "g") == PAYLOAD
    await store.upsert("grant", "plain", PAYLOAD, 60)
    assert await store.find_versioned("grant", "plain") == (PAYLOAD, "", ())
    assert await store.find_versioned("grant", "nope") is None


async def test_advance_swaps_and_remembers(store: Store) -> None:
    await store.upsert("grant", "g", PAYLOAD, 60, version="v1")
    assert await store.advance("grant", "g", "v1", "v2") == Advanced(PAYLOAD, "advanced")
    assert await store.advance("grant", "g", "v1", "v3") == Advanced(PAYLOAD, "retired")
    assert await store.advance("grant", "g", "other", "v3") == Advanced(PAYLOAD, "unknown")
    assert await store.find_versioned("grant", "g") == (PAYLOAD, "v2", ("v1",))
    assert await store.advance("grant", "g", "v2", "v3") == Advanced(PAYLOAD, "advanced")
    assert await store.find_versioned("grant", "g") == (PAYLOAD, "v3", ("v2", "v1"))


async def test_advance_keeps_a_bounded_history(store: Store) -> None:
    await store.upsert("grant", "g", PAYLOAD, 60, version="v0")
    for n in range(VERSION_HISTORY + 5):
        advanced = await store.advance("grant", "g", f"v{n}", f"v{n + 1}")
        assert advanced == Advanced(PAYLOAD, "advanced")
    found = await store.find_versioned("grant", "g")
    assert found is not None
    last = VERSION_HISTORY + 5
    assert found.version == f"v{last}"
    assert found.previous == tuple(f"v{n}" for n in range(last - 1, 4, -1))
    assert len(found.previous) == VERSION_HISTORY
    assert await store.advance("grant", "g", "v5", "x") == Advanced(PAYLOAD, "retired")
    forgotten = await store.advance("grant", "g", "v4", "x")
    assert forgotten == Advanced(PAYLOAD, "unknown")


async def test_advance_is_single_winner_under_concurrency(store: Store) -> None:
    await store.upsert("grant", "race", PAYLOAD, 60, version="v1")
    results = await asyncio.gather(
        *(store.advance("grant", "race", "v1", f"next{n}") for n in range(50)))
    outcomes = [result[1] if result else None for result in results]
    assert outcomes.count("advanced") == 1
    assert outcomes.count("retired") == 49
    found = await store.find_versioned("grant", "race")
    assert found is not None
    assert found.version == f"next{outcomes.index('advanced')}"
    assert found.previous == ("v1",)


async def test_advance_of_missing_or_expired_is_none(store: Store, elapse: Elapse) -> None:
    assert await store.advance("grant", "nope", "v1", "v2") is None
    await store.upsert("grant", "short", PAYLOAD, 1, version="v1")
    await elapse(1.2)
    assert await store.advance("grant", "short", "v1", "v2") is None
    assert await store.find_versioned("grant", "short") is None


async def test_advance_keeps_payload_ttl_and_grant(store: Store, elapse: Elapse) -> None:
    await store.upsert("grant", "g", {"grant_id": "g1"}, 1, version="v1")
    advanced = await store.advance("grant", "g", "v1", "v2")
    assert advanced == Advanced({"grant_id": "g1"}, "advanced")
    assert [i for _, i, _ in await store.find_by_grant("g1")] == ["g"]
    await elapse(1.2)
    assert await store.find_versioned("grant", "g") is None, "advance must keep the TTL"


async def test_a_failed_advance_changes_nothing(store: Store) -> None:
    await store.upsert("grant", "g", PAYLOAD, 60, version="v1")
    await store.advance("grant", "g", "v1", "v2")
    await store.advance("grant", "g", "v1", "v3")
    await store.advance("grant", "g", "zzz", "v4")
    assert await store.find_versioned("grant", "g") == (PAYLOAD, "v2", ("v1",))


async def test_upsert_forgets_version_and_history(store: Store) -> None:
    await store.upsert("grant", "g", PAYLOAD, 60, version="v1")
    await store.advance("grant", "g", "v1", "v2")
    await store.upsert("grant", "g", {"fresh": True}, 60)
    assert await store.find_versioned("grant", "g") == ({"fresh": True}, "", ())
    assert await store.advance("grant", "g", "v2", "v3") == Advanced({"fresh": True}, "unknown")


# --- the reuse window of an advance ---------------------------------------------------------


async def test_within_the_window_the_replaced_version_gets_the_memo(store: Store,
                                                                    clock: FakeClock) -> None:
    await store.upsert("grant", "g", PAYLOAD, 60, version="v1")
    assert await store.advance("grant", "g", "v1", "v2", memo="m2", reuse_for=30) == Advanced(
        PAYLOAD, "advanced")
    clock.now += 29
    for _ in range(3):  # as often as it comes, and nothing changes
        assert await store.advance("grant", "g", "v1", "other", memo="x", reuse_for=30) == \
            Advanced(PAYLOAD, "repeated", "m2")
    assert await store.find_versioned("grant", "g") == (PAYLOAD, "v2", ("v1",))
    clock.now += 2  # past the window: a replay
    assert await store.advance("grant", "g", "v1", "other") == Advanced(PAYLOAD, "retired")
    assert await store.find_versioned("grant", "g") == (PAYLOAD, "v2", ("v1",))


async def test_the_same_advance_sent_twice_answers_alike(store: Store) -> None:
    await store.upsert("grant", "g", PAYLOAD, 60, version="v1")
    first = await store.advance("grant", "g", "v1", "v2", memo="sealed-v2", reuse_for=10)
    again = await store.advance("grant", "g", "v1", "v2", memo="sealed-v2", reuse_for=10)
    assert first == Advanced(PAYLOAD, "advanced")
    assert again == Advanced(PAYLOAD, "repeated", "sealed-v2")


async def test_only_the_version_just_replaced_is_repeated(store: Store) -> None:
    await store.upsert("grant", "g", PAYLOAD, 60, version="v1")
    await store.advance("grant", "g", "v1", "v2", memo="m2", reuse_for=30)
    await store.advance("grant", "g", "v2", "v3", memo="m3", reuse_for=30)
    assert await store.advance("grant", "g", "v1", "x") == Advanced(PAYLOAD, "retired")
    assert await store.advance("grant", "g", "v2", "x") == Advanced(PAYLOAD, "repeated", "m3")
    # an advance without a window ends the last one's
    await store.advance("grant", "g", "v3", "v4")
    assert await store.advance("grant", "g", "v3", "x") == Advanced(PAYLOAD, "retired")


async def test_concurrent_copies_one_advances_the_rest_repeat(store: Store) -> None:
    await store.upsert("grant", "race", PAYLOAD, 60, version="v1")
    results = await asyncio.gather(*(
        store.advance("grant", "race", "v1", f"next{n}", memo=f"m{n}", reuse_for=30)
        for n in range(40)))
    assert [r.outcome for r in results if r].count("advanced") == 1
    winner = next(n for n, r in enumerate(results) if r and r.outcome == "advanced")
    others = [r for r in results if r and r.outcome != "advanced"]
    assert others == [Advanced(PAYLOAD, "repeated", f"m{winner}")] * 39


async def test_upsert_forgets_the_reuse_window(store: Store) -> None:
    await store.upsert("grant", "g", PAYLOAD, 60, version="v1")
    await store.advance("grant", "g", "v1", "v2", memo="m2", reuse_for=30)
    await store.upsert("grant", "g", PAYLOAD, 60, version="v2")
    assert await store.advance("grant", "g", "v1", "x") == Advanced(PAYLOAD, "unknown")


@pytest.mark.parametrize(("memo", "reuse_for"), [
    ("m", -1), ("m", MAX_REUSE + 1), ("m", float("nan")), ("x" * 4097, 10), (None, 10)])
async def test_bad_reuse_is_refused_and_changes_nothing(store: Store, memo: Any,
                                                        reuse_for: Any) -> None:
    await store.upsert("grant", "g", PAYLOAD, 60, version="v1")
    with pytest.raises(ValueError, match=r"memo|reuse_for"):
        await store.advance("grant", "g", "v1", "v2", memo=memo, reuse_for=reuse_for)
    assert await store.find_versioned("grant", "g") == (PAYLOAD, "v1", ())


@pytest.mark.parametrize("version", ["", "a\nb"])
async def test_bad_versions_are_refused(store: Store, version: str) -> None:
    await store.upsert("grant", "g", PAYLOAD, 60, version="v1")
    with pytest.raises(ValueError, match="version"):
        await store.advance("grant", "g", "v1", version)
    with pytest.raises(ValueError, match="version"):
        await store.advance("grant", "g", version, "v2")
    assert await store.find_versioned("grant", "g") == (PAYLOAD, "v1", ())
    if version:
        with pytest.raises(ValueError, match="version"):
            await store.upsert("grant", "new", PAYLOAD, 60, version=version)
        assert await store.find("grant", "new") is None


# replace: a write that never brings back a removed record ---------------------------------


async def test_replace_writes_only_over_a_live_record(store: Store, elapse: Elapse) -> None:
    assert await store.replace("grant", "never", PAYLOAD, 60) is False
    assert await store.find("grant", "never") is None
    await store.upsert("grant", "g", {"grant_id": "g1", "pending": True}, 1)
    await store.consume("grant", "g")
    assert await store.replace("grant", "g", {"grant_id": "g1"}, 60, version="v1") is True
    assert await store.find_versioned("grant", "g") == ({"grant_id": "g1"}, "v1", ())
    assert await store.consume("grant", "g") == ({"grant_id": "g1"}, True), "a fresh record"
    await elapse(1.2)
    assert await store.find("grant", "g") == {"grant_id": "g1"}, "the new TTL holds"
    await store.upsert("grant", "short", PAYLOAD, 1)
    await elapse(1.2)
    assert await store.replace("grant", "short", PAYLOAD, 60) is False
    assert await store.find("grant", "short") is None


async def test_replace_cannot_bring_back_a_destroyed_or_revoked_record(store: Store) -> None:
    await store.upsert("grant", "d", {"grant_id": "gd"}, 60)
    await store.destroy("grant", "d")
    assert await store.replace("grant", "d", {"grant_id": "gd"}, 60) is False
    await store.upsert("grant", "r", {"grant_id": "gr"}, 60)
    assert await store.revoke_by_grant("gr") == 1
    assert await store.replace("grant", "r", {"grant_id": "gr"}, 60, version="v") is False
    assert await store.find("grant", "r") is None
    assert await store.find_by_grant("gr") == []


async def test_replace_joins_the_grant_of_its_payload(store: Store) -> None:
    await store.upsert("grant", "g", {"grant_id": "g1"}, 60)
    assert await store.replace("grant", "g", {"grant_id": "g1", "n": 2}, 3600)
    assert [i for _, i, _ in await store.find_by_grant("g1")] == ["g"]
    assert await store.revoke_by_grant("g1") == 1
    assert await store.find("grant", "g") is None


async def test_replace_racing_a_revocation_never_survives_it(store: Store) -> None:
    """Whichever runs first, once both are done the record is gone (a code's grant
    written by the winner of a redemption while a replay revokes it)."""
    for n in range(40):
        grant = f"g{n}"
        await store.upsert("grant", grant, {"grant_id": grant, "pending": True}, 60)
        write = store.replace("grant", grant, {"grant_id": grant}, 3600, version="v")
        revoke = store.revoke_by_grant(grant)
        pair = (write, revoke) if n % 2 else (revoke, write)
        await asyncio.gather(*pair)
        assert await store.find("grant", grant) is None, n
        assert await store.advance("grant", grant, "v", "w") is None


@pytest.mark.parametrize("ttl", [0, -1, 1.5, True, None, "60"])
async def test_replace_refuses_a_bad_ttl_and_changes_nothing(store: Store, ttl: Any) -> None:
    await store.upsert("grant", "g", PAYLOAD, 60, version="v1")
    with pytest.raises(ValueError, match="ttl"):
        await store.replace("grant", "g", {"other": True}, ttl)
    with pytest.raises(TypeError):
        await store.replace("grant", "g", {"bad": object()}, 60)
    with pytest.raises(ValueError, match="version"):
        await store.replace("grant", "g", {"other": True}, 60, version="a\nb")
    assert await store.find_versioned("grant", "g") == (PAYLOAD, "v1", ())


async def test_incr_counts_from_one_in_a_window(store: Store) -> None:
    assert await store.incr("login_failures", "a", 60) == (1, 60)
    assert await store.incr("login_failures", "a", 60) == (2, 60)
    assert await store.incr("login_failures", "a", 60, by=3) == (5, 60)
    assert await store.incr("login_failures", "b", 60) == (1, 60), "ids count apart"
    assert await store.incr("login_source", "a", 60) == (1, 60), "kinds count apart"


async def test_incr_window_is_fixed_by_the_first_increment(store: Store,
                                                          elapse: Elapse) -> None:
    await store.incr("login_failures", "a", 1)
    await elapse(0.6)
    counted = await store.incr("login_failures", "a", 30)  # a later ttl changes nothing
    assert counted.value == 2
    assert counted.expires_in == 1
    await elapse(0.6)
    assert await store.incr("login_failures", "a", 1) == (1, 1), "a new window"


async def test_incr_by_zero_reads_and_negative_gives_back(store: Store) -> None:
    assert await store.incr("login_failures", "a", 60, by=0) == (0, 0)
    assert await store.incr("login_failures", "a", 60, by=-1) == (0, 0)
    assert await store.incr("login_failures", "a", 60, by=0) == (0, 0), "nothing created"
    await store.incr("login_failures", "a", 60, by=2)
    assert await store.incr("login_failures", "a", 60, by=-1) == (1, 60)
    assert await store.incr("login_failures", "a", 60, by=0) == (1, 60)


async def test_a_counter_is_no_record_and_destroy_or_upsert_ends_it(store: Store) -> None:
    await store.incr("login_failures", "a", 60)
    assert await store.find("login_failures", "a") is None
    assert await store.consume("login_failures", "a") is None
    await store.destroy("login_failures", "a")
    assert await store.incr("login_failures", "a", 60) == (1, 60)
    await store.upsert("login_failures", "a", {"replaced": True}, 60)
    assert await store.find("login_failures", "a") == {"replaced": True}
    await store.destroy("login_failures", "a")
    assert await store.incr("login_failures", "a", 60, by=0) == (0, 0)


async def test_incr_is_exact_under_concurrency(store: Store) -> None:
    results = await asyncio.gather(*(store.incr("login_failures", "race", 60)
                                     for _ in range(50)))
    assert sorted(value for value, _ in results) == list(range(1, 51))
    assert await store.incr("login_failures", "race", 60, by=0) == (50, 60)


async def test_incr_is_exact_across_processes(peers: list[Store]) -> None:
    """50 increments spread over separate clients (separate connections and pipelines)."""
    results = await asyncio.gather(*(peers[n % len(peers)].incr("login_failures", "race", 60)
                                     for n in range(50)))
    assert sorted(value for value, _ in results) == list(range(1, 51))
    gave_back = await asyncio.gather(*(peer.incr("login_failures", "race", 60, by=-1)
                                       for peer in peers))
    assert sorted(value for value, _ in gave_back) == list(range(45, 50))


@pytest.mark.parametrize(("ttl", "by"), [(0, 1), (-1, 1), (1.5, 1), (True, 1), (60, True),
                                         (60, 1.5), (60, "1")])
async def test_bad_incr_is_refused_and_counts_nothing(store: Store, ttl: Any, by: Any) -> None:
    with pytest.raises(ValueError, match=r"ttl|by"):
        await store.incr("login_failures", "a", ttl, by=by)
    assert await store.incr("login_failures", "a", 60, by=0) == (0, 0)
