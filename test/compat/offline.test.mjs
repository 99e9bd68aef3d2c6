// Offline mode of the replica (libreplite.so), against a real `replite serve`
// and real host processes: Node's better-sqlite3 (in this process, and in
// offline_worker.mjs) and Debian's /usr/bin/python3 sqlite3 module
// (offline_host.py); the primary is queried with @libsql/client.
//
// A replica opened with offline=1&conflict=discard (or REPLITE_OFFLINE=1)
// bootstraps from the primary at its first open; after that:
//   1. with the primary stopped (SIGSTOP), autocommit writes and BEGIN..COMMIT
//      commit locally at once, and the same connection, another connection
//      and another process see them; replite_status() counts them
//      (pending_transactions, pending_frames); when the primary resumes, the
//      background push (no replite_sync() call) delivers exactly those rows,
//      last_push_unix_ms is set, and an online replica sees them;
//   2. replite_sync() (and PRAGMA replite_sync) fails naming the cause while
//      the primary is down and keeps everything pending; once it is back,
//      replite_sync() pushes it all and returns the primary's frame number;
//   3. kill -9 of a process in the middle of local commits (the primary cut
//      off, or reachable and pushed to meanwhile): every commit that returned
//      is in the file when it is reopened, and reaches the primary exactly
//      once;
//   4. kill -9 of a process while its background push runs (at several
//      moments): nothing is lost and nothing reaches the primary twice;
//   5. two processes writing the same offline file: every row reaches the
//      primary exactly once;
//   6. conflict=discard: when the primary moved meanwhile, the unpushed
//      transactions are dropped, the replica takes the primary's state, each
//      row they changed is recorded with the primary's version
//      (replite_conflicts(), status.conflicts),
//      and the records survive reopening until replite_conflicts_clear();
//   7. an application's PRAGMA wal_checkpoint(TRUNCATE) while transactions are
//      pending loses none of them;
//   8. the stock sqlite3 shell, without the extension, reads the offline file
//      (local commits included, integrity ok), and the commits are still
//      pushed afterwards;
//   9. REPLITE_OFFLINE=1 in the environment works like offline=1;
//  10. the first open of a new file fails naming the cause while the primary
//      is unreachable, and bootstraps once it is back;
//  11. a transaction larger than one push request reaches the primary whole;
//  12. kill -9 while a conflict is being resolved: after a restart every read
//      succeeds while the replica recovers, it ends equal to the primary, and
//      each dropped transaction is recorded exactly once;
//  13. the primary stopped in the middle of a push until the replica gives up
//      on the request, then resumed: every transaction arrives exactly once.
// "The primary is down" is, depending on the test, the server stopped by
// SIGSTOP, stopped and later restarted on the same port and data directory,
// or cut off by a TCP proxy in a process of its own (which then forwards again).
// No timing assertions: waits poll with generous deadlines.
//
// The fixtures (the primary, the proxies, the host processes and their
// protocol) are in offline_harness.mjs.
// The extension: $REPLITE_EXTENSION, else libreplite.so beside $REPLITE_BIN.

// better-sqlite3 reads SQLITE_USE_URI once, when its addon is loaded:
// offline_harness.mjs sets it before loadBetterSqlite3() imports it below.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { serverInfo } from "./harness.mjs";
import {
  loadBetterSqlite3,
  primaryRows as rowsOnPrimary,
  pushedAll,
  setup as setupOffline,
  waitUntil,
} from "./offline_harness.mjs";

// Registers the VFS and the functions in this process.
const Database = await loadBetterSqlite3();

const SQLITE3 = "/usr/bin/sqlite3";
const HOSTS = ["node", "python"];
const OFFLINE = "&offline=1&conflict=discard";
const DEADLINE_MS = 20000;
const TEST_TIMEOUT_MS = 120000;

const T_SCHEMA = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n INTEGER)";
const T_ROWS = "SELECT id, v, n FROM t ORDER BY id";
// No constraint: a transaction pushed twice shows as a duplicate.
const LOG_SCHEMA = "CREATE TABLE log(v TEXT)";
const LOG_INSERT = "INSERT INTO log(v) VALUES (?)";
const LOG_COUNTS = "SELECT count(*), count(DISTINCT v) FROM log";

const rowsOf = (db, sql = T_ROWS) => db.prepare(sql).raw().all();
const statusOf = (db) => JSON.parse(db.prepare("SELECT replite_status()").pluck().get());
const conflictsOf = (db) => db.prepare("SELECT replite_conflicts()").pluck().get();
const valuesOf = (rows, col = 1) => rows.map((r) => r[col]).sort();
const primaryRows = (client, sql = T_ROWS) => rowsOnPrimary(client, sql);
const waitFor = (what, probe, pred, timeoutMs = DEADLINE_MS) => waitUntil(what, probe, pred, timeoutMs);

function checkOfflineStatus(s, { pending }, what) {
  for (const k of ["pending_transactions", "pending_frames", "last_push_unix_ms", "conflicts", "offline"])
    assert.ok(k in s, `${what}: status has ${k}: ${JSON.stringify(s)}`);
  assert.equal(s.offline, true, `${what}: offline`);
  if (pending !== undefined) {
    assert.equal(s.pending_transactions, pending, `${what}: pending_transactions: ${JSON.stringify(s)}`);
    if (pending === 0) assert.equal(s.pending_frames, 0, `${what}: pending_frames: ${JSON.stringify(s)}`);
    else assert.ok(s.pending_frames >= pending, `${what}: pending_frames >= ${pending}: ${JSON.stringify(s)}`);
  }
}

