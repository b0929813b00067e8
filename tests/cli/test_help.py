"""`--help` of every command, `--version`, every `serve` setting as an env var, and usage errors caught before any work."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from sheetstream import __version__
from sheetstream.cli.app import app  # the package registers every command on it
from sheetstream.runtime.settings import Settings
from tests.cli.harness import HELP_COLUMNS, clean_env, run_cli

# Settings with no command-line option, and why.
NOT_AN_OPTION: dict[str, str] = {}

SERVE_OPTIONS = [
    "--host", "--port", "--store", "--bus", "--retention-max-changes", "--retention-max-age-s", "--max-frame-bytes",
    "--send-queue-size", "--ping-interval-s", "--ping-timeout-s", "--backoff-max-s", "--demo", "--demo-csv",
    "--log-level",
]

# Each command, and the options and words its --help must show.
HELP_SCREENS: dict[tuple[str, ...], list[str]] = {
    (): ["serve", "openapi", "watch", "sources", "keys", "dead-letters", "token", "--version"],
    ("serve",): [*SERVE_OPTIONS, "SHEETSTREAM_PORT", "SHEETSTREAM_STORE", "SHEETSTREAM_LOG_LEVEL"],
    ("openapi",): ["OpenAPI"],
    ("watch",): ["SOURCE", "--server", "SHEETSTREAM_SERVER", "--json", "--since-epoch", "--since-version", "--token",
                 "SHEETSTREAM_TOKEN"],
    ("token",): ["--sources", "--ttl-s", "--subject", "--audience", "--issuer", "SHEETSTREAM_JWT_SECRET",
                 "SHEETSTREAM_JWT_AUDIENCE"],
    ("sources",): ["add", "list", "show", "update", "rm"],
    ("sources", "add"): ["KIND", "PATH_OR_URL", "--name", "--key-column", "--poll-interval-s", "--config", "--set",
                         "--server", "SHEETSTREAM_SERVER", "--api-key", "SHEETSTREAM_API_KEY"],
    ("sources", "list"): ["--server", "SHEETSTREAM_SERVER", "--api-key", "SHEETSTREAM_API_KEY"],
    ("sources", "show"): ["SOURCE", "--server", "--api-key"],
    ("sources", "update"): ["SOURCE", "--name", "--poll-interval-s", "--paused", "--active", "--config", "--server",
                            "--api-key"],
    ("sources", "rm"): ["SOURCE", "--server", "--api-key"],
    ("dead-letters",): ["list", "show", "replay", "rm"],
    ("dead-letters", "list"): ["--limit", "--server", "SHEETSTREAM_SERVER", "--api-key", "SHEETSTREAM_API_KEY"],
    ("dead-letters", "show"): ["ID", "--server", "--api-key"],
    ("dead-letters", "replay"): ["ID", "--server", "--api-key"],
    ("dead-letters", "rm"): ["ID", "--server", "--api-key"],
    ("keys",): ["create", "list", "revoke", "no server needed"],
    ("keys", "create"): ["--name", "--scope", "read", "write", "--store", "SHEETSTREAM_STORE", "only time"],
    ("keys", "list"): ["--store", "SHEETSTREAM_STORE", "--json", "never the key"],
    ("keys", "revoke"): ["KEY_ID", "--store", "SHEETSTREAM_STORE"],
}

runner = CliRunner()


def invoke(*args: str, **env: str | None) -> typer.testing.Result:
    """Run the CLI in this process, with no SHEETSTREAM_SERVER of the caller's shell and a wide terminal."""
    return runner.invoke(app, list(args), env={"COLUMNS": HELP_COLUMNS, "SHEETSTREAM_SERVER": None, **env})


