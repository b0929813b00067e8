"""Request and response bodies of the REST API (ARCHITECTURE.md, "REST API"), as pydantic models.

The models are the documentation: `docs/openapi.json` is generated from them. Request models are strict and
forbid unknown fields, so a typo such as `"poll_interval": 5` is a 422 rather than silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Cell = str | int | float | bool
"""A cell value as it travels: an empty cell is ""."""

SourceKind = str
"""One of the kinds the sources registry knows: google_sheets, http_csv, http_json, file."""

_KIND_DESCRIPTION = "What to read: `google_sheets`, `http_csv`, `http_json` or `file`."
_CONFIG_DESCRIPTION = (
    "Kind-specific settings. `file`: `{path, format?, key_column?}`; `http_csv`/`http_json`: "
    "`{url, headers?, key_column?}`; `google_sheets`: `{spreadsheet_id, ranges?, value_render?, key_column?, "
    "credentials?}`. In answers, `credentials` is left out and header values read `***`."
)


def _drop_default(schema: dict[str, Any]) -> None:
    # PATCH fields default to None only to tell "absent" from "sent"; null itself is refused, so the schema
    # should not advertise a null default.
    schema.pop("default", None)


_STRICT_INPUT = ConfigDict(strict=True, extra="forbid")


class SourceCreate(BaseModel):
    """Body of `POST /v1/sources`."""

    model_config = _STRICT_INPUT

    name: str | None = Field(default=None, max_length=200, description="A label for people; need not be unique.")
    kind: SourceKind = Field(min_length=1, description=_KIND_DESCRIPTION, examples=["file"])
    config: dict[str, Any] = Field(description=_CONFIG_DESCRIPTION, examples=[{"path": "/data/prices.csv"}])
    poll_interval_s: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        description="Seconds between reads when no change hint arrives; the server default if omitted.",
    )
    paused: bool = Field(default=False, description="Create the source without watching it yet.")


class SourceUpdate(BaseModel):
    """Body of `PATCH /v1/sources/{id}`: only the fields sent change.

    `config` replaces the whole config, except that a header value of `***` keeps the stored value and an
    absent `credentials` keeps the stored credentials (send `"credentials": null` to remove them), so the
    config of a GET can be sent back as it is.
    """

    model_config = _STRICT_INPUT

    name: str | None = Field(default=None, max_length=200, description="New label; null clears it.")
    config: dict[str, Any] = Field(default=None, description=_CONFIG_DESCRIPTION, json_schema_extra=_drop_default)  # type: ignore[arg-type]
    poll_interval_s: float = Field(default=None, gt=0, le=86_400, json_schema_extra=_drop_default)  # type: ignore[assignment]
    paused: bool = Field(default=None, description="Stop or resume watching.", json_schema_extra=_drop_default)  # type: ignore[assignment]


class SourceStatusOut(BaseModel):
    """How the source's last read went."""

    state: Literal["ok", "error", "paused", "pending"] = Field(
        description="`pending` until the first read, `paused` while paused."
    )
    message: str | None = Field(description="What went wrong, when `state` is `error`.")
    since: str | None = Field(description="When the source entered this state (ISO-8601 UTC).")


class SourceOut(BaseModel):
    """A data source as the API shows it. Credentials are never included."""

    id: str
    name: str | None
    kind: str
    config: dict[str, Any]
    poll_interval_s: float
    paused: bool
    status: SourceStatusOut
    epoch: str = Field(description="Changes when the source's history is reset.")
    version: int = Field(description="Version of the latest committed change (0: nothing read yet).")
    created_at: str = Field(description="ISO-8601 UTC, e.g. 2025-01-31T12:00:00.000Z.")
    updated_at: str = Field(description="ISO-8601 UTC.")


class SourcePage(BaseModel):
    """One page of `GET /v1/sources`."""

    items: list[SourceOut]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; absent on the last page."
    )


class TabOut(BaseModel):
    """One tab of a snapshot; `id` is stable across renames."""

    id: int
    title: str
    rows: list[list[Cell]] = Field(description="Ragged rows: trailing empty cells and rows are trimmed.")


class SnapshotOut(BaseModel):
    """Answer of `GET /v1/sources/{id}/snapshot`."""

    source: str
    epoch: str
    version: int
    tabs: list[TabOut]


class SetOp(BaseModel):
    """Cell (row, col) changes from `old` to `new`."""

    op: Literal["set"]
    tab: int
    row: int
    col: int
    a1: str
    old: Cell
    new: Cell


class InsertRowsOp(BaseModel):
    """`rows` are inserted before index `at`."""

    op: Literal["insert_rows"]
    tab: int
    at: int
    rows: list[list[Cell]]


class DeleteRowsOp(BaseModel):
    """`count` rows starting at index `at` are removed."""

    op: Literal["delete_rows"]
    tab: int
    at: int
    count: int


class AddTabOp(BaseModel):
    """A tab is added at position `index`, with its rows."""

    op: Literal["add_tab"]
    tab: int
    title: str
    index: int
    rows: list[list[Cell]]


class RemoveTabOp(BaseModel):
    """The tab is removed."""

    op: Literal["remove_tab"]
    tab: int


class RenameTabOp(BaseModel):
    """The tab's title changes."""

    op: Literal["rename_tab"]
    tab: int
    old: str
    new: str


class MoveTabOp(BaseModel):
    """The tab moves to position `index`."""

    op: Literal["move_tab"]
    tab: int
    index: int


class ResizeOp(BaseModel):
    """The tab's extent becomes `rows` x `cols`."""

    op: Literal["resize"]
    tab: int
    rows: int
    cols: int


OpOut = Annotated[
    SetOp | InsertRowsOp | DeleteRowsOp | AddTabOp | RemoveTabOp | RenameTabOp | MoveTabOp | ResizeOp,
    Field(discriminator="op"),
]


class ChangeSetOut(BaseModel):
    """One committed change: `version` is the previous version + 1 within `epoch`. Ops apply in order."""

    source: str
    epoch: str
    version: int
    at: str = Field(description="When the change was seen (ISO-8601 UTC).")
    ops: list[OpOut]


class ChangesOut(BaseModel):
    """Answer of `GET /v1/sources/{id}/changes`."""

    source: str
    epoch: str = Field(description="The source's current epoch.")
    version: int = Field(description="The source's current version.")
    recovered: bool = Field(
        description="False when the changes after `since` are no longer available (other epoch, pruned, or "
        "ahead of the source): `changes` is then empty and the client should fetch the snapshot."
    )
    changes: list[ChangeSetOut] = Field(
        description="Oldest first, at most `limit`; ask again with `since` = the last version for more."
    )


class RefreshOut(BaseModel):
    """Answer of `POST /v1/sources/{id}/refresh`."""

    source: str
    status: Literal["queued"]


class FieldErrorOut(BaseModel):
    """One invalid field of a request."""

    field: str = Field(description="Where: `body.config.path`, `query.limit` ...")
    message: str


class ErrorBody(BaseModel):
    """What went wrong: a stable `code` for programs, a `message` for people."""

    code: str = Field(examples=["source_not_found"])
    message: str
    details: list[FieldErrorOut] | dict[str, Any] | None = Field(
        default=None, description="Field errors of a 422, or facts about the error; absent when empty."
    )


class ErrorOut(BaseModel):
    """The body of every error answer."""

    error: ErrorBody


class HealthOut(BaseModel):
    """Answer of `/healthz` and a ready `/readyz`."""

    status: Literal["ok"]


class UnavailableOut(BaseModel):
    """Answer of `/readyz` when the store cannot be reached."""

    status: Literal["unavailable"]
    reason: str