// Per test (offline_harness.mjs): a primary with `schema`, f.client on it,
// optionally the proxy (f.proxy, which f.url then goes through); replicas
// opened through f.open (this process; better-sqlite3 connections) and
// f.host (other processes), with offline=1&conflict=discard unless `params`
// says otherwise.
const setup = (t, opts = {}) => setupOffline(t, { ...opts, prefix: "replite-offline-", Database, params: OFFLINE });

// Plain sqlite3 (no extension) on the file; rows as arrays.
function plainSqlite3(path, sql) {
  const r = spawnSync(SQLITE3, ["-json", path, sql], { encoding: "utf8", timeout: 20000 });
  assert.equal(r.status, 0, `plain sqlite3 ${path} ${sql}: ${r.stderr}`);
  return r.stdout.trim() === "" ? [] : JSON.parse(r.stdout).map((row) => Object.values(row));
}

// The primary holds every value of `values` exactly once and nothing else in
// log; integrity ok.
async function checkPrimaryLog(client, values, what) {
  const [[count, distinct]] = await primaryRows(client, LOG_COUNTS);
  assert.equal(count, distinct, `${what}: nothing reached the primary twice (${count} rows, ${distinct} distinct)`);
  const got = (await primaryRows(client, "SELECT v FROM log")).map(([v]) => v).sort();
  const want = [...values].sort();
  const missing = want.filter((v) => !got.includes(v));
  assert.deepEqual(missing.slice(0, 20), [], `${what}: ${missing.length} values missing on the primary`);
  assert.equal(count, want.length, `${what}: the primary's row count`);
  assert.deepEqual(got, want, `${what}: the primary's rows`);
  assert.deepEqual(await primaryRows(client, "PRAGMA integrity_check"), [["ok"]], `${what}: the primary's integrity`);
}

// ---------------------------------------------------------------------------

test(
  "1. primary stopped (SIGSTOP): writes commit locally at once, every connection and process sees them, status counts them, the background push delivers them on resume",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const f = await setup(t, { schema: [T_SCHEMA, "INSERT INTO t(v) VALUES ('seed')"] });
    const path = f.dir.file("r.db");
    const a = f.open(path); // the first open bootstraps
    assert.deepEqual(rowsOf(a), await primaryRows(f.client), "bootstrapped");
    let s = statusOf(a);
    checkOfflineStatus(s, { pending: 0 }, "after the bootstrap");
    assert.equal(s.last_push_unix_ms, 0, "last_push_unix_ms before any push");
    assert.equal(s.conflicts, 0, "no conflicts");
    const b = f.open(path); // another connection in this process

    f.pause();
    // Another process opens the existing file while the primary is stopped.
    const py = await f.host("python", path);
    const t0 = Date.now();
    a.exec("INSERT INTO t(v) VALUES ('a-1')");
    assert.deepEqual(rowsOf(a, "SELECT v FROM t WHERE v = 'a-1'"), [["a-1"]], "the writing connection sees it at once");
    assert.deepEqual(rowsOf(b, "SELECT v FROM t WHERE v = 'a-1'"), [["a-1"]], "another connection sees it at once");
    assert.deepEqual(await py.query("SELECT v FROM t WHERE v = 'a-1'"), [["a-1"]], "another process sees it at once");
    assert.equal(a.prepare("INSERT INTO t(v) VALUES (?)").run("a-2").changes, 1);
    a.exec("INSERT INTO t(v) VALUES ('a-3')");
    a.exec("BEGIN");
    a.exec("INSERT INTO t(v) VALUES ('a-tx-1')");
    a.prepare("INSERT INTO t(v) VALUES (?)").run("a-tx-2");
    a.exec("UPDATE t SET n = 1 WHERE v = 'a-1'");
    a.exec("COMMIT");
    // Neither a read transaction nor a rolled back one is a pending write.
    a.exec("BEGIN");
    rowsOf(a);
    a.exec("COMMIT");
    a.exec("BEGIN");
    a.exec("INSERT INTO t(v) VALUES ('a-rolled-back')");
    a.exec("ROLLBACK");
    t.diagnostic(`four write transactions with the primary stopped took ${Date.now() - t0} ms`);
    checkOfflineStatus(statusOf(a), { pending: 4 }, "after 4 local transactions");
    assert.deepEqual(rowsOf(b), rowsOf(a), "another connection");
    assert.deepEqual(await py.query(T_ROWS), rowsOf(a), "another process");

    // The other process writes too (autocommit, then BEGIN..COMMIT).
    await py.exec("INSERT INTO t(v) VALUES ('py-1')");
    await py.exec("BEGIN", "INSERT INTO t(v) VALUES ('py-tx-1')", "UPDATE t SET n = 2 WHERE v = 'a-2'", "COMMIT");
    const local = rowsOf(a);
    assert.deepEqual(
      valuesOf(local),
      ["a-1", "a-2", "a-3", "a-tx-1", "a-tx-2", "py-1", "py-tx-1", "seed"],
      "this process sees the other's commits",
    );
    assert.deepEqual(rowsOf(a, "SELECT v, n FROM t WHERE n IS NOT NULL ORDER BY v"), [["a-1", 1], ["a-2", 2]]);
    assert.deepEqual(await py.query(T_ROWS), local);
    assert.deepEqual(rowsOf(b), local);
    checkOfflineStatus(statusOf(a), { pending: 6 }, "status in this process after 6 local transactions (4 here, 2 there)");
    checkOfflineStatus(await py.status(), { pending: 6 }, "status in the other process");
    assert.equal(a.pragma("integrity_check", { simple: true }), "ok");

    // Resume: the background push, without any replite_sync() call.
    f.resume();
    s = await waitFor("the background push delivers everything", () => statusOf(a), pushedAll);
    checkOfflineStatus(s, { pending: 0 }, "after the push");
    assert.ok(s.last_push_unix_ms > 0, `last_push_unix_ms after the push: ${JSON.stringify(s)}`);
    assert.ok(Math.abs(Date.now() - s.last_push_unix_ms) < 120000, `last_push_unix_ms is a recent time: ${JSON.stringify(s)}`);
    assert.equal(s.conflicts, 0, "no conflicts");
    await waitFor("the other process sees nothing pending", () => py.status(), pushedAll);
    assert.deepEqual(await primaryRows(f.client), local, "the primary holds exactly the local rows");
    assert.deepEqual(await primaryRows(f.client, "PRAGMA integrity_check"), [["ok"]]);
    assert.deepEqual(rowsOf(a), local, "the replica is unchanged by the push");
    // An online replica of the same primary.
    const online = f.open(f.dir.file("online.db"), { params: "" });
    assert.deepEqual(rowsOf(online), local, "an online replica (offline=0) sees the pushed rows");
    assert.equal(statusOf(online).offline, false);
    await py.close();
  },
);

