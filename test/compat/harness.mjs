// Test fixtures: a real `replite serve` on loopback (ephemeral port) in a
// temporary data directory, plus helpers for tokens and raw HTTP.
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import { generateKeyPairSync, sign } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { after } from "node:test";
import { join, resolve } from "node:path";

export const REPLITE_BIN =
  process.env.REPLITE_BIN ?? resolve(import.meta.dirname, "../../build/replite");

// A temporary directory, removed by remove() or, at the latest, when the
// test file's process exits (the primaries' data directories included), so
// that test runs leave nothing in /tmp.
const tempDirs = new Set();
process.on("exit", () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(prefix = "replite-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return {
    path: dir,
    file: (name) => join(dir, name),
    remove: () => {
      rmSync(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
    },
  };
}

// A test file's process must end once its tests have: node's test runner
// reports the file (its summary, and so its result) only when nothing is left
// for the process to wait for.  A handle left open (a child process, a
// socket, a timer) would otherwise hold it until scripts/test kills it at
// INTEGRATION_FILE_TIMEOUT, with no word of what held it.  30 s after the
// last test (an unref'd timer: it never holds the process itself), what is
// still open is named on stderr, child processes with their threads'
// stacks, they are killed and the file fails.
after(() => {
  const timer = setTimeout(() => {
    const stdio = [process.stdin, process.stdout, process.stderr];
    const held = process._getActiveHandles().filter((h) => !stdio.includes(h)).map(describeHandle);
    const kinds = process.getActiveResourcesInfo().join(", ");
    process.stderr.write(`# the tests are over but after 30 s this process is still held open (${kinds}) by:\n${held.map((h) => `#   ${h}`).join("\n")}\n`);
    for (const h of process._getActiveHandles()) if (h instanceof ChildProcess && h.exitCode === null) h.kill("SIGKILL");
    process.exit(1);
  }, 30000);
  timer.unref();
});

function describeHandle(h) {
  if (h instanceof ChildProcess) {
    const state = h.exitCode === null && h.signalCode === null ? `running; its threads:\n${threadStacks(h.pid)}` : `exited (${h.exitCode ?? h.signalCode}), a pipe still open`;
    return `child process ${h.pid} (${h.spawnargs.join(" ").slice(0, 300)}): ${state}`;
  }
  if (h?.constructor?.name === "Socket")
    return h.remotePort ? `socket ${h.localAddress}:${h.localPort} -> ${h.remoteAddress}:${h.remotePort}` : `socket or pipe (fd ${h._handle?.fd ?? "?"})`;
  if (h?.constructor?.name === "Server") return `server listening on ${JSON.stringify(h.address())}`;
  return `${h?.constructor?.name ?? typeof h}${typeof h?._onTimeout === "function" ? ` (timer: ${String(h._onTimeout).slice(0, 200)})` : ""}`;
}

// Every thread's stack of a live process, by gdb where it is installed (for
// the error of a process that hangs).
export function threadStacks(pid) {
  const r = spawnSync("gdb", ["-p", String(pid), "-batch", "-ex", "thread apply all bt"], { encoding: "utf8", timeout: 60000 });
  if (r.error) return `(no stacks: ${r.error.message})`;
  return r.stdout.split("\n").filter((l) => /^(Thread|#)/.test(l)).join("\n");
}

// Start a primary.  Resolves once it listens; `server.url` is its base URL.
// Options: dataDir, args (extra CLI args), env.
export async function startServer(opts = {}) {
  const dataDir = opts.dataDir ?? tempDir("replite-data-").path;
  const args = ["serve", "--data-dir", dataDir, "--listen", opts.listen ?? "127.0.0.1:0", ...(opts.args ?? [])];
  const child = spawn(REPLITE_BIN, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...(opts.env ?? {}) },
  });
  const server = {
    child,
    dataDir,
    url: null,
    stderr: "",
    requests: [],
    exited: null,
  };
  child.stdout.on("data", (d) => (server.stderr += d));
  server.exited = new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
  await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`replite serve did not start:\n${server.stderr}`)), 20000);
    child.stderr.on("data", (d) => {
      server.stderr += d;
      const m = /listening on (https?:\/\/\S+)/.exec(server.stderr);
      if (m && !server.url) {
        server.url = m[1];
        clearTimeout(timer);
        res();
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (!server.url) rej(new Error(`replite serve exited with ${code}:\n${server.stderr}`));
    });
  });
  // The access log with --log-requests: a JSON object per answered request
  // ({"log":"request", method, route, path, status, ms, bytes, ...}).
  server.requestLog = () =>
    server.stderr
      .split("\n")
      .filter((l) => l.startsWith('{"log":"request"'))
      .map((l) => JSON.parse(l));
  // Graceful stop; asserts a clean exit (AddressSanitizer reports make the
  // exit code non-zero).
  // A server that has not exited 30 s after SIGTERM is a bug (a shutdown
  // that waits for something forever): its threads' stacks go into the
  // error, then it is killed, so the test fails naming it instead of hanging.
  server.stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const late = Symbol("late");
    let timer;
    const first = await Promise.race([server.exited, new Promise((r) => (timer = setTimeout(() => r(late), 30000)))]);
    clearTimeout(timer);
    if (first === late) {
      const stacks = threadStacks(child.pid);
      child.kill("SIGKILL");
      await server.exited;
      throw new Error(`replite serve did not exit within 30 s of SIGTERM; its threads were:\n${stacks}\n${server.stderr}`);
    }
    const { code, signal } = first;
    if (code !== 0) throw new Error(`replite serve exited with code ${code} signal ${signal}:\n${server.stderr}`);
  };
  server.kill9 = async () => {
    child.kill("SIGKILL");
    await server.exited;
  };
  return server;
}