@pytest.mark.parametrize("command", list(HELP_SCREENS), ids=lambda c: " ".join(c) or "root")
def test_help_of_every_command_exits_0_and_shows_its_options(command: tuple[str, ...]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    missing = [word for word in HELP_SCREENS[command] if word.lower() not in result.stdout.lower()]
    assert not missing, f"`sheetstream {' '.join(command)} --help` does not mention {missing}:\n{result.stdout}"


def _all_commands() -> dict[tuple[str, ...], Any]:
    """Every command and subcommand of the CLI (typer's own click objects), by its words."""
    found: dict[tuple[str, ...], Any] = {}

    def walk(words: tuple[str, ...], command: Any) -> None:
        found[words] = command
        for name, sub in getattr(command, "commands", {}).items():
            walk((*words, name), sub)

    walk((), typer.main.get_command(app))
    return found


@pytest.mark.parametrize("command", list(_all_commands()), ids=lambda c: " ".join(c) or "root")
def test_every_command_help_shows_each_of_its_options_and_env_vars(command: tuple[str, ...]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    for param in _all_commands()[command].params:
        if param.param_type_name == "option":
            assert any(opt in result.stdout for opt in param.opts), f"{param.opts} missing from:\n{result.stdout}"
        if param.envvar:
            assert str(param.envvar) in result.stdout, f"{param.envvar} missing from:\n{result.stdout}"


def test_the_commands_the_docs_name_exist() -> None:
    assert set(HELP_SCREENS) <= set(_all_commands())


def test_every_setting_is_an_option_with_its_sheetstream_env_var() -> None:
    envvars = {
        param.name: param.envvar for command in _all_commands().values() for param in command.params if param.name
    }
    settings = {field.name for field in dataclasses.fields(Settings)} - set(NOT_AN_OPTION)
    assert settings <= set(envvars), f"settings with no option: {settings - set(envvars)}"
    for name in settings:
        assert envvars[name] == f"SHEETSTREAM_{name.upper()}", f"--{name.replace('_', '-')} reads {envvars[name]!r}"
    serve = _all_commands()[("serve",)]
    for param in serve.params:
        assert param.envvar == f"SHEETSTREAM_{str(param.name).upper()}", f"serve {param.opts} has no env var"


def test_version_as_a_process() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"sheetstream {__version__}"


def test_help_as_a_process_lists_the_commands() -> None:
    result = run_cli("--help", env=clean_env(COLUMNS=HELP_COLUMNS))
    assert result.returncode == 0, result.stderr
    assert all(word in result.stdout for word in ("serve", "sources", "watch"))


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["serve", "--port", "70000"], {}, "--port"),
        (["serve"], {"SHEETSTREAM_PORT": "-1"}, "SHEETSTREAM_PORT"),
        (["serve", "--log-level", "verbose"], {}, "'verbose' is not one of"),
        (["serve"], {"SHEETSTREAM_LOG_LEVEL": "loud"}, "'loud' is not one of"),
        (["serve", "--retention-max-changes", "0"], {}, "--retention-max-changes"),
        (["sources", "add", "file", "x.csv", "--config", "{bad"], {}, "not valid JSON"),
        (["sources", "add", "file", "x.csv", "--config", "[1]"], {}, "expected a JSON object"),
        (["sources", "add", "file", "x.csv", "--set", "novalue"], {}, "expected KEY=VALUE"),
        (["sources", "update", "abc"], {}, "nothing to change"),
        (["sources", "update", "abc", "--config", "3"], {}, "expected a JSON object"),
        (["watch", "abc", "--since-epoch", "e1"], {}, "--since-version"),
        (["dead-letters", "list", "--limit", "0"], {}, "--limit"),
    ],
)
def test_usage_errors_exit_2_with_a_message_and_no_traceback(
    args: list[str], env: dict[str, str], expected: str
) -> None:
    # All of these are refused before any server is started or called (none is running on the default URL).
    # Should a check go missing, the unknown bus makes `serve` stop at once, without the expected message.
    result = invoke(*args, *(["--bus", "nosuch://"] if args[0] == "serve" else []), **env)
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split()), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
