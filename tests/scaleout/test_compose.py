"""The docker-compose topology, checked without docker: services, commands, settings, healthchecks, proxy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sheetstream.cli import app

REPO = Path(__file__).resolve().parents[2]
ROLES = {"api": "api", "monitor-1": "monitor", "monitor-2": "monitor", "gateway-1": "gateway", "gateway-2": "gateway"}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return dict(compose["services"])


def test_every_part_of_the_topology_is_there(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"postgres", "redis", "proxy", *ROLES}
    for name, service in services.items():
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name


def test_each_sheetstream_service_runs_its_role_on_the_shared_store_and_bus(
    services: dict[str, dict[str, Any]],
) -> None:
    commands = {command.name for command in app.registered_commands}
    node_ids = []
    for name, role in ROLES.items():
        service = services[name]
        assert service["command"][0] == role and role in commands, name
        env = service["environment"]
        assert env["SHEETSTREAM_STORE"].startswith("postgresql://") and "@postgres:" in env["SHEETSTREAM_STORE"]
        assert env["SHEETSTREAM_BUS"].startswith("redis://redis:6379/")
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        assert set(service["depends_on"]) == {"postgres", "redis"}
        assert all(dep["condition"] == "service_healthy" for dep in service["depends_on"].values())
        if role != "api":
            node_ids.append(env["SHEETSTREAM_NODE_ID"])
    assert sorted(node_ids) == ["gateway-1", "gateway-2", "monitor-1", "monitor-2"]  # unique per node


def test_the_proxy_spreads_websockets_over_both_gateways(services: dict[str, dict[str, Any]]) -> None:
    proxy = services["proxy"]
    mount = next(v for v in proxy["volumes"] if v.endswith("/etc/nginx/conf.d/default.conf:ro"))
    conf = (REPO / mount.split(":")[0]).read_text()
    upstream = re.search(r"upstream sheetstream_gateways \{(.*?)\}", conf, re.S)
    assert upstream is not None
    assert re.findall(r"server (\S+):8000", upstream.group(1)) == ["gateway-1", "gateway-2"]
    ws = re.search(r"location = /v1/ws \{(.*?)\}", conf, re.S)
    assert ws is not None
    assert "proxy_pass http://sheetstream_gateways;" in ws.group(1)
    assert "proxy_set_header Upgrade $http_upgrade;" in ws.group(1)
    assert "proxy_http_version 1.1;" in ws.group(1)
    assert set(proxy["depends_on"]) == {"api", "gateway-1", "gateway-2"}


def test_the_image_runs_the_sheetstream_command() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["sheetstream"]' in dockerfile
    assert "SHEETSTREAM_HOST=0.0.0.0" in dockerfile
    assert re.search(r"^HEALTHCHECK .*", dockerfile, re.M)
