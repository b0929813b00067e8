"""`sheetstream monitor`, `sheetstream gateway` and `sheetstream api`: one role per process, for scale-out.

The three commands take `serve`'s options, read from its signature (the same flags, SHEETSTREAM_* variables,
defaults and help, so an option added to `serve` reaches them too), less the demo ones, plus a few of their own.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Collection, Mapping
from typing import Annotated, Any

import typer

from sheetstream.cli.app import app
from sheetstream.cli.serve import check_settings, settings_from_options
from sheetstream.cli.serve import serve as serve_command

SERVE_ONLY = frozenset({"demo", "demo_csv"})
"""`serve` options that make no sense for one role."""

NodeId = Annotated[
    str,
    typer.Option(
        envvar="SHEETSTREAM_NODE_ID",
        help="This node's name, unique among live nodes (its bus consumer group, its registry entry). "
        "Default: hostname-pid.",
    ),
]
LeaseTtl = Annotated[
    float,
    typer.Option(
        envvar="SHEETSTREAM_LEASE_TTL_S",
        min=0.5,
        help="Lifetime of this monitor's source leases: if it dies, the others take its sources within it.",
    ),
]


def _shared_parameters() -> list[inspect.Parameter]:
    signature = inspect.signature(serve_command, eval_str=True)
    return [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values()
            if p.name not in SERVE_ONLY]


def _option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def run_roles(roles: Collection[str], options: Mapping[str, Any]) -> None:
    """Build the settings from `options` and serve `roles` until interrupted; a clear error on bad settings."""
    from sheetstream.errors import SheetstreamError
    from sheetstream.runtime.logging import configure_logging
    from sheetstream.runtime.roles import NodeOptions, default_node_id, serve_roles

    settings = settings_from_options(options)
    node = NodeOptions(
        node_id=options.get("node_id") or default_node_id(),
        lease_ttl_s=options.get("lease_ttl_s", NodeOptions.lease_ttl_s),
    )
    try:
        check_settings(settings)  # a mistyped URL or half a TLS pair is refused before anything starts
        configure_logging(settings.log_level)
        asyncio.run(serve_roles(settings, roles, node))
    except KeyboardInterrupt:
        pass
    except SheetstreamError as exc:  # bad URLs, unreachable store or bus ...
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def role_command(name: str, roles: Collection[str], summary: str, extra: list[inspect.Parameter]) -> None:
    """Register `sheetstream NAME`, running `roles` with serve's options plus `extra`."""

    def command(**options: Any) -> None:
        run_roles(roles, options)

    command.__name__ = name
    command.__doc__ = summary
    command.__signature__ = inspect.Signature([*_shared_parameters(), *extra])  # type: ignore[attr-defined]
    app.command(name)(command)


_node_id = _option("node_id", NodeId, "")
_lease_ttl = _option("lease_ttl_s", LeaseTtl, 10.0)

role_command(
    "monitor",
    ["monitor"],
    "Run the monitor only: read sources, commit changes to the store, publish them on the bus.",
    [_node_id, _lease_ttl],
)
role_command(
    "gateway",
    ["gateway"],
    "Run a WebSocket gateway only: /v1/ws fed from the bus, with /healthz and /readyz.",
    [_node_id],
)
role_command("api", ["api"], "Run the REST API and the web page only (the monitors run elsewhere).", [])

