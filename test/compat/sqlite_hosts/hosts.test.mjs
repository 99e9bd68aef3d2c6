// The replica extension (libreplite.so) inside several SQLite versions, each
// against a real `replite serve`.  build.sh compiles host.c (a minimal host
// program: load an extension, run SQL on a URI database) together with the
// amalgamation an npm package bundles: 3.29.0 (below the minimum), 3.31.1
// (Ubuntu 20.04's version, the minimum), 3.34.0 and the newest, by default (SQLITE_HOSTS="pkg@ver ..." chooses others).
// The extension reaches SQLite only through the routines table the host hands
// it, so a routine the host's version lacks is read past the table's end.
//
// For each host:
//   - a new replica: bootstrap at the first open, rows as on the primary, a
//     local INSERT (on the primary when it returns), replite_sync(), close,
//     reopen the existing replica, rows again, PRAGMA integrity_check;
//   - an existing replica that the primary moved past (a row inserted there
//     after the last sync): open, replite_sync(), the new row, integrity.
//     The replica is the one the host made, or when it could not make one,
//     one bootstrapped by the newest host (a file made by another program).
// Hosts from MIN_SUPPORTED on must pass all of it.  An older host must not
// crash (no signal, in particular no SIGSEGV on the sync thread): it either
// passes all of it too, or the extension refuses to load with an error that
// names the minimum SQLite version it needs.
//
// The extension: $REPLITE_EXTENSION, else libreplite.so beside $REPLITE_BIN.
// The hosts are cached in $SQLITE_HOSTS_CACHE (default build/sqlite-hosts):
// a cold run fetches the packages (npm pack) and compiles each amalgamation.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createClient } from "@libsql/client";
import { REPLITE_BIN, startServer, tempDir } from "../harness.mjs";

const EXTENSION = process.env.REPLITE_EXTENSION ?? join(dirname(REPLITE_BIN), "libreplite.so");
const CACHE = process.env.SQLITE_HOSTS_CACHE ?? resolve(import.meta.dirname, "../../../build/sqlite-hosts");
const BUILD = join(import.meta.dirname, "build.sh");
const MIN_SUPPORTED = "3.31.0"; // vfs/extension.c REPLITE_MIN_SQLITE
const RUN_TIMEOUT_MS = 60000;
const ROWS = "SELECT id, v, length(b) FROM t ORDER BY id";

const parseVersion = (v) => v.split(".").map(Number);
function compareVersions(a, b) {
  const [x, y] = [parseVersion(a), parseVersion(b)];
  for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}

// Build (or find in the cache) the host programs: [{ version, spec, bin }].
function buildHosts() {
  const started = Date.now();
  const r = spawnSync(BUILD, [CACHE], { stdio: ["ignore", "pipe", "inherit"], encoding: "utf8", timeout: 30 * 60000 });
  if (r.status !== 0) throw new Error(`${BUILD} ${CACHE} failed (status ${r.status}, signal ${r.signal})`);
  const hosts = r.stdout
    .trim()
    .split("\n")
    .map((line) => {
      const [version, spec, bin] = line.split("\t");
      return { version, spec, bin };
    });
  return { hosts, seconds: (Date.now() - started) / 1000 };
}

assert.ok(existsSync(EXTENSION), `the extension ${EXTENSION} exists (set REPLITE_EXTENSION)`);
const built = buildHosts();
const HOSTS = built.hosts.sort((a, b) => compareVersions(a.version, b.version));
const NEWEST = HOSTS[HOSTS.length - 1];
assert.ok(compareVersions(NEWEST.version, MIN_SUPPORTED) >= 0, `the newest host (${NEWEST.version}) is supported`);

// Run a host program with `commands`; resolves with its exit, its steps (the
// JSON lines it printed) and its stderr.
function runHost(host, commands) {
  return new Promise((res) => {
    const child = spawn(host.bin, [EXTENSION, ...commands], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, RUN_TIMEOUT_MS);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const steps = stdout
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((l) => {
          try {
            return JSON.parse(l);
          } catch {
            return { step: "garbage", line: l };
          }
        });
      res({ code, signal, timedOut, steps, stdout, stderr });
    });
  });
}

function describeRun(r) {
  return `exit code ${r.code}, signal ${r.signal}${r.timedOut ? " (timed out)" : ""}\nstdout:\n${r.stdout}stderr:\n${r.stderr}`;
}

// No crash, no hang: the host got to its last step.
function assertNoCrash(r, what) {
  assert.ok(!r.timedOut, `${what}: the host hung (killed after ${RUN_TIMEOUT_MS} ms)\n${describeRun(r)}`);
  const last = r.steps.filter((s) => s.step !== "done").at(-1);
  assert.equal(
    r.signal,
    null,
    `${what}: the host crashed with ${r.signal} after the step ${JSON.stringify(last)}\n${describeRun(r)}`,
  );
  assert.equal(r.steps.at(-1)?.step, "done", `${what}: the host finished\n${describeRun(r)}`);
}

// The load step of a host that is older than MIN_SUPPORTED: "ok", or
// "refused" with a message naming the minimum version (newer than the host).
function classifyLoad(host, r, what) {
  const load = r.steps.find((s) => s.step === "load");
  assert.ok(load, `${what}: the host reported the load\n${describeRun(r)}`);
  if (load.ok) return "ok";
  assert.ok(
    compareVersions(host.version, MIN_SUPPORTED) < 0,
    `${what}: SQLite ${host.version} must load the extension: ${load.error}`,
  );
  const named = [...(load.error ?? "").matchAll(/\b3\.\d+(?:\.\d+)?\b/g)].map((m) => m[0]);
  assert.match(load.error ?? "", /sqlite/i, `${what}: the refusal names SQLite: ${load.error}`);
  assert.ok(
    named.some((v) => compareVersions(v, host.version) > 0),
    `${what}: the refusal names the minimum SQLite version (newer than ${host.version}): ${load.error}`,
  );
  return "refused";
}