// A free TCP port on 127.0.0.1, for a second listener (--admin-listen).
export async function freePort() {
  const { createServer } = await import("node:net");
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

// startServer with an admin listener (opts.adminPort, else a free port):
// server.admin is its URL, server.adminPort its port.
export async function startAdminServer(opts = {}) {
  const adminPort = opts.adminPort ?? (await freePort());
  const server = await startServer({
    ...opts,
    args: ["--admin-listen", `127.0.0.1:${adminPort}`, ...(opts.args ?? [])],
  });
  server.admin = `http://127.0.0.1:${adminPort}`;
  server.adminPort = adminPort;
  return server;
}

// Ed25519 key pair and signed JWTs, as libSQL's server expects them.
export function makeAuth(dir) {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const keyFile = join(dir, "jwt-key.pem");
  writeFileSync(keyFile, publicKey.export({ type: "spki", format: "pem" }));
  const b64 = (x) => Buffer.from(x).toString("base64url");
  const token = (claims = {}, key = privateKey) => {
    const head = b64(JSON.stringify({ alg: "EdDSA", typ: "JWT" }));
    const body = b64(JSON.stringify(claims));
    const sig = sign(null, Buffer.from(`${head}.${body}`), key).toString("base64url");
    return `${head}.${body}.${sig}`;
  };
  return { keyFile, token, otherKey: generateKeyPairSync("ed25519").privateKey };
}

export async function http(server, method, path, { body, headers, token } = {}) {
  const h = { ...(headers ?? {}) };
  if (token) h.Authorization = `Bearer ${token}`;
  const res = await fetch(server.url + path, { method, body, headers: h });
  const buf = Buffer.from(await res.arrayBuffer());
  let json = null;
  try {
    json = JSON.parse(buf.toString("utf8"));
  } catch {}
  return { status: res.status, headers: res.headers, body: buf, json };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A query that runs for hours (ten billion rows counted): what the tests of
// statement timeouts, cancellation and lanes keep busy.
export const HEAVY_QUERY = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000000000) SELECT count(*) FROM n";

// --- helpers for the embedded-replica and crash tests ---

// GET /info as JSON.
export async function serverInfo(server) {
  const r = await http(server, "GET", "/info");
  if (r.status !== 200) throw new Error(`GET /info answered ${r.status}: ${r.body}`);
  return r.json;
}

// The request log reaches us asynchronously through a pipe (and a libsql
// replica's sync() blocks the event loop while it runs): send a marker
// request and wait until the server has logged it, so that every request
// answered before is in server.requestLog().  Returns the log.
export async function settledRequestLog(server, timeoutMs = 10000) {
  const before = server.requestLog().filter((r) => r.path === "/version").length;
  const res = await http(server, "GET", "/version");
  if (res.status !== 200) throw new Error(`GET /version answered ${res.status}`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const log = server.requestLog();
    if (log.filter((r) => r.path === "/version").length > before) return log;
    if (Date.now() > deadline) throw new Error("the request log did not show the marker request (is --log-requests set?)");
    await sleep(5);
  }
}

// Poll /info until the primary's current generation reaches `generation`
// (rollover runs in the maintenance tick, every 250 ms).
export async function waitForGeneration(server, generation, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await serverInfo(server);
    if (info.current_generation >= generation) return info;
    if (Date.now() > deadline)
      throw new Error(`generation ${generation} did not start (current ${info.current_generation}):\n${server.stderr}`);
    await sleep(50);
  }
}

// (Imports are hoisted; kept here so that this block is append-only.)
import { copyFileSync, existsSync } from "node:fs";
import { basename } from "node:path";

// Copies a SQLite database and its WAL (not the -shm, which SQLite rebuilds)
// into a new directory inside `dir` (a tempDir); returns the copy's path.
// The source must be idle (no write in progress) for the copy to be a
// consistent snapshot; after a kill -9 it is what a restart would find.
export function copyDatabase(path, dir) {
  const copyDir = mkdtempSync(join(dir.path, "copy-"));
  const copy = join(copyDir, basename(path));
  copyFileSync(path, copy);
  if (existsSync(`${path}-wal`)) copyFileSync(`${path}-wal`, `${copy}-wal`);
  return copy;
}
