"""Wiring per role: what a process runs for `monitor`, `gateway` and `api`, alone or together (`serve` = all three).

- monitor: reads sources, commits to the store, publishes on the bus. Started alone it shares the sources with
  the other monitors through leases (`SourceClaims`, renewed every ttl/3, which also rescans the store) and
  follows the API's commands (Redis pub/sub beside a Redis bus).
- gateway: the WebSocket endpoint `/v1/ws`, the hub and the dispatcher consuming the bus as consumer group
  `node_id`; beside a Redis bus it keeps this node's entry in the connection registry.
- api: the REST API and the web page; without a monitor in the process, source changes are announced to the
  monitors over the control channel.

Every role serves `/healthz` and `/readyz` on its port, for the orchestrator's probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import FastAPI

from sheetstream.buses.registry import open_bus
from sheetstream.errors import ConfigError
from sheetstream.gateways.local import Hub, websocket_route
from sheetstream.runtime.dead_letters import DeadLetters
from sheetstream.runtime.dispatcher import Dispatcher
from sheetstream.runtime.leases import SourceClaims
from sheetstream.runtime.monitor import Monitor
from sheetstream.runtime.services import Services, SourceControl
from sheetstream.runtime.settings import Settings
from sheetstream.stores.sealed import open_sealed_store

if TYPE_CHECKING:
    from sheetstream.gateways.registry import Holdings

log = structlog.get_logger("sheetstream.roles")

ROLES = ("monitor", "gateway", "api")
ALL_ROLES: frozenset[str] = frozenset(ROLES)


def default_node_id() -> str:
    """`hostname-pid`: unique per process. Deployments set a stable `--node-id` per node instead."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class NodeOptions:
    """What a node of a scale-out deployment needs beyond `Settings`."""

    node_id: str = field(default_factory=default_node_id)
    """Names this node's consumer group on the bus and its registry entry: unique among live nodes."""
    registry_interval_s: float = 5.0
    """Heartbeat of the connection registry (an entry lives three heartbeats)."""
    lease_ttl_s: float = 10.0
    """Source leases of a monitor run alone: when it dies, the others take its sources within this time."""


class NoSourceControl:
    """The API role's control when there is no channel to the monitors: they find changes by rescanning."""

    def refresh(self, source_id: str) -> None:
        """Nothing to do: the monitor reads the source at its next poll."""
        log.debug("refresh not forwarded: no control channel", source=source_id)

    def reload(self, source_id: str) -> None:
        """Nothing to do: the monitors' store rescan picks the change up."""


def is_redis(url: str) -> bool:
    """Whether `url` names a Redis server."""
    return url.split("://", 1)[0].lower() in ("redis", "rediss")


def hub_holdings(hub: Hub) -> Holdings:
    """The hub's connections and its subscriptions per source, for the connection registry."""
    from sheetstream.gateways.registry import Holdings

    counts: Counter[str] = Counter()
    for conn_id in list(hub.sessions):
        counts.update(hub.table.sources_of(conn_id))
    return Holdings(connections=hub.connection_count, sources=dict(counts))


def check_roles(roles: Collection[str]) -> frozenset[str]:
    """The roles as a set; ConfigError on an unknown one or none."""
    unknown = set(roles) - ALL_ROLES
    if unknown or not roles:
        raise ConfigError(f"roles must be some of {', '.join(ROLES)}; got {sorted(roles)}")
    return frozenset(roles)


@contextlib.asynccontextmanager
async def running_roles(
    settings: Settings,
    roles: Collection[str] = ALL_ROLES,
    node: NodeOptions | None = None,
    *,
    demo_path: Path | None = None,
) -> AsyncIterator[tuple[FastAPI, Services]]:
    """Open the store and bus, start the parts of `roles`, and yield the app; stop everything on exit."""
    roles = check_roles(roles)
    node = node or NodeOptions()
    async with contextlib.AsyncExitStack() as stack:
        # Source credentials are sealed at rest in every role (stores/sealed.py says where the key comes from).
        store = open_sealed_store(
            settings.store, secret_key=settings.secret_key, secret_key_file=settings.secret_key_file
        )
        await store.open()
        stack.push_async_callback(store.close)
        bus = open_bus(settings.bus)
        await bus.open()
        stack.push_async_callback(bus.close)

        monitor: Monitor | None = None
        control: SourceControl
        if "monitor" in roles:
            # Apart from the other roles there may be several monitors: leases share the sources out. All in one
            # process (`serve`) is the embedded mode: one monitor watches everything.
            claims = None if roles == ALL_ROLES else SourceClaims(store, holder=node.node_id, ttl_s=node.lease_ttl_s)
            from sheetstream.runtime.hints import google_scheduler

            # Google sources read on the quota-aware scheduler; it favours sources someone is subscribed to.
            scheduler = google_scheduler(settings, is_watched=lambda source_id: _is_watched(services, source_id))
            monitor = Monitor(
                store,
                bus,
                retention=settings.retention,
                backoff_max_s=settings.backoff_max_s,
                claims=claims,
                scheduler=scheduler,
            )
            control = monitor
        elif is_redis(settings.bus):
            from sheetstream.runtime.control import RedisSourceControl

            redis_control = RedisSourceControl(settings.bus)
            stack.push_async_callback(redis_control.close)
            control = redis_control
        else:
            control = NoSourceControl()
        services = Services(settings=settings, store=store, bus=bus, monitor=control, retention=settings.retention)

        if "gateway" in roles:
            services.hub = await _start_gateway(stack, services, node)
        if demo_path is not None:
            from sheetstream.runtime.server import ensure_demo_source

            await ensure_demo_source(services, demo_path)
            from sheetstream.runtime.demo import start_google_demo

            await start_google_demo(stack, services)
        if monitor is not None:
            await _start_monitor(stack, services, monitor, node, follow=roles != ALL_ROLES)
        log.info("roles started", roles=sorted(roles), node=node.node_id)
        yield build_app(services, roles), services


