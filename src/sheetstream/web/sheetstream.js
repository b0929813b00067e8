/**
 * sheetstream client: follow live, cell-level changes of spreadsheet sources over one WebSocket (`/v1/ws`).
 *
 *     import { Client } from "./sheetstream.js";
 *     const client = new Client("ws://127.0.0.1:8000/v1/ws");
 *     const sub = client.subscribe("SOURCE_ID");
 *     sub.on("snapshot", ({ tabs, version }) => render(tabs));
 *     sub.on("change", ({ ops, tabs, version }) => render(tabs));
 *
 * Works in browsers (global WebSocket) and in Node 20+ (pass a constructor: `new Client(url, { WebSocket })`
 * with `import { WebSocket } from "ws"`). The client remembers the (epoch, version) each subscription holds;
 * after a dropped connection it reconnects with exponential backoff and jitter and resubscribes with `since`,
 * so the server replays exactly the missed changes or sends a fresh snapshot. A change whose version does not
 * follow the last one (a gap) makes it resubscribe with `since` on the same connection. Each subscription keeps
 * a local copy of the tabs (`sub.tabs`), updated with `applyOps`, the same rules as the server's core/apply.py.
 *
 * Connection tokens: `token` is a string, or a function (which may return a promise) called for each connection
 * and, when the server says the token expired (`token_expired`), for a fresh one, sent with `auth` on the same
 * connection: `new Client(url, { token: () => fetch("/my-token").then((r) => r.text()) })`.
 *
 * The protocol is documented in docs/protocol.md and docs/asyncapi.yaml of the sheetstream repository.
 * The canonical file is src/sheetstream/web/sheetstream.js (served at /static/sheetstream.js);
 * clients/js/src/sheetstream.js is a copy made by `npm run sync`.
 */

// --- applying ops ---------------------------------------------------------------------------------------------

/** An op does not fit the tabs it is applied to: the copy is not the one the ops were computed from. */
export class ApplyError extends Error {
  constructor(op, message) {
    super(`cannot apply ${op?.op} to tab ${op?.tab}: ${message}`);
    this.name = "ApplyError";
    this.op = op;
  }
}

/** Cells compare as in Python: 1 == 1.0 == true. */
function sameCell(a, b) {
  if (a === b) return true;
  const num = (v) => (typeof v === "boolean" ? Number(v) : v);
  return typeof num(a) === "number" && num(a) === num(b);
}

function check(op, ok, message) {
  if (!ok) throw new ApplyError(op, message);
}

const isIndex = (value) => Number.isInteger(value);

/** Rows as the server keeps them: trailing empty cells of each row and trailing empty rows trimmed. */
export function normalizeRows(rows) {
  const out = rows.map((row) => {
    let end = row.length;
    while (end && (row[end - 1] === "" || row[end - 1] === null || row[end - 1] === undefined)) end -= 1;
    const trimmed = end === row.length ? row : row.slice(0, end);
    return trimmed.includes(null) || trimmed.includes(undefined) ? trimmed.map((c) => c ?? "") : trimmed;
  });
  while (out.length && out[out.length - 1].length === 0) out.pop();
  return out;
}

/**
 * The tabs after `ops`, applied in order: a new array; `tabs` is not modified and untouched tabs are shared.
 * Tabs are `{id, title, rows}`. `set` pads a short row with "", `resize` truncates, and trailing empty cells and
 * rows are trimmed once, at the end. Throws ApplyError when an op does not fit.
 */
