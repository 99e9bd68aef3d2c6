// Shared fixtures of the offline-replica tests (offline.test.mjs,
// offline_rebase.test.mjs, offline_batch.test.mjs), on top of harness.mjs:
//   - EXTENSION / PYTHON / HOST_PY / WORKER, uriOf() (a replica's URI);
//   - loadBetterSqlite3(): better-sqlite3, loaded after SQLITE_USE_URI is set,
//     with the extension registered in this process;
//   - primaryRows() (rows of the primary via @libsql/client), waitUntil()
//     (polling with a deadline), pushedAll() (nothing pending in a status);
//   - startProxy(): a TCP proxy to the primary in a process of its own
//     (tcp_proxy.mjs) that can cut() every connection and heal();
//   - startHost(): a replica in another process, offline_host.py ("python")
//     or offline_worker.mjs ("node"), speaking their JSON-lines protocol
//     (described in offline_host.py); withCommon() adds the methods built on
//     tryExec/tryQuery (also for in-process replicas);
//   - setup(): per test, a primary (`replite serve` on 127.0.0.1, ephemeral
//     port, data in a temporary directory) that can be stopped (SIGSTOP),
//     resumed, or stopped and restarted on the same port, a @libsql/client on
//     it, optional proxies, and replicas opened in this process (f.open) or
//     in other processes (f.host), all cleaned up after the test.

// better-sqlite3 reads SQLITE_USE_URI once, when its addon is loaded: set
// before anything can load it (this module never imports it statically).
process.env.SQLITE_USE_URI = "1";

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { after } from "node:test";
import { createClient } from "@libsql/client";
import { REPLITE_BIN, serverInfo, sleep, startServer, tempDir, threadStacks } from "./harness.mjs";

export const EXTENSION = process.env.REPLITE_EXTENSION ?? join(dirname(REPLITE_BIN), "libreplite.so");
export const PYTHON = "/usr/bin/python3"; // not pyenv's: it lacks enable_load_extension
export const HOST_PY = join(import.meta.dirname, "offline_host.py");
export const WORKER = join(import.meta.dirname, "offline_worker.mjs");
const PROXY = join(import.meta.dirname, "tcp_proxy.mjs");

export const uriOf = (path, url, params) => `file:${path}?vfs=replite&sync_url=${url}${params}`;

// better-sqlite3's Database, imported only now (SQLITE_USE_URI is set), with
// the extension loaded once: that registers the VFS and the functions in this
// process.
export async function loadBetterSqlite3() {
  process.env.SQLITE_USE_URI = "1";
  const { default: Database } = await import("better-sqlite3");
  new Database(":memory:").loadExtension(EXTENSION);
  return Database;
}

// The rows of `sql` on the primary, as arrays (bigint values as numbers).
export async function primaryRows(client, sql) {
  const rs = await client.execute(sql);
  return rs.rows.map((row) => rs.columns.map((_, i) => (typeof row[i] === "bigint" ? Number(row[i]) : row[i])));
}

// Polls probe() until pred(value) holds; returns that value.  Fails with the
// last value after timeoutMs.
export async function waitUntil(what, probe, pred, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (pred(v)) return v;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms; last: ${JSON.stringify(v)}`);
    await sleep(20);
  }
}

// A replite_status() with nothing left to push.
export const pushedAll = (s) => s.pending_transactions === 0 && s.pending_frames === 0;

// ---------------------------------------------------------------------------
// A TCP proxy to the primary, in a process of its own (tcp_proxy.mjs: better-
// sqlite3 calls in this thread, e.g. replite_sync(), block its event loop
// while the replica's thread talks to the primary).  cut() resets every open
// connection and every new one until heal(); close() kills it.

// Every fixture whose test has not closed it yet.  A file whose test
// hooks did not run (or hung) must still end: after the last test, what is
// left is killed and named on stderr, so that the file's process exits
// instead of waiting for its children forever.
const live = new Set();
after(async () => {
  for (const f of live) {
    process.stderr.write(`# a fixture was left open (${f.dir.path}): killing its processes\n`);
    for (const h of f.hosts) if (h.child.exitCode === null && h.child.signalCode === null) h.child.kill("SIGKILL");
    const c = f.server.child;
    if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    for (const p of [...f.proxies, f.proxy]) if (p && p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
  }
});

