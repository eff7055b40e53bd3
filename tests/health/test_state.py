"""One instance's health: the pure changes, and what a stored record reads back as."""

from __future__ import annotations

from gateway.health.state import KEPT_TRANSITIONS, InstanceState, Transition, instance_id

URL = "http://127.0.0.1:9001"


def test_an_instance_never_recorded_is_up_and_in_rotation() -> None:
    state = InstanceState.of("sys", URL, None)
    assert (state.state, state.drained, state.availability, state.circuit) == (
        "up", False, "up", "closed")


def test_moves_are_remembered_newest_first() -> None:
    state = InstanceState("sys", URL)
    down = state.moved("down", "3 health checks failed", now=10, cause="active", by="n1")
    half = down.moved("half_open", "cooldown over", now=40, cause="passive", by="n2")
    up = half.moved("up", "trial request succeeded", now=41, by="n2")
    assert (down.availability, half.availability, up.availability) == ("down", "trial", "up")
    assert (down.circuit, half.circuit, up.circuit) == ("open", "half-open", "closed")
    assert [(t.previous, t.state) for t in up.transitions] == [
        ("half_open", "up"), ("down", "half_open"), ("up", "down")]
    assert (up.cause, up.reason, up.since) == ("", "", 41)  # up carries no reason
    assert (down.cause, down.reason) == ("active", "3 health checks failed")


def test_draining_is_apart_from_health() -> None:
    down = InstanceState("sys", URL).moved("down", "x", now=1, cause="active")
    drained = down.drain(True, "maintenance", now=2, by="cli:ops")
    assert (drained.state, drained.availability, drained.drained_by) == (
        "down", "drained", "cli:ops")
    back = drained.drain(False, "done", now=3, by="cli:ops")
    assert (back.state, back.availability, back.drained_by) == ("down", "down", "")
    assert [(t.previous, t.state, t.by) for t in back.transitions[:2]] == [
        ("drained", "down", "cli:ops"), ("down", "drained", "cli:ops")]


def test_only_the_latest_transitions_are_kept() -> None:
    state = InstanceState("sys", URL)
    for n in range(KEPT_TRANSITIONS + 5):
        state = state.moved("down" if n % 2 == 0 else "up", f"#{n}", now=n, cause="active")
    assert len(state.transitions) == KEPT_TRANSITIONS
    assert state.transitions[0].reason == f"#{KEPT_TRANSITIONS + 4}"


def test_a_record_round_trips_through_its_payload() -> None:
    state = (InstanceState("sys", URL).moved("down", "2 failed requests", now=5,
                                             cause="passive", until=35, by="n1")
             .drain(True, "x", now=6, by="op"))
    again = InstanceState.of("sys", URL, state.payload(now=7))
    assert again == InstanceState(**{**state.__dict__, "written": 7})


def test_values_this_version_does_not_know_read_as_up() -> None:
    raw = {"state": "sideways", "cause": "gremlins", "drained": "yes",
           "transitions": [{"at": 1, "from": "up", "to": "down", "reason": "r"}, "junk"]}
    state = InstanceState.of("sys", URL, raw)
    assert (state.state, state.cause, state.drained) == ("up", "", False)
    assert state.transitions == (Transition(1.0, "up", "down", "r"),)


def test_instance_ids_keep_urls_out_of_store_keys() -> None:
    id = instance_id("sys", "http://127.0.0.1:9001/{odd}")
    assert id.startswith("sys:")
    assert "{" not in id
    assert "}" not in id
    assert "/" not in id
    assert id != instance_id("sys", URL)
