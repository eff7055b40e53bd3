"""An event's one form: the same fields back from JSON, masked on the way in."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.audit.event import Event, format_time, new_event, parse_time


def test_an_event_round_trips_through_its_json() -> None:
    event = new_event("login", "success", at=1767225600.123456, subject="c-0001",
                      client="changsha-gov", source="192.0.2.1", request_id="00ff",
                      node="host:1", details={"acr": "L2", "fallback": False, "n": 3})
    data = event.to_json()
    assert data["time"] == "2026-01-01T00:00:00.123456Z"
    assert Event.from_json(data) == event


def test_subject_and_details_are_masked_and_outcomes_checked() -> None:
    event = new_event("login", "nonsense", at=0.0, subject="13800000001",
                      details={"password": "x"})
    assert event.subject == "138****0001"
    assert event.outcome == "error"  # not an outcome: never passes for a success
    assert event.details == {"password": "[redacted]"}


@pytest.mark.parametrize("broken", [
    {"time": "2026-01-01T00:00:00Z"},  # fields missing
    {"id": 1, "time": "2026-01-01T00:00:00Z", "action": "a", "outcome": "success",
     "subject": None, "client": None, "system": None, "source": None, "request_id": None,
     "node": None, "details": {}},
    {"id": "x", "time": "2026-01-01T00:00:00Z", "action": "a", "outcome": "success",
     "subject": None, "client": None, "system": None, "source": None, "request_id": None,
     "node": None, "details": []},
])
def test_a_malformed_event_is_refused(broken: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - which field it names varies
        Event.from_json(broken)


def test_times_are_utc_to_the_microsecond() -> None:
    moment = datetime(2026, 5, 12, 9, 30, 1, 417000, tzinfo=UTC)
    assert format_time(moment) == "2026-05-12T09:30:01.417000Z"
    assert parse_time("2026-05-12T17:30:01.417+08:00") == moment
    with pytest.raises(ValueError, match="offset"):
        parse_time("2026-05-12T09:30:01")


@pytest.mark.parametrize("moment", [
    datetime(2026, 5, 12, 9, 30, 1, 0, tzinfo=UTC),
    datetime(2026, 5, 12, 9, 30, 1, 999999, tzinfo=UTC),
    datetime(2026, 5, 12, 9, 30, 2, 1, tzinfo=UTC),  # the next second: its own prefix
    datetime(2026, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
    datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),  # a tampered row's year: four digits
    datetime(2026, 5, 12, 17, 30, 1, 417000).astimezone(UTC),
])
def test_the_time_is_spelled_as_isoformat_spells_it(moment: datetime) -> None:
    """The hash chain hashes this text: the per-second shortcut must not change it, even
    for the instant right after another second's."""
    expected = moment.isoformat(timespec="microseconds")[:-6] + "Z"
    format_time(moment.replace(second=(moment.second + 1) % 60))  # another second before
    assert format_time(moment) == expected
    assert format_time(moment) == expected  # and the same second again


def test_a_time_with_an_offset_is_spelled_in_utc() -> None:
    from datetime import timedelta, timezone
    beijing = datetime(2026, 5, 12, 17, 30, 1, 417000, tzinfo=timezone(timedelta(hours=8)))
    assert format_time(beijing) == "2026-05-12T09:30:01.417000Z"
