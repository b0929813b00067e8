"""JSON wire forms of snapshots, ops and change sets (ARCHITECTURE.md, "Data model").

`encode_*` return bytes ready to send; `*_to_json` return plain dicts for embedding in larger documents.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from sheetstream.core.model import (
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

_OP_TYPES: dict[str, type[Op]] = {
    "set": SetCell,
    "insert_rows": InsertRows,
    "delete_rows": DeleteRows,
    "add_tab": AddTab,
    "remove_tab": RemoveTab,
    "rename_tab": RenameTab,
    "move_tab": MoveTab,
    "resize": Resize,
}
_ROW_FIELDS = frozenset({"rows"})


class DecodeError(ValueError):
    """A wire document does not have the expected shape."""


def op_to_json(op: Op) -> dict[str, Any]:
    """The wire dict of one op, "op" first."""
    out: dict[str, Any] = {"op": op.op}
    for name in op.__dataclass_fields__:
        if name != "op":
            value = getattr(op, name)
            # Resize.rows is a count, not row data.
            out[name] = [list(r) for r in value] if name in _ROW_FIELDS and not isinstance(value, int) else value
    return out


def op_from_json(data: Any) -> Op:
    """Parse one wire op; DecodeError if it is not one."""
    if not isinstance(data, dict) or data.get("op") not in _OP_TYPES:
        raise DecodeError(f"not an op: {data!r:.200}")
    cls = _OP_TYPES[data["op"]]
    kwargs = {k: v for k, v in data.items() if k != "op"}
    if "rows" in kwargs and cls in (InsertRows, AddTab):
        kwargs["rows"] = tuple(tuple(r) for r in kwargs["rows"])
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise DecodeError(f"bad {data['op']} op: {exc}") from exc


def format_at(at: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z suffix."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_at(text: str) -> datetime:
    """Inverse of `format_at`."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def changeset_to_json(cs: ChangeSet) -> dict[str, Any]:
    """The wire dict of a change set."""
    return {
        "source": cs.source,
        "epoch": cs.epoch,
        "version": cs.version,
        "at": format_at(cs.at),
        "ops": [op_to_json(op) for op in cs.ops],
    }


def changeset_from_json(data: Any) -> ChangeSet:
    """Parse a wire change set; DecodeError if it is not one."""
    try:
        return ChangeSet(
            source=str(data["source"]),
            epoch=str(data["epoch"]),
            version=int(data["version"]),
            at=parse_at(data["at"]),
            ops=tuple(op_from_json(op) for op in data["ops"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"not a change set: {exc}") from exc


def encode_changeset(cs: ChangeSet) -> bytes:
    """A change set as compact JSON bytes."""
    return orjson.dumps(changeset_to_json(cs))


def decode_changeset(data: bytes | str) -> ChangeSet:
    """Inverse of `encode_changeset`."""
    try:
        return changeset_from_json(orjson.loads(data))
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc}") from exc


def tabs_to_json(snapshot: Snapshot) -> list[dict[str, Any]]:
    """The wire list of a snapshot's tabs."""
    return [{"id": t.id, "title": t.title, "rows": [list(r) for r in t.rows]} for t in snapshot.tabs]


def tabs_from_json(data: Any) -> Snapshot:
    """Parse a wire list of tabs into a Snapshot; DecodeError if it is not one."""
    try:
        return Snapshot(tuple(Tab(id=int(t["id"]), title=str(t["title"]), rows=t["rows"]) for t in data))
    except (KeyError, TypeError, ValueError) as exc:
        raise DecodeError(f"not a list of tabs: {exc}") from exc


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """A snapshot's tabs as compact JSON bytes."""
    return orjson.dumps(tabs_to_json(snapshot))


def decode_snapshot(data: bytes | str) -> Snapshot:
    """Inverse of `encode_snapshot`."""
    try:
        return tabs_from_json(orjson.loads(data))
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc}") from exc
