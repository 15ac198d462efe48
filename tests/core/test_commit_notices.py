"""The commit notices' wire form: every payload within PostgreSQL's limit, everything named comes
back in order across the payloads of one commit, an item too big for any payload is left out and
flagged (the receiver resyncs), and what is not a notice is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.alarms.device_events import DeviceEventKey
from twin.store.feed import CommitNotice, decode_notice, encode_notices

names = st.text(min_size=1, max_size=40)
notices = st.builds(
    CommitNotice,
    origin=names,
    transitions=st.lists(st.tuples(names, st.integers(1, 2**31 - 1)), max_size=300).map(tuple),
    device_events=st.lists(
        st.builds(DeviceEventKey, names, names, names, st.sampled_from(["raised", "cleared"]), names), max_size=50
    ).map(tuple),
    commands=st.lists(st.tuples(names, names), max_size=50).map(tuple),
    responses=st.lists(names, max_size=50).map(tuple),
    training_events=st.lists(st.tuples(names, names), max_size=20).map(tuple),
    snapshots=st.lists(st.tuples(names, names), max_size=100).map(tuple),
    escalations=st.lists(names, max_size=30).map(tuple),
)
FIELDS = ("transitions", "device_events", "commands", "responses", "training_events", "snapshots", "escalations")


@given(notices, st.sampled_from([300, 1000, 7900]))
def test_a_notice_splits_within_the_limit_and_comes_back_whole(notice: CommitNotice, limit: int) -> None:
    payloads = encode_notices(notice, limit_bytes=limit)
    assert all(len(p.encode()) <= limit for p in payloads)
    back = [decode_notice(p) for p in payloads]
    assert {b.origin for b in back} <= {notice.origin}
    for name in FIELDS:
        assert sum((getattr(b, name) for b in back), ()) == getattr(notice, name)
    assert (payloads == []) == notice.empty
    assert not any(b.overflow for b in back)


def test_an_item_too_big_for_any_notice_is_left_out_and_flagged() -> None:
    notice = CommitNotice("a", transitions=(("k", 1),), responses=("r" * 9000, "small"))
    back = [decode_notice(p) for p in encode_notices(notice)]
    assert sum((b.responses for b in back), ()) == ("small",)
    assert sum((b.transitions for b in back), ()) == (("k", 1),)
    assert back[-1].overflow


@pytest.mark.parametrize("payload", ["", "[]", '{"x": 1}', '{"o": 3}', '{"o": "a", "transitions": [[1]]}'])
def test_what_is_not_a_notice_is_refused(payload: str) -> None:
    with pytest.raises(ValueError, match="not a commit notice"):
        decode_notice(payload)
