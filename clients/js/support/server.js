// A real `sheetstream serve` child process for the tests, and helpers to drive it over REST.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The Python that runs the server: $SHEETSTREAM_PYTHON, else the repository's .venv. */
export const PYTHON = process.env.SHEETSTREAM_PYTHON
  ?? fileURLToPath(new URL("../../../.venv/bin/python", import.meta.url));

/** The HS256 key of the test server's connection tokens (`--jwt-secret`). */
export const JWT_SECRET = "a test secret of at least 32 bytes, for HS256";

const base64url = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");

/** A connection token for the test server: `sources` (["*"]: all) for `ttlS` seconds. */
export function mintToken({ sources = ["*"], ttlS = 3600, subject = "node-test", secret = JWT_SECRET } = {}) {
  const signed = `${base64url({ alg: "HS256", typ: "JWT" })}.${base64url({
    sub: subject, sources, exp: Math.floor(Date.now() / 1000 + ttlS),
  })}`;
  return `${signed}.${createHmac("sha256", secret).update(signed).digest("base64url")}`;
}

/** A TCP port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Poll `predicate` (sync or async) until it is truthy; throw after `timeoutMs`. */
export async function waitFor(predicate, { timeoutMs = 15_000, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * `sheetstream serve` on its own port and SQLite file in a temporary directory. It accepts connections without a
 * token (`--anonymous`: most tests are about streaming) and checks the tokens it is given (`--jwt-secret`).
 */
export class ServerProcess {
  constructor(...extra) {
    this.extra = extra;
    this.dir = mkdtempSync(join(tmpdir(), "sheetstream-js-"));
    this.db = join(this.dir, "sheetstream.db");
    this.port = null;
    this.child = null;
    this.output = "";
  }

  get http() {
    return `http://127.0.0.1:${this.port}`;
  }

  get ws() {
    return `ws://127.0.0.1:${this.port}/v1/ws`;
  }

  /** Start (or restart, on the same port and database) and wait until /readyz answers 200. */
  async start() {
    this.port ??= await freePort();
    const args = ["-m", "sheetstream", "serve", "--port", String(this.port), "--store", `sqlite:///${this.db}`,
      "--log-level", "warning", "--anonymous", "--jwt-secret", JWT_SECRET, ...this.extra];
    const child = spawn(PYTHON, args, { cwd: this.dir, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    child.stdout.on("data", (chunk) => { this.output += chunk; });
    child.stderr.on("data", (chunk) => { this.output += chunk; });
    let exited = false;
    child.once("exit", () => { exited = true; });
    await waitFor(async () => {
      if (exited) throw new Error(`server exited early:\n${this.output}`);
      try {
        return (await fetch(`${this.http}/readyz`)).status === 200;
      } catch {
        return false;
      }
    }, { timeoutMs: 30_000, what: "the server to be ready" });
    return this;
  }

  /** SIGTERM and wait for the exit (SIGKILL after 10 s). */
  async stop() {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }

  /** Stop and remove the temporary directory. */
  async dispose() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  async request(method, path, body) {
    const response = await fetch(this.http + path, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  /** A JSON file source holding `tabs`; resolves to {id, path, write(tabs)} once its first version is read. */
  async fileSource(tabs) {
    const path = join(this.dir, `book-${Math.random().toString(36).slice(2)}.json`);
    const write = (value) => {
      writeFileSync(`${path}.tmp`, JSON.stringify({ tabs: value }));
      renameSync(`${path}.tmp`, path); // as editors save: no half-written file is ever read
    };
    write(tabs);
    const { id } = await this.request("POST", "/v1/sources", { kind: "file", config: { path }, poll_interval_s: 60 });
    await waitFor(async () => (await this.version(id)) >= 1, { what: "the first read" });
    return { id, path, write };
  }

  async version(id) {
    return (await this.request("GET", `/v1/sources/${id}`)).version;
  }

  async snapshot(id) {
    return this.request("GET", `/v1/sources/${id}/snapshot`);
  }

  /** Write `tabs` to the source's file, ask for a read, and wait until the version moved past `after`. */
  async commit(source, tabs, after) {
    source.write(tabs);
    await this.request("POST", `/v1/sources/${source.id}/refresh`);
    return waitFor(async () => {
      const version = await this.version(source.id);
      return version > after ? version : 0;
    }, { what: `a version after ${after}` });
  }
}
