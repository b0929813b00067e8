// Connection tokens against a real `sheetstream serve` process: a token function renews an expired token on the
// same connection without losing a change; refused sources and refused tokens end the stream instead of retrying.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { WebSocket } from "ws";

import { Client } from "../src/sheetstream.js";
import { mintToken, ServerProcess, waitFor } from "../support/server.js";

const FAST = { backoffInitialMs: 20, backoffMaxMs: 200, pingIntervalMs: 0 };
let server;

before(async () => {
  server = await new ServerProcess("--token-grace-s", "30").start();
});

after(async () => {
  await server?.dispose();
});

const tabs = () => [{ id: 0, title: "T", rows: [["k", "v"], ["a", "1"]] }];

/** A WebSocket class counting the connections it opens and the messages the client sends. */
function counting() {
  const seen = { opened: 0, sent: [] };
  class Counting extends WebSocket {
    constructor(...args) {
      super(...args);
      seen.opened += 1;
    }

    send(data) {
      seen.sent.push(JSON.parse(data));
      super.send(data);
    }
  }
  return { WebSocket: Counting, seen };
}

for (const kind of ["sync", "async"]) {
  test(`a ${kind} token function renews an expired token with auth on the same connection`, async () => {
    const data = tabs();
    const source = await server.fileSource(data);
    const issued = [];
    const mint = () => {
      issued.push(mintToken({ sources: [source.id], ttlS: issued.length === 0 ? 2 : 3600 }));
      return issued.at(-1);
    };
    const { WebSocket: Counting, seen } = counting();
    const token = kind === "sync" ? mint : async () => mint();
    const client = new Client(server.ws, { ...FAST, WebSocket: Counting, token });
    const events = { authenticated: [], errors: [], versions: [] };
    client.on("authenticated", (e) => events.authenticated.push(e));
    client.on("error", (e) => events.errors.push(e.code));
    try {
      const sub = client.subscribe(source.id);
      sub.on("change", (e) => events.versions.push(e.version));
      await waitFor(() => sub.tabs !== null, { what: "the snapshot" });
      const start = sub.version;
      data[0].rows[1][1] = "2";
      let version = await server.commit(source, data, start);
      await waitFor(() => events.authenticated.length === 1, { what: "the renewal", timeoutMs: 10_000 });
      data[0].rows[1][1] = "3";
      version = await server.commit(source, data, version);
      await waitFor(() => sub.version === version, { what: `version ${version}` });

      assert.deepEqual(events.errors, ["token_expired"]);
      assert.equal(issued.length, 2);
      const auth = seen.sent.filter((m) => m.type === "auth");
      assert.deepEqual(auth.map((m) => m.token), [issued[1]]);
      assert.match(events.authenticated[0].expiresAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(seen.opened, 1, "renewed on the same connection");
      assert.deepEqual(events.versions, [start + 1, start + 2]);
      assert.equal(client.url, `${server.ws}?token=${encodeURIComponent(issued[0])}`);
    } finally {
      client.close();
    }
  });
}

test("a source the token does not grant ends that subscription only", async () => {
  const [granted, other] = [await server.fileSource(tabs()), await server.fileSource(tabs())];
  const client = new Client(server.ws, { ...FAST, WebSocket, token: mintToken({ sources: [granted.id] }) });
  try {
    const refused = client.subscribe(other.id);
    const errors = [];
    refused.on("error", (e) => errors.push(e));
    const ok = client.subscribe(granted.id);
    await waitFor(() => errors.length === 1 && ok.tabs !== null, { what: "the refusal and the snapshot" });
    assert.deepEqual(errors.map((e) => [e.code, e.fatal]), [["forbidden_source", true]]);
    assert.equal(refused.state, "closed");
    assert.equal(ok.state, "live");
    assert.equal(client.state, "open");
  } finally {
    client.close();
  }
});

test("a refused token (4001) ends the stream instead of reconnecting", async () => {
  const { WebSocket: Counting, seen } = counting();
  const forged = mintToken({ secret: "another secret, also at least 32 bytes long" });
  const client = new Client(server.ws, { ...FAST, WebSocket: Counting, token: async () => forged });
  const errors = [];
  client.on("error", (e) => errors.push(e));
  client.subscribe("whatever");
  await waitFor(() => client.state === "closed", { what: "the client to give up" });
  assert.deepEqual(errors.map((e) => [e.code, e.message]), [["closed_4001", "invalid token: bad signature"]]);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(seen.opened, 1, "no reconnect after 4001");
});