for (const kind of HOSTS) {
  test(
    `2. ${kind}: replite_sync() while the primary is down fails naming the cause and keeps everything pending; once it is back, replite_sync() pushes it all`,
    { timeout: TEST_TIMEOUT_MS },
    async (t) => {
      const f = await setup(t, { schema: [T_SCHEMA] });
      const path = f.dir.file("r.db");
      const h = await f.host(kind, path);
      const head0 = (await serverInfo(f.server)).max_frame_no;
      assert.equal(Number(await h.value("SELECT replite_sync()")), head0, "replite_sync() with the primary up and nothing pending");
      await f.stopServer();

      await h.exec("INSERT INTO t(v) VALUES ('x-1')");
      await h.exec("INSERT INTO t(v) VALUES ('x-2')");
      await h.exec("BEGIN", "INSERT INTO t(v) VALUES ('x-3')", "UPDATE t SET n = 3 WHERE v = 'x-1'", "COMMIT");
      const local = await h.query(T_ROWS);
      assert.deepEqual(valuesOf(local), ["x-1", "x-2", "x-3"]);
      for (const sql of ["SELECT replite_sync()", "PRAGMA replite_sync"]) {
        const r = await h.tryQuery(sql);
        assert.ok(r.error, `${sql} fails while the primary is down: ${JSON.stringify(r)}`);
        assert.match(r.error.message, /primary|unreachable|connect|refused/i, `${sql}: the message names the cause`);
        t.diagnostic(`${sql}: ${r.error.message}`);
      }
      const s = await h.status();
      checkOfflineStatus(s, { pending: 3 }, "after the failed syncs");
      assert.equal(typeof s.last_error, "string", `last_error holds the cause: ${JSON.stringify(s)}`);
      assert.deepEqual(await h.query(T_ROWS), local, "the local commits are still there");

      await f.restartServer();
      const frame = Number(await h.value("SELECT replite_sync()"));
      const info = await serverInfo(f.server);
      assert.equal(frame, info.max_frame_no, "replite_sync() returns the primary's frame number");
      const after = await h.status();
      checkOfflineStatus(after, { pending: 0 }, "after replite_sync()");
      assert.ok(after.last_push_unix_ms > 0, JSON.stringify(after));
      assert.equal(after.last_error, null, JSON.stringify(after));
      assert.deepEqual(await primaryRows(f.client), local, "the primary holds exactly the local rows");
      assert.deepEqual(await h.query(T_ROWS), local);
      await h.close();
    },
  );
}

