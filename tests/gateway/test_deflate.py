"""permessage-deflate on the fast listener: negotiated per connection, each message compressed once for all."""

from __future__ import annotations

import base64
import os
import zlib

import orjson
import pytest
from websockets.asyncio.client import connect

from sheetstream.gateways import deflate
from sheetstream.gateways.deflate import RESPONSE, InflateError, TooBig, inflate, negotiate
from sheetstream.gateways.picows_listener import DEFLATE_LANE
from sheetstream.runtime.settings import Settings

from .conftest import fast_stack, recv, subscribe, wait_for
from .rawws import masked_frame, open_raw, read_frame

OFFER = "permessage-deflate; client_max_window_bits"
"""What the websockets client offers by default."""


@pytest.mark.parametrize(
    "header",
    [
        "permessage-deflate",
        OFFER,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=15; client_max_window_bits=10",
        "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=10, permessage-deflate",
    ],
)
def test_acceptable_offers_get_the_shared_frame_answer(header: str) -> None:
    assert negotiate(header) == RESPONSE
    assert RESPONSE == "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "x-webkit-deflate-frame",
        "permessage-deflate; server_max_window_bits=10",  # one shared frame cannot honour a smaller window
        "permessage-deflate; client_max_window_bits=20",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; no_such_parameter",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate;;",
    ],
)
def test_other_headers_get_no_compression(header: str | None) -> None:
    assert negotiate(header) is None


@pytest.mark.parametrize("data", [b"", b"a", b'{"type":"change","ops":[]}' * 40, os.urandom(5000)])
def test_a_message_deflates_on_its_own_and_inflates_back(data: bytes) -> None:
    payload = deflate.deflate(data)
    assert not payload.endswith(b"\x00\x00\xff\xff")
    assert zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff") == data  # any inflater, no context
    assert inflate(payload, max_size=len(data)) == data


def test_inflating_stops_at_the_limit_and_rejects_garbage() -> None:
    bomb = deflate.deflate(b"\x00" * 10_000_000)
    assert len(bomb) < 20_000
    with pytest.raises(TooBig):
        inflate(bomb, max_size=65536)
    with pytest.raises(InflateError):
        inflate(b"\xff\xff\xff\xff not deflate", max_size=65536)


async def test_clients_that_offer_it_share_one_compressed_frame_and_others_get_plain_text() -> None:
    value = "v" * 300  # long enough to be compressed
    async with fast_stack(settings=Settings(anonymous=True, ws_deflate=True)) as stack:
        (r1, w1, head1), (r2, w2, head2) = [await open_raw(stack.listener.port, extensions=OFFER) for _ in range(2)]
        plain_reader, plain_writer, plain_head = await open_raw(stack.listener.port)
        assert f"Sec-WebSocket-Extensions: {RESPONSE}".encode() in head1 and RESPONSE.encode() in head2
        assert b"Sec-WebSocket-Extensions" not in plain_head
        subscribe_frame = orjson.dumps({"type": "subscribe", "id": "s", "source": stack.source})
        for reader, writer in ((r1, w1), (r2, w2), (plain_reader, plain_writer)):
            writer.write(masked_frame(0x1, subscribe_frame))  # uncompressed: RSV1 is per message
            assert orjson.loads((await read_frame(reader)).payload)["type"] == "subscribed"
            await read_frame(reader)  # the snapshot
        await stack.commit()  # the sessions deliver the first change, then hand their connections to the live group
        for reader in (r1, r2, plain_reader):
            await read_frame(reader)
        version = (await stack.commit(value=value)).version
        frames = [await read_frame(reader) for reader in (r1, r2)]
        plain = await read_frame(plain_reader)
        assert [f.rsv1 for f in frames] == [True, True] and not plain.rsv1
        assert frames[0].payload == frames[1].payload  # one compressed frame, shared
        assert len(frames[0].payload) < len(plain.payload)
        assert inflate(frames[0].payload, max_size=1 << 20) == plain.payload
        fanout = stack.hub.groups[stack.source].fanout
        assert fanout is not None and fanout.one_by_one == []
        assert sorted((lane is DEFLATE_LANE, len(targets)) for lane, targets in fanout.lanes) == [(False, 1), (True, 2)]
        change = orjson.loads(plain.payload)
        assert change["version"] == version and change["ops"][0]["new"] == value
        for writer in (w1, w2, plain_writer):
            writer.close()


