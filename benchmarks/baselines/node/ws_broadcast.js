// Baseline: a Node `ws` server sending each change to every subscriber (the fan-out benchmark's Node peer).
//
//     node benchmarks/baselines/node/ws_broadcast.js [--port 0]
//
// The same exchange as the Python baselines (benchmarks/baselines/common.py): prints {"event": "listening"},
// answers subscribe with subscribed + a small snapshot, and on a {"cmd": "change"} line on stdin sends the change
// message, encoded once into one Buffer, to every subscriber, then prints {"event": "sent"}. Pings every 20 s.
"use strict";

const readline = require("node:readline");
const { WebSocketServer } = require("ws");

const EPOCH = "baseline";
const PING_INTERVAL_MS = 20000;
const portArg = process.argv.indexOf("--port");
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;

const subscribers = new Set();
let version = 1;

function emit(event, fields) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + "\n");
}

const wss = new WebSocketServer({ host: "127.0.0.1", port, backlog: 4096, perMessageDeflate: false });

wss.on("connection", (ws) => {
  ws.isAlive = true;
  ws.on("pong", () => { ws.isAlive = true; });
  ws.on("message", (data, isBinary) => {
    if (isBinary) return;
    const request = JSON.parse(data);
    if (request.type !== "subscribe") return;
    ws.send(JSON.stringify({
      type: "subscribed", id: request.id, source: request.source, epoch: EPOCH, version, recovered: false,
    }));
    ws.send(JSON.stringify({
      type: "snapshot", source: request.source, epoch: EPOCH, version,
      tabs: [{ id: 0, title: "Sheet1", rows: [["id", "value"], ["1", "0"]] }],
    }));
    subscribers.add(ws);
  });
  ws.on("close", () => subscribers.delete(ws));
});

const keepalive = setInterval(() => {
  for (const ws of wss.clients) {
    if (!ws.isAlive) { ws.terminate(); continue; }
    ws.isAlive = false;
    ws.ping();
  }
}, PING_INTERVAL_MS);

wss.on("listening", () => emit("listening", { port: wss.address().port }));

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const command = JSON.parse(line);
  if (command.cmd === "quit") {
    lines.close();
    return;
  }
  if (command.cmd !== "change") return;
  version += 1;
  const at = new Date().toISOString();  // milliseconds and a Z, as sheetstream's `at`
  const data = Buffer.from(JSON.stringify({
    type: "change", source: command.source || "", epoch: command.epoch || EPOCH, version, at, ops: command.ops || [],
  }));
  for (const ws of subscribers) ws.send(data, { binary: false });
  emit("sent", { version, connections: subscribers.size });
});
lines.on("close", () => {
  clearInterval(keepalive);
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => process.exit(0));
});