// With the primary cut off all the time, or reachable while the loop runs
// (its background push racing with the commits and the kill).
for (const [kind, reachable] of [
  ["node", false],
  ["python", false],
  ["node", true],
  ["python", true],
]) {
  const where = reachable ? "pushing meanwhile" : "the primary cut off";
  test(
    `3. ${kind}, ${where}: kill -9 in the middle of local commits: every commit that returned survives, and reaches the primary exactly once`,
    { timeout: TEST_TIMEOUT_MS },
    async (t) => {
      const f = await setup(t, { proxy: true, schema: [LOG_SCHEMA] });
      const path = f.dir.file("r.db");
      let h = await f.host(kind, path); // bootstraps through the proxy
      if (!reachable) await f.proxy.cut();
      const printed = [];
      h.onLine = (m) => m.committed && printed.push(m.committed);
      h.send({ op: "loop", sql: LOG_INSERT, prefix: kind });
      await waitFor(
        `300 local commits, ${where}`,
        () => ({ commits: printed.length, ended: h.closed }),
        (x) => x.commits >= 300 || x.ended,
        60000,
      );
      assert.ok(!h.closed, `the writer ended after ${printed.length} commits:\n${h.stderr}`);
      await h.kill();
      const inflight = `${kind}-${printed.length}`;
      const [[onPrimary]] = await primaryRows(f.client, LOG_COUNTS);
      t.diagnostic(`${printed.length} commits returned before the kill; ${onPrimary} rows on the primary then`);

      // A new process, the primary cut off.
      await f.proxy.cut();
      h = await f.host(kind, path);
      const local = (await h.query("SELECT v FROM log")).map(([v]) => v);
      const localSet = new Set(local);
      assert.equal(localSet.size, local.length, "no duplicate rows locally");
      const lost = printed.filter((v) => !localSet.has(v));
      assert.deepEqual(lost, [], "every commit that returned is in the file");
      const extra = local.filter((v) => !printed.includes(v));
      assert.ok(
        extra.length === 0 || (extra.length === 1 && extra[0] === inflight),
        `nothing but the commit in flight is extra: ${JSON.stringify(extra)}`,
      );
      assert.equal(await h.value("PRAGMA integrity_check"), "ok");
      const s = await h.status();
      if (reachable) {
        // Acknowledged ones are no longer pending; one acknowledged just
        // before the kill may still be.
        assert.ok(
          s.pending_transactions <= local.length && s.pending_transactions >= local.length - onPrimary,
          `pending after the restart: ${JSON.stringify(s)} (${local.length} local rows, ${onPrimary} on the primary)`,
        );
      } else {
        checkOfflineStatus(s, { pending: local.length }, "every local commit is pending after the restart");
      }

      await f.proxy.heal();
      const frame = Number(await h.value("SELECT replite_sync()"));
      assert.equal(frame, (await serverInfo(f.server)).max_frame_no, "replite_sync() returns the primary's frame number");
      checkOfflineStatus(await h.status(), { pending: 0 }, "after replite_sync()");
      await checkPrimaryLog(f.client, local, "after the restart");
      assert.deepEqual((await h.query("SELECT v FROM log")).map(([v]) => v).sort(), [...local].sort());
      assert.equal(await h.value("PRAGMA integrity_check"), "ok");
      await h.close();
    },
  );
}

test(
  "4. kill -9 while the background push runs, at several moments: nothing is lost, nothing reaches the primary twice",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const f = await setup(t, { proxy: true, schema: [LOG_SCHEMA] });
    const path = f.dir.file("r.db");
    await (await f.host("node", path)).close(); // the bootstrap
    const N = 500;
    // When to kill the process that pushes: (its status, ms since its open
    // returned, pending when it opened) => true.
    const moments = [
      { name: "as soon as the open returned", when: null },
      { name: "at the first acknowledged push", when: (s, ms, before) => s.pending_transactions < before, push: true },
      { name: "half-way", when: (s, ms, before) => s.pending_transactions <= before - N / 2, push: true },
      { name: "50 ms after the open returned", when: (s, ms) => ms >= 50 },
    ];
    const all = [];
    for (const [round, m] of moments.entries()) {
      const [writerKind, pusherKind] = round % 2 ? ["python", "node"] : ["node", "python"];
      // N transactions of one row each, the primary cut off.
      await f.proxy.cut();
      const writer = await f.host(writerKind, path);
      const values = Array.from({ length: N }, (_, i) => `r${round}-${i}`);
      await writer.insertEach(LOG_INSERT, values);
      all.push(...values);
      const before = (await writer.status()).pending_transactions;
      assert.ok(before >= N, `round ${round}: ${before} transactions pending after ${N} local commits`);
      await writer.close();

      // A process opens the file with the primary reachable: it pushes in
      // the background; kill it at the chosen moment.
      await f.proxy.heal();
      const pusher = await f.host(pusherKind, path);
      const t0 = Date.now();
      let last = null;
      if (m.when) {
        const reached = await new Promise((res) => {
          const timer = setTimeout(() => res(false), DEADLINE_MS);
          pusher.onLine = (msg) => {
            if (!msg.status) return;
            last = msg.status;
            if (m.when(last, Date.now() - t0, before)) {
              clearTimeout(timer);
              pusher.child.kill("SIGKILL");
              res(true);
            }
          };
          pusher.send({ op: "watch" });
        });
        if (m.push) assert.ok(reached, `round ${round}: the background push did not begin within ${DEADLINE_MS} ms: ${JSON.stringify(last)}`);
      }
      await pusher.kill();
      const [[count, distinct]] = await primaryRows(f.client, LOG_COUNTS);
      t.diagnostic(
        `round ${round} (${m.name}): ${before} pending before, ${last?.pending_transactions ?? "?"} at the kill; ` +
          `the primary has ${count} rows`,
      );
      assert.equal(count, distinct, `round ${round}: nothing reached the primary twice so far`);
    }

    // A last process, the primary reachable: everything arrives once.
    const h = await f.host("node", path);
    const pending = (await h.status()).pending_transactions;
    const t0 = Date.now();
    const frame = Number(await h.value("SELECT replite_sync()"));
    t.diagnostic(`the last process pushed ${pending} pending transactions (and what its background push left) in ${Date.now() - t0} ms`);
    assert.equal(frame, (await serverInfo(f.server)).max_frame_no, "replite_sync() returns the primary's frame number");
    checkOfflineStatus(await h.status(), { pending: 0 }, "after replite_sync()");
    const [[localCount, localDistinct]] = await h.query(LOG_COUNTS);
    assert.equal(localCount, all.length, "the local row count");
    assert.equal(localDistinct, all.length, "no duplicates locally");
    await checkPrimaryLog(f.client, all, "after the kills");
    assert.equal(await h.value("PRAGMA integrity_check"), "ok");
    await h.close();
  },
);

