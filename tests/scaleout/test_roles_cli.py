"""The role commands: the same options as `serve`, their own extras, and the settings they build."""

from __future__ import annotations

import inspect

import pytest
from typer.testing import CliRunner

from sheetstream.cli import app
from sheetstream.cli.roles import SERVE_ONLY, settings_from_options
from sheetstream.cli.serve import LogLevel, serve
from sheetstream.errors import ConfigError
from sheetstream.runtime.roles import check_roles
from sheetstream.runtime.settings import Settings


@pytest.mark.parametrize("role", ["monitor", "gateway", "api"])
def test_each_role_takes_every_serve_option_but_the_demo(role: str) -> None:
    command = next(c for c in app.registered_commands if c.name == role)
    assert command.callback is not None
    own = set(inspect.signature(command.callback).parameters)
    shared = set(inspect.signature(serve).parameters) - SERVE_ONLY
    assert shared <= own and not own & SERVE_ONLY
    result = CliRunner().invoke(app, [role, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "SHEETSTREAM_BUS" in result.output and "--demo" not in result.output
    assert ("--node-id" in result.output) == (role != "api")
    assert ("--lease-ttl-s" in result.output) == (role == "monitor")


def test_settings_are_built_from_the_options_that_are_settings() -> None:
    settings = settings_from_options({"port": 9001, "bus": "redis://x/0", "log_level": LogLevel.debug, "node_id": "n"})
    assert settings == Settings(port=9001, bus="redis://x/0", log_level="debug")


def test_a_bad_bus_url_is_a_one_line_error() -> None:
    result = CliRunner().invoke(app, ["gateway", "--bus", "redsi://x", "--store", "memory://"])
    assert result.exit_code == 2
    assert "Did you mean 'redis'?" in result.output


def test_roles_must_be_known() -> None:
    assert check_roles(["api", "gateway"]) == frozenset({"api", "gateway"})
    with pytest.raises(ConfigError, match="roles must be some of monitor, gateway, api"):
        check_roles(["proxy"])