export function applyOps(tabs, ops) {
  const drafts = tabs.map((tab) => ({ tab, title: tab.title, rows: null }));
  const grid = (draft) => (draft.rows ??= draft.tab.rows.slice());
  for (const op of ops) {
    if (op.op === "add_tab") {
      check(op, !drafts.some((d) => d.tab.id === op.tab), "a tab with this id already exists");
      check(op, isIndex(op.index) && op.index >= 0 && op.index <= drafts.length,
        `index ${op.index} out of range 0..${drafts.length}`);
      const tab = { id: op.tab, title: op.title, rows: op.rows.map((r) => r.slice()) };
      drafts.splice(op.index, 0, { tab, title: tab.title, rows: tab.rows });
      continue;
    }
    const position = drafts.findIndex((d) => d.tab.id === op.tab);
    check(op, position >= 0, "no such tab");
    const draft = drafts[position];
    switch (op.op) {
      case "remove_tab":
        drafts.splice(position, 1);
        break;
      case "rename_tab":
        check(op, draft.title === op.old, `its title is ${JSON.stringify(draft.title)}, not ${JSON.stringify(op.old)}`);
        draft.title = op.new;
        break;
      case "move_tab":
        check(op, isIndex(op.index) && op.index >= 0 && op.index < drafts.length,
          `index ${op.index} out of range 0..${drafts.length - 1}`);
        drafts.splice(op.index, 0, ...drafts.splice(position, 1));
        break;
      case "set": {
        const rows = grid(draft);
        check(op, isIndex(op.row) && op.row >= 0 && op.row < rows.length,
          `row ${op.row} out of range (the tab has ${rows.length} rows)`);
        check(op, isIndex(op.col) && op.col >= 0, `negative column ${op.col}`);
        const row = rows[op.row].slice();
        const current = op.col < row.length ? row[op.col] : "";
        check(op, sameCell(current, op.old),
          `cell ${op.a1} holds ${JSON.stringify(current)}, not ${JSON.stringify(op.old)}`);
        while (row.length <= op.col) row.push("");
        row[op.col] = op.new;
        rows[op.row] = row;
        break;
      }
      case "insert_rows": {
        const rows = grid(draft);
        check(op, isIndex(op.at) && op.at >= 0 && op.at <= rows.length, `row ${op.at} out of range 0..${rows.length}`);
        rows.splice(op.at, 0, ...op.rows.map((r) => r.slice()));
        break;
      }
      case "delete_rows": {
        const rows = grid(draft);
        check(op, isIndex(op.at) && op.at >= 0 && op.count >= 0 && op.at + op.count <= rows.length,
          `rows ${op.at}..${op.at + op.count - 1} out of range (the tab has ${rows.length} rows)`);
        rows.splice(op.at, op.count);
        break;
      }
      case "resize": {
        check(op, op.rows >= 0 && op.cols >= 0, `negative extent ${op.rows} x ${op.cols}`);
        const rows = grid(draft);
        rows.length = Math.min(rows.length, op.rows);
        for (let i = 0; i < rows.length; i++) if (rows[i].length > op.cols) rows[i] = rows[i].slice(0, op.cols);
        break;
      }
      default:
        throw new ApplyError(op, "unknown op");
    }
  }
  return drafts.map((d) => {
    if (d.rows === null && d.title === d.tab.title) return d.tab;
    return { id: d.tab.id, title: d.title, rows: normalizeRows(d.rows ?? d.tab.rows) };
  });
}

// --- events ---------------------------------------------------------------------------------------------------

/** A minimal event emitter: `on(type, fn)` returns a function that removes the listener. */
class Emitter {
  #listeners = new Map();

