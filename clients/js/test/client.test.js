// The client against a real `sheetstream serve` process: op application, resume after a restart, gap detection.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { WebSocket } from "ws";

import { Client } from "../src/sheetstream.js";
import { mintToken, ServerProcess, waitFor } from "../support/server.js";

const FAST = { WebSocket, backoffInitialMs: 20, backoffMaxMs: 200, pingIntervalMs: 0 };
let server;

before(async () => {
  server = await new ServerProcess().start();
});

after(async () => {
  await server?.dispose();
});

const book = () => [
  { id: 0, title: "People", rows: [["name", "score"], ["ada", "1"], ["bob", "2"], ["cy", "3"]] },
  { id: 7, title: "Log", rows: [["entry"]] },
];

/** Record everything a subscription emits. */
function record(sub) {
  const seen = { subscribed: [], snapshots: [], versions: [], gaps: [], errors: [] };
  sub.on("subscribed", (e) => seen.subscribed.push(e));
  sub.on("snapshot", (e) => seen.snapshots.push(e.version));
  sub.on("change", (e) => seen.versions.push(e.version));
  sub.on("gap", (e) => seen.gaps.push(e));
  sub.on("error", (e) => seen.errors.push(e));
  return seen;
}

async function caughtUp(sub, source) {
  const version = await server.version(source.id);
  await waitFor(() => sub.version === version && sub.tabs !== null, { what: `the client at version ${version}` });
  const snapshot = await server.snapshot(source.id);
  assert.equal(snapshot.version, sub.version);
  assert.deepEqual(sub.tabs, snapshot.tabs, "the client's copy differs from the server's snapshot");
}

test("ops applied by the client give the server's snapshot, version after version", async () => {
  const tabs = book();
  const source = await server.fileSource(tabs);
  const client = new Client(server.ws, FAST);
  try {
    const sub = client.subscribe(source.id);
    const seen = record(sub);
    await caughtUp(sub, source);
    const edits = [
      (t) => { t[0].rows[1][1] = "10"; },                            // set
      (t) => { t[0].rows.splice(2, 0, ["dee", "4"]); },               // insert in the middle
      (t) => { t[0].rows.splice(1, 1); },                              // delete
      (t) => { t[1].title = "History"; },                              // rename
      (t) => { t.push({ id: 9, title: "Extra", rows: [["x", "y"]] }); }, // add a tab
      (t) => { t[0].rows[3][1] = ""; t[0].rows[1].push("", "wide"); },  // trim, and a ragged row
      (t) => { t[0].rows.length = 2; },                                // trailing rows gone
    ];
    let version = sub.version;
    for (const edit of edits) {
      edit(tabs);
      version = await server.commit(source, tabs, version);
      await caughtUp(sub, source);
    }
    assert.equal(seen.snapshots.length, 1);
    assert.deepEqual(seen.versions, Array.from({ length: seen.versions.length }, (_, i) => seen.snapshots[0] + 1 + i));
    assert.ok(seen.versions.length >= edits.length);
    assert.deepEqual(sub.tabs.map((t) => t.title), ["People", "History", "Extra"]);
    assert.deepEqual(seen.errors, []);
  } finally {
    client.close();
  }
});

test("after a server restart the client resumes with since: the missed change, no snapshot, no repeat", async () => {
  const tabs = book();
  const source = await server.fileSource(tabs);
  const client = new Client(server.ws, FAST);
  const states = [];
  client.on("status", (e) => states.push(e.state));
  try {
    const sub = client.subscribe(source.id);
    const seen = record(sub);
    await caughtUp(sub, source);
    tabs[0].rows[1][1] = "11";
    await server.commit(source, tabs, sub.version);
    await caughtUp(sub, source);

    await server.stop();
    await waitFor(() => client.state === "reconnecting", { what: "the client to notice" });
    tabs[0].rows.splice(1, 0, ["new", "0"]); // changed while the server is down: read when it starts again
    source.write(tabs);
    await server.start();
    const atRestart = sub.version;
    await waitFor(async () => (await server.version(source.id)) > atRestart, { what: "the restarted read" });
    await caughtUp(sub, source);

    assert.equal(seen.snapshots.length, 1, "a resume must not need a snapshot");
    assert.equal(seen.subscribed.length, 2);
    assert.deepEqual(seen.subscribed.map((e) => [e.recovered, e.resumed, e.resynced]),
      [[false, false, false], [true, true, false]]);
    assert.equal(seen.subscribed[1].version, atRestart);
    assert.deepEqual(seen.versions, Array.from({ length: seen.versions.length }, (_, i) => seen.snapshots[0] + 1 + i));
    assert.ok(states.includes("reconnecting"));
    assert.equal(sub.tabs[0].rows[1][0], "new");
  } finally {
    client.close();
  }
});

