"""gateway/memo.py: bounded memos."""

from __future__ import annotations

from gateway.memo import remember


def test_the_oldest_go_first_and_the_limit_holds() -> None:
    memo: dict[str, int] = {}
    for n in range(5):
        assert remember(memo, f"k{n}", n, limit=3) == n
    assert memo == {"k2": 2, "k3": 3, "k4": 4}


def test_a_memo_already_over_a_lowered_limit_shrinks_to_it() -> None:
    memo = {f"k{n}": n for n in range(6)}
    remember(memo, "new", 9, limit=2)
    assert list(memo) == ["k5", "new"]