  on(type, fn) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type).add(fn);
    return () => this.#listeners.get(type)?.delete(fn);
  }

  emit(type, detail) {
    for (const fn of [...(this.#listeners.get(type) ?? [])]) {
      try {
        fn(detail);
      } catch (error) {
        // A listener's bug must not break the stream for the others.
        console.error(`sheetstream: a "${type}" listener threw`, error);
      }
    }
  }
}

// --- subscriptions --------------------------------------------------------------------------------------------

/** Error codes after which resubscribing cannot help. */
const FATAL_ERRORS = new Set(["unknown_source", "forbidden_source", "invalid_message", "too_many_subscriptions"]);
/** Close codes after which reconnecting cannot help (see docs/protocol.md, "Close codes"). */
const FATAL_CLOSES = new Set([4000, 4001, 4003]);

/**
 * One followed source. Events: "subscribed" {epoch, version, recovered, resumed, resynced},
 * "snapshot" {epoch, version, tabs}, "change" {epoch, version, at, ops, tabs}, "gap" {expected, got},
 * "error" {code, message, fatal}, "closed" {}.
 */
export class Subscription extends Emitter {
  constructor(client, source, { since = null, tabs = null } = {}) {
    super();
    this.client = client;
    this.source = source;
    this.filter = tabs;
    /** The (epoch, version) of the local copy; null before the first snapshot. */
    this.epoch = since?.epoch ?? null;
    this.version = since?.version ?? 0;
    /** The local copy: [{id, title, rows}], or null until a snapshot arrived (or when resuming from `since`). */
    this.tabs = null;
    /** "pending" (waiting for `subscribed`), "live", or "closed". */
    this.state = "pending";
    this.requestId = null;
    this.resubscribes = 0;
  }

  /** The position to resume from, as the protocol's `since`. */
  get since() {
    return this.epoch === null ? null : { epoch: this.epoch, version: this.version };
  }

  /** Stop following the source. */
  unsubscribe() {
    this.client._unsubscribe(this);
  }

  _request(id) {
    this.requestId = id;
    this.state = "pending";
    const message = { type: "subscribe", id, source: this.source };
    if (this.since) message.since = this.since;
    if (this.filter) message.tabs = this.filter;
    return message;
  }

  /** Handle one server message about this source; returns "resubscribe" when the client must resubscribe. */
  _handle(message) {
    switch (message.type) {
      case "subscribed": {
        const hadPosition = this.epoch !== null;
        this.state = "live";
        this.emit("subscribed", {
          epoch: message.epoch, version: message.version, recovered: message.recovered,
          resumed: hadPosition && message.recovered, resynced: hadPosition && !message.recovered,
        });
        return null;
      }
      case "snapshot":
        this.epoch = message.epoch;
        this.version = message.version;
        this.tabs = message.tabs;
        this.emit("snapshot", { epoch: message.epoch, version: message.version, tabs: message.tabs });
        return null;
      case "change":
        return this._change(message);
      case "error":
        if (FATAL_ERRORS.has(message.code)) {
          this.state = "closed";
          this.emit("error", { code: message.code, message: message.message, fatal: true });
          this.client._forget(this);
          return null;
        }
        this.emit("error", { code: message.code, message: message.message, fatal: false });
        // "unavailable": the subscription ended; the store may be back soon.
        return message.code === "unavailable" ? "retry" : null;
      default:
        return null;
    }
  }

  _change(message) {
    if (this.epoch !== null && message.epoch === this.epoch && message.version <= this.version) return null;
    if (this.epoch === null || message.epoch !== this.epoch || message.version !== this.version + 1) {
      this.emit("gap", { expected: this.version + 1, got: message.version, epoch: message.epoch });
      return "resubscribe";
    }
    if (this.tabs !== null) {
      try {
        this.tabs = applyOps(this.tabs, message.ops);
      } catch (error) {
        // The copy and the server disagree: only a fresh snapshot can be trusted.
        this.emit("error", { code: "apply_failed", message: String(error.message ?? error), fatal: false });
        this.epoch = null;
        this.version = 0;
        this.tabs = null;
        return "resubscribe";
      }
    }
    this.version = message.version;
    this.emit("change", {
      epoch: message.epoch, version: message.version, at: message.at, ops: message.ops, tabs: this.tabs,
    });
    return null;
  }
}

// --- the client -----------------------------------------------------------------------------------------------

/** Append `token` to a URL as `?token=` (browsers cannot set headers on a WebSocket). */
function withToken(url, token) {
  if (!token) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
}

/** Backoff before reconnect attempt `failures` (1, 2, ...): a random delay in [ceiling/2, ceiling]. */
export function backoffDelay(failures, { initialMs = 250, maxMs = 10_000, random = Math.random } = {}) {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(failures, 20));
  return ceiling / 2 + random() * (ceiling / 2);
}

/**
 * One WebSocket connection carrying any number of subscriptions. Events: "status" {state, attempt?, delayMs?,
 * code?, reason?} with state "connecting", "open", "reconnecting" or "closed"; "error" {code, message};
 * "authenticated" {expiresAt} when the server took a renewed token.
 *
 * Options: `WebSocket` (constructor; default the global one), `token` (a string or a function returning one or a
 * promise of one; sent as `?token=`, renewed with `auth` on `token_expired` when a function), `webSocketOptions`
 * (third constructor argument, e.g. headers for Node's `ws`), `backoffInitialMs` (250), `backoffMaxMs` (10000),
 * `random` (jitter source), `pingIntervalMs` (20000; 0 disables: an application ping that detects a dead link).
 */