async def test_the_websockets_client_negotiates_it_and_its_compressed_messages_are_understood() -> None:
    async with (
        fast_stack(settings=Settings(anonymous=True, ws_deflate=True)) as stack,
        connect(stack.url, compression="deflate") as compressed,
        connect(stack.url, compression=None) as plain,
    ):
        assert compressed.response is not None and compressed.response.headers["Sec-WebSocket-Extensions"] == RESPONSE
        await subscribe(compressed, stack.source)  # sent compressed by the client, inflated by the listener
        await subscribe(plain, stack.source)
        for n in range(1, 4):
            value = f"{n}" * (10 if n == 2 else 400)  # a short message goes uncompressed
            version = (await stack.commit(value=value)).version
            got, expected = await recv(compressed), await recv(plain)
            assert got == expected and got["version"] == version and got["ops"][0]["new"] == value


async def test_without_the_setting_an_offer_is_declined() -> None:
    async with fast_stack() as stack, connect(stack.url, compression="deflate") as ws:
        assert ws.response is not None and "Sec-WebSocket-Extensions" not in ws.response.headers
        await subscribe(ws, stack.source)
        version = (await stack.commit(value="x" * 400)).version
        assert (await recv(ws))["version"] == version


@pytest.mark.parametrize(
    ("settings", "frames", "code"),
    [
        (Settings(anonymous=True), [masked_frame(0x1, b"{}", rsv1=True)], 1002),  # RSV1 without the extension
        (
            Settings(anonymous=True, ws_deflate=True),
            [masked_frame(0x1, b"{", fin=False), masked_frame(0x0, b"}", rsv1=True)],  # RSV1 on a continuation
            1002,
        ),
        (
            Settings(anonymous=True, ws_deflate=True, max_frame_bytes=1024),
            [masked_frame(0x1, deflate.deflate(b" " * 100_000), rsv1=True)],  # small on the wire, 100 KB inflated
            1009,
        ),
        (Settings(anonymous=True, ws_deflate=True), [masked_frame(0x1, b"\xff\xff\xff garbage", rsv1=True)], 1007),
    ],
    ids=["rsv1-not-negotiated", "rsv1-on-continuation", "inflates-too-big", "not-deflate"],
)
async def test_a_bad_compressed_frame_closes_that_connection_only(
    settings: Settings, frames: list[bytes], code: int
) -> None:
    async with fast_stack(settings=settings) as stack, connect(stack.url, compression=None) as bystander:
        await subscribe(bystander, stack.source)
        reader, writer, _ = await open_raw(stack.listener.port, extensions=OFFER)
        for frame in frames:
            writer.write(frame)
        close = await read_frame(reader)
        assert close.opcode == 0x8 and int.from_bytes(close.payload[:2]) == code
        writer.close()
        version = (await stack.commit(value="y" * 400)).version
        assert (await recv(bystander))["version"] == version


async def test_a_compressed_reader_that_falls_behind_gets_its_queue_compressed_in_order() -> None:
    async with (
        fast_stack(settings=Settings(anonymous=True, ws_deflate=True, send_queue_size=1000)) as stack,
        connect(stack.url, max_queue=1, max_size=None, compression="deflate") as lagging,
    ):
        await subscribe(lagging, stack.source)
        (conn_id,) = stack.hub.table.subscribers(stack.source)
        conn = stack.listener.connections[conn_id]
        assert conn.deflate
        values = []
        while conn.queued < 3:  # incompressible values: the socket and the transport fill up, then our queue
            values.append(base64.b64encode(os.urandom(48 * 1024)).decode())
            version = (await stack.commit(value=values[-1])).version
            await wait_for(lambda v=version: stack.dispatcher.dispatched >= v, "the change to be sent")
            assert version < 500, "the transport never asked us to hold back"
        received = [await recv(lagging, 10) for _ in values]
        assert [m["version"] for m in received] == list(range(1, len(values) + 1))
        assert [m["ops"][0]["new"] for m in received] == values
