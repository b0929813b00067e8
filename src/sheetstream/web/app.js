/**
 * The sheetstream web client: list and register data sources over the REST API, follow one live over the
 * WebSocket with the JS client library (sheetstream.js), and show its tabs in a virtual-scrolling grid.
 */
import { Grid } from "./grid.js";
import { Client } from "./sheetstream.js";

const $ = (id) => document.getElementById(id);
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;

/**
 * Credentials for a server that is not anonymous, given in the page's fragment, which browsers never send to the
 * server: `/#key=ssk_…` (a REST API key with the read scope, and write to register sources) and `&token=eyJ…` (a
 * WebSocket connection token). They are kept for this tab only (sessionStorage) and taken out of the address bar.
 */
const credentials = (() => {
  const given = new URLSearchParams(location.hash.slice(1));
  for (const name of ["key", "token"]) {
    if (given.has(name)) sessionStorage.setItem(`sheetstream.${name}`, given.get(name));
  }
  if (given.has("key") || given.has("token")) history.replaceState(null, "", location.pathname + location.search);
  return { key: sessionStorage.getItem("sheetstream.key"), token: sessionStorage.getItem("sheetstream.token") };
})();

const state = {
  client: null,
  sub: null,
  sources: [],
  source: null, // id of the source shown
  tab: null, // id of the tab shown
  tabs: [],
};

const grid = new Grid({ viewport: $("viewport"), sizer: $("sizer"), table: $("grid") });

// --- connection state ------------------------------------------------------------------------------------------

const STATUS_TEXT = {
  idle: "idle",
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  resumed: "resumed: no gap",
  resynced: "resynced: snapshot after a gap",
  error: "error",
  closed: "closed",
};

function setStatus(name, detail = "") {
  const el = $("status");
  el.dataset.state = name;
  el.textContent = STATUS_TEXT[name] + (detail ? ` (${detail})` : "");
}

function log(line) {
  const el = $("log");
  const entry = document.createElement("div");
  entry.textContent = `${new Date().toLocaleTimeString()} ${line}`;
  el.prepend(entry);
  while (el.childElementCount > 200) el.lastElementChild.remove();
}

// --- following a source ----------------------------------------------------------------------------------------

function follow(sourceId) {
  if (state.client) state.client.close();
  Object.assign(state, { client: null, sub: null, source: sourceId, tab: null, tabs: [] });
  renderTabs();
  grid.show(null);
  $("version").textContent = "";
  highlightSource();
  if (!sourceId) {
    setStatus("idle");
    return;
  }
  const url = new URL(location.href);
  url.searchParams.set("source", sourceId);
  history.replaceState(null, "", url);

  // One connection per open page: a short backoff ceiling brings the view back soon after a server restart.
  const client = new Client(wsUrl, { backoffMaxMs: 5_000, token: credentials.token ?? undefined });
  state.client = client;
  client.on("status", ({ state: s, attempt, delayMs, code }) => {
    if (client !== state.client) return;
    if (s === "reconnecting") {
      setStatus("reconnecting", delayMs ? `attempt ${attempt}, in ${(delayMs / 1000).toFixed(1)} s` : "");
      if (code !== undefined) log(`connection lost (${code}); reconnecting`);
    } else if (s === "connecting") {
      setStatus("connecting");
    } else if (s === "closed") {
      setStatus("closed");
    }
  });
  client.on("error", ({ code, message }) => log(`error ${code}: ${message}`));

  const sub = client.subscribe(sourceId);
  state.sub = sub;
  sub.on("subscribed", ({ version, resumed, resynced }) => {
    setStatus(resumed ? "resumed" : resynced ? "resynced" : "live");
    log(resumed ? `resumed at version ${version}: no change missed`
      : resynced ? `resynced at version ${version}: a fresh snapshot follows` : `subscribed at version ${version}`);
  });
  sub.on("snapshot", ({ tabs, version }) => {
    state.tabs = tabs;
    if (!tabs.some((t) => t.id === state.tab)) state.tab = tabs[0]?.id ?? null;
    renderTabs();
    grid.show(currentTab());
    showVersion(version);
  });
  sub.on("change", ({ tabs, ops, version }) => {
    const renamed = new Set(ops.filter((op) => op.op === "rename_tab").map((op) => op.tab));
    state.tabs = tabs;
    const shown = state.tab;
    if (!tabs.some((t) => t.id === shown)) state.tab = tabs[0]?.id ?? null;
    renderTabs(renamed);
    if (state.tab === shown) grid.update(currentTab(), ops);
    else grid.show(currentTab());
    showVersion(version);
    log(`version ${version}: ${describe(ops)}`);
  });
  sub.on("gap", ({ expected, got }) => log(`gap: expected version ${expected}, got ${got}; resuming`));
  sub.on("error", ({ code, message, fatal }) => {
    log(`error ${code}: ${message}`);
    if (fatal) setStatus("error", code);
  });
}