// Every step succeeded; returns the steps that ran SQL, in order.
function assertAllOk(r, what) {
  const failed = r.steps.filter((s) => s.ok === false);
  if (failed.length > 0)
    assert.fail(`${what}: ${failed.length} steps failed, the first: ${JSON.stringify(failed[0])}\n${describeRun(r)}`);
  return r.steps.filter((s) => s.step === "sql");
}

async function primaryRows(client) {
  const rs = await client.execute(ROWS);
  return rs.rows.map((row) => rs.columns.map((_, i) => row[i]));
}

async function withPrimary(fn) {
  const dir = tempDir("replite-hosts-");
  const server = await startServer({ dataDir: dir.file("data") });
  const client = createClient({ url: server.url });
  try {
    await client.batch(
      [
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)",
        "INSERT INTO t(v, b) VALUES ('one', x'00ff'), ('two', NULL), ('big', randomblob(9000))",
      ],
      "write",
    );
    await fn({ dir, server, client });
  } finally {
    client.close();
    try {
      await server.stop();
    } finally {
      dir.remove();
    }
  }
}

test(`SQLite hosts (${HOSTS.map((h) => h.version).join(", ")}; built in ${built.seconds.toFixed(1)} s)`, async (t) => {
  t.diagnostic(`extension: ${EXTENSION}; hosts: ${HOSTS.map((h) => `${h.spec} = ${h.version}`).join(", ")}`);
  for (const host of HOSTS) {
    await t.test(`SQLite ${host.version} (${host.spec})`, async (t) => {
      const supported = compareVersions(host.version, MIN_SUPPORTED) >= 0;
      await withPrimary(async ({ dir, server, client }) => {
        const uri = (name) => `file:${dir.file(name)}?vfs=replite&sync_url=${server.url}`;
        // A replica bootstrapped by the newest host, for the second part
        // when this host cannot make its own.
        if (host !== NEWEST) {
          const seed = await runHost(NEWEST, [`.open ${uri("seed.db")}`, ROWS]);
          assertNoCrash(seed, `seeding with SQLite ${NEWEST.version}`);
          assertAllOk(seed, `seeding with SQLite ${NEWEST.version}`);
        }

        // 1. A new replica: bootstrap, read, write, sync, close, reopen.
        let own = false;
        await t.test("new replica: bootstrap, read, write, replite_sync(), reopen, integrity_check", async () => {
          const what = `SQLite ${host.version}, new replica`;
          const before = await primaryRows(client);
          const local = `from ${host.version}`;
          const r = await runHost(host, [
            `.open ${uri("r.db")}`,
            ROWS,
            `INSERT INTO t(v, b) VALUES ('${local}', randomblob(100))`,
            "SELECT replite_sync()",
            ROWS,
            ".close",
            `.open ${uri("r.db")}`,
            ROWS,
            "PRAGMA integrity_check",
          ]);
          assertNoCrash(r, what);
          if (!supported && classifyLoad(host, r, what) === "refused") {
            t.diagnostic(`SQLite ${host.version} refused: ${r.steps.find((s) => s.step === "load").error}`);
            return;
          }
          const sql = assertAllOk(r, supported ? what : `${what} (loaded the extension, so must work)`);
          const after = await primaryRows(client);
          own = true;
          assert.deepEqual(sql[0].rows, before, `${what}: the bootstrapped rows are the primary's`);
          assert.deepEqual(after.slice(0, -1), before, `${what}: the primary gained one row`);
          assert.deepEqual(after.at(-1).slice(1), [local, 100], `${what}: the local INSERT is on the primary`);
          assert.ok(Number.isInteger(sql[2].rows[0][0]), `${what}: replite_sync() returns a frame number`);
          assert.deepEqual(sql[3].rows, after, `${what}: the rows after the write and the sync`);
          assert.deepEqual(sql[4].rows, after, `${what}: the rows after reopening`);
          assert.deepEqual(sql[5].rows, [["ok"]], `${what}: integrity_check`);
        });

        // 2. An existing replica behind the primary: the sync injects the
        // new frames (the path that reads sqlite3_txn_state).
        await t.test("existing replica: catches up with the primary, integrity_check", async () => {
          const name = own ? "r.db" : "seed.db";
          const what = `SQLite ${host.version}, existing replica ${name} (made by SQLite ${own ? host.version : NEWEST.version})`;
          await client.execute("INSERT INTO t(v, b) VALUES ('from the primary', zeroblob(5000))");
          const expected = await primaryRows(client);
          const r = await runHost(host, [`.open ${uri(name)}`, "SELECT replite_sync()", ROWS, "PRAGMA integrity_check"]);
          assertNoCrash(r, what);
          if (!supported && classifyLoad(host, r, what) === "refused") return;
          const sql = assertAllOk(r, supported ? what : `${what} (loaded the extension, so must work)`);
          assert.deepEqual(sql[1].rows, expected, `${what}: the rows after replite_sync()`);
          assert.deepEqual(sql[2].rows, [["ok"]], `${what}: integrity_check`);
        });
      });
    });
  }
});