export async function startProxy(target) {
  const { hostname, port } = new URL(target);
  const child = spawn(process.execPath, [PROXY, hostname, port], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
  child.stdin.on("error", () => {}); // (writes to a killed process)
  const exited = new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
  const lines = createInterface({ input: child.stdout });
  const waiting = [];
  lines.on("line", (l) => waiting.shift()?.(l));
  const next = (what) =>
    new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`the proxy: no answer to ${what} within 10 s:\n${stderr}`)), 10000);
      waiting.push((l) => (clearTimeout(timer), res(l)));
    });
  const first = await Promise.race([next("its start"), exited.then((e) => assert.fail(`the proxy exited (${JSON.stringify(e)}):\n${stderr}`))]);
  const ask = (cmd) => {
    const answer = next(cmd);
    child.stdin.write(`${cmd}\n`);
    return answer;
  };
  return {
    url: `http://127.0.0.1:${JSON.parse(first).port}`,
    child,
    cut: () => ask("cut"),
    heal: () => ask("heal"),
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

// ---------------------------------------------------------------------------
// Replicas, all with one interface (async): tryExec(...sql) -> error|null,
// exec, tryQuery(sql, args, ms) -> {rows}|{error}, query, value, status,
// conflicts, trySync(ms) -> {frame}|{error}, close.  exec(S, ...) runs the
// statements in order (BEGIN, ..., COMMIT in one call is one transaction).
// withCommon(r) adds what is built on r.tryExec and r.tryQuery; a failure
// names r.name (and, for another process, its stderr).

export function withCommon(r) {
  const fail = (what, error) => assert.fail(`${r.name}: ${what}: ${JSON.stringify(error)}${r.child ? `\n${r.stderr}` : ""}`);
  r.exec = async (...sql) => {
    const e = await r.tryExec(...sql);
    if (e) fail(sql.join("; "), e);
  };
  r.query = async (sql, args = []) => {
    const x = await r.tryQuery(sql, args);
    if (x.error) fail(sql, x.error);
    return x.rows;
  };
  r.value = async (sql) => (await r.query(sql))[0][0];
  r.status = async () => JSON.parse(await r.value("SELECT replite_status()"));
  r.conflicts = async () => JSON.parse(await r.value("SELECT replite_conflicts()"));
  r.trySync = async (ms) => {
    const x = await r.tryQuery("SELECT replite_sync()", [], ms);
    return x.error ? { error: x.error } : { frame: Number(x.rows[0][0]) };
  };
  return r;
}

// A replica in another process: "node" (offline_worker.mjs) or "python"
// (offline_host.py) on `uri`.  h.ready resolves with its first line
// ({ready: true} or {open_error}); h.next() waits for the next line;
// h.onLine, when set, takes every line instead (e.g. after h.send() of a
// "watch" or "loop" request).  Options: name (in messages), env (added to
// this process's), requestMs (a request's deadline), insertEachMs (an
// insert_each's deadline).
export function startHost(kind, uri, { name = `${kind} host`, env = {}, requestMs = 60000, insertEachMs = 120000 } = {}) {
  const [cmd, args] = kind === "python" ? [PYTHON, [HOST_PY, EXTENSION, uri]] : [process.execPath, [WORKER, EXTENSION, uri]];
  const child = spawn(cmd, args, {
    cwd: import.meta.dirname,
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  const h = { name, kind, child, stderr: "", onLine: null, closed: false };
  const waiters = [];
  child.stdin.on("error", () => {}); // (writes to a killed process)
  child.stderr.setEncoding("utf8").on("data", (d) => (h.stderr += d));
  const rl = createInterface({ input: child.stdout });
  rl.on("line", (l) => {
    let msg;
    try {
      msg = JSON.parse(l);
    } catch {
      h.stderr += `(stdout) ${l}\n`;
      return;
    }
    if (h.onLine) h.onLine(msg);
    else waiters.shift()?.resolve(msg);
  });
  // Every line printed before the process ended has been handled by then.
  h.outClosed = new Promise((res) =>
    rl.on("close", () => {
      h.closed = true;
      for (const w of waiters.splice(0)) w.reject(new Error(`${name} ended:\n${h.stderr}`));
      res();
    }),
  );
  h.exited = new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
  h.next = (what, ms = requestMs) =>
    new Promise((resolve, reject) => {
      if (h.closed) return reject(new Error(`${name} ended before ${what}:\n${h.stderr}`));
      const timer = setTimeout(() => reject(new Error(`${name}: no answer to ${what} within ${ms} ms:\n${h.stderr}`)), ms);
      waiters.push({
        resolve: (x) => (clearTimeout(timer), resolve(x)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  h.send = (req) => child.stdin.write(`${JSON.stringify(req)}\n`);
  h.request = (req, ms) => {
    const r = h.next(JSON.stringify(req).slice(0, 200), ms);
    if (!h.closed) h.send(req);
    return r;
  };
  h.tryExec = async (...sql) => (await h.request({ op: "exec", sql })).error ?? null;
  h.tryQuery = (sql, args = [], ms) => h.request({ op: "query", sql, args }, ms);
  h.insertEach = async (sql, values) => {
    const r = await h.request({ op: "insert_each", sql, values }, insertEachMs);
    if (r.error) assert.fail(`${name}: insert_each (after ${r.done}): ${JSON.stringify(r.error)}\n${h.stderr}`);
    return r;
  };
  h.close = async () => {
    assert.deepEqual(await h.request({ op: "close" }), { ok: true }, `${name} closes`);
    // A process that hangs on its way out fails the test with its stacks.
    let timer;
    const late = Symbol("late");
    const first = await Promise.race([h.exited, new Promise((r) => (timer = setTimeout(() => r(late), 30000)))]);
    clearTimeout(timer);
    if (first === late) {
      const stacks = threadStacks(child.pid);
      child.kill("SIGKILL");
      assert.fail(`${name} did not exit within 30 s of closing; its threads were:\n${stacks}\n${h.stderr}`);
    }
    assert.deepEqual(first, { code: 0, signal: null }, `${name} exit:\n${h.stderr}`);
    await h.outClosed;
  };
  h.kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await h.exited;
    await h.outClosed;
  };
  h.ready = h.next("the open");
  return withCommon(h);
}

// ---------------------------------------------------------------------------
// Per test: a primary (its data in a temporary directory) with `schema`, a
// @libsql/client on it (f.client), optionally one proxy (proxy: true, as
// f.proxy; f.url is then the proxy's) and more through f.startProxy();
// replicas opened through f.open (this process; needs `Database`, from
// loadBetterSqlite3()) and f.host / f.startHost (other processes), each on
// f.url or `via` a proxy.  Everything is cleaned up after the test, whatever
// its outcome.
//
// Options: prefix (of the temporary directory), schema, proxy, Database,
// params (the default URI parameters), wrapDb(db, name) (what f.open returns
// for a better-sqlite3 connection), hostName(kind, path) (a host's default
// name), prepareHost(h) (run on each host once it is open), and requestMs /
// insertEachMs (for startHost).

export async function setup(
  t,
  {
    prefix = "replite-offline-",
    schema = [],
    proxy = false,
    Database = null,
    params: defaultParams = "",
    wrapDb = (db) => db,
    hostName = (kind) => `${kind} host`,
    prepareHost = null,
    requestMs,
    insertEachMs,
  } = {},
) {
  const dir = tempDir(prefix);
  // Closed in reverse order after the test, each within 30 s: one that
  // hangs fails the test naming it, and the others still run.
  const closers = [["the directory", () => dir.remove()]];
  const closing = { push: (name, fn) => closers.push([name, fn]) };
  t.after(async () => {
    let first = null;
    for (const [name, fn] of closers.reverse()) {
      let timer;
      try {
        await Promise.race([
          fn(),
          new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`closing ${name} took over 30 s`)), 30000))),
        ]);
      } catch (e) {
        first ??= e;
      } finally {
        clearTimeout(timer);
      }
    }
    live.delete(f);
    if (first) throw first;
  });
  const dataDir = dir.file("data");
  const f = { dir, dataDir, paused: false, hosts: [], dbs: [], proxies: [] };
  f.server = await startServer({ dataDir });
  // A restarted primary listens on the same port: the replicas keep the URL.
  f.listen = `127.0.0.1:${new URL(f.server.url).port}`;
  f.pause = () => {
    f.server.child.kill("SIGSTOP");
    f.paused = true;
  };
  f.resume = () => {
    if (f.paused) f.server.child.kill("SIGCONT");
    f.paused = false;
  };
  f.stopServer = () => f.server.stop();
  f.restartServer = async () => {
    f.server = await startServer({ dataDir, listen: f.listen });
  };
  live.add(f);
  closing.push("the primary", async () => {
    f.resume();
    const c = f.server.child;
    if (c.exitCode === null && c.signalCode === null) await f.server.stop();
  });
  f.client = createClient({ url: f.server.url });
  closing.push("the @libsql/client", () => f.client.close());
  if (proxy) {
    f.proxy = await startProxy(f.server.url);
    closing.push("the proxy", () => f.proxy.close());
  }
  f.url = proxy ? f.proxy.url : f.server.url;
  closing.push("the replicas", async () => {
    f.resume();
    for (const h of f.hosts) await h.kill();
    for (const db of f.dbs) {
      try {
        if (db.open) db.close();
      } catch {}
    }
  });
  // Another proxy to the primary, closed after the test.
  f.startProxy = async () => {
    const p = await startProxy(f.server.url);
    f.proxies.push(p);
    closing.push("a proxy", () => p.close());
    return p;
  };
  f.open = (path, { name = path, params = defaultParams, via } = {}) => {
    const db = new Database(uriOf(path, via?.url ?? f.url, params));
    f.dbs.push(db);
    return wrapDb(db, name);
  };
  // The process, not waiting for its open.
  f.startHost = (kind, path, { name = hostName(kind, path), params = defaultParams, via, env } = {}) => {
    const h = startHost(kind, uriOf(path, via?.url ?? f.url, params), { name, env, requestMs, insertEachMs });
    f.hosts.push(h);
    return h;
  };
  f.host = async (kind, path, opts = {}) => {
    const h = f.startHost(kind, path, opts);
    const ready = await h.ready;
    if (!ready.ready) throw new Error(`${h.name} could not open ${path}: ${JSON.stringify(ready)}\n${h.stderr}`);
    if (prepareHost) await prepareHost(h);
    return h;
  };
  f.head = async () => (await serverInfo(f.server)).max_frame_no;
  if (schema.length) await f.client.batch(schema, "write");
  return f;
}