export class Client extends Emitter {
  constructor(url, options = {}) {
    super();
    this.baseUrl = url;
    this.token = options.token;
    /** The URL of the last connection (with its `?token=`). */
    this.url = typeof options.token === "function" ? url : withToken(url, options.token);
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.WebSocket !== "function") {
      throw new TypeError("no WebSocket: pass one, e.g. new Client(url, { WebSocket }) with `import { WebSocket } from \"ws\"`");
    }
    this.webSocketOptions = options.webSocketOptions;
    this.backoff = {
      initialMs: options.backoffInitialMs ?? 250,
      maxMs: options.backoffMaxMs ?? 10_000,
      random: options.random ?? Math.random,
    };
    this.pingIntervalMs = options.pingIntervalMs ?? 20_000;
    this.state = "idle";
    this.failures = 0;
    this.subscriptions = new Map();
    this.ws = null;
    this._ids = 0;
    this._draining = new Map(); // source -> id of an `unsubscribe` whose answer has not arrived yet
    this._timer = null;
    this._pinger = null;
    this._lastHeard = 0;
    this._closed = false;
    this._opening = false; // waiting for the token function before opening
  }

  /** Follow `source`; `since` {epoch, version} resumes from a position, `tabs` restricts to those tab ids. */
  subscribe(source, options = {}) {
    if (this._closed) throw new Error("this client is closed");
    if (this.subscriptions.has(source)) throw new Error(`already subscribed to ${source}`);
    const sub = new Subscription(this, source, options);
    this.subscriptions.set(source, sub);
    if (this._isOpen()) this._send(sub._request(this._nextId()));
    else this.connect();
    return sub;
  }

  /** Open the connection now (subscribe() does it when needed). */
  connect() {
    if (this._closed || this.ws !== null || this._timer !== null || this._opening) return;
    this._open();
  }

  /** Close the connection for good and end every subscription. */
  close() {
    this._closed = true;
    clearTimeout(this._timer);
    clearInterval(this._pinger);
    this._timer = this._pinger = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, "client closed");
    for (const sub of this.subscriptions.values()) {
      sub.state = "closed";
      sub.emit("closed", {});
    }
    this.subscriptions.clear();
    this._status("closed", {});
  }

  /** Drop the current connection as a network failure would (reconnects with backoff); for tests and "retry". */
  dropConnection() {
    if (this.ws) this._lost(this.ws, { code: 1006, reason: "dropped" });
  }

  _nextId() {
    this._ids += 1;
    return String(this._ids);
  }

  _isOpen() {
    return this.ws !== null && this.ws.readyState === 1;
  }

  _status(state, detail) {
    this.state = state;
    this.emit("status", { state, ...detail });
  }

  /** The token for a new connection or a renewal: the string, or what the function returns (maybe a promise). */
  _token() {
    return typeof this.token === "function" ? this.token() : this.token;
  }

  _open() {
    this._timer = null;
    this._status(this.failures ? "reconnecting" : "connecting", { attempt: this.failures + 1 });
    let token;
    try {
      token = this._token();
    } catch (error) {
      this._tokenFailed(error);
      return;
    }
    if (typeof token?.then !== "function") {
      this._connect(token);
      return;
    }
    this._opening = true;
    token.then((value) => {
      this._opening = false;
      if (!this._closed) this._connect(value);
    }, (error) => {
      this._opening = false;
      if (!this._closed) this._tokenFailed(error);
    });
  }

  _tokenFailed(error) {
    this.emit("error", { code: "token_failed", message: String(error?.message ?? error) });
    this._retry({ reason: "no token" });
  }

  _connect(token) {
    this.url = withToken(this.baseUrl, token);
    let ws;
    try {
      ws = this.webSocketOptions === undefined
        ? new this.WebSocket(this.url)
        : new this.WebSocket(this.url, undefined, this.webSocketOptions);
    } catch (error) {
      this.emit("error", { code: "connect_failed", message: String(error?.message ?? error) });
      this._retry({ reason: "connect failed" });
      return;
    }
    this.ws = ws;
    ws.onopen = () => this._opened(ws);
    ws.onmessage = (event) => this._received(ws, event.data);
    ws.onclose = (event) => this._lost(ws, event);
    ws.onerror = () => {}; // a close event follows; errors carry no detail worth more
  }

  _opened(ws) {
    if (ws !== this.ws) return;
    this._draining.clear();
    this._lastHeard = Date.now();
    if (this.subscriptions.size === 0) this.failures = 0;
    this._status("open", {});
    for (const sub of this.subscriptions.values()) this._send(sub._request(this._nextId()));
    if (this.pingIntervalMs > 0) {
      clearInterval(this._pinger);
      this._pinger = setInterval(() => this._ping(ws), this.pingIntervalMs);
    }
  }

  _ping(ws) {
    if (ws !== this.ws) return;
    if (Date.now() - this._lastHeard > 2 * this.pingIntervalMs) {
      this._lost(ws, { code: 1006, reason: "no answer to ping" });
      return;
    }
    this._send({ type: "ping", id: this._nextId() });
  }

  _send(message) {
    if (this._isOpen()) this.ws.send(JSON.stringify(message));
  }

  _received(ws, data) {
    if (ws !== this.ws) return;
    this._lastHeard = Date.now();
    let message;
    try {
      message = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
    } catch (error) {
      this.emit("error", { code: "bad_json", message: `the server sent invalid JSON: ${error.message}` });
      return;
    }
    const source = message.source;
    if (source === undefined) {
      if (message.type === "authenticated") this.emit("authenticated", { expiresAt: message.expires_at });
      if (message.type !== "error") return;
      this.emit("error", { code: message.code, message: message.message });
      if (message.code === "token_expired") this._renewToken(ws);
      return;
    }
    const draining = this._draining.get(source);
    if (draining !== undefined) {
      // Frames of a subscription being replaced: only the `unsubscribe` answer matters.
      if (message.type === "unsubscribed" && message.id === draining) this._draining.delete(source);
      return;
    }
    const sub = this.subscriptions.get(source);
    if (sub === undefined) return;
    if (message.type === "subscribed") this.failures = 0;
    const next = sub._handle(message);
    if (next === "resubscribe") this._resubscribe(sub);
    else if (next === "retry") this._retrySubscription(sub);
  }

  /** Send a fresh token from the token function with `auth` (a fixed token cannot be renewed: the server closes). */
  async _renewToken(ws) {
    if (typeof this.token !== "function") return;
    let token;
    try {
      token = await this.token();
    } catch (error) {
      this.emit("error", { code: "token_failed", message: String(error?.message ?? error) });
      return;
    }
    if (ws === this.ws && token) this._send({ type: "auth", id: this._nextId(), token });
  }

  /** Replace a subscription on the same connection: unsubscribe, then subscribe with `since`. */
  _resubscribe(sub) {
    if (!this._isOpen()) return; // the reconnect will subscribe with since anyway
    sub.resubscribes += 1;
    const id = this._nextId();
    this._draining.set(sub.source, id);
    this._send({ type: "unsubscribe", id, source: sub.source });
    this._send(sub._request(this._nextId()));
  }

  _retrySubscription(sub) {
    const delay = backoffDelay(sub.resubscribes + 1, this.backoff);
    sub.resubscribes += 1;
    sub.state = "pending";
    setTimeout(() => {
      if (this.subscriptions.get(sub.source) === sub && this._isOpen()) this._send(sub._request(this._nextId()));
    }, delay);
  }

  _unsubscribe(sub) {
    if (this.subscriptions.get(sub.source) !== sub) return;
    this._forget(sub);
    if (this._isOpen()) {
      const id = this._nextId();
      this._draining.set(sub.source, id);
      this._send({ type: "unsubscribe", id, source: sub.source });
    }
    sub.state = "closed";
    sub.emit("closed", {});
  }

  _forget(sub) {
    if (this.subscriptions.get(sub.source) === sub) this.subscriptions.delete(sub.source);
  }

  _lost(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    clearInterval(this._pinger);
    this._pinger = null;
    ws.onopen = ws.onmessage = ws.onclose = null;
    if (ws.readyState === 0 || ws.readyState === 1) {
      try {
        ws.close();
      } catch {
        // closing a half-open socket may throw in some implementations; it is gone either way
      }
    }
    for (const sub of this.subscriptions.values()) if (sub.state !== "closed") sub.state = "pending";
    if (this._closed) return;
    if (FATAL_CLOSES.has(event.code)) {
      this.emit("error", { code: `closed_${event.code}`, message: event.reason || `closed with ${event.code}` });
      this.close();
      return;
    }
    this._retry({ code: event.code, reason: event.reason });
  }

  _retry(detail) {
    this.failures += 1;
    const delayMs = backoffDelay(this.failures, this.backoff);
    this._status("reconnecting", { attempt: this.failures, delayMs, ...detail });
    this._timer = setTimeout(() => this._open(), delayMs);
  }
}
