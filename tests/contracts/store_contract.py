"""What every Store must do. Subclass `StoreContract` in a test module that has a `store` fixture.

The tests create their own sources and never assume the store is empty, so a backend on a shared server can run
them too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from sheetstream.core.model import (
    EMPTY_SNAPSHOT,
    AddTab,
    ChangeSet,
    DeleteRows,
    InsertRows,
    MoveTab,
    Op,
    RemoveTab,
    RenameTab,
    Resize,
    SetCell,
    Snapshot,
    Tab,
)
from sheetstream.errors import ConfigError, SourceNotFound, VersionConflict
from sheetstream.stores.base import ChangesSince, NewSource, Retention, SourceRecord, SourceStatus, Store

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
KEEP_ALL = Retention(max_changes=1_000_000, max_age_s=10 * 365 * 24 * 3600.0)


def sheet(version: int, marker: str = "") -> Snapshot:
    """A one-tab snapshot whose content names the version it belongs to."""
    return Snapshot((Tab(0, "Sheet1", (("version", version), ("marker", marker))),))


def change(record: SourceRecord, version: int, *, at: datetime = T0, epoch: str | None = None) -> ChangeSet:
    """Change set `version` of the source, setting the version cell."""
    op = SetCell(tab=0, row=0, col=1, a1="B1", old=version - 1, new=version)
    return ChangeSet(record.id, epoch if epoch is not None else record.epoch, version, at, (op,))


async def create(store: Store, **fields: Any) -> SourceRecord:
    """A new file source, with any NewSource field overridden."""
    values: dict[str, Any] = {"kind": "file", "config": {"path": "/data/a.csv"}} | fields
    return await store.create_source(NewSource(**values), now=T0)


async def commit_versions(
    store: Store,
    record: SourceRecord,
    versions: range,
    *,
    retention: Retention = KEEP_ALL,
    step: timedelta = timedelta(),
) -> list[ChangeSet]:
    """Commit the versions in order, the n-th `step` after T0; return the change sets."""
    committed = []
    for n, version in enumerate(versions):
        cs = change(record, version, at=T0 + n * step)
        await store.commit(sheet(version), cs, retention=retention)
        committed.append(cs)
    return committed


def unique(prefix: str) -> str:
    """A lease name no other test uses."""
    return f"{prefix}{uuid.uuid4().hex[:12]}:"


def _since(epoch: str, version: int, recovered: bool, changes: list[ChangeSet]) -> ChangesSince:
    """The expected answer of changes_since."""
    return ChangesSince(epoch=epoch, version=version, recovered=recovered, changes=changes)


class StoreContract:
    """The Store port's behaviour, backend by backend."""

    # --- sources -------------------------------------------------------------------------------------------

    async def test_create_returns_a_new_source_at_version_zero(self, store: Store) -> None:
        record = await create(
            store, name="sales", poll_interval_s=2.5, config={"path": "/x.csv", "key_column": "id"}
        )
        assert record.id
        assert (record.name, record.kind, record.poll_interval_s) == ("sales", "file", 2.5)
        assert record.config == {"path": "/x.csv", "key_column": "id"}
        assert record.version == 0 and record.epoch
        assert record.created_at == T0 and record.updated_at == T0
        assert record.status == SourceStatus(state="pending")
        assert record.paused is False

    async def test_ids_and_epochs_are_distinct_and_url_safe(self, store: Store) -> None:
        records = [await create(store) for _ in range(20)]
        assert len({r.id for r in records}) == 20
        assert len({r.epoch for r in records}) == 20
        for r in records:
            assert r.id.replace("-", "").replace("_", "").isalnum()
            assert r.epoch.replace("-", "").replace("_", "").isalnum()

    async def test_get_returns_what_create_returned(self, store: Store) -> None:
        record = await create(store, name="n")
        assert await store.get_source(record.id) == record

    async def test_config_keeps_nested_json(self, store: Store) -> None:
        config = {
            "url": "http://x/y.csv",
            "headers": {"Accept": "text/csv"},
            "ranges": ["A1:B2"],
            "n": 1.5,
            "t": True,
        }
        record = await create(store, kind="http_csv", config=config)
        assert (await store.get_source(record.id)).config == config

    async def test_config_is_not_shared_with_the_caller(self, store: Store) -> None:
        config: dict[str, Any] = {"path": "/a.csv"}
        record = await create(store, config=config)
        config["path"] = "/changed.csv"
        record.config["path"] = "/changed-too.csv"
        assert (await store.get_source(record.id)).config == {"path": "/a.csv"}

    async def test_config_must_be_json(self, store: Store) -> None:
        with pytest.raises(ConfigError, match="JSON"):
            await create(store, config={"when": object()})

    async def test_create_paused(self, store: Store) -> None:
        record = await create(store, paused=True)
        assert record.paused is True
        assert record.status == SourceStatus(state="paused", since=T0)

    async def test_list_pages_through_every_source_in_id_order(self, store: Store) -> None:
        mine = {(await create(store)).id for _ in range(5)}
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            page, cursor = await store.list_sources(limit=2, cursor=cursor)
            pages += 1
            assert len(page) <= 2
            seen += [r.id for r in page]
            if cursor is None:
                break
            assert len(page) == 2
        assert mine <= set(seen)
        assert seen == sorted(seen) and len(set(seen)) == len(seen)
        assert pages >= 3

    async def test_list_returns_full_records(self, store: Store) -> None:
        record = await create(store, name="listed")
        found: list[SourceRecord] = []
        cursor: str | None = None
        while True:
            page, cursor = await store.list_sources(limit=100, cursor=cursor)
            found += [r for r in page if r.id == record.id]
            if cursor is None:
                break
        assert found == [record]

    async def test_list_refuses_a_forged_cursor(self, store: Store) -> None:
        with pytest.raises(ValueError, match="cursor"):
            await store.list_sources(cursor="%%%not-a-cursor")

    @pytest.mark.parametrize(
        ("changes", "expected"),
        [
            ({"name": "renamed"}, {"name": "renamed"}),
            ({"name": None}, {"name": None}),
            ({"config": {"path": "/b.csv"}}, {"config": {"path": "/b.csv"}}),
            ({"poll_interval_s": 60.0}, {"poll_interval_s": 60.0}),
            ({"paused": True}, {"paused": True}),
            ({"name": "both", "poll_interval_s": 1.0}, {"name": "both", "poll_interval_s": 1.0}),
        ],
    )
    async def test_update_changes_only_the_given_fields(
        self, store: Store, changes: dict[str, Any], expected: dict[str, Any]
    ) -> None:
        record = await create(store, name="before")
        later = T0 + timedelta(minutes=5)
        updated = await store.update_source(record.id, changes, now=later)
        for name in ("name", "config", "poll_interval_s", "paused", "kind", "epoch", "version", "created_at"):
            assert getattr(updated, name) == expected.get(name, getattr(record, name)), name
        assert updated.updated_at == later
        assert await store.get_source(record.id) == updated

    async def test_update_refuses_unknown_fields(self, store: Store) -> None:
        record = await create(store)
        with pytest.raises(ValueError, match="kind"):
            await store.update_source(record.id, {"kind": "http_csv"}, now=T0)
        assert await store.get_source(record.id) == record

    async def test_pause_and_resume(self, store: Store) -> None:
        record = await create(store)
        paused_at, again_at, resumed_at = (T0 + timedelta(minutes=m) for m in (1, 2, 3))
        await store.set_status(record.id, SourceStatus("ok", None, T0))
        paused = await store.update_source(record.id, {"paused": True}, now=paused_at)
        assert paused.paused and paused.status == SourceStatus("paused", None, paused_at)
        # A read finishing while paused is recorded, but the source still shows as paused since it was paused.
        await store.set_status(record.id, SourceStatus("error", "boom", again_at))
        still = await store.update_source(record.id, {"paused": True}, now=again_at)
        assert still.status == SourceStatus("paused", None, paused_at)
        resumed = await store.update_source(record.id, {"paused": False}, now=resumed_at)
        assert not resumed.paused
        assert resumed.status == SourceStatus("error", "boom", again_at)

    async def test_status_is_recorded(self, store: Store) -> None:
        record = await create(store)
        since = T0 + timedelta(seconds=30)
        await store.set_status(record.id, SourceStatus("error", "HTTP 503 from http://x", since))
        assert (await store.get_source(record.id)).status == SourceStatus(
            "error", "HTTP 503 from http://x", since
        )
        await store.set_status(record.id, SourceStatus("ok", None, since + timedelta(seconds=1)))
        assert (await store.get_source(record.id)).status == SourceStatus(
            "ok", None, since + timedelta(seconds=1)
        )

    async def test_delete_removes_the_source_and_its_history(self, store: Store) -> None:
        record = await create(store)
        other = await create(store)
        await commit_versions(store, record, range(1, 4))
        await commit_versions(store, other, range(1, 3))
        await store.delete_source(record.id)
        with pytest.raises(SourceNotFound):
            await store.get_source(record.id)
        with pytest.raises(SourceNotFound):
            await store.snapshot(record.id)
        with pytest.raises(SourceNotFound):
            await store.changes_since(record.id, record.epoch, 0)
        assert len((await store.changes_since(other.id, other.epoch, 0)).changes) == 2

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(lambda s, i: s.get_source(i), id="get_source"),
            pytest.param(lambda s, i: s.update_source(i, {"name": "x"}, now=T0), id="update_source"),
            pytest.param(lambda s, i: s.delete_source(i), id="delete_source"),
            pytest.param(lambda s, i: s.set_status(i, SourceStatus("ok")), id="set_status"),
            pytest.param(lambda s, i: s.snapshot(i), id="snapshot"),
            pytest.param(lambda s, i: s.changes_since(i, "e", 0), id="changes_since"),
            pytest.param(lambda s, i: s.reset_history(i, now=T0), id="reset_history"),
            pytest.param(
                lambda s, i: s.commit(sheet(1), ChangeSet(i, "e", 1, T0, ()), retention=KEEP_ALL), id="commit"
            ),
        ],
    )
    async def test_unknown_source(
        self, store: Store, call: Callable[[Store, str], Awaitable[object]]
    ) -> None:
        with pytest.raises(SourceNotFound) as info:
            await call(store, "no-such-source")
        assert info.value.source_id == "no-such-source"

    # --- commits ---------------------------------------------------------------------------------------------

    async def test_a_new_source_has_the_empty_snapshot(self, store: Store) -> None:
        record = await create(store)
        head = await store.snapshot(record.id)
        assert (head.source, head.epoch, head.version, head.snapshot) == (
            record.id,
            record.epoch,
            0,
            EMPTY_SNAPSHOT,
        )
        assert await store.changes_since(record.id, record.epoch, 0) == _since(record.epoch, 0, True, [])

    async def test_commits_one_version_after_another(self, store: Store) -> None:
        record = await create(store)
        committed = await commit_versions(store, record, range(1, 11), step=timedelta(seconds=1))
        head = await store.snapshot(record.id)
        assert (head.epoch, head.version, head.snapshot) == (record.epoch, 10, sheet(10))
        assert (await store.get_source(record.id)).version == 10
        assert await store.changes_since(record.id, record.epoch, 0) == _since(
            record.epoch, 10, True, committed
        )

    async def test_every_op_and_cell_type_round_trips(self, store: Store) -> None:
        record = await create(store)
        ops: tuple[Op, ...] = (
            SetCell(tab=0, row=1, col=2, a1="C2", old="", new=3.25),
            SetCell(tab=0, row=1, col=3, a1="D2", old=True, new=7),
            InsertRows(tab=0, at=2, rows=(("a", 1, 2.5, False), ("", "x"))),
            DeleteRows(tab=0, at=5, count=2),
            AddTab(tab=9, title="Ünïcode ✓", index=1, rows=(("h",),)),
            RemoveTab(tab=3),
            RenameTab(tab=0, old="Sheet1", new="Data"),
            MoveTab(tab=9, index=0),
            Resize(tab=0, rows=4, cols=2),
        )
        at = datetime(2025, 6, 1, 8, 30, 15, 654321, tzinfo=timezone(timedelta(hours=2)))
        cs = ChangeSet(record.id, record.epoch, 1, at, ops)
        snap = Snapshot((Tab(9, "Ünïcode ✓", (("h",),)), Tab(0, "Data", (("a", 1, 2.5, False), ("", "x")))))
        await store.commit(snap, cs, retention=KEEP_ALL)
        assert (await store.changes_since(record.id, record.epoch, 0)).changes == [cs]
        assert (await store.snapshot(record.id)).snapshot == snap

    async def test_refuses_a_taken_version(self, store: Store) -> None:
        record = await create(store)
        await commit_versions(store, record, range(1, 3))
        for version in (1, 2):
            with pytest.raises(VersionConflict) as info:
                await store.commit(sheet(version, "again"), change(record, version), retention=KEEP_ALL)
            assert (info.value.source_id, info.value.version, info.value.head) == (record.id, version, 2)
        assert (await store.snapshot(record.id)).snapshot == sheet(2)

    async def test_refuses_a_gap(self, store: Store) -> None:
        record = await create(store)
        await commit_versions(store, record, range(1, 2))
        with pytest.raises(VersionConflict) as info:
            await store.commit(sheet(3), change(record, 3), retention=KEEP_ALL)
        assert (info.value.version, info.value.head) == (3, 1)
        head = await store.snapshot(record.id)
        assert (head.version, head.snapshot) == (1, sheet(1))
        assert [c.version for c in (await store.changes_since(record.id, record.epoch, 0)).changes] == [1]

    async def test_refuses_another_epoch(self, store: Store) -> None:
        record = await create(store)
        with pytest.raises(VersionConflict):
            await store.commit(sheet(1), change(record, 1, epoch="not-" + record.epoch), retention=KEEP_ALL)
        assert (await store.snapshot(record.id)).version == 0

    async def test_concurrent_commits_of_one_version_one_wins(self, store: Store) -> None:
        record = await create(store)
        await commit_versions(store, record, range(1, 3))
        results = await asyncio.gather(
            store.commit(sheet(3, "a"), change(record, 3), retention=KEEP_ALL),
            store.commit(sheet(3, "b"), change(record, 3), retention=KEEP_ALL),
            return_exceptions=True,
        )
        assert sorted(type(r).__name__ for r in results) == ["NoneType", "VersionConflict"]
        winner = "a" if results[0] is None else "b"
        head = await store.snapshot(record.id)
        assert (head.version, head.snapshot) == (3, sheet(3, winner))
        assert [c.version for c in (await store.changes_since(record.id, record.epoch, 0)).changes] == [
            1,
            2,
            3,
        ]

    async def test_sources_have_separate_histories(self, store: Store) -> None:
        first, second = await create(store), await create(store)
        await commit_versions(store, first, range(1, 4))
        await commit_versions(store, second, range(1, 2))
        assert (await store.snapshot(first.id)).version == 3
        assert (await store.snapshot(second.id)).version == 1

    # --- changes_since ---------------------------------------------------------------------------------------

    async def test_changes_since_the_middle(self, store: Store) -> None:
        record = await create(store)
        committed = await commit_versions(store, record, range(1, 6))
        assert await store.changes_since(record.id, record.epoch, 2) == _since(
            record.epoch, 5, True, committed[2:]
        )

    async def test_changes_since_the_head_is_nothing(self, store: Store) -> None:
        record = await create(store)
        await commit_versions(store, record, range(1, 6))
        assert await store.changes_since(record.id, record.epoch, 5) == _since(record.epoch, 5, True, [])

    @pytest.mark.parametrize("version", [6, 100])
    async def test_changes_since_ahead_of_the_head_is_not_recovered(self, store: Store, version: int) -> None:
        record = await create(store)
        await commit_versions(store, record, range(1, 6))
        assert await store.changes_since(record.id, record.epoch, version) == _since(
            record.epoch, 5, False, []
        )

    async def test_changes_since_another_epoch_is_not_recovered(self, store: Store) -> None:
        record = await create(store)
        await commit_versions(store, record, range(1, 4))
        assert await store.changes_since(record.id, "old-epoch", 1) == _since(record.epoch, 3, False, [])

    async def test_changes_since_reads_at_most_limit(self, store: Store) -> None:
        record = await create(store)
        committed = await commit_versions(store, record, range(1, 6))
        assert await store.changes_since(record.id, record.epoch, 1, limit=2) == _since(
            record.epoch, 5, True, committed[1:3]
        )
        assert await store.changes_since(record.id, record.epoch, 1, limit=0) == _since(
            record.epoch, 5, True, []
        )

    async def test_page_sizes_below_the_minimum_are_refused(self, store: Store) -> None:
        record = await create(store)
        with pytest.raises(ValueError, match="limit"):
            await store.list_sources(limit=0)
        with pytest.raises(ValueError, match="limit"):
            await store.changes_since(record.id, record.epoch, 0, limit=-1)

    async def test_an_age_limit_beyond_the_calendar_keeps_everything(self, store: Store) -> None:
        record = await create(store)
        forever = Retention(max_changes=100, max_age_s=1e15)
        committed = await commit_versions(
            store, record, range(1, 4), retention=forever, step=timedelta(days=9999)
        )
        assert (await store.changes_since(record.id, record.epoch, 0)).changes == committed

    async def test_retention_keeps_at_most_max_changes(self, store: Store) -> None:
        record = await create(store)
        committed = await commit_versions(store, record, range(1, 9), retention=Retention(max_changes=3))
        assert await store.changes_since(record.id, record.epoch, 5) == _since(
            record.epoch, 8, True, committed[5:]
        )
        for pruned in (0, 3, 4):
            assert await store.changes_since(record.id, record.epoch, pruned) == _since(
                record.epoch, 8, False, []
            )

    async def test_retention_drops_changes_older_than_max_age(self, store: Store) -> None:
        record = await create(store)
        hourly = Retention(max_changes=1000, max_age_s=5 * 3600.0)
        committed = await commit_versions(
            store, record, range(1, 4), retention=hourly, step=timedelta(hours=1)
        )
        # Version 4 is committed 10 h after T0: versions 1..3 (T0..T0+2h) are now older than 5 h.
        late = change(record, 4, at=T0 + timedelta(hours=10))
        await store.commit(sheet(4), late, retention=hourly)
        assert await store.changes_since(record.id, record.epoch, 3) == _since(record.epoch, 4, True, [late])
        assert await store.changes_since(record.id, record.epoch, 2) == _since(record.epoch, 4, False, [])
        assert committed  # the early versions were committed before being pruned

    async def test_retention_keeps_the_newest_change_however_old(self, store: Store) -> None:
        record = await create(store)
        strict = Retention(max_changes=0, max_age_s=0.0)
        committed = await commit_versions(
            store, record, range(1, 4), retention=strict, step=timedelta(hours=1)
        )
        assert await store.changes_since(record.id, record.epoch, 2) == _since(
            record.epoch, 3, True, committed[2:]
        )
        assert await store.changes_since(record.id, record.epoch, 3) == _since(record.epoch, 3, True, [])

    # --- reset -------------------------------------------------------------------------------------------------

    async def test_reset_history_starts_a_new_epoch(self, store: Store) -> None:
        record = await create(store)
        await commit_versions(store, record, range(1, 6))
        later = T0 + timedelta(hours=1)
        reset = await store.reset_history(record.id, now=later)
        assert reset.epoch != record.epoch and reset.version == 0 and reset.updated_at == later
        head = await store.snapshot(record.id)
        assert (head.epoch, head.version, head.snapshot) == (reset.epoch, 0, EMPTY_SNAPSHOT)
        assert await store.changes_since(record.id, record.epoch, 5) == _since(reset.epoch, 0, False, [])
        assert await store.changes_since(record.id, reset.epoch, 0) == _since(reset.epoch, 0, True, [])
        with pytest.raises(VersionConflict):
            await store.commit(sheet(6), change(record, 6), retention=KEEP_ALL)
        first = change(reset, 1)
        await store.commit(sheet(1), first, retention=KEEP_ALL)
        assert await store.changes_since(record.id, reset.epoch, 0) == _since(reset.epoch, 1, True, [first])

    # --- leases -------------------------------------------------------------------------------------------------

    async def test_a_free_lease_is_taken_and_then_held_exclusively(self, store: Store) -> None:
        name = unique("job:")
        assert await store.acquire_lease(name, "a", 10.0, now=T0) is True
        assert await store.acquire_lease(name, "b", 10.0, now=T0 + timedelta(seconds=5)) is False
        assert await store.lease_holders(name, now=T0 + timedelta(seconds=5)) == {name: "a"}

    async def test_an_expired_lease_is_free(self, store: Store) -> None:
        name = unique("job:")
        await store.acquire_lease(name, "a", 10.0, now=T0)
        just_before, expiry = T0 + timedelta(seconds=9.999), T0 + timedelta(seconds=10)
        assert await store.acquire_lease(name, "b", 10.0, now=just_before) is False
        assert await store.lease_holders(name, now=expiry) == {}
        assert await store.acquire_lease(name, "b", 10.0, now=expiry) is True
        assert await store.lease_holders(name, now=expiry) == {name: "b"}
        assert await store.acquire_lease(name, "a", 10.0, now=expiry) is False

    async def test_the_holder_renews_its_lease_and_extends_it(self, store: Store) -> None:
        name = unique("job:")
        assert await store.acquire_lease(name, "a", 10.0, now=T0)
        assert await store.acquire_lease(name, "a", 10.0, now=T0 + timedelta(seconds=8))
        # Renewed at 8 s: held until 18 s, not 10 s.
        assert await store.acquire_lease(name, "b", 10.0, now=T0 + timedelta(seconds=15)) is False
        assert await store.lease_holders(name, now=T0 + timedelta(seconds=17.9)) == {name: "a"}
        assert await store.acquire_lease(name, "b", 10.0, now=T0 + timedelta(seconds=18)) is True

    async def test_release_frees_the_lease_only_for_its_holder(self, store: Store) -> None:
        name = unique("job:")
        await store.acquire_lease(name, "a", 10.0, now=T0)
        await store.release_lease(name, "b")  # not b's: nothing happens
        assert await store.lease_holders(name, now=T0) == {name: "a"}
        await store.release_lease(name, "a")
        assert await store.lease_holders(name, now=T0) == {}
        assert await store.acquire_lease(name, "b", 10.0, now=T0) is True
        await store.release_lease(unique("never-taken:"), "a")  # releasing a lease no one holds is harmless

    async def test_lease_holders_lists_live_leases_by_literal_prefix(self, store: Store) -> None:
        base = unique("p%_")  # LIKE wildcards in the prefix must match only themselves
        await store.acquire_lease(f"{base}monitor:1", "m1", 10.0, now=T0)
        await store.acquire_lease(f"{base}monitor:2", "m2", 30.0, now=T0)
        await store.acquire_lease(f"{base}source:x", "m1", 10.0, now=T0)
        await store.acquire_lease(f"{base.replace('%', 'X')}monitor:3", "m3", 10.0, now=T0)
        assert await store.lease_holders(f"{base}monitor:", now=T0) == {
            f"{base}monitor:1": "m1",
            f"{base}monitor:2": "m2",
        }
        later = T0 + timedelta(seconds=20)
        assert await store.lease_holders(f"{base}monitor:", now=later) == {f"{base}monitor:2": "m2"}
        assert await store.lease_holders(base, now=later) == {f"{base}monitor:2": "m2"}

    @pytest.mark.parametrize("ttl_s", [0.0, -1.0, float("inf"), float("nan"), 1e300])
    async def test_a_lease_needs_a_positive_finite_ttl(self, store: Store, ttl_s: float) -> None:
        name = unique("job:")
        with pytest.raises(ValueError, match="ttl"):
            await store.acquire_lease(name, "a", ttl_s, now=T0)
        assert await store.lease_holders(name, now=T0) == {}

    async def test_concurrent_takers_of_a_free_lease_one_wins(self, store: Store) -> None:
        name = unique("job:")
        holders = [f"h{n}" for n in range(8)]
        results = await asyncio.gather(*(store.acquire_lease(name, h, 10.0, now=T0) for h in holders))
        assert results.count(True) == 1
        winner = holders[results.index(True)]
        assert await store.lease_holders(name, now=T0) == {name: winner}

    async def test_concurrent_takers_on_two_store_instances_one_wins(
        self, store: Store, twin_store: Store
    ) -> None:
        name = unique("job:")
        takers = [(s, f"{label}{n}") for n in range(4) for s, label in ((store, "a"), (twin_store, "b"))]
        results = await asyncio.gather(*(s.acquire_lease(name, h, 10.0, now=T0) for s, h in takers))
        assert results.count(True) == 1
        winner = takers[results.index(True)][1]
        assert await store.lease_holders(name, now=T0) == {name: winner}
        assert await twin_store.lease_holders(name, now=T0) == {name: winner}
        later = T0 + timedelta(seconds=10)
        assert await twin_store.acquire_lease(name, "late", 10.0, now=later) is True
        assert await store.acquire_lease(name, winner, 10.0, now=later) is False

    async def test_many_leases_are_taken_renewed_and_released_at_once(self, store: Store) -> None:
        base = unique("batch:")
        free, mine, theirs, expired = (f"{base}{n}" for n in ("free", "mine", "theirs", "expired"))
        await store.acquire_lease(mine, "a", 10.0, now=T0)
        await store.acquire_lease(theirs, "b", 30.0, now=T0)
        await store.acquire_lease(expired, "b", 1.0, now=T0)
        later = T0 + timedelta(seconds=5)
        assert await store.acquire_leases([free, mine, theirs, expired, free], "a", 10.0, now=later) == {
            free,
            mine,
            expired,
        }
        assert await store.acquire_leases([], "a", 10.0, now=later) == set()
        assert await store.lease_holders(base, now=T0 + timedelta(seconds=14)) == {
            free: "a",
            mine: "a",
            theirs: "b",
            expired: "a",
        }
        await store.release_leases([free, mine, theirs], "a")
        assert await store.lease_holders(base, now=later) == {theirs: "b", expired: "a"}
        await store.release_leases([], "a")

    async def test_overlapping_batches_on_two_store_instances_split_the_leases(
        self, store: Store, twin_store: Store
    ) -> None:
        names = [unique("split:") for _ in range(30)]
        first, second = await asyncio.gather(
            store.acquire_leases(names, "a", 10.0, now=T0),
            twin_store.acquire_leases(list(reversed(names)), "b", 10.0, now=T0),
        )
        assert first | second == set(names) and not first & second
        holders = await store.lease_holders("split:", now=T0)
        assert {name: holders[name] for name in names} == {n: "a" if n in first else "b" for n in names}