function currentTab() {
  return state.tabs.find((t) => t.id === state.tab) ?? null;
}

function showVersion(version) {
  // The list was read once; keep the followed source's line current from the stream.
  const source = state.sources.find((s) => s.id === state.source);
  if (source && source.version !== version) {
    source.version = version;
    const meta = document.querySelector(`#sources button.pick[data-source-id="${CSS.escape(source.id)}"] .meta`);
    if (meta) meta.textContent = sourceMeta(source);
  }
  const tab = currentTab();
  const rows = tab ? tab.rows.length : 0;
  $("version").textContent = `version ${version} · ${rows.toLocaleString()} row${rows === 1 ? "" : "s"}`;
}

function describe(ops) {
  const counts = new Map();
  for (const op of ops) counts.set(op.op, (counts.get(op.op) ?? 0) + 1);
  return [...counts].map(([kind, n]) => `${n} ${kind}`).join(", ") || "no ops in these tabs";
}

function renderTabs(renamed = new Set()) {
  $("tabs").replaceChildren(...state.tabs.map((tab) => {
    const button = document.createElement("button");
    button.type = "button";
    button.role = "tab";
    button.textContent = tab.title;
    button.dataset.tabId = String(tab.id);
    button.setAttribute("aria-selected", String(tab.id === state.tab));
    if (renamed.has(tab.id)) button.classList.add("flash");
    button.onclick = () => {
      state.tab = tab.id;
      renderTabs();
      grid.show(currentTab());
    };
    return button;
  }));
}

// --- data sources ----------------------------------------------------------------------------------------------

async function api(method, path, body) {
  const headers = body === undefined ? {} : { "content-type": "application/json" };
  if (credentials.key) headers.authorization = `Bearer ${credentials.key}`;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = data?.error;
    const list = Array.isArray(error?.details) ? error.details : [];
    const details = list.map((d) => (d.field ? `${d.field}: ` : "") + (d.message ?? JSON.stringify(d))).join("; ");
    const hint = response.status === 401 ? " (open the page as /#key=<API key>&token=<connection token>)" : "";
    throw new Error(`${error?.message ?? response.statusText}${details ? `: ${details}` : ""}${hint}`);
  }
  return data;
}

