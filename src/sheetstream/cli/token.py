"""`sheetstream token`: mint an HS256 WebSocket connection token, for development and tests.

The token is signed with SHEETSTREAM_JWT_SECRET (the server's `--jwt-secret`), read from the environment only, so
the secret is not left in shell history or process lists. Production tokens come from your application or
identity provider (docs/security.md, "WebSocket connection tokens").
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from sheetstream.cli.app import app


@app.command()
def token(
    sources: Annotated[
        str,
        typer.Option(help="Comma-separated source ids the token grants ('*': every source)."),
    ],
    ttl_s: Annotated[float, typer.Option("--ttl-s", min=1, help="Seconds until the token expires.")] = 3600.0,
    subject: Annotated[
        str | None, typer.Option(help="Who holds the token (its 'sub', named in the server's logs).")
    ] = None,
    audience: Annotated[
        str,
        typer.Option(envvar="SHEETSTREAM_JWT_AUDIENCE", help="The 'aud' claim, if the server requires one."),
    ] = "",
    issuer: Annotated[
        str,
        typer.Option(envvar="SHEETSTREAM_JWT_ISSUER", help="The 'iss' claim, if the server requires one."),
    ] = "",
) -> None:
    """Print a connection token signed with SHEETSTREAM_JWT_SECRET (HS256), for development."""
    from sheetstream.auth.tokens import MIN_SECRET_BYTES, issue_token

    secret = os.environ.get("SHEETSTREAM_JWT_SECRET", "")
    if not secret:
        typer.echo(
            "error: SHEETSTREAM_JWT_SECRET is not set: export the server's --jwt-secret as SHEETSTREAM_JWT_SECRET "
            "(make one with: python -c 'import secrets; print(secrets.token_hex(32))')",
            err=True,
        )
        raise typer.Exit(2)
    if len(secret.encode()) < MIN_SECRET_BYTES:
        typer.echo(
            f"error: SHEETSTREAM_JWT_SECRET is too short: HS256 needs at least {MIN_SECRET_BYTES} bytes",
            err=True,
        )
        raise typer.Exit(2)
    granted = [s.strip() for s in sources.split(",") if s.strip()]
    if not granted:
        raise typer.BadParameter(
            "give at least one source id, or '*' for every source", param_hint="--sources"
        )
    typer.echo(issue_token(secret, granted, ttl_s=ttl_s, subject=subject, audience=audience, issuer=issuer))