test(
  "5. two processes (node and python) write the same offline file while the primary is down: every row reaches it exactly once",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const f = await setup(t, { schema: [LOG_SCHEMA] });
    const path = f.dir.file("r.db");
    const node = await f.host("node", path); // bootstraps
    const py = await f.host("python", path);
    await f.stopServer();
    const N = 150;
    const vals = (tag) => Array.from({ length: N }, (_, i) => `${tag}-${i}`);
    const [rn, rp] = await Promise.all([node.insertEach(LOG_INSERT, vals("node")), py.insertEach(LOG_INSERT, vals("py"))]);
    t.diagnostic(`busy retries: node ${rn.retries}, python ${rp.retries}`);
    await node.exec("BEGIN", "INSERT INTO log(v) VALUES ('node-tx-a')", "INSERT INTO log(v) VALUES ('node-tx-b')", "COMMIT");
    await py.exec("BEGIN", "INSERT INTO log(v) VALUES ('py-tx-a')", "INSERT INTO log(v) VALUES ('py-tx-b')", "COMMIT");
    const all = [...vals("node"), ...vals("py"), "node-tx-a", "node-tx-b", "py-tx-a", "py-tx-b"];
    const sorted = (rows) => rows.map(([v]) => v).sort();
    assert.deepEqual(sorted(await node.query("SELECT v FROM log")), [...all].sort(), "node sees both processes' rows");
    assert.deepEqual(sorted(await py.query("SELECT v FROM log")), [...all].sort(), "python sees both processes' rows");
    for (const h of [node, py]) checkOfflineStatus(await h.status(), { pending: 2 * N + 2 }, `${h.kind}: pending`);

    await f.restartServer();
    for (const h of [node, py])
      await waitFor(`${h.kind}: the background push delivers everything`, () => h.status(), pushedAll, 60000);
    await checkPrimaryLog(f.client, all, "after the primary came back");
    for (const h of [node, py]) {
      assert.deepEqual(sorted(await h.query("SELECT v FROM log")), [...all].sort(), `${h.kind}: local rows after the push`);
      assert.equal(await h.value("PRAGMA integrity_check"), "ok");
      await h.close();
    }
  },
);

