// The replica extension (libreplite.so) from the three hosts people load
// SQLite extensions into, each against a real `replite serve`:
//   - the stock sqlite3 shell (Debian's /usr/bin/sqlite3): .load, .open;
//   - Debian's Python (/usr/bin/python3) and its sqlite3 module, through
//     extension_host.py (the system libsqlite3);
//   - Node's better-sqlite3, which bundles its own SQLite: the extension
//     reaches it only through the sqlite3_api routines.
// Each: bootstrap at the first open, reads, a commit on the primary made
// visible by PRAGMA replite_sync and by the live (long-poll) sync, status
// JSON, local writes (one autocommit INSERT, one BEGIN..COMMIT of two
// statements) that are on the primary when the statement (the COMMIT)
// returns and visible locally at once, journal_mode and locking_mode
// refusals, a bad URI parameter, and the replica file read by the same host
// without the extension.
//
// The extension: $REPLITE_EXTENSION, else libreplite.so beside $REPLITE_BIN.
// (An ASan-instrumented .so cannot be loaded into these uninstrumented
// hosts: scripts/test points REPLITE_EXTENSION at the plain build.)

// better-sqlite3 reads SQLITE_USE_URI once, when its addon is loaded: set it
// before the dynamic import below.
process.env.SQLITE_USE_URI = "1";

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { createClient } from "@libsql/client";
import { REPLITE_BIN, serverInfo, settledRequestLog, sleep, startServer, tempDir } from "./harness.mjs";

const { default: Database } = await import("better-sqlite3");

const EXTENSION = process.env.REPLITE_EXTENSION ?? join(dirname(REPLITE_BIN), "libreplite.so");
// `.load` and Python's load_extension add the suffix themselves (and derive
// the entry point sqlite3_replite_init from the file name).
const EXTENSION_NO_SUFFIX = EXTENSION.replace(/\.so$/, "");
const SQLITE3 = "/usr/bin/sqlite3";
const PYTHON = "/usr/bin/python3"; // not pyenv's: it lacks enable_load_extension
const HOST_PY = join(import.meta.dirname, "extension_host.py");

// Rows, with long blobs abbreviated (BIG compares the whole long one).  The
// same queries are in extension_host.py.
const SNAPSHOT =
  "SELECT id, v, length(b), CASE WHEN length(b) > 64" +
  " THEN substr(hex(b), 1, 32) || '..' || substr(hex(b), -32) ELSE hex(b) END" +
  " FROM t ORDER BY id";
const BIG = "SELECT hex(b) FROM t WHERE v = 'big'";
const LIVE_DEADLINE_MS = 5000;
const STATUS_KEYS = [
  "generation",
  "frame_no",
  "primary_frame_no",
  "last_sync_unix_ms",
  "pending_frames",
  "offline",
  "sync_interval",
  "frames_pulled",
  "bytes_pulled",
  "last_error",
];

const uriOf = (server, path, extra = "") => `file:${path}?vfs=replite&sync_url=${server.url}${extra}`;

async function primaryRows(client, sql = SNAPSHOT) {
  const rs = await client.execute(sql);
  return rs.rows.map((row) => rs.columns.map((_, i) => row[i]));
}

const primaryInsert = (client, v) => client.execute({ sql: "INSERT INTO t(v, b) VALUES (?, randomblob(16))", args: [v] });