test("a change whose version skips one makes the client resubscribe with since on the same connection", async () => {
  const tabs = book();
  const source = await server.fileSource(tabs);
  const sent = [];
  let opened = 0;
  let dropVersion = null;
  // The network loses exactly one change frame: the client must notice the hole and fill it.
  class LossyWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      opened += 1;
    }

    send(data) {
      sent.push(JSON.parse(data));
      super.send(data);
    }

    set onmessage(handler) {
      super.onmessage = handler && ((event) => {
        const message = JSON.parse(event.data);
        if (message.type === "change" && message.version === dropVersion) {
          dropVersion = null;
          return;
        }
        handler(event);
      });
    }

    get onmessage() {
      return super.onmessage;
    }
  }
  const client = new Client(server.ws, { ...FAST, WebSocket: LossyWebSocket });
  try {
    const sub = client.subscribe(source.id);
    const seen = record(sub);
    await caughtUp(sub, source);
    const start = sub.version;
    dropVersion = start + 2;
    let version = start;
    for (let step = 1; step <= 4; step++) {
      tabs[0].rows[1][1] = `v${step}`;
      version = await server.commit(source, tabs, version);
    }
    await caughtUp(sub, source);

    assert.equal(dropVersion, null, "the change to lose was never sent");
    assert.deepEqual(seen.gaps.map((g) => [g.expected, g.got]), [[start + 2, start + 3]]);
    assert.deepEqual(seen.versions, [start + 1, start + 2, start + 3, start + 4]);
    assert.equal(opened, 1, "a gap is closed on the same connection");
    const [unsubscribe, resubscribe] = sent.slice(-2);
    assert.equal(unsubscribe.type, "unsubscribe");
    assert.deepEqual(resubscribe.since, { epoch: sub.epoch, version: start + 1 });
    assert.deepEqual(seen.subscribed.at(-1).recovered, true);
    assert.equal(seen.snapshots.length, 1);
  } finally {
    client.close();
  }
});

test("one connection carries many subscriptions: unsubscribe, subscribe again, an unknown source", async () => {
  const tabs = book();
  const [first, second] = [await server.fileSource(tabs), await server.fileSource(book())];
  const token = mintToken();
  const client = new Client(server.ws, { ...FAST, token });
  assert.ok(client.url.endsWith(`/v1/ws?token=${encodeURIComponent(token)}`));
  try {
    const a = client.subscribe(first.id);
    const b = client.subscribe(second.id);
    const unknown = client.subscribe("no-such-source");
    const refused = record(unknown);
    await caughtUp(a, first);
    await caughtUp(b, second);
    await waitFor(() => refused.errors.length === 1, { what: "the refusal" });
    assert.deepEqual(refused.errors.map((e) => [e.code, e.fatal]), [["unknown_source", true]]);
    assert.equal(unknown.state, "closed");

    a.unsubscribe();
    const stale = a.version;
    tabs[0].rows[1][1] = "changed";
    const version = await server.commit(first, tabs, stale);
    assert.equal(a.version, stale, "an unsubscribed source gets no changes");
    assert.equal(a.state, "closed");

    const again = client.subscribe(first.id, { since: { epoch: a.epoch, version: stale } });
    const seen = record(again);
    await waitFor(() => again.version === version, { what: "the resubscription to catch up" });
    assert.deepEqual(seen.subscribed.map((e) => e.recovered), [true]);
    assert.deepEqual(seen.versions, Array.from({ length: version - stale }, (_, i) => stale + 1 + i));
    assert.equal(b.state, "live");
  } finally {
    client.close();
  }
});