test(
  "6. conflict=discard: the primary moved while the replica was cut off: its unpushed transactions are dropped and recorded, it takes the primary's state, the records persist until replite_conflicts_clear()",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const f = await setup(t, { proxy: true, schema: [T_SCHEMA, "INSERT INTO t(v) VALUES ('seed')"] });
    const path = f.dir.file("a.db");
    let a = f.open(path);
    assert.equal(conflictsOf(a), "[]", "no conflicts after the bootstrap");
    assert.equal(statusOf(a).conflicts, 0);
    await f.proxy.cut();
    const t0 = Date.now();
    a.exec("INSERT INTO t(v) VALUES ('a-1')");
    a.exec("INSERT INTO t(v) VALUES ('a-2')");
    a.exec("BEGIN; INSERT INTO t(v) VALUES ('a-tx'); UPDATE t SET n = 7 WHERE v = 'seed'; COMMIT");
    checkOfflineStatus(statusOf(a), { pending: 3 }, "three local transactions");
    // Meanwhile someone else writes to the primary.
    await f.client.execute("INSERT INTO t(v) VALUES ('primary-1')");
    const primary = await primaryRows(f.client);

    await f.proxy.heal();
    await waitFor(
      "the replica resolves the conflict and takes the primary's state",
      () => ({ s: statusOf(a), rows: rowsOf(a) }),
      ({ s, rows }) => pushedAll(s) && JSON.stringify(rows) === JSON.stringify(primary),
    );
    assert.deepEqual(rowsOf(a, "SELECT v FROM t WHERE v LIKE 'a-%'"), [], "the local rows are gone");
    assert.deepEqual(await primaryRows(f.client), primary, "the primary is unchanged: nothing of the dropped transactions");
    assert.deepEqual(rowsOf(a), primary, "the replica equals the primary");
    const verify = JSON.parse(a.prepare("SELECT replite_verify()").pluck().get());
    assert.equal(verify.match, true, `replite_verify(): ${JSON.stringify(verify)}`);

    const text = conflictsOf(a);
    const records = JSON.parse(text);
    assert.ok(Array.isArray(records), text);
    // One record per row lost: a-1, a-2, and a-tx's two rows (its insert
    // and the seed row's update, whose primary version is recorded).
    assert.equal(records.length, 4, `one record per row of the dropped transactions: ${text}`);
    const seed = records.find((r) => r.replica && r.replica.v && r.replica.v.value === "seed");
    assert.ok(seed, `the update of the seed row is recorded: ${text}`);
    assert.equal(seed.table, "t");
    assert.equal(seed.replica.n.value, "7", JSON.stringify(seed));
    assert.equal(seed.primary.v.value, "seed", `the primary's row: ${JSON.stringify(seed)}`);
    for (const r of records) {
      assert.match(String(r.txn), /^[0-9a-f]+$/i, `txn is a hex id: ${JSON.stringify(r)}`);
      assert.equal(r.resolution, "discarded", JSON.stringify(r));
      assert.equal(typeof r.reason, "string", JSON.stringify(r));
      assert.ok(r.reason.length > 0, JSON.stringify(r));
      assert.ok(r.unix_ms >= t0 - 1000 && r.unix_ms <= Date.now() + 1000, `unix_ms is the time of the resolution: ${JSON.stringify(r)}`);
    }
    assert.equal(new Set(records.map((r) => r.txn)).size, 3, "distinct transaction ids");
    t.diagnostic(`a conflict record: ${JSON.stringify(records[0])}`);
    const s = statusOf(a);
    assert.equal(s.conflicts, 4, `status.conflicts: ${JSON.stringify(s)}`);

    // Closed and reopened, in another process: the records are still there.
    for (const db of f.dbs) if (db.open) db.close();
    const py = await f.host("python", path);
    assert.deepEqual(JSON.parse(await py.value("SELECT replite_conflicts()")), records, "the records survive reopening");
    assert.equal((await py.status()).conflicts, 4);
    assert.deepEqual(await py.query(T_ROWS), primary);
    await py.query("SELECT replite_conflicts_clear()");
    assert.equal(await py.value("SELECT replite_conflicts()"), "[]", "cleared");
    assert.equal((await py.status()).conflicts, 0, "status.conflicts after the clear");
    await py.close();
    a = f.open(path);
    assert.equal(conflictsOf(a), "[]", "still cleared after reopening");
    assert.equal(statusOf(a).conflicts, 0);
    assert.deepEqual(rowsOf(a), primary);
  },
);

for (const kind of HOSTS) {
  test(
    `7. ${kind}: PRAGMA wal_checkpoint(TRUNCATE) by the application while transactions are pending loses none of them`,
    { timeout: TEST_TIMEOUT_MS },
    async (t) => {
      const f = await setup(t, { proxy: true, schema: [T_SCHEMA] });
      const path = f.dir.file("r.db");
      const h = await f.host(kind, path);
      await f.proxy.cut();
      for (let i = 1; i <= 5; i++) await h.exec(`INSERT INTO t(v) VALUES ('c-${i}')`);
      await h.exec(
        "BEGIN",
        "INSERT INTO t(v) VALUES ('c-tx-1')",
        "INSERT INTO t(v) VALUES ('c-tx-2')",
        "UPDATE t SET n = 1 WHERE v = 'c-1'",
        "COMMIT",
      );
      checkOfflineStatus(await h.status(), { pending: 6 }, "before the checkpoint");
      const local6 = await h.query(T_ROWS);
      const ck1 = await h.query("PRAGMA wal_checkpoint(TRUNCATE)");
      t.diagnostic(`wal_checkpoint(TRUNCATE) answered ${JSON.stringify(ck1)}`);
      checkOfflineStatus(await h.status(), { pending: 6 }, "after the checkpoint");
      assert.deepEqual(await h.query(T_ROWS), local6, "the rows after the checkpoint");
      await h.exec("INSERT INTO t(v) VALUES ('c-6')");
      await h.exec("INSERT INTO t(v) VALUES ('c-7')");
      const ck2 = await h.query("PRAGMA wal_checkpoint(TRUNCATE)");
      t.diagnostic(`wal_checkpoint(TRUNCATE) answered ${JSON.stringify(ck2)}`);
      checkOfflineStatus(await h.status(), { pending: 8 }, "after the second checkpoint");
      const local = await h.query(T_ROWS);
      assert.equal(local.length, 9);
      assert.equal(await h.value("PRAGMA integrity_check"), "ok");

      await f.proxy.heal();
      await waitFor("the background push delivers everything", () => h.status(), pushedAll);
      assert.deepEqual(await primaryRows(f.client), local, "the primary holds every transaction");
      assert.deepEqual(await h.query(T_ROWS), local);
      await h.close();
    },
  );
}