// A primary with a table whose rows span several pages (one overflows).
async function withPrimary(fn) {
  const dir = tempDir("replite-ext-");
  const server = await startServer({ dataDir: dir.file("data"), args: ["--log-requests"] });
  const client = createClient({ url: server.url });
  try {
    await client.batch(
      [
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)",
        "CREATE INDEX t_v ON t(v)",
        "INSERT INTO t(v, b) VALUES ('one', x'00ff10'), ('two', NULL), ('big', randomblob(12000))",
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

// The whole long blob (its overflow pages), compared without printing it.
async function checkBig(client, actual, what) {
  const expected = (await primaryRows(client, BIG))[0][0];
  assert.equal(typeof actual, "string", `${what}: the big blob is there`);
  assert.ok(actual === expected, `${what}: the big blob differs (length ${actual.length}, expected ${expected.length})`);
}

// The status JSON of a replica that has applied everything up to `head`.
function checkStatus(text, { head, generation, syncInterval }, what) {
  let s;
  assert.doesNotThrow(() => (s = JSON.parse(text)), `${what}: status is JSON: ${text}`);
  for (const k of STATUS_KEYS) assert.ok(k in s, `${what}: status has ${k}: ${text}`);
  assert.equal(s.generation, generation, `${what}: generation`);
  assert.equal(s.frame_no, head, `${what}: frame_no`);
  assert.ok(s.primary_frame_no >= head, `${what}: primary_frame_no ${s.primary_frame_no} < ${head} (the applied frame): ${text}`);
  assert.equal(s.pending_frames, 0, `${what}: pending_frames`);
  assert.equal(s.offline, false, `${what}: offline`);
  assert.equal(s.last_error, null, `${what}: last_error`);
  assert.ok(Math.abs(Date.now() - s.last_sync_unix_ms) < 120000, `${what}: last_sync_unix_ms: ${text}`);
  assert.ok(s.frames_pulled > 0 && s.bytes_pulled > 0, `${what}: pulled counters: ${text}`);
  if (syncInterval !== undefined) assert.equal(s.sync_interval, syncInterval, `${what}: sync_interval`);
  return s;
}

// After a background sync the status follows the data by a moment (frame_no
// is recorded after the frames are published, primary_frame_no after that):
// true once it has caught up with `head`.
function settled(text, head) {
  const s = JSON.parse(text);
  return s.frame_no >= head && s.primary_frame_no >= head;
}

async function waitUntil(what, fn, timeoutMs = LIVE_DEADLINE_MS) {
  const start = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return Date.now() - start;
    if (Date.now() - start > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await sleep(5);
  }
}

const exportsIn = (log) => log.filter((r) => r.method === "GET" && r.path.startsWith("/export/"));
const pushesIn = (log) => log.filter((r) => r.method === "POST" && r.path.startsWith("/sync/"));

// Rows with v in `values`, as (v, hex(b)), on the primary.
const LOCAL_ROWS = (values) =>
  `SELECT v, hex(b) FROM t WHERE v IN (${values.map((v) => `'${v}'`).join(", ")}) ORDER BY id`;

// After a local write on a replica with sync_interval=0 (so only the write
// path can have brought anything): the primary has `expected` (rows of
// LOCAL_ROWS(values)), the replica's rows equal the primary's, and its
// status says it is at the primary's head; the push went through POST /sync.
async function checkLocalWrite({ server, client }, values, expected, localRows, status, what) {
  assert.deepEqual(await primaryRows(client, LOCAL_ROWS(values)), expected, `${what}: on the primary`);
  assert.deepEqual(localRows, await primaryRows(client), `${what}: the replica has the primary's rows`);
  const info = await serverInfo(server);
  const s = JSON.parse(status);
  assert.equal(s.frame_no, info.max_frame_no, `${what}: the replica is at the primary's head: ${status}`);
  assert.equal(s.pending_frames, 0, `${what}: nothing pending: ${status}`);
  assert.equal(s.last_error, null, `${what}: last_error: ${status}`);
  const log = await settledRequestLog(server);
  const pushes = pushesIn(log);
  assert.ok(pushes.length > 0 && pushes.every((r) => r.status === 200), `${what}: pushed: ${JSON.stringify(pushes)}`);
  // The access log (--log-requests) names each push's route, replica,
  // transaction and outcome, and each pull's route and replica.
  for (const r of pushes) {
    assert.match(r.route, /^\/sync\/\{gen\}\/\{start\}\/\{end\}(\/\{baton\})?$/, `${what}: ${JSON.stringify(r)}`);
    assert.match(r.replica ?? "", /^[0-9a-f]{16}$/, `${what}: the replica's id: ${JSON.stringify(r)}`);
    assert.match(r.txn ?? "", /^[0-9a-f]{32}$/, `${what}: the push's txn: ${JSON.stringify(r)}`);
    assert.ok(r.push === "ok" || r.push === null, `${what}: ${JSON.stringify(r)}`);
    assert.equal(r.database, "default");
    assert.ok(Number.isInteger(r.ms) && Number.isInteger(r.bytes) && r.bytes > 0, `${what}: ${JSON.stringify(r)}`);
  }
  assert.ok(pushes.some((r) => r.push === "ok"), `${what}: a push answered ok: ${JSON.stringify(pushes)}`);
  const pulls = log.filter((r) => r.method === "GET" && r.route === "/sync/{gen}/{start}/{end}");
  assert.ok(pulls.length > 0 && pulls.every((r) => /^[0-9a-f]{16}$/.test(r.replica ?? "")), `${what}: pulls: ${JSON.stringify(pulls.slice(0, 3))}`);
}

// ---------------------------------------------------------------------------
// The stock sqlite3 shell, driven over a pipe as a user would type into it.

function startShell() {
  const child = spawn(SQLITE3, ["-batch"], { stdio: ["pipe", "pipe", "pipe"] });
  const shell = { child, out: "", err: "", n: 0 };
  child.stdout.setEncoding("utf8").on("data", (d) => (shell.out += d));
  child.stderr.setEncoding("utf8").on("data", (d) => (shell.err += d));
  shell.exited = new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
  let dead = null;
  shell.exited.then((x) => (dead = x));
  // Sends the lines, then markers on stdout and stderr; resolves with what
  // the lines printed on each.
  shell.run = async (...lines) => {
    const mark = `@@mark-${++shell.n}@@`;
    const out0 = shell.out.length;
    const err0 = shell.err.length;
    child.stdin.write(`${lines.join("\n")}\n.print ${mark}\n.shell echo ${mark} >&2\n`);
    const deadline = Date.now() + 20000;
    while (!(shell.out.includes(mark, out0) && shell.err.includes(mark, err0))) {
      if (dead) assert.fail(`sqlite3 exited (${JSON.stringify(dead)}) running ${lines}:\n${shell.out}\n${shell.err}`);
      if (Date.now() > deadline) assert.fail(`sqlite3 did not finish ${lines}:\n${shell.out}\n${shell.err}`);
      await sleep(2);
    }
    return {
      out: shell.out.slice(out0, shell.out.indexOf(mark, out0)),
      err: shell.err.slice(err0, shell.err.indexOf(mark, err0)),
    };
  };
  // One statement in `.mode json`; rows as arrays.
  shell.query = async (sql) => {
    const { out, err } = await shell.run(".mode json", sql.endsWith(";") ? sql : `${sql};`);
    assert.equal(err, "", `sqlite3: ${sql}`);
    return out.trim() === "" ? [] : JSON.parse(out).map((row) => Object.values(row));
  };
  shell.value = async (sql) => (await shell.query(sql))[0][0];
  shell.quit = async () => {
    child.stdin.end(".quit\n");
    return shell.exited;
  };
  shell.kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  return shell;
}

// Plain sqlite3 (no extension) on the replica file.
function plainShell(path, sql) {
  const r = spawnSync(SQLITE3, ["-json", path, sql], { encoding: "utf8", timeout: 20000 });
  assert.equal(r.status, 0, `plain sqlite3 ${path} ${sql}: ${r.stderr}`);
  return r.stdout.trim() === "" ? [] : JSON.parse(r.stdout).map((row) => Object.values(row));
}

test("the sqlite3 shell: .load, .open bootstraps, local writes, PRAGMA replite_sync, live sync, refusals, plain reads", async (t) => {
  await withPrimary(async ({ dir, server, client }) => {
    const info = await serverInfo(server);
    const path = dir.file("sh.db");
    let sh = startShell();
    try {
      const load = await sh.run(`.load ${EXTENSION_NO_SUFFIX}`);
      assert.equal(load.err, "", ".load");
      const open = await sh.run(`.open ${uriOf(server, path, "&sync_interval=0")}`);
      assert.equal(open.err, "", ".open bootstraps the new file");
      assert.ok(existsSync(`${path}-replite`), "the state file is beside the database");
      assert.deepEqual(await sh.query(SNAPSHOT), await primaryRows(client), "bootstrapped content");
      await checkBig(client, await sh.value(BIG), "sqlite3 shell");
      assert.deepEqual(await sh.query("PRAGMA integrity_check"), [["ok"]]);
      assert.deepEqual(await sh.query("PRAGMA journal_mode"), [["wal"]]);
      const at = { head: info.max_frame_no, generation: info.current_generation, syncInterval: 0 };
      checkStatus(await sh.value("SELECT replite_status()"), at, "replite_status()");
      checkStatus(await sh.value("PRAGMA replite_status"), at, "PRAGMA replite_status");

      // A local write: on the primary when the statement returns, visible
      // locally at once (sync_interval=0: no sync brings it back).
      let r = await sh.run("INSERT INTO t(v, b) VALUES ('sh-local', x'0102');");
      assert.equal(r.err, "", "a local INSERT succeeds");
      assert.deepEqual(await sh.query(LOCAL_ROWS(["sh-local"])), [["sh-local", "0102"]], "visible locally");
      await checkLocalWrite(
        { server, client },
        ["sh-local"],
        [["sh-local", "0102"]],
        await sh.query(SNAPSHOT),
        await sh.value("PRAGMA replite_status"),
        "sqlite3 shell INSERT",
      );
      // A transaction of two statements: nothing on the primary before the
      // COMMIT, all of it after.
      r = await sh.run("BEGIN;", "INSERT INTO t(v) VALUES ('sh-tx-1');", "UPDATE t SET b = x'ff' WHERE v = 'sh-local';");
      assert.equal(r.err, "", "BEGIN and two statements");
      assert.deepEqual(
        await primaryRows(client, LOCAL_ROWS(["sh-local", "sh-tx-1"])),
        [["sh-local", "0102"]],
        "not on the primary before the COMMIT",
      );
      r = await sh.run("COMMIT;");
      assert.equal(r.err, "", "COMMIT");
      const txRows = [["sh-local", "FF"], ["sh-tx-1", ""]];
      assert.deepEqual(await sh.query(LOCAL_ROWS(["sh-local", "sh-tx-1"])), txRows, "the transaction is visible locally");
      await checkLocalWrite(
        { server, client },
        ["sh-local", "sh-tx-1"],
        txRows,
        await sh.query(SNAPSHOT),
        await sh.value("PRAGMA replite_status"),
        "sqlite3 shell transaction",
      );
      assert.deepEqual(await sh.query("PRAGMA integrity_check"), [["ok"]]);

      // Mode changes are refused.
      r = await sh.run("PRAGMA journal_mode=DELETE;");
      assert.match(r.err, /journal_mode=DELETE is refused/);
      r = await sh.run("PRAGMA locking_mode=EXCLUSIVE;");
      assert.match(r.err, /locking_mode=EXCLUSIVE is refused/);
      assert.deepEqual(await sh.query("PRAGMA journal_mode"), [["wal"]]);
      assert.deepEqual(await sh.query(SNAPSHOT), await primaryRows(client));

      // A plain sqlite3 process reads the file while the replica is open.
      assert.deepEqual(plainShell(path, SNAPSHOT), await primaryRows(client), "plain read while open");

      // A commit on the primary: not there before the sync (sync_interval=0),
      // there after PRAGMA replite_sync, which returns the primary's head.
      const before = await sh.query(SNAPSHOT);
      await primaryInsert(client, "sh-explicit");
      const head = (await serverInfo(server)).max_frame_no;
      assert.deepEqual(await sh.query(SNAPSHOT), before, "nothing arrives without a sync");
      assert.equal(Number(await sh.value("PRAGMA replite_sync")), head, "PRAGMA replite_sync returns the head");
      const synced = await primaryRows(client);
      assert.deepEqual(await sh.query(SNAPSHOT), synced, "the commit is there after the sync");
      assert.equal(Number(await sh.value("SELECT replite_sync()")), head, "replite_sync() when caught up");
      checkStatus(await sh.value("SELECT replite_status()"), { ...at, head }, "status after the sync");

      // The default sync_interval: a commit shows up without asking.
      const live = dir.file("sh-live.db");
      assert.equal((await sh.run(`.open ${uriOf(server, live)}`)).err, "", ".open with the default sync_interval");
      assert.deepEqual(await sh.query(SNAPSHOT), await primaryRows(client));
      await primaryInsert(client, "sh-live");
      const ms = await waitUntil(
        "live sync in the sqlite3 shell",
        async () => (await sh.value("SELECT count(*) FROM t WHERE v = 'sh-live'")) === 1,
      );
      t.diagnostic(`live sync: the commit was visible after ${ms} ms`);
      assert.deepEqual(await sh.query(SNAPSHOT), await primaryRows(client));
      const liveHead = (await serverInfo(server)).max_frame_no;
      const liveStatus = () => sh.value("SELECT replite_status()");
      await waitUntil("live status", async () => settled(await liveStatus(), liveHead));
      checkStatus(await liveStatus(), { ...at, head: liveHead, syncInterval: 1 }, "live status");

      // A bad parameter fails the open with a message naming it.
      r = await sh.run(`.open ${uriOf(server, dir.file("bad.db"), "&sync_interval=abc")}`);
      assert.match(r.err, /unable to open database/);
      assert.match(r.err, /sync_interval 'abc' is not a duration/);
      r = await sh.run(`.open file:${dir.file("bad2.db")}?vfs=replite&sync_url=ftp://nowhere`);
      assert.match(r.err, /sync_url 'ftp:\/\/nowhere' is not a primary's URL/);

      const { signal } = await sh.quit();
      assert.equal(signal, null, `sqlite3 exited cleanly:\n${sh.err}`);

      // Closed: plain sqlite3 reads both files (and, as the last connection,
      // checkpoints them)...
      assert.deepEqual(plainShell(path, SNAPSHOT), synced, "plain read of sh.db");
      assert.deepEqual(plainShell(live, SNAPSHOT), await primaryRows(client), "plain read of sh-live.db");
      assert.deepEqual(plainShell(path, "PRAGMA integrity_check"), [["ok"]]);
      await checkBig(client, plainShell(live, BIG)[0][0], "plain sqlite3 read");

      // ...and the replica reopens after that and keeps syncing.
      sh = startShell();
      await sh.run(`.load ${EXTENSION_NO_SUFFIX}`);
      assert.equal((await sh.run(`.open ${uriOf(server, path, "&sync_interval=0")}`)).err, "", "reopen");
      assert.deepEqual(await sh.query(SNAPSHOT), synced, "reopened, it has what it had");
      await primaryInsert(client, "sh-reopen");
      assert.equal(Number(await sh.value("PRAGMA replite_sync")), (await serverInfo(server)).max_frame_no);
      assert.deepEqual(await sh.query(SNAPSHOT), await primaryRows(client));
      assert.equal((await sh.quit()).signal, null);
      assert.deepEqual(exportsIn(await settledRequestLog(server)).length, 2, "one bootstrap per replica file");
    } finally {
      sh.kill();
    }
  });
});

// ---------------------------------------------------------------------------
// Debian's Python: extension_host.py reports each step as a JSON line.

async function runPython(args, onWrite, onCheck) {
  const child = spawn(PYTHON, [HOST_PY, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
  const exited = new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30000);
  const steps = {};
  try {
    for await (const line of createInterface({ input: child.stdout })) {
      const msg = JSON.parse(line);
      if (msg.step === "write") {
        const head = await onWrite(msg.value);
        child.stdin.write(`${JSON.stringify({ head })}\n`);
      } else if (msg.step === "check") {
        await onCheck(msg);
        child.stdin.write("{}\n");
      } else {
        steps[msg.step] = msg;
      }
    }
  } finally {
    clearTimeout(timer);
    child.stdin.end();
  }
  const { code, signal } = await exited;
  assert.equal(signal, null, `python killed by ${signal}:\n${stderr}`);
  assert.equal(code, 0, `python exited with ${code}:\n${stderr}`);
  return steps;
}

test("Python's sqlite3 module: load_extension, connect(uri=True), syncs, local writes and a transaction", async (t) => {
  await withPrimary(async ({ dir, server, client }) => {
    const info = await serverInfo(server);
    const initial = await primaryRows(client);
    const heads = {};
    // What the primary had at each check (the Python process waits meanwhile).
    const checks = {};
    const onCheck = async (msg) => {
      checks[msg.name] = {
        ...msg,
        localAll: msg.rows, // the replica's SNAPSHOT
        rows: await primaryRows(client), // the primary's
        primary: await primaryRows(client, LOCAL_ROWS(["py-local", "py-tx-1"])),
        head: (await serverInfo(server)).max_frame_no,
        pushes: pushesIn(await settledRequestLog(server)),
      };
    };
    const s = await runPython(
      ["replica", EXTENSION_NO_SUFFIX, dir.path, server.url],
      async (v) => {
        await primaryInsert(client, v);
        heads[v] = { head: (await serverInfo(server)).max_frame_no, rows: await primaryRows(client) };
        return heads[v].head;
      },
      onCheck,
    );
    for (const step of ["loaded", "bootstrap", "refused", "explicit_sync", "live_open", "live", "bad_parameter", "done"])
      assert.ok(step in s, `python reached step ${step}: ${JSON.stringify(s)}`);
    assert.match(s.loaded.sqlite_version, /^3\./);

    const at = { head: info.max_frame_no, generation: info.current_generation, syncInterval: 0 };
    assert.deepEqual(s.bootstrap.rows, initial, "bootstrapped content");
    await checkBig(client, s.bootstrap.big, "python");
    assert.deepEqual(s.bootstrap.integrity, ["ok"]);
    assert.equal(s.bootstrap.journal_mode, "wal");
    checkStatus(s.bootstrap.status_function, at, "replite_status()");
    checkStatus(s.bootstrap.status_pragma, at, "PRAGMA replite_status");
    assert.equal(s.bootstrap.sync_function, info.max_frame_no, "replite_sync() when caught up");

    // The local INSERT (committed by commit()): on the primary when commit()
    // returned, visible locally, the replica at the primary's head.
    const local = checks["py-local"];
    assert.ok(local, `python reached the local write: ${JSON.stringify(s)}`);
    assert.equal(local.error, null, `the local INSERT succeeds: ${JSON.stringify(local.error)}`);
    assert.deepEqual(local.primary, [["py-local", "0102"]], "the INSERT is on the primary when commit() returns");
    assert.deepEqual(local.local, [["py-local", "0102"]], "the INSERT is visible locally");
    assert.deepEqual(local.localAll, local.rows, "the replica has the primary's rows");
    checkStatus(local.status, { ...at, head: local.head }, "status after the local INSERT");
    assert.ok(local.pushes.length > 0 && local.pushes.every((r) => r.status === 200), JSON.stringify(local.pushes));
    // BEGIN, INSERT, UPDATE, COMMIT: nothing on the primary before the
    // COMMIT, all of it after.
    const open = checks["py-tx-open"];
    assert.ok(open, `python reached the middle of the transaction: ${JSON.stringify(checks["py-tx"])}`);
    assert.equal(open.in_transaction, true);
    assert.deepEqual(open.primary, [["py-local", "0102"]], "not on the primary before the COMMIT");
    const tx = checks["py-tx"];
    assert.equal(tx.error, null, `the local transaction succeeds: ${JSON.stringify(tx.error)}`);
    const txRows = [["py-local", "FF"], ["py-tx-1", ""]];
    assert.deepEqual(tx.primary, txRows, "the transaction is on the primary when COMMIT returns");
    assert.deepEqual(tx.local, txRows, "the transaction is visible locally");
    assert.deepEqual(tx.localAll, tx.rows, "the replica has the primary's rows");
    assert.deepEqual(tx.integrity, ["ok"]);
    checkStatus(tx.status, { ...at, head: tx.head }, "status after the local transaction");
    const afterLocal = tx.rows;

    const { journal_mode_delete, locking_mode_exclusive } = s.refused;
    assert.match(journal_mode_delete?.message ?? "", /journal_mode=DELETE is refused/);
    assert.match(locking_mode_exclusive?.message ?? "", /locking_mode=EXCLUSIVE is refused/);
    assert.equal(s.refused.journal_mode, "wal");
    assert.deepEqual(s.refused.rows, afterLocal);

    const explicit = heads["py-explicit"];
    assert.deepEqual(s.explicit_sync.before, afterLocal, "nothing arrives without a sync (sync_interval=0)");
    assert.equal(Number(s.explicit_sync.frame), explicit.head, "PRAGMA replite_sync returns the head");
    assert.deepEqual(s.explicit_sync.after, explicit.rows, "the commit is there after the sync");
    checkStatus(s.explicit_sync.status, { ...at, head: explicit.head }, "status after the sync");

    const live = heads["py-live"];
    assert.deepEqual(s.live_open.rows, explicit.rows);
    assert.equal(s.live.seen, true, `live sync: the commit did not show up within 5 s: ${JSON.stringify(s.live)}`);
    t.diagnostic(`live sync: the commit was visible after ${s.live.ms} ms of polling`);
    assert.deepEqual(s.live.rows, live.rows);
    checkStatus(s.live.status, { ...at, head: live.head, syncInterval: 1 }, "live status");

    const bad = s.bad_parameter;
    assert.equal(bad.sync_interval?.type, "OperationalError", JSON.stringify(bad));
    assert.match(bad.sync_interval.message, /sync_interval 'abc' is not a duration/);
    assert.match(bad.sync_url?.message ?? "", /sync_url 'ftp:\/\/nowhere' is not a primary's URL/);

    // The files read by plain Python sqlite3, without the extension.
    for (const [name, rows] of [
      ["py.db", explicit.rows],
      ["py-live.db", live.rows],
    ]) {
      const { plain } = await runPython(["plain", join(dir.path, name)]);
      assert.deepEqual(plain.rows, rows, `plain read of ${name}`);
      assert.deepEqual(plain.integrity, ["ok"]);
      await checkBig(client, plain.big, `plain python read of ${name}`);
      assert.equal(plain.journal_mode, "wal");
      assert.equal(plain.replite_functions, 0, "the extension is not loaded");
    }
  });
});

// ---------------------------------------------------------------------------
// better-sqlite3, with its own bundled SQLite, in this process.

function plainNode(path) {
  const script = `
    const Database = require("better-sqlite3");
    const db = new Database(process.argv[1]);
    console.log(JSON.stringify({
      rows: db.prepare(${JSON.stringify(SNAPSHOT)}).raw().all(),
      big: db.prepare(${JSON.stringify(BIG)}).pluck().get(),
      integrity: db.prepare("PRAGMA integrity_check").pluck().all(),
      functions: db.prepare("SELECT count(*) FROM pragma_function_list WHERE name LIKE 'replite%'").pluck().get(),
    }));
    db.close();`;
  const env = { ...process.env };
  delete env.SQLITE_USE_URI;
  const r = spawnSync(process.execPath, ["-e", script, path], {
    cwd: import.meta.dirname,
    env,
    encoding: "utf8",
    timeout: 20000,
  });
  assert.equal(r.status, 0, `plain better-sqlite3 on ${path}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

test("better-sqlite3 (its own SQLite): loadExtension, local writes, shared replica, statements, snapshots, live sync", async (t) => {
  await withPrimary(async ({ dir, server, client }) => {
    const info = await serverInfo(server);
    const open = [];
    const db = (name, extra) => {
      const d = new Database(uriOf(server, dir.file(name), extra));
      open.push(d);
      return d;
    };
    const rowsOf = (d, sql = SNAPSHOT) => d.prepare(sql).raw().all();
    try {
      const boot = new Database(":memory:");
      open.push(boot);
      assert.match(boot.prepare("SELECT sqlite_version()").pluck().get(), /^3\./);
      boot.loadExtension(EXTENSION);

      const a = db("bs.db", "&sync_interval=0");
      const at = { head: info.max_frame_no, generation: info.current_generation, syncInterval: 0 };
      assert.deepEqual(rowsOf(a), await primaryRows(client), "bootstrapped content");
      await checkBig(client, a.prepare(BIG).pluck().get(), "better-sqlite3");
      assert.equal(a.pragma("journal_mode", { simple: true }), "wal");
      assert.deepEqual(a.pragma("integrity_check", { simple: true }), "ok");
      checkStatus(a.pragma("replite_status", { simple: true }), at, "PRAGMA replite_status");
      checkStatus(a.prepare("SELECT replite_status()").pluck().get(), at, "replite_status()");

      // A local write: on the primary when run() returns, visible locally at
      // once (sync_interval=0: no sync brings it back).
      const ins = a.prepare("INSERT INTO t(v, b) VALUES (?, ?)").run("bs-local", Buffer.from([1, 2]));
      assert.equal(ins.changes, 1);
      assert.deepEqual(rowsOf(a, `SELECT v, hex(b) FROM t WHERE id = ${ins.lastInsertRowid}`), [["bs-local", "0102"]]);
      const status = () => a.pragma("replite_status", { simple: true });
      const inserted = [["bs-local", "0102"]];
      await checkLocalWrite({ server, client }, ["bs-local"], inserted, rowsOf(a), status(), "better-sqlite3 INSERT");
      // A transaction of two statements: nothing on the primary before the
      // COMMIT, all of it after.
      a.exec("BEGIN");
      a.prepare("INSERT INTO t(v) VALUES (?)").run("bs-tx-1");
      a.exec("UPDATE t SET b = x'ff' WHERE v = 'bs-local'");
      const both = ["bs-local", "bs-tx-1"];
      assert.deepEqual(await primaryRows(client, LOCAL_ROWS(both)), inserted, "not on the primary before the COMMIT");
      a.exec("COMMIT");
      const txRows = [["bs-local", "FF"], ["bs-tx-1", ""]];
      assert.deepEqual(rowsOf(a, LOCAL_ROWS(both)), txRows, "the transaction is visible locally");
      await checkLocalWrite({ server, client }, both, txRows, rowsOf(a), status(), "better-sqlite3 transaction");
      assert.equal(a.pragma("integrity_check", { simple: true }), "ok");
      assert.throws(() => a.pragma("journal_mode = DELETE"), /journal_mode=DELETE is refused/);
      assert.throws(() => a.pragma("locking_mode = EXCLUSIVE"), /locking_mode=EXCLUSIVE is refused/);
      assert.equal(a.pragma("journal_mode", { simple: true }), "wal");
      assert.deepEqual(rowsOf(a), await primaryRows(client));

      // A second connection to the same file shares the replica: no second
      // bootstrap, and what a sync on one applies the other sees.
      const b = db("bs.db", "&sync_interval=0");
      assert.deepEqual(rowsOf(b), rowsOf(a));
      assert.equal(exportsIn(await settledRequestLog(server)).length, 1, "one bootstrap for two connections");
      const count = b.prepare("SELECT count(*) FROM t").pluck();
      const n0 = count.get();
      await primaryInsert(client, "bs-1");
      let head = (await serverInfo(server)).max_frame_no;
      assert.equal(count.get(), n0, "nothing arrives without a sync");
      assert.equal(Number(a.pragma("replite_sync", { simple: true })), head, "PRAGMA replite_sync returns the head");
      assert.equal(count.get(), n0 + 1, "a prepared statement of the other connection sees the new row");
      assert.deepEqual(rowsOf(b), await primaryRows(client));
      checkStatus(b.pragma("replite_status", { simple: true }), { ...at, head }, "status via the other connection");

      // A read transaction keeps its snapshot while a sync applies frames.
      b.exec("BEGIN");
      const snapshot = rowsOf(b);
      await primaryInsert(client, "bs-2");
      head = (await serverInfo(server)).max_frame_no;
      assert.equal(a.prepare("SELECT replite_sync()").pluck().get(), head, "replite_sync() returns the head");
      assert.equal(rowsOf(a).length, snapshot.length + 1, "a new reader sees the commit");
      assert.deepEqual(rowsOf(b), snapshot, "the open read transaction keeps its snapshot");
      assert.equal(count.get(), n0 + 1);
      b.exec("COMMIT");
      assert.equal(count.get(), n0 + 2, "after the transaction, the new row");
      assert.deepEqual(rowsOf(b), await primaryRows(client));

      // The default sync_interval: a commit shows up without asking.
      const live = db("bs-live.db");
      assert.deepEqual(rowsOf(live), await primaryRows(client));
      const liveCount = live.prepare("SELECT count(*) FROM t WHERE v = 'bs-live'").pluck();
      await primaryInsert(client, "bs-live");
      const ms = await waitUntil("live sync in better-sqlite3", () => liveCount.get() === 1);
      t.diagnostic(`live sync: the commit was visible after ${ms} ms`);
      assert.deepEqual(rowsOf(live), await primaryRows(client));
      const liveHead = (await serverInfo(server)).max_frame_no;
      const liveStatus = () => live.prepare("SELECT replite_status()").pluck().get();
      await waitUntil("live status", () => settled(liveStatus(), liveHead));
      checkStatus(liveStatus(), { ...at, head: liveHead, syncInterval: 1 }, "live status");

      // Bad parameters fail the open with a message naming them.
      assert.throws(() => db("bad.db", "&sync_interval=abc"), /sync_interval 'abc' is not a duration/);
      assert.throws(
        () => new Database(`file:${dir.file("bad2.db")}?vfs=replite&sync_url=ftp://nowhere`),
        /sync_url 'ftp:\/\/nowhere' is not a primary's URL/,
      );

      // The files read by better-sqlite3 in another process, without the
      // extension (while open here, then after closing).
      const expectedA = rowsOf(a);
      for (const [name, rows] of [
        ["bs.db", expectedA],
        ["bs-live.db", await primaryRows(client)],
      ]) {
        const plain = plainNode(dir.file(name));
        assert.deepEqual(plain.rows, rows, `plain read of ${name} while open`);
        assert.deepEqual(plain.integrity, ["ok"]);
        await checkBig(client, plain.big, `plain better-sqlite3 read of ${name}`);
        assert.equal(plain.functions, 0, "the extension is not loaded");
      }
      for (const d of open.splice(0)) d.close();
      assert.deepEqual(plainNode(dir.file("bs.db")).rows, expectedA, "plain read of bs.db after closing");

      // Reopened after the plain (checkpointing) close, the replica syncs on.
      const again = db("bs.db", "&sync_interval=0");
      assert.deepEqual(rowsOf(again), expectedA);
      await primaryInsert(client, "bs-reopen");
      assert.equal(Number(again.pragma("replite_sync", { simple: true })), (await serverInfo(server)).max_frame_no);
      assert.deepEqual(rowsOf(again), await primaryRows(client));
    } finally {
      for (const d of open) {
        try {
          if (d.open) d.close();
        } catch {}
      }
    }
  });
});