def _is_watched(services: Services | None, source_id: str) -> bool:
    """Whether a local WebSocket client is subscribed to the source."""
    hub = services.hub if services is not None else None
    return hub is not None and bool(hub.table.subscribers(source_id))


async def _start_gateway(stack: contextlib.AsyncExitStack, services: Services, node: NodeOptions) -> Hub:
    hub = Hub(services.store, services.settings)
    consumer = node.node_id if is_redis(services.settings.bus) else "gateway"
    dead_letters = DeadLetters.of(services)
    services.bus.dead_letter_sink = dead_letters.bus_gave_up  # what the bus gives up on goes to the store too
    dispatcher = Dispatcher(
        services.bus,
        hub,
        consumer=consumer,
        store=services.store,
        is_watched=lambda source: bool(hub.table.subscribers(source)),
        dead_letters=dead_letters,
        max_deliveries=services.settings.max_deliveries,
    )
    task = asyncio.create_task(dispatcher.run(), name="dispatcher")
    stack.push_async_callback(_cancel, task)
    stack.push_async_callback(hub.close)
    if services.settings.ws_port is not None:  # the fast listener beside /v1/ws on the ASGI app, same hub
        from sheetstream.gateways.picows_listener import PicowsListener
        from sheetstream.runtime.tls import server_ssl_context

        listener = PicowsListener(hub, services.settings)
        tls = server_ssl_context(services.settings.tls_cert, services.settings.tls_key)
        await listener.start(services.settings.host, services.settings.ws_port, ssl=tls)
        stack.push_async_callback(listener.stop)  # before hub.close: its sockets close with 1001 first
    if is_redis(services.settings.bus):
        from sheetstream.gateways.registry import ConnectionRegistry  # imports redis: only when it is used

        registry = ConnectionRegistry(
            services.settings.bus,
            node.node_id,
            lambda: hub_holdings(hub),
            interval_s=node.registry_interval_s,
            ttl_s=3 * node.registry_interval_s,
        )
        try:
            await registry.start()
        except Exception as exc:  # presence is informative: serving must not wait for it
            log.warning("connection registry unavailable", error=repr(exc))
        stack.push_async_callback(registry.stop)
    return hub


async def _start_monitor(
    stack: contextlib.AsyncExitStack, services: Services, monitor: Monitor, node: NodeOptions, *, follow: bool
) -> None:
    await monitor.start()
    stack.push_async_callback(monitor.stop)
    if not follow:
        return  # every role in one process: the REST API calls this monitor directly
    from sheetstream.runtime.control import follow_commands

    if is_redis(services.settings.bus):
        task = asyncio.create_task(follow_commands(services.settings.bus, monitor), name="control commands")
        stack.push_async_callback(_cancel, task)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def build_app(services: Services, roles: Collection[str]) -> FastAPI:
    """The ASGI app of `roles`: REST and web page (api), `/v1/ws` (gateway), and health probes (all)."""
    from sheetstream.runtime.server import create_app

    if "api" in roles:
        return create_app(services, services.hub)
    from sheetstream.api.health import health_router
    from sheetstream.api.metrics import metrics_router

    app = FastAPI(title="sheetstream", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    app.include_router(health_router())
    app.include_router(metrics_router())
    if services.hub is not None:
        app.router.routes.append(websocket_route(services.hub))
    return app


async def serve_roles(
    settings: Settings,
    roles: Collection[str] = ALL_ROLES,
    node: NodeOptions | None = None,
    *,
    demo_path: Path | None = None,
) -> None:
    """Run `roles` in this process until interrupted (SIGINT, SIGTERM), then stop them cleanly."""
    from sheetstream.runtime.server import _Server, uvicorn_config

    class Server(_Server):
        """uvicorn re-raises the signal that stopped it as soon as it returns: hold it until the roles stopped."""

        deferred: tuple[int, ...] = ()

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    self.deferred = tuple(self._captured_signals)
                    self._captured_signals.clear()

    async with running_roles(settings, roles, node, demo_path=demo_path) as (app, services):
        from sheetstream.runtime import gc_tuning

        gc_tuning.tune_collector()  # start-up is done: freeze its objects (see gc_tuning for why)
        server = Server(uvicorn_config(app, settings), services.hub)
        log.info(
            "serving",
            roles=sorted(check_roles(roles)),
            url=f"{'https' if settings.tls_cert else 'http'}://{settings.host}:{settings.port}",
            store=settings.store,
            bus=settings.bus,
        )
        await server.serve()
    # Leases released, registry entry removed, connections closed: now exit the way the signal asks.
    for captured in reversed(server.deferred):
        signal.raise_signal(captured)