test(
  "8. the stock sqlite3 shell without the extension reads the offline file: local commits visible, integrity ok, and still pushed afterwards",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const f = await setup(t, { proxy: true, schema: [T_SCHEMA, "INSERT INTO t(v) VALUES ('seed')"] });
    const path = f.dir.file("r.db");
    let h = await f.host("python", path);
    await f.proxy.cut();
    await h.exec("INSERT INTO t(v) VALUES ('p-1')");
    await h.exec("INSERT INTO t(v) VALUES ('p-2')");
    await h.exec("BEGIN", "INSERT INTO t(v) VALUES ('p-tx')", "UPDATE t SET n = 5 WHERE v = 'seed'", "COMMIT");
    const local = await h.query(T_ROWS);
    assert.equal(local.length, 4);
    assert.deepEqual(plainSqlite3(path, T_ROWS), local, "plain sqlite3 sees the local commits while the replica is open");
    assert.deepEqual(plainSqlite3(path, "PRAGMA integrity_check"), [["ok"]]);
    await h.close();
    // Now the only connection: sqlite3 checkpoints (and removes the WAL) as
    // it closes.
    assert.deepEqual(plainSqlite3(path, T_ROWS), local, "plain sqlite3 after the replica closed");
    assert.deepEqual(plainSqlite3(path, "PRAGMA integrity_check"), [["ok"]]);
    assert.deepEqual(
      plainSqlite3(path, "SELECT count(*) FROM pragma_function_list WHERE name LIKE 'replite%'"),
      [[0]],
      "the extension is not loaded in the plain shell",
    );

    h = await f.host("node", path);
    assert.deepEqual(await h.query(T_ROWS), local, "reopened after the plain reads");
    checkOfflineStatus(await h.status(), { pending: 3 }, "still pending after the plain reads");
    await f.proxy.heal();
    await waitFor("the background push delivers everything", () => h.status(), pushedAll);
    assert.deepEqual(await primaryRows(f.client), local, "the primary holds the local commits");
    await h.close();
  },
);

for (const kind of HOSTS) {
  test(
    `9. ${kind}: REPLITE_OFFLINE=1 in the environment makes a replica offline like offline=1`,
    { timeout: TEST_TIMEOUT_MS },
    async (t) => {
      const f = await setup(t, { proxy: true, schema: [T_SCHEMA] });
      const path = f.dir.file("r.db");
      const h = await f.host(kind, path, { params: "&conflict=discard", env: { REPLITE_OFFLINE: "1" } });
      checkOfflineStatus(await h.status(), { pending: 0 }, "opened with REPLITE_OFFLINE=1");
      await f.proxy.cut();
      await h.exec("INSERT INTO t(v) VALUES ('env-1')");
      checkOfflineStatus(await h.status(), { pending: 1 }, "a local commit with the primary cut off");
      const local = await h.query(T_ROWS);
      await f.proxy.heal();
      await waitFor("the background push delivers it", () => h.status(), pushedAll);
      assert.deepEqual(await primaryRows(f.client), local);
      await h.close();
    },
  );
}

test(
  "10. the first open of a new file needs the primary: with it cut off the open fails naming the cause, and once it is back the same open bootstraps",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const f = await setup(t, { proxy: true, schema: [T_SCHEMA, "INSERT INTO t(v) VALUES ('seed')"] });
    const path = f.dir.file("new.db");
    await f.proxy.cut();
    for (const kind of HOSTS) {
      const h = f.startHost(kind, path);
      const first = await h.ready;
      assert.ok(first.open_error, `${kind}: the open of a new file fails without the primary: ${JSON.stringify(first)}`);
      assert.match(first.open_error.message, /primary|unreachable|connect|reset/i, `${kind}: the message names the cause`);
      t.diagnostic(`${kind}: ${first.open_error.message}`);
      assert.equal((await h.exited).code, 1);
    }
    await f.proxy.heal();
    const h = await f.host("python", path);
    assert.deepEqual(await h.query(T_ROWS), await primaryRows(f.client), "bootstrapped after the failed opens");
    checkOfflineStatus(await h.status(), { pending: 0 }, "after the bootstrap");
    await h.exec("INSERT INTO t(v) VALUES ('after')");
    await waitFor("the background push delivers the write", () => h.status(), pushedAll);
    assert.deepEqual(await primaryRows(f.client), await h.query(T_ROWS));
    await h.close();
  },
);

test(
  "11. an offline transaction larger than one push request (1100 pages of 3800-byte blobs, and small ones around it) reaches the primary whole",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const f = await setup(t, { proxy: true, schema: ["CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)"] });
    const path = f.dir.file("r.db");
    const h = await f.host("node", path);
    await f.proxy.cut();
    const ROWS = "SELECT id, v, length(b), hex(substr(b, 1, 16)), hex(substr(b, -16)) FROM t ORDER BY id";
    await h.exec("INSERT INTO t(v, b) VALUES ('small-1', x'01')");
    await h.exec(
      "BEGIN",
      "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 1100) " +
        "INSERT INTO t(v, b) SELECT 'large-' || i, randomblob(3800) FROM s",
      "UPDATE t SET b = x'02' WHERE v = 'small-1'",
      "COMMIT",
    );
    await h.exec("INSERT INTO t(v, b) VALUES ('small-2', randomblob(20000))");
    const s = await h.status();
    checkOfflineStatus(s, { pending: 3 }, "three local transactions");
    assert.ok(s.pending_frames > 1100, `pending_frames counts the pages: ${JSON.stringify(s)}`);
    const local = await h.query(ROWS);
    assert.equal(local.length, 1102);
    await f.proxy.heal();
    await waitFor("the background push delivers everything", () => h.status(), pushedAll, 60000);
    assert.deepEqual(await primaryRows(f.client, ROWS), local, "the primary holds the same rows");
    assert.deepEqual(
      await primaryRows(f.client, "SELECT sum(length(b)), count(*) FROM t"),
      await h.query("SELECT sum(length(b)), count(*) FROM t"),
    );
    assert.deepEqual(await primaryRows(f.client, "PRAGMA integrity_check"), [["ok"]]);
    const verify = JSON.parse(await h.value("SELECT replite_verify()"));
    assert.equal(verify.match, true, `replite_verify(): ${JSON.stringify(verify)}`);
    await h.close();
  },
);