async function loadSources() {
  const items = [];
  let cursor = null;
  do {
    const page = await api("GET", `/v1/sources?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor ?? null;
  } while (cursor);
  state.sources = items;
  renderSources();
  return items;
}

function renderSources() {
  const list = $("sources");
  if (state.sources.length === 0) {
    const empty = document.createElement("li");
    empty.className = "empty";
    empty.textContent = "No sources yet: add one below.";
    list.replaceChildren(empty);
    return;
  }
  list.replaceChildren(...state.sources.map((source) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "pick";
    button.dataset.sourceId = source.id;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = source.name ?? source.id;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = sourceMeta(source);
    if (source.status?.state === "error") {
      meta.classList.add("bad");
      button.title = source.status.message ?? "";
    }
    button.append(name, meta);
    button.onclick = () => follow(source.id);
    const label = source.name ?? source.id;
    const pause = actionButton(source.paused ? "▶" : "⏸", `${source.paused ? "Resume" : "Pause"} ${label}`, () =>
      changeSource(source, "PATCH", { paused: !source.paused }));
    pause.dataset.action = "pause";
    const remove = actionButton("✕", `Remove ${label}`, () => {
      if (confirm(`Remove the source "${label}" with its history?`)) return changeSource(source, "DELETE");
    });
    remove.dataset.action = "remove";
    item.append(button, pause, remove);
    return item;
  }));
  highlightSource();
}

function actionButton(text, title, onclick) {
  const button = document.createElement("button");
  Object.assign(button, { type: "button", className: "action", textContent: text, title, onclick });
  button.setAttribute("aria-label", title);
  return button;
}

/** Pause, resume or delete a source, then show the list as the server has it. */
async function changeSource(source, method, body) {
  try {
    await api(method, `/v1/sources/${encodeURIComponent(source.id)}`, body);
    log(`${method === "DELETE" ? "removed" : body.paused ? "paused" : "resumed"} ${source.name ?? source.id}`);
    const items = await loadSources();
    if (method === "DELETE" && state.source === source.id) follow(items[0]?.id ?? null);
  } catch (error) {
    log(`cannot change ${source.name ?? source.id}: ${error.message}`);
  }
}

function sourceMeta(source) {
  return `${source.kind} · v${source.version} · ${source.status?.state ?? "?"}`;
}

function highlightSource() {
  for (const button of document.querySelectorAll("#sources button.pick")) {
    button.setAttribute("aria-current", String(button.dataset.sourceId === state.source));
  }
}

const LOCATION_LABEL = { file: "Path", http_csv: "URL", http_json: "URL", google_sheets: "Spreadsheet id" };
const LOCATION_KEY = { file: "path", http_csv: "url", http_json: "url", google_sheets: "spreadsheet_id" };

function kindChanged() {
  const kind = $("kind").value;
  $("location-label").textContent = LOCATION_LABEL[kind];
  $("location").placeholder = kind === "file" ? "/data/prices.xlsx" : kind === "google_sheets"
    ? "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms" : "https://example.org/export.csv";
}

async function register(event) {
  event.preventDefault();
  const kind = $("kind").value;
  const config = { [LOCATION_KEY[kind]]: $("location").value.trim() };
  const key = $("key-column").value.trim();
  if (key) config.key_column = /^\d+$/.test(key) ? Number(key) : key;
  const body = { kind, config };
  const name = $("name").value.trim();
  if (name) body.name = name;
  const interval = $("poll-interval").value.trim();
  if (interval) body.poll_interval_s = Number(interval);
  $("form-error").textContent = "";
  $("add").disabled = true;
  try {
    const created = await api("POST", "/v1/sources", body);
    log(`registered ${created.name ?? created.id} (${created.kind})`);
    $("source-form").reset();
    kindChanged();
    await loadSources();
    follow(created.id);
  } catch (error) {
    $("form-error").textContent = error.message;
  } finally {
    $("add").disabled = false;
  }
}

// --- start -----------------------------------------------------------------------------------------------------

$("kind").addEventListener("change", kindChanged);
$("source-form").addEventListener("submit", register);
$("reload").addEventListener("click", () => loadSources().catch((e) => log(`cannot list sources: ${e.message}`)));
kindChanged();

loadSources().then((items) => {
  const wanted = new URLSearchParams(location.search).get("source");
  const pick = items.find((s) => s.id === wanted) ?? items.find((s) => s.name === "demo") ?? items[0];
  follow(pick?.id ?? null);
}).catch((error) => {
  setStatus("error", "cannot list sources");
  log(`cannot list sources: ${error.message}`);
});

// For tests and the curious: the page's state, read-only by convention.
window.sheetstream = { state, grid };
