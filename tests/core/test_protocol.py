"""The WebSocket protocol session, driven with no event loop: messages in, actions out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sheetstream.core.codec import changeset_to_json
from sheetstream.core.messages import CLOSE_PROTOCOL_ERROR, encode_change_frame
from sheetstream.core.model import AddTab, ChangeSet, SetCell, Snapshot, Tab, VersionedSnapshot
from sheetstream.core.protocol import (
    TRANSITIONS,
    Action,
    Close,
    Load,
    Route,
    Send,
    Session,
    Unroute,
)
from sheetstream.errors import SourceNotFound
from sheetstream.stores.base import ChangesSince

AT = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
SNAP = Snapshot((Tab(1, "People", (("name", "age"), ("ada", 36))), Tab(2, "Other", (("x",),))))


def cs(version: int, *, epoch: str = "E", source: str = "S", tab: int = 1) -> ChangeSet:
    """A change set setting cell B2 of `tab` to `version`."""
    return ChangeSet(source, epoch, version, AT, (SetCell(tab, 1, 1, "B2", version - 1, version),))


def vs(version: int, *, epoch: str = "E", source: str = "S") -> VersionedSnapshot:
    return VersionedSnapshot(source, epoch, version, SNAP)


def page(changes: list[ChangeSet], *, epoch: str = "E", head: int | None = None) -> ChangesSince:
    last = changes[-1].version if changes else 0
    return ChangesSince(epoch, head if head is not None else last, True, changes)


def sent(actions: list[Action]) -> list[dict[str, Any]]:
    """The messages among `actions`, decoded."""
    return [orjson.loads(a.data) for a in actions if isinstance(a, Send)]


def versions(actions: list[Action]) -> list[int]:
    """The versions of the `change` messages among `actions`, in order."""
    return [m["version"] for m in sent(actions) if m["type"] == "change"]


def loads(actions: list[Action]) -> list[Load]:
    return [a for a in actions if isinstance(a, Load)]


def subscribe(session: Session, **fields: Any) -> Load:
    """Send a subscribe; return the Load it asks for."""
    actions = session.receive(
        orjson.dumps({"type": "subscribe", "id": "1", "source": "S", **fields}).decode()
    )
    assert isinstance(actions[0], Route)
    (load,) = loads(actions)
    return load


def live_session(version: int = 10, **fields: Any) -> Session:
    """A session subscribed to S and live at `version`."""
    session = Session()
    session.loaded(subscribe(session, **fields), vs(version))
    return session


# --- client messages -----------------------------------------------------------------------------------------


def test_subscribe_routes_before_reading_the_store() -> None:
    session = Session()
    actions = session.receive('{"type":"subscribe","id":"1","source":"S"}')
    assert actions == [Route("S"), Load("S", None, 1000, actions[1].token)]  # type: ignore[union-attr]
    assert session.subscription("S") is not None
    assert session.subscription("S").state == "loading"  # type: ignore[union-attr]


def test_subscribe_without_since_sends_subscribed_then_snapshot_then_live_changes() -> None:
    session = Session()
    load = subscribe(session)
    actions = session.loaded(load, vs(12))
    assert sent(actions) == [
        {"type": "subscribed", "id": "1", "source": "S", "epoch": "E", "version": 12, "recovered": False},
        {
            "type": "snapshot",
            "source": "S",
            "epoch": "E",
            "version": 12,
            "tabs": [
                {"id": 1, "title": "People", "rows": [["name", "age"], ["ada", 36]]},
                {"id": 2, "title": "Other", "rows": [["x"]]},
            ],
        },
    ]
    frame = encode_change_frame(cs(13))
    assert session.live(cs(13), frame) == [Send(frame)]
    assert session.live(cs(13), frame) == []  # duplicate dropped
    assert versions(session.live(cs(14))) == [14]


def test_advance_takes_only_the_next_change_of_a_live_subscription_to_all_tabs() -> None:
    session = live_session(10)
    assert session.advance(cs(12)) is False  # a gap: nothing changed, `live` reads the store
    assert session.advance(cs(11)) is True
    assert session.advance(cs(11)) is False  # already sent
    assert session.advance(cs(12, epoch="other")) is False
    assert session.advance(cs(12, source="elsewhere")) is False
    assert versions(session.live(cs(12))) == [12]  # `live` agrees on where the subscription is
    filtered = live_session(10, tabs=[1])
    assert filtered.advance(cs(11)) is False  # a tab filter may need its own frame: `live` decides
    loading = Session()
    subscribe(loading)
    assert loading.advance(cs(1)) is False


def test_caught_up_records_changes_sent_on_the_sessions_behalf() -> None:
    session = live_session(10)
    session.caught_up("S", 15)  # the hub sent 11..15 to its live group
    assert session.advance(cs(15)) is False  # already sent
    assert session.advance(cs(16)) is True
    session.caught_up("elsewhere", 3)  # not subscribed: nothing to record
    assert session.sources == frozenset({"S"})


def test_change_frame_is_the_codec_change_set_plus_type() -> None:
    message = orjson.loads(encode_change_frame(cs(3)))
    assert message.pop("type") == "change"
    assert message == changeset_to_json(cs(3))
    assert message["at"] == "2026-01-02T03:04:05.678Z"


def test_subscribe_with_since_in_the_log_replays_the_missed_changes() -> None:
    session = Session()
    load = subscribe(session, since={"epoch": "E", "version": 12})
    assert (load.since, load.limit) == (("E", 12), 1000)
    actions = session.loaded(load, page([cs(13), cs(14)]))
    messages = sent(actions)
    assert messages[0] == {
        "type": "subscribed",
        "id": "1",
        "source": "S",
        "epoch": "E",
        "version": 12,
        "recovered": True,
    }
    assert versions(actions) == [13, 14]
    assert loads(actions) == []
    assert versions(session.live(cs(15))) == [15]


def test_since_equal_to_head_replays_nothing() -> None:
    session = Session()
    load = subscribe(session, since={"epoch": "E", "version": 12})
    actions = session.loaded(load, ChangesSince("E", 12, True, []))
    assert [m["type"] for m in sent(actions)] == ["subscribed"]
    assert session.subscription("S").state == "live"  # type: ignore[union-attr]
    assert versions(session.live(cs(13))) == [13]


def test_since_not_recovered_falls_back_to_a_snapshot() -> None:
    session = Session()
    load = subscribe(session, since={"epoch": "OLD", "version": 3})
    (snapshot_load,) = loads(session.loaded(load, ChangesSince("E", 20, False, [])))
    assert snapshot_load.since is None
    actions = session.loaded(snapshot_load, vs(20))
    messages = sent(actions)
    assert [m["type"] for m in messages] == ["subscribed", "snapshot"]
    assert (messages[0]["recovered"], messages[0]["version"], messages[1]["version"]) == (False, 20, 20)


def test_long_history_is_replayed_in_pages() -> None:
    session = Session(page_size=2)
    load = subscribe(session, since={"epoch": "E", "version": 0})
    assert load.limit == 2
    first = session.loaded(load, page([cs(1), cs(2)], head=5))
    (second_load,) = loads(first)
    assert second_load.since == ("E", 2)
    second = session.loaded(second_load, page([cs(3), cs(4)], head=5))
    (third_load,) = loads(second)
    third = session.loaded(third_load, page([cs(5)], head=5))
    assert versions(first + second + third) == [1, 2, 3, 4, 5]
    assert loads(third) == []
    assert session.subscription("S").state == "live"  # type: ignore[union-attr]


def test_a_full_page_is_followed_by_another_read_even_without_a_head() -> None:
    session = Session(page_size=2)
    load = subscribe(session, since={"epoch": "E", "version": 0})
    (next_load,) = loads(session.loaded(load, page([cs(1), cs(2)])))
    actions = session.loaded(next_load, page([]))
    assert loads(actions) == [] and sent(actions) == []
    assert session.subscription("S").state == "live"  # type: ignore[union-attr]


def test_a_hole_in_the_stores_log_falls_back_to_a_snapshot() -> None:
    session = Session()
    load = subscribe(session, since={"epoch": "E", "version": 0})
    actions = session.loaded(load, page([cs(1), cs(3)]))
    assert versions(actions) == [1]
    (snapshot_load,) = loads(actions)
    assert snapshot_load.since is None
    assert [m["type"] for m in sent(session.loaded(snapshot_load, vs(3)))] == ["snapshot"]


def test_unsubscribe() -> None:
    session = live_session()
    actions = session.receive('{"type":"unsubscribe","id":"2","source":"S"}')
    assert actions[0] == Unroute("S")
    assert sent(actions) == [{"type": "unsubscribed", "id": "2", "source": "S"}]
    assert session.sources == frozenset()
    assert session.live(cs(11)) == []


def test_ping_pong_with_integer_id() -> None:
    assert sent(Session().receive('{"type":"ping","id":7}')) == [{"type": "pong", "id": 7}]


def test_unknown_fields_are_ignored() -> None:
    assert sent(Session().receive('{"type":"ping","id":"p","extra":{"a":1}}')) == [
        {"type": "pong", "id": "p"}
    ]


# --- errors --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", "bad_json"),
        ("", "bad_json"),
        ("[1,2]", "unknown_type"),
        ('"subscribe"', "unknown_type"),
        ('{"id":"1"}', "unknown_type"),
        ('{"type":"dance","id":"1"}', "unknown_type"),
        ('{"type":5}', "unknown_type"),
    ],
)
def test_malformed_messages(text: str, code: str) -> None:
    (message,) = sent(Session().receive(text))
    assert message["type"] == "error"
    assert message["code"] == code
    assert message["message"]


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "ping"}, "id"),
        ({"type": "ping", "id": True}, "id"),
        ({"type": "ping", "id": "x" * 300}, "id"),
        ({"type": "subscribe", "id": "1"}, "source"),
        ({"type": "subscribe", "id": "1", "source": ""}, "source"),
        ({"type": "subscribe", "id": "1", "source": 5}, "source"),
        ({"type": "subscribe", "id": "1", "source": "S", "since": 12}, "since"),
        ({"type": "subscribe", "id": "1", "source": "S", "since": {"version": 1}}, "since.epoch"),
        ({"type": "subscribe", "id": "1", "source": "S", "since": {"epoch": "E"}}, "since.version"),
        (
            {"type": "subscribe", "id": "1", "source": "S", "since": {"epoch": "E", "version": -1}},
            "since.version",
        ),
        (
            {"type": "subscribe", "id": "1", "source": "S", "since": {"epoch": "E", "version": "3"}},
            "since.version",
        ),
        (
            {"type": "subscribe", "id": "1", "source": "S", "since": {"epoch": "E", "version": True}},
            "since.version",
        ),
        ({"type": "subscribe", "id": "1", "source": "S", "tabs": [1, "2"]}, "tabs"),
        ({"type": "subscribe", "id": "1", "source": "S", "tabs": 1}, "tabs"),
        ({"type": "unsubscribe", "id": "1"}, "source"),
    ],
)
def test_invalid_fields_are_named(message: dict[str, Any], field: str) -> None:
    session = Session()
    actions = session.receive(orjson.dumps(message).decode())
    (error,) = sent(actions)
    assert (error["code"], error["field"]) == ("invalid_message", field)
    assert repr(field) in error["message"]
    assert error.get("id") == (message.get("id") if field != "id" else None)
    assert session.sources == frozenset()


def test_binary_frames_are_refused_as_bad_json() -> None:
    (error,) = sent(Session().receive_binary())
    assert error["code"] == "bad_json"


def test_unknown_source() -> None:
    session = Session()
    load = subscribe(session)
    actions = session.loaded(load, SourceNotFound("S"))
    assert actions[0] == Unroute("S")
    (error,) = sent(actions)
    assert (error["code"], error["id"], error["source"]) == ("unknown_source", "1", "S")
    assert session.sources == frozenset()


def test_a_failing_store_read_ends_the_subscription_with_unavailable() -> None:
    session = live_session(10)
    (gap_load,) = loads(session.live(cs(12)))
    actions = session.loaded(gap_load, OSError("disk on fire"))
    (error,) = sent(actions)
    assert (error["code"], error["source"]) == ("unavailable", "S")
    assert "id" not in error  # the subscribe was answered long ago
    assert Unroute("S") in actions and session.sources == frozenset()


def test_not_subscribed() -> None:
    (error,) = sent(Session().receive('{"type":"unsubscribe","id":"9","source":"S"}'))
    assert (error["code"], error["id"], error["source"]) == ("not_subscribed", "9", "S")


def test_already_subscribed_while_loading_and_while_live() -> None:
    session = Session()
    subscribe(session)
    (error,) = sent(session.receive('{"type":"subscribe","id":"2","source":"S"}'))
    assert error["code"] == "already_subscribed"
    assert error["id"] == "2"


def test_too_many_subscriptions() -> None:
    session = Session(max_subscriptions=2)
    for source in ("A", "B"):
        assert loads(
            session.receive(orjson.dumps({"type": "subscribe", "id": source, "source": source}).decode())
        )
    (error,) = sent(session.receive('{"type":"subscribe","id":"c","source":"C"}'))
    assert error["code"] == "too_many_subscriptions"
    assert session.sources == {"A", "B"}


def test_twenty_consecutive_errors_close_with_4000() -> None:
    session = Session()
    for _ in range(19):
        actions = session.receive("nope")
        assert not any(isinstance(a, Close) for a in actions)
    actions = session.receive("nope")
    assert actions[-1] == Close(CLOSE_PROTOCOL_ERROR, "20 consecutive protocol errors")
    assert session.closed
    assert session.receive('{"type":"ping","id":"1"}') == []
    assert session.receive_binary() == []


def test_a_good_message_resets_the_error_count() -> None:
    session = Session(max_errors=3)
    session.receive("nope")
    session.receive("nope")
    assert sent(session.receive('{"type":"ping","id":"1"}'))[0]["type"] == "pong"
    session.receive("nope")
    assert not any(isinstance(a, Close) for a in session.receive("nope"))
    assert isinstance(session.receive("nope")[-1], Close)


# --- the race while subscribing ------------------------------------------------------------------------------


def test_changes_arriving_while_loading_are_buffered_then_flushed_after_the_snapshot() -> None:
    session = Session()
    load = subscribe(session)
    # Published while the store is read: some before the read's version, some after, out of order.
    for version in (11, 13, 12, 10):
        assert session.live(cs(version)) == []
    actions = session.loaded(load, vs(11))
    assert [m["type"] for m in sent(actions)] == ["subscribed", "snapshot", "change", "change"]
    assert versions(actions) == [12, 13]
    assert versions(session.live(cs(13)) + session.live(cs(14))) == [14]


def test_changes_arriving_while_replaying_are_flushed_after_the_last_page() -> None:
    session = Session(page_size=2)
    load = subscribe(session, since={"epoch": "E", "version": 0})
    session.live(cs(3))
    (next_load,) = loads(session.loaded(load, page([cs(1), cs(2)], head=3)))
    session.live(cs(4))
    actions = session.loaded(next_load, page([cs(3)]))
    assert versions(actions) == [3, 4]


def test_a_buffered_change_beyond_a_gap_starts_a_gap_read_after_the_snapshot() -> None:
    session = Session()
    load = subscribe(session)
    session.live(cs(13))  # 12 was committed after the read but its bus message is lost
    actions = session.loaded(load, vs(11))
    assert versions(actions) == []
    (gap_load,) = loads(actions)
    assert gap_load.since == ("E", 11)
    actions = session.loaded(gap_load, page([cs(12), cs(13)]))
    assert versions(actions) == [12, 13]


def test_buffered_changes_after_a_gap_wait_for_the_gap_read() -> None:
    session = Session()
    load = subscribe(session)
    session.live(cs(14))
    session.live(cs(13))
    (gap_load,) = loads(session.loaded(load, vs(11)))
    assert versions(session.loaded(gap_load, page([cs(12), cs(13)]))) == [12, 13, 14]


def test_changes_a_page_repeats_are_skipped() -> None:
    session = live_session(10)
    (gap_load,) = loads(session.live(cs(12)))
    session.live(cs(11))  # arrives while the gap is read: sent from the page, not twice
    assert versions(session.loaded(gap_load, page([cs(10), cs(11), cs(12)]))) == [11, 12]


def test_stale_answers_are_ignored() -> None:
    session = Session()
    first = subscribe(session)
    session.receive('{"type":"unsubscribe","id":"2","source":"S"}')
    second = subscribe(session)
    assert session.loaded(first, vs(5)) == []  # the answer to the old subscription
    assert versions(session.loaded(second, vs(7))) == []
    assert session.subscription("S").last == 7  # type: ignore[union-attr]
    assert session.loaded(second, vs(9)) == []  # answered already


def test_a_long_load_keeps_a_bounded_buffer_and_rereads_the_store() -> None:
    session = Session(max_buffer=3)
    load = subscribe(session)
    for version in range(11, 20):
        session.live(cs(version))
    assert len(session.subscription("S").buffer) <= 3  # type: ignore[union-attr]
    actions = session.loaded(load, vs(10))
    (reread,) = loads(actions)
    assert reread.since == ("E", 10)
    assert versions(session.loaded(reread, page([cs(v) for v in range(11, 20)]))) == list(range(11, 20))


# --- live ----------------------------------------------------------------------------------------------------


def test_a_gap_while_live_reads_the_store_instead_of_sending_out_of_order() -> None:
    session = live_session(10)
    actions = session.live(cs(12))
    assert versions(actions) == []
    (gap_load,) = loads(actions)
    assert gap_load.since == ("E", 10)
    assert session.live(cs(13)) == []  # buffered while the gap is read
    actions = session.loaded(gap_load, page([cs(11), cs(12)]))
    assert versions(actions) == [11, 12, 13]


def test_a_late_out_of_order_change_is_sent_when_the_gap_closes_without_another_read() -> None:
    session = live_session(10)
    (gap_load,) = loads(session.live(cs(12)))
    # The store read raced the commit of 11 on a lagging replica: it has nothing after 10 yet.
    actions = session.loaded(gap_load, page([]))
    assert versions(actions) == [] and loads(actions) == []
    assert versions(session.live(cs(11))) == [11, 12]  # 11 arrives at last: 12 follows from the buffer


def test_old_changes_are_dropped() -> None:
    session = live_session(10)
    assert session.live(cs(9)) == []
    assert session.live(cs(10)) == []
    assert versions(session.live(cs(11))) == [11]


def test_changes_of_other_sources_are_ignored() -> None:
    session = live_session(10)
    assert session.live(cs(11, source="T")) == []


def test_an_epoch_change_sends_a_fresh_snapshot() -> None:
    session = live_session(10)
    actions = session.live(cs(1, epoch="F"))
    (snapshot_load,) = loads(actions)
    assert snapshot_load.since is None
    actions = session.loaded(snapshot_load, vs(1, epoch="F"))
    assert [(m["type"], m["epoch"], m["version"]) for m in sent(actions)] == [("snapshot", "F", 1)]
    assert session.live(cs(11, epoch="E")) == []  # a late change of the old epoch
    assert versions(session.live(cs(2, epoch="F"))) == [2]


def test_a_stale_epoch_seen_before_the_read_is_retired_without_a_read_loop() -> None:
    session = live_session(10)
    (snapshot_load,) = loads(session.live(cs(3, epoch="OLD")))  # unknown epoch: maybe a reset
    actions = session.loaded(snapshot_load, vs(10))  # the store says E is current: OLD is older
    assert loads(actions) == []
    assert [m["type"] for m in sent(actions)] == ["snapshot"]
    assert session.live(cs(4, epoch="OLD")) == []
    assert versions(session.live(cs(11))) == [11]


def test_an_epoch_change_arriving_during_the_snapshot_read_reads_again() -> None:
    session = Session()
    load = subscribe(session)
    session.live(cs(1, epoch="F"))  # a reset committed after the read began
    actions = session.loaded(load, vs(10, epoch="E"))
    (snapshot_load,) = loads(actions)
    assert snapshot_load.since is None
    assert [m["epoch"] for m in sent(session.loaded(snapshot_load, vs(1, epoch="F")))] == ["F"]


# --- tabs filter ---------------------------------------------------------------------------------------------


def test_tabs_filter_restricts_snapshot_and_ops_but_keeps_every_version() -> None:
    session = Session()
    load = subscribe(session, tabs=[2])
    actions = session.loaded(load, vs(10))
    assert [t["id"] for t in sent(actions)[1]["tabs"]] == [2]
    mixed = ChangeSet("S", "E", 11, AT, (SetCell(1, 0, 0, "A1", "a", "b"), AddTab(2, "New", 1, (("z",),))))
    frame = encode_change_frame(mixed)
    (action,) = session.live(mixed, frame)
    assert isinstance(action, Send) and action.data is not frame
    assert [op["op"] for op in orjson.loads(action.data)["ops"]] == ["add_tab"]
    only_tab_1 = cs(12, tab=1)
    (message,) = sent(session.live(only_tab_1, encode_change_frame(only_tab_1)))
    assert (message["version"], message["ops"]) == (12, [])
    only_tab_2 = cs(13, tab=2)
    frame = encode_change_frame(only_tab_2)
    assert session.live(only_tab_2, frame) == [Send(frame)]  # every op matches: the shared frame
    assert session.live(only_tab_2, frame) == []  # a duplicate is dropped on the filtered path too


def test_the_shared_frame_is_reused_not_re_encoded() -> None:
    session = live_session(10)
    frame = encode_change_frame(cs(11))
    (action,) = session.live(cs(11), frame)
    assert isinstance(action, Send) and action.data is frame


# --- the state table -----------------------------------------------------------------------------------------


def test_the_state_table_only_names_known_states() -> None:
    assert {state for state, _ in TRANSITIONS} | set(TRANSITIONS.values()) == {"loading", "live"}
    with pytest.raises(KeyError):
        live_session().subscription("S").move("got_snapshot")  # type: ignore[union-attr]


# --- the promise, under random interleavings -----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    head=st.integers(0, 5),
    since=st.one_of(st.none(), st.integers(0, 5)),
    page_size=st.integers(1, 4),
    steps=st.lists(
        st.tuples(st.sampled_from(["commit", "deliver", "answer", "drop"]), st.integers(0, 3)), max_size=60
    ),
)
def test_every_version_exactly_once_whatever_the_interleaving(
    head: int, since: int | None, page_size: int, steps: list[tuple[str, int]]
) -> None:
    """Commits, bus messages (lost or reordered) and store answers in any order: no gap, no duplicate."""
    session = Session(page_size=page_size)
    bus: list[ChangeSet] = []
    pending: list[Load] = []
    out: list[dict[str, Any]] = []

    def run(actions: list[Action]) -> None:
        out.extend(sent(actions))
        pending.extend(loads(actions))

    def answer() -> None:
        load = pending.pop(0)
        if load.since is None:
            run(session.loaded(load, vs(head)))
        else:
            start = load.since[1]
            if start > head:
                run(session.loaded(load, ChangesSince("E", head, False, [])))
            else:
                changes = [cs(v) for v in range(start + 1, min(head, start + load.limit) + 1)]
                run(session.loaded(load, ChangesSince("E", head, True, changes)))

    fields = {} if since is None else {"since": {"epoch": "E", "version": since}}
    run(session.receive(orjson.dumps({"type": "subscribe", "id": "1", "source": "S", **fields}).decode()))
    for step, n in steps:
        if step == "commit":
            head += 1
            bus.append(cs(head))
        elif step in ("deliver", "drop") and bus:
            message = bus.pop(min(n, len(bus) - 1))  # n > 0 takes a later message: reordering
            if step == "deliver":
                run(session.live(message))
        elif step == "answer" and pending:
            answer()
    # Quiesce: deliver what is left, answer every read, then one last change that is not lost.
    while bus or pending:
        if bus:
            run(session.live(bus.pop(0)))
        else:
            answer()
    head += 1
    run(session.live(cs(head)))
    while pending:
        answer()

    assert out[0]["type"] == "subscribed"
    if out[0]["recovered"]:
        current = out[0]["version"]
        assert current == since
    else:
        assert out[1]["type"] == "snapshot"
        current = out[1]["version"]
    for message in out[1:]:
        if message["type"] == "snapshot":
            assert message["version"] >= current  # a re-snapshot never goes back
            current = message["version"]
        else:
            assert message["type"] == "change"
            assert message["version"] == current + 1, [m.get("version") for m in out]
            current = message["version"]
    assert current == head