test(
  "12. kill -9 while a conflict is being resolved (at several moments): after a restart the replica equals the primary and each dropped transaction is recorded exactly once",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    // When to kill the process that resolves the conflict: right after its
    // open, after the first status that shows the records dropped, and
    // after a few milliseconds of its background sync.
    const moments = [
      { name: "as soon as the open returned", when: null },
      { name: "when it shows the transactions dropped", when: (s) => s.pending_transactions === 0 },
      { name: "20 ms after the open", when: (s, ms) => ms >= 20 },
      { name: "when it shows the first conflict record", when: (s) => s.conflicts > 0 },
    ];
    for (const [round, m] of moments.entries()) {
      const f = await setup(t, { proxy: true, schema: [T_SCHEMA, "INSERT INTO t(v) VALUES ('seed')"] });
      const path = f.dir.file("a.db");
      await (await f.host("node", path)).close(); // the bootstrap
      await f.proxy.cut();
      const writer = await f.host("python", path);
      const n = 40;
      await writer.insertEach("INSERT INTO t(v) VALUES (?)", Array.from({ length: n }, (_, i) => `a-${i}`));
      await writer.close();
      await f.client.execute("INSERT INTO t(v) VALUES ('primary-1')");
      const primary = await primaryRows(f.client);

      await f.proxy.heal();
      const resolver = await f.host("node", path);
      const t0 = Date.now();
      let last = null;
      if (m.when) {
        await new Promise((res) => {
          const timer = setTimeout(res, DEADLINE_MS);
          resolver.onLine = (msg) => {
            if (!msg.status) return;
            last = msg.status;
            if (m.when(last, Date.now() - t0)) {
              clearTimeout(timer);
              resolver.child.kill("SIGKILL");
              res();
            }
          };
          resolver.send({ op: "watch" });
        });
      }
      await resolver.kill();

      // Every read meanwhile sees a whole state: the local one or the
      // primary's, never a database without the table.
      const h = await f.host("python", path);
      await waitFor(
        `round ${round}: the conflict is resolved after the restart`,
        async () => {
          const s = await h.status();
          const r = await h.tryQuery(T_ROWS);
          if (r.error)
            assert.fail(`round ${round}: a read during the recovery failed: ${r.error.message}; status ${JSON.stringify(s)}`);
          return { s, rows: r.rows };
        },
        ({ s, rows }) => pushedAll(s) && JSON.stringify(rows) === JSON.stringify(primary),
      );
      const records = JSON.parse(await h.value("SELECT replite_conflicts()"));
      t.diagnostic(
        `round ${round} (${m.name}): killed with ${JSON.stringify(last && { pending: last.pending_transactions, conflicts: last.conflicts })}; ` +
          `${records.length} records after the restart`,
      );
      assert.equal(new Set(records.map((r) => r.txn)).size, n, `round ${round}: each dropped transaction is recorded`);
      assert.equal(records.length, n, `round ${round}: each exactly once`);
      assert.ok(records.every((r) => r.resolution === "discarded"), JSON.stringify(records[0]));
      assert.equal((await h.status()).conflicts, n);
      assert.equal(await h.value("PRAGMA integrity_check"), "ok");
      const verify = JSON.parse(await h.value("SELECT replite_verify()"));
      assert.equal(verify.match, true, `replite_verify(): ${JSON.stringify(verify)}`);
      assert.deepEqual(await primaryRows(f.client), primary, "the primary is unchanged");
      await h.close();
    }
  },
);

test(
  "13. the primary stopped (SIGSTOP) in the middle of the background push until the replica gives up on its request, then resumed: every transaction reaches it exactly once",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const f = await setup(t, { schema: [LOG_SCHEMA] });
    const path = f.dir.file("r.db");
    const h = await f.host("python", path);
    f.pause();
    const values = Array.from({ length: 100 }, (_, i) => `s-${i}`);
    await h.insertEach(LOG_INSERT, values);
    f.resume();
    await waitFor("the background push begins", () => h.status(), (s) => s.pending_transactions < values.length);
    // Stopped with a push in flight (or about to be): the request waits in
    // the primary's socket until the replica gives up on it.
    f.pause();
    const stalled = await waitFor(
      "the replica notices that the primary does not answer",
      () => h.status(),
      (s) => s.last_error !== null,
      30000,
    );
    t.diagnostic(`${stalled.pending_transactions} pending; last_error: ${stalled.last_error}`);
    f.resume();
    await waitFor("the background push delivers everything", () => h.status(), pushedAll, 60000);
    await checkPrimaryLog(f.client, values, "after the resume");
    const [[localCount]] = await h.query(LOG_COUNTS);
    assert.equal(localCount, values.length);
    await h.close();
  },
);
