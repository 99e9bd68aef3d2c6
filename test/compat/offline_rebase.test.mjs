// conflict=rebase, the offline replica's default conflict policy, against a
// real `replite serve` and real host processes: replicas in this process
// (better-sqlite3) and in offline_worker.mjs / offline_host.py; the primary
// is written and read with @libsql/client.
//
// The policy (README "Offline mode", sync/rebase_apply.h): when a push finds
// that the primary moved since the local base, the replica takes the
// primary's state and re-applies the row changes of its unpushed
// transactions on top, in commit order, then pushes the result.  Row-level
// last push wins: a row the replica changed gets the replica's version, a
// row it deleted is deleted, rows it did not touch keep the primary's.  A
// transaction that cannot be re-applied (its table is gone, a constraint
// fails) is skipped whole and recorded, per row, with resolution
// "skipped" and a reason; the later ones still apply.  replite_conflicts() lists the row-level records
// ({"txn", "table", "key", "replica", "primary", "resolution": "replica",
// "unix_ms"}, values as Hrana values) and the skipped transactions.
//
//   1. 2, 3 and 4 replicas insert distinct rows (keyed and unkeyed tables)
//      while the primary is stopped (SIGSTOP): after the resume and
//      replite_sync() everywhere, every row is on the primary exactly once
//      and every replica equals it;
//   2. three replicas update the same rows, pushing one after another: the
//      last pusher's versions win, rows only one touched keep that one's,
//      and each later pusher records one conflict per contested row;
//   3. a delete against an update, in both orders: the later push wins and
//      the replica that rebased records the conflict;
//   4. the primary changes the schema meanwhile: (a) a column added: the
//      offline inserts and updates still land, the new column keeps its
//      default / the primary's value; (b) the table dropped: the transaction
//      on it is skipped and recorded naming the table, the later ones land;
//      (c) schema changes made offline are re-applied;
//   5. a UNIQUE constraint that now fails: the whole transaction is skipped
//      and recorded, the later ones land;
//   6. the conflict records survive reopening (in another process) until
//      replite_conflicts_clear();
//   7. kill -9 of a process while it rebases, at several moments: after a
//      restart every local transaction is on the primary exactly once,
//      each conflict is recorded at most once;
//   8. a mixed workload: @libsql/client on the primary and two offline
//      replicas (other processes) inserting, updating and deleting in one
//      key space, cut off for a while in the middle: all end equal to the
//      primary;
//   9. replite_status().pending_transactions through a rebase never reads 0
//      while the local transactions are still to be re-applied (it would
//      tell an application waiting for 0 that everything was pushed).
// "Offline" is the primary stopped (SIGSTOP) or, where the order of the
// pushes matters or the primary must be written meanwhile, each replica's
// TCP proxy (a process of its own) cut.  No timing assertions: waits poll
// with generous deadlines.
//
// The fixtures (the primary, the proxies, the host processes and their
// protocol) are in offline_harness.mjs.
// The extension: $REPLITE_EXTENSION, else libreplite.so beside $REPLITE_BIN.
// REPLITE_REBASE_PARAMS replaces the URI parameters "&offline=1" (for
// example "&offline=1&conflict=discard" to try the harness on a build
// without rebase: the tests then fail where rebase is needed).

// better-sqlite3 reads SQLITE_USE_URI once, when its addon is loaded:
// offline_harness.mjs sets it before loadBetterSqlite3() imports it below.
import { test } from "node:test";
import assert from "node:assert/strict";
import { sleep } from "./harness.mjs";
import { loadBetterSqlite3, primaryRows, setup as setupOffline, waitUntil, withCommon } from "./offline_harness.mjs";

const Database = await loadBetterSqlite3(); // the VFS, in this process

// The default (conflict=rebase implied) and the explicit form.
const DEFAULT = process.env.REPLITE_REBASE_PARAMS ?? "&offline=1";
const EXPLICIT = process.env.REPLITE_REBASE_PARAMS ?? "&offline=1&conflict=rebase";
const POLICY = /conflict=(\w+)/.exec(DEFAULT)?.[1] ?? "rebase";
const DEADLINE_MS = 30000;
const TEST_TIMEOUT_MS = 120000;

const int = (n) => ({ type: "integer", value: String(n) });
const text = (s) => ({ type: "text", value: s });
const waitFor = (what, probe, pred, timeoutMs = DEADLINE_MS) => waitUntil(what, probe, pred, timeoutMs);

// ---------------------------------------------------------------------------
// Replicas, all with one interface (offline_harness.mjs, withCommon): the
// ones in other processes from f.host, and better-sqlite3 connections in
// this process wrapped by inProcess.

function inProcess(db, name) {
  const errorOf = (e) => ({ message: e.message, name: e.code ?? null });
  const run = (sql) => {
    const stmt = db.prepare(sql);
    if (stmt.reader) return stmt.raw().all();
    stmt.run();
    return [];
  };
  const r = {
    name,
    db,
    tryExec: async (...sql) => {
      try {
        for (const s of sql) run(s);
        return null;
      } catch (e) {
        if (db.inTransaction) {
          try {
            db.exec("ROLLBACK");
          } catch {}
        }
        return errorOf(e);
      }
    },
    tryQuery: async (sql) => {
      try {
        return { rows: run(sql) };
      } catch (e) {
        return { error: errorOf(e) };
      }
    },
    close: async () => db.close(),
  };
  return withCommon(r);
}

// ---------------------------------------------------------------------------
// Per test (offline_harness.mjs): a primary with `schema`, f.client on it;
// replicas through f.open (this process) or f.host (another process), each
// directly or through its own proxy (via: await f.startProxy()), with the
// URI parameters DEFAULT unless `params` says otherwise.

const setup = (t, opts = {}) =>
  setupOffline(t, {
    ...opts,
    prefix: "replite-rebase-",
    Database,
    params: DEFAULT,
    wrapDb: inProcess,
    hostName: (kind, path) => `${kind}:${path}`,
  });

// replite_sync() on each replica, round after round, until none has
// anything pending (a sync may fail meanwhile, e.g. while another replica's
// push races with it); then one more round, which must succeed everywhere,
// so that each has pulled the primary's head.
async function syncAll(f, reps, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  const errors = {};
  for (let round = 0; ; round++) {
    let pending = 0;
    for (const r of reps) {
      const x = await r.trySync();
      if (x.error) errors[r.name] = x.error.message;
      pending += (await r.status()).pending_transactions;
    }
    if (pending === 0) break;
    if (Date.now() > deadline) assert.fail(`still ${pending} pending after ${round + 1} rounds of replite_sync(); errors: ${JSON.stringify(errors)}`);
    await sleep(20);
  }
  const head = await f.head();
  for (const r of reps) {
    const x = await r.trySync();
    assert.ok(!x.error, `${r.name}: the last replite_sync(): ${JSON.stringify(x.error)}`);
    assert.equal(x.frame, head, `${r.name}: replite_sync() reached the primary's head (more than the pending transactions the status showed was pushed?)`);
    const s = await r.status();
    assert.equal(s.pending_transactions, 0, `${r.name}: ${JSON.stringify(s)}`);
    assert.equal(s.pending_frames, 0, `${r.name}: ${JSON.stringify(s)}`);
  }
}

const SCHEMA_SQL = "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name";

// Every replica holds what the primary holds (each query, and the schema),
// integrity ok on all, replite_verify() matches.
async function assertAllEqualPrimary(f, reps, queries) {
  assert.deepEqual(await primaryRows(f.client, "PRAGMA integrity_check"), [["ok"]], "the primary's integrity");
  for (const q of [SCHEMA_SQL, ...queries]) {
    const p = await primaryRows(f.client, q);
    for (const r of reps) assert.deepEqual(await r.query(q), p, `${r.name} equals the primary: ${q}`);
  }
  for (const r of reps) {
    assert.equal(await r.value("PRAGMA integrity_check"), "ok", `${r.name}: integrity_check`);
    const v = JSON.parse(await r.value("SELECT replite_verify()"));
    assert.equal(v.match, true, `${r.name}: replite_verify(): ${JSON.stringify(v)}`);
  }
}

function checkRecord(r, what) {
  assert.match(String(r.txn), /^[0-9a-f]+$/i, `${what}: txn is a hex id: ${JSON.stringify(r)}`);
  assert.equal(typeof r.unix_ms, "number", `${what}: unix_ms: ${JSON.stringify(r)}`);
  assert.ok(Math.abs(Date.now() - r.unix_ms) < 600000, `${what}: unix_ms is a recent time: ${JSON.stringify(r)}`);
}

// The row-level records of `table` (resolution "replica"), by key value.
function rowRecords(records, table, keyColumn, what) {
  const out = new Map();
  for (const r of records.filter((x) => x.table === table && x.resolution === "replica")) {
    checkRecord(r, what);
    assert.ok(r.key && typeof r.key === "object", `${what}: key is an object: ${JSON.stringify(r)}`);
    const k = r.key[keyColumn]?.value;
    assert.ok(k !== undefined, `${what}: the key names ${keyColumn}: ${JSON.stringify(r)}`);
    assert.ok(!out.has(k), `${what}: one record per key: ${JSON.stringify(records)}`);
    out.set(k, r);
  }
  return out;
}

// The "skipped" records: all of one local transaction, one per row it
// changed in `table` (keyed by `keyColumn`, the keys `keys`), each with a
// reason matching `reason`.  Returns them.
function checkSkipped(records, { table, keyColumn, keys, reason }, what) {
  const skipped = records.filter((x) => x.resolution === "skipped");
  assert.equal(new Set(skipped.map((x) => x.txn)).size, 1, `${what}: one skipped transaction: ${JSON.stringify(records)}`);
  for (const x of skipped) {
    checkRecord(x, what);
    assert.equal(x.table, table, `${what}: ${JSON.stringify(x)}`);
    assert.equal(typeof x.reason, "string", `${what}: ${JSON.stringify(x)}`);
    assert.match(x.reason, reason, `${what}: the reason: ${JSON.stringify(x)}`);
  }
  const got = skipped.map((x) => x.key?.[keyColumn]?.value).sort();
  assert.deepEqual(got, keys.map(String).sort(), `${what}: one record per row of the skipped transaction: ${JSON.stringify(skipped)}`);
  return skipped;
}

const T_SCHEMA = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)";
const T_ROWS = "SELECT id, v FROM t ORDER BY id";

// ---------------------------------------------------------------------------

for (const n of [2, 3, 4]) {
  test(
    `1. ${n} replicas insert distinct rows with the primary stopped: after the resume every row is on the primary exactly once, every replica equals it`,
    { timeout: TEST_TIMEOUT_MS },
    async (t) => {
      const f = await setup(t, {
        schema: [
          "CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT, n INTEGER)",
          "CREATE TABLE notes(body TEXT)", // no declared key: re-inserted rows may move
          "INSERT INTO kv VALUES ('seed', 'primary', 0)",
          "INSERT INTO notes(body) VALUES ('seed-note')",
        ],
      });
      const reps = [];
      for (let i = 0; i < n; i++)
        reps.push(f.open(f.dir.file(`r${i}.db`), { name: `r${i}`, params: i % 2 ? EXPLICIT : DEFAULT }));
      for (const r of reps) {
        const s = await r.status();
        assert.equal(s.offline, true, `${r.name}: ${JSON.stringify(s)}`);
        assert.equal(s.conflict, POLICY, `${r.name}: conflict=${POLICY}: ${JSON.stringify(s)}`);
        assert.equal(s.pending_transactions, 0);
      }
      f.pause();
      const wantKv = [["seed", "primary", 0]];
      const wantNotes = ["seed-note"];
      for (const [i, r] of reps.entries()) {
        const p = `r${i}`;
        await r.exec(`INSERT INTO kv(k, v) VALUES ('${p}-a', 'a')`);
        await r.exec(
          "BEGIN",
          `INSERT INTO kv(k, v) VALUES ('${p}-b', 'b')`,
          `INSERT INTO kv(k, v) VALUES ('${p}-c', 'c')`,
          `INSERT INTO notes(body) VALUES ('${p}-note-1')`,
          "COMMIT",
        );
        await r.exec(`INSERT INTO kv(k, v) VALUES ('${p}-tmp', 'tmp')`);
        await r.exec("BEGIN", `UPDATE kv SET n = ${i + 1} WHERE k = '${p}-a'`, `DELETE FROM kv WHERE k = '${p}-tmp'`, "COMMIT");
        await r.exec(`INSERT INTO notes(body) VALUES ('${p}-note-2')`);
        await r.exec(`INSERT INTO notes(body) VALUES ('${p}-note-3')`);
        wantKv.push([`${p}-a`, "a", i + 1], [`${p}-b`, "b", null], [`${p}-c`, "c", null]);
        wantNotes.push(`${p}-note-1`, `${p}-note-2`, `${p}-note-3`);
        const s = await r.status();
        assert.equal(s.pending_transactions, 6, `${r.name}: six local transactions: ${JSON.stringify(s)}`);
      }
      // Every replica's notes got rowids 2, 3, 4: they collide on the primary.
      f.resume();
      await syncAll(f, reps);

      wantKv.sort((a, b) => (a[0] < b[0] ? -1 : 1));
      assert.deepEqual(await primaryRows(f.client, "SELECT k, v, n FROM kv ORDER BY k"), wantKv, "the primary holds every keyed row");
      const notes = (await primaryRows(f.client, "SELECT body FROM notes")).map(([b]) => b).sort();
      assert.deepEqual(notes, wantNotes.sort(), "the primary holds every unkeyed row exactly once");
      await assertAllEqualPrimary(f, reps, ["SELECT k, v, n FROM kv ORDER BY k", "SELECT rowid, body FROM notes ORDER BY rowid"]);
      let conflicts = 0;
      for (const r of reps) {
        const records = await r.conflicts();
        assert.ok(!records.some((x) => x.resolution === "skipped"), `${r.name}: nothing skipped: ${JSON.stringify(records)}`);
        assert.ok(!records.some((x) => x.table === "kv"), `${r.name}: distinct keys do not conflict: ${JSON.stringify(records)}`);
        conflicts += records.length;
        assert.equal((await r.status()).conflicts, records.length, `${r.name}: status.conflicts`);
      }
      t.diagnostic(`${conflicts} conflict records in all (notes' rowids)`);
    },
  );
}

test(
  "2. three replicas update the same rows, pushing one after another: the last push wins per row, rows only one replica touched keep its version, every later pusher records each contested row",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const f = await setup(t, {
      schema: [T_SCHEMA, "INSERT INTO t VALUES (1, 's1'), (2, 's2'), (3, 's3'), (4, 's4'), (5, 's5'), (6, 's6')"],
    });
    const names = ["A", "B", "C"];
    const reps = [];
    const proxies = [];
    for (const [i, name] of names.entries()) {
      proxies.push(await f.startProxy());
      reps.push(f.open(f.dir.file(`${name}.db`), { name, via: proxies[i], params: i === 1 ? EXPLICIT : DEFAULT }));
    }
    for (const p of proxies) await p.cut();
    // Rows 1..3: everyone; row 4+i: only replica i.  A in one transaction,
    // B and C in one per row.
    const [a, b, c] = reps;
    await a.exec("BEGIN", "UPDATE t SET v = 'A-1' WHERE id = 1", "UPDATE t SET v = 'A-2' WHERE id = 2", "UPDATE t SET v = 'A-3' WHERE id = 3", "UPDATE t SET v = 'A-only' WHERE id = 4", "COMMIT");
    for (const [r, only] of [[b, 5], [c, 6]]) {
      for (const id of [1, 2, 3]) await r.exec(`UPDATE t SET v = '${r.name}-${id}' WHERE id = ${id}`);
      await r.exec(`UPDATE t SET v = '${r.name}-only' WHERE id = ${only}`);
    }
    const down = await b.trySync();
    assert.ok(down.error, `replite_sync() fails while cut off: ${JSON.stringify(down)}`);
    t.diagnostic(`replite_sync() cut off: ${down.error.message}`);
    assert.equal((await b.status()).pending_transactions, 4, "kept pending");

    // A, then B, then C.
    for (const [i, r] of reps.entries()) {
      await proxies[i].heal();
      await syncAll(f, [r]);
      assert.deepEqual(await r.query(T_ROWS), await primaryRows(f.client, T_ROWS), `${r.name} equals the primary after its push`);
    }
    await syncAll(f, reps);
    assert.deepEqual(
      await primaryRows(f.client, T_ROWS),
      [[1, "C-1"], [2, "C-2"], [3, "C-3"], [4, "A-only"], [5, "B-only"], [6, "C-only"]],
      "the last push wins each contested row; the others keep their only writer's version",
    );
    await assertAllEqualPrimary(f, reps, [T_ROWS]);

    assert.deepEqual(await a.conflicts(), [], "A pushed on the unchanged primary: no conflict");
    for (const [r, prev] of [[b, "A"], [c, "B"]]) {
      const records = await r.conflicts();
      t.diagnostic(`${r.name}: ${JSON.stringify(records[0])}`);
      const byKey = rowRecords(records, "t", "id", r.name);
      assert.deepEqual([...byKey.keys()].sort(), ["1", "2", "3"], `${r.name}: one record per contested row: ${JSON.stringify(records)}`);
      for (const [k, rec] of byKey) {
        assert.deepEqual(rec.key, { id: int(k) }, JSON.stringify(rec));
        assert.deepEqual(rec.replica?.v, text(`${r.name}-${k}`), `${r.name}: "replica" is its row: ${JSON.stringify(rec)}`);
        assert.deepEqual(rec.primary?.v, text(`${prev}-${k}`), `${r.name}: "primary" is ${prev}'s row: ${JSON.stringify(rec)}`);
      }
      assert.equal(records.length, 3, `${r.name}: nothing else recorded: ${JSON.stringify(records)}`);
      assert.equal((await r.status()).conflicts, 3);
    }
  },
);

test(
  "2b. three replicas update the same rows with the primary stopped, then push at once: each row ends with one replica's version, all equal the primary, each contested row is recorded",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const ROWS = 4;
    const f = await setup(t, { schema: [T_SCHEMA, ...Array.from({ length: ROWS }, (_, i) => `INSERT INTO t VALUES (${i + 1}, 'seed')`)] });
    const reps = ["A", "B", "C"].map((name) => f.open(f.dir.file(`${name}.db`), { name }));
    f.pause();
    for (const r of reps) {
      await r.exec("BEGIN", `UPDATE t SET v = '${r.name}-1' WHERE id = 1`, `UPDATE t SET v = '${r.name}-2' WHERE id = 2`, "COMMIT");
      for (let id = 3; id <= ROWS; id++) await r.exec(`UPDATE t SET v = '${r.name}-${id}' WHERE id = ${id}`);
    }
    f.resume();
    await syncAll(f, reps);
    const final = await primaryRows(f.client, T_ROWS);
    for (const [id, v] of final)
      assert.ok(["A", "B", "C"].some((n) => v === `${n}-${id}`), `row ${id} holds one replica's version: ${v}`);
    await assertAllEqualPrimary(f, reps, [T_ROWS]);
    const all = [];
    for (const r of reps) all.push(...(await r.conflicts()).map((x) => ({ ...x, by: r.name })));
    for (let id = 1; id <= ROWS; id++) {
      const recs = all.filter((x) => x.table === "t" && x.resolution === "replica" && x.key?.id?.value === String(id));
      assert.ok(recs.length >= 1, `row ${id}: a conflict is recorded somewhere: ${JSON.stringify(all)}`);
      for (const x of recs) {
        checkRecord(x, `row ${id}`);
        assert.deepEqual(x.replica?.v, text(`${x.by}-${id}`), `the record's "replica" is its replica's row: ${JSON.stringify(x)}`);
      }
    }
    t.diagnostic(`final ${JSON.stringify(final)}; ${all.length} records: ${all.map((x) => `${x.by}:${x.key?.id?.value}`).join(" ")}`);
  },
);

for (const order of ["delete first", "update first"]) {
  test(
    `3. ${order}: replica D deletes rows that replica U updates: the later push wins, the replica that rebased records the conflict, all equal the primary`,
    { timeout: TEST_TIMEOUT_MS },
    async (t) => {
      const f = await setup(t, { schema: [T_SCHEMA, "INSERT INTO t VALUES (1, 's1'), (2, 's2'), (3, 's3'), (4, 's4')"] });
      const pd = await f.startProxy();
      const pu = await f.startProxy();
      const d = f.open(f.dir.file("d.db"), { name: "D", via: pd });
      const u = f.open(f.dir.file("u.db"), { name: "U", via: pu });
      await pd.cut();
      await pu.cut();
      await d.exec("DELETE FROM t WHERE id = 1");
      await d.exec("DELETE FROM t WHERE id = 2");
      await u.exec("BEGIN", "UPDATE t SET v = 'u1' WHERE id = 1", "UPDATE t SET v = 'u2' WHERE id = 2", "COMMIT");
      // Row 4 changes on the primary only: both replicas rebase, and it
      // keeps the primary's version.
      await f.client.execute("UPDATE t SET v = 'p4' WHERE id = 4");

      const [first, second, firstProxy, secondProxy] = order === "delete first" ? [d, u, pd, pu] : [u, d, pu, pd];
      await firstProxy.heal();
      await syncAll(f, [first]);
      await secondProxy.heal();
      await syncAll(f, [second]);
      await syncAll(f, [first, second]);

      const want =
        order === "delete first"
          ? [[1, "u1"], [2, "u2"], [3, "s3"], [4, "p4"]] // U's update after the delete: the rows come back
          : [[3, "s3"], [4, "p4"]]; // D's delete after the update: deleted
      assert.deepEqual(await primaryRows(f.client, T_ROWS), want, "the later push wins");
      await assertAllEqualPrimary(f, [d, u], [T_ROWS]);

      assert.deepEqual(await first.conflicts(), [], `${first.name} (no contested row in its rebase) records nothing`);
      const records = await second.conflicts();
      t.diagnostic(`${second.name}: ${JSON.stringify(records)}`);
      const byKey = rowRecords(records, "t", "id", second.name);
      assert.deepEqual([...byKey.keys()].sort(), ["1", "2"], `${second.name} records both rows: ${JSON.stringify(records)}`);
      for (const [k, rec] of byKey) {
        if (second === u) {
          assert.deepEqual(rec.replica?.v, text(`u${k}`), `U's version: ${JSON.stringify(rec)}`);
          assert.equal(rec.primary, null, `the primary had deleted it: ${JSON.stringify(rec)}`);
        } else {
          assert.equal(rec.replica, null, `D deleted it: ${JSON.stringify(rec)}`);
          assert.deepEqual(rec.primary?.v, text(`u${k}`), `the primary had U's version: ${JSON.stringify(rec)}`);
        }
      }
      assert.equal(records.length, 2, JSON.stringify(records));
    },
  );
}

test(
  "4a. the primary adds columns while a replica holds unpushed inserts and updates of the table: they land, the new columns keep their default or the primary's value",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const f = await setup(t, { schema: [T_SCHEMA, "INSERT INTO t VALUES (1, 's1'), (2, 's2')"] });
    const p = await f.startProxy();
    const r = f.open(f.dir.file("r.db"), { name: "R", via: p });
    await p.cut();
    await r.exec("INSERT INTO t(id, v) VALUES (10, 'r10')");
    await r.exec("BEGIN", "INSERT INTO t(id, v) VALUES (11, 'r11')", "UPDATE t SET v = 'r1' WHERE id = 1", "COMMIT");
    await r.exec("INSERT INTO t(v) VALUES ('r-auto')"); // rowid 12 locally
    await f.client.batch(
      ["ALTER TABLE t ADD COLUMN extra TEXT DEFAULT 'dflt'", "ALTER TABLE t ADD COLUMN other INTEGER", "UPDATE t SET extra = 'p1', other = 7 WHERE id = 1"],
      "write",
    );
    await p.heal();
    await syncAll(f, [r]);
    const ROWS = "SELECT id, v, extra, other FROM t ORDER BY id";
    assert.deepEqual(
      await primaryRows(f.client, ROWS),
      [
        [1, "r1", "p1", 7], // the replica's v; the columns it did not know keep the primary's values
        [2, "s2", "dflt", null],
        [10, "r10", "dflt", null],
        [11, "r11", "dflt", null],
        [12, "r-auto", "dflt", null],
      ],
    );
    assert.match((await primaryRows(f.client, "SELECT sql FROM sqlite_schema WHERE name = 't'"))[0][0], /extra TEXT DEFAULT 'dflt'/);
    await assertAllEqualPrimary(f, [r], [ROWS]);
    // Row 1's columns that the replica knew were unchanged on the primary.
    assert.deepEqual(await r.conflicts(), [], "no conflict: nothing skipped, no row the replica knew changed");
  },
);

test(
  "4b. the primary drops a table while a replica holds an unpushed transaction on it: that transaction is skipped and recorded naming the table, the transactions around it land",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const f = await setup(t, { schema: [T_SCHEMA, "CREATE TABLE gone(id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO gone VALUES (1, 'g1')"] });
    const p = await f.startProxy();
    const r = f.open(f.dir.file("r.db"), { name: "R", via: p });
    await p.cut();
    const t0 = Date.now();
    await r.exec("INSERT INTO t VALUES (1, 'before')");
    await r.exec("BEGIN", "INSERT INTO gone VALUES (2, 'g2')", "UPDATE gone SET v = 'g1x' WHERE id = 1", "COMMIT");
    await r.exec("INSERT INTO t VALUES (2, 'after')");
    await r.exec("BEGIN", "INSERT INTO t VALUES (3, 'after-tx')", "UPDATE t SET v = 'before!' WHERE id = 1", "COMMIT");
    assert.equal((await r.status()).pending_transactions, 4);
    await f.client.execute("DROP TABLE gone");
    await p.heal();
    await syncAll(f, [r]);

    assert.deepEqual(await primaryRows(f.client, T_ROWS), [[1, "before!"], [2, "after"], [3, "after-tx"]], "every transaction but the skipped one");
    assert.deepEqual(await primaryRows(f.client, "SELECT name FROM sqlite_schema WHERE name = 'gone'"), [], "the table stays dropped");
    await assertAllEqualPrimary(f, [r], [T_ROWS]);

    const records = await r.conflicts();
    t.diagnostic(JSON.stringify(records));
    const skipped = checkSkipped(records, { table: "gone", keyColumn: "id", keys: [1, 2], reason: /\bgone\b/ }, "the dropped table");
    assert.ok(skipped[0].unix_ms >= t0 - 1000, JSON.stringify(skipped[0]));
    const byKey = Object.fromEntries(skipped.map((x) => [x.key.id.value, x]));
    assert.deepEqual(byKey["2"].replica?.v, text("g2"), `"replica" is the replica's row: ${JSON.stringify(byKey["2"])}`);
    assert.deepEqual(byKey["1"].replica?.v, text("g1x"), `"replica" is the replica's row: ${JSON.stringify(byKey["1"])}`);
    assert.ok(!records.some((x) => x.table === "t"), `nothing recorded for t: ${JSON.stringify(records)}`);
    assert.equal((await r.status()).conflicts, records.length);
  },
);

test(
  "4c. schema changes made offline (CREATE TABLE, ALTER TABLE ADD COLUMN, CREATE INDEX) are re-applied on the primary's newer state, with the rows that use them",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const f = await setup(t, { schema: [T_SCHEMA, "INSERT INTO t VALUES (1, 's1')"] });
    const p = await f.startProxy();
    const r = f.open(f.dir.file("r.db"), { name: "R", via: p });
    await p.cut();
    await r.exec("BEGIN", "CREATE TABLE newt(k TEXT PRIMARY KEY, v TEXT)", "INSERT INTO newt VALUES ('a', 'x')", "COMMIT");
    await r.exec("INSERT INTO newt VALUES ('b', 'y')");
    await r.exec("ALTER TABLE t ADD COLUMN c2 TEXT DEFAULT 'd'");
    await r.exec("UPDATE t SET c2 = 'mine' WHERE id = 1");
    await r.exec("CREATE INDEX t_c2 ON t(c2)");
    await f.client.execute("INSERT INTO t VALUES (2, 's2')");
    await p.heal();
    await syncAll(f, [r]);
    const ROWS = "SELECT id, v, c2 FROM t ORDER BY id";
    assert.deepEqual(await primaryRows(f.client, ROWS), [[1, "s1", "mine"], [2, "s2", "d"]]);
    assert.deepEqual(await primaryRows(f.client, "SELECT k, v FROM newt ORDER BY k"), [["a", "x"], ["b", "y"]]);
    assert.deepEqual(await primaryRows(f.client, "SELECT name FROM sqlite_schema WHERE name = 't_c2'"), [["t_c2"]]);
    await assertAllEqualPrimary(f, [r], [ROWS, "SELECT k, v FROM newt ORDER BY k"]);
    assert.deepEqual(await r.conflicts(), [], "nothing contested, nothing skipped");
  },
);

test(
  "5. a UNIQUE constraint that now fails on the primary: the whole local transaction is skipped and recorded, the later ones still land",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const f = await setup(t, { schema: ["CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE, note TEXT)"] });
    const p = await f.startProxy();
    const r = f.open(f.dir.file("r.db"), { name: "R", via: p });
    await p.cut();
    await r.exec("INSERT INTO u VALUES (1, 'a@x', 'first')");
    await r.exec("BEGIN", "INSERT INTO u VALUES (10, 'dup@x', 'mine')", "INSERT INTO u VALUES (12, 'z@x', 'same txn')", "COMMIT");
    await r.exec("INSERT INTO u VALUES (11, 'y@x', 'later')");
    await r.exec("UPDATE u SET note = 'later, changed' WHERE id = 11");
    await f.client.execute("INSERT INTO u VALUES (20, 'dup@x', 'theirs')");
    await p.heal();
    await syncAll(f, [r]);

    const ROWS = "SELECT id, email, note FROM u ORDER BY id";
    assert.deepEqual(
      await primaryRows(f.client, ROWS),
      [[1, "a@x", "first"], [11, "y@x", "later, changed"], [20, "dup@x", "theirs"]],
      "the transaction with the duplicate is skipped whole (row 12 too); the others land",
    );
    await assertAllEqualPrimary(f, [r], [ROWS]);
    const records = await r.conflicts();
    t.diagnostic(JSON.stringify(records));
    const skipped = checkSkipped(records, { table: "u", keyColumn: "id", keys: [10, 12], reason: /\S/ }, "the duplicate");
    t.diagnostic(`reason: ${skipped[0].reason}`);
    assert.equal(records.length, skipped.length, `nothing else recorded: ${JSON.stringify(records)}`);
  },
);

test(
  "6. the conflict records survive reopening the replica (in another process) until replite_conflicts_clear()",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const f = await setup(t, { schema: [T_SCHEMA, "INSERT INTO t VALUES (1, 's1'), (2, 's2')"] });
    const p = await f.startProxy();
    const path = f.dir.file("r.db");
    const r = f.open(path, { name: "R", via: p });
    await p.cut();
    const t0 = Date.now();
    await r.exec("UPDATE t SET v = 'mine' WHERE id = 1");
    await r.exec("INSERT INTO t VALUES (3, 'mine-3')");
    await f.client.execute("UPDATE t SET v = 'theirs' WHERE id = 1");
    await f.client.execute("UPDATE t SET v = 'theirs-2' WHERE id = 2");
    await p.heal();
    await syncAll(f, [r]);
    assert.deepEqual(await primaryRows(f.client, T_ROWS), [[1, "mine"], [2, "theirs-2"], [3, "mine-3"]]);
    await assertAllEqualPrimary(f, [r], [T_ROWS]);

    const records = await r.conflicts();
    assert.equal(records.length, 1, JSON.stringify(records));
    const [rec] = records;
    t.diagnostic(JSON.stringify(rec));
    checkRecord(rec, "the record");
    assert.ok(rec.unix_ms >= t0 - 1000, JSON.stringify(rec));
    assert.equal(rec.table, "t");
    assert.equal(rec.resolution, "replica");
    assert.deepEqual(rec.key, { id: int(1) });
    assert.deepEqual(rec.replica, { id: int(1), v: text("mine") });
    assert.deepEqual(rec.primary, { id: int(1), v: text("theirs") });
    assert.equal((await r.status()).conflicts, 1);
    await r.close();

    const py = await f.host("python", path, { name: "python", via: p });
    assert.deepEqual(await py.conflicts(), records, "the records survive reopening");
    assert.equal((await py.status()).conflicts, 1);
    assert.deepEqual(await py.query("SELECT replite_conflicts_clear()"), [[1]], "the clear returns the count");
    assert.deepEqual(await py.conflicts(), []);
    assert.equal((await py.status()).conflicts, 0);
    await py.close();
    const again = f.open(path, { name: "R again", via: p });
    assert.deepEqual(await again.conflicts(), [], "still cleared after reopening");
    assert.deepEqual(await again.query(T_ROWS), await primaryRows(f.client, T_ROWS));
  },
);

test(
  "7. kill -9 while a process rebases many conflicting transactions, at several moments: after a restart every transaction is on the primary exactly once, each conflict recorded at most once",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const N = 40;
    const HOT = 5;
    // The status through a rebase: N pending; the drop (0 pending, no
    // record yet: the plan is written, the file holds the primary's state);
    // the re-application (conflict records; pending grows again as the
    // re-applied transaction(s) enter the outbox); their push (pending back
    // to 0).  st: {dropped, regrown, peak (of pending since the drop)},
    // from the statuses seen so far.
    const moments = [
      { name: "as soon as the open returned", when: null },
      { name: "at the drop, nothing re-applied yet", when: (s, ms, st) => st.dropped },
      { name: "at the first conflict record", when: (s) => s.conflicts > 0 },
      { name: "the plan re-applied, not pushed yet", when: (s, ms, st) => st.regrown },
      // While the plan is written (the window is narrow: several tries).
      ...[5, 10, 15, 25].map((after) => ({ name: `${after} ms after the open returned`, when: (s, ms) => ms >= after })),
    ];
    for (const [round, m] of moments.entries()) {
      const f = await setup(t, {
        schema: [
          "CREATE TABLE items(k TEXT PRIMARY KEY, v TEXT)",
          "CREATE TABLE log(v TEXT)", // no key: a transaction applied twice shows as a duplicate
          "CREATE TABLE hot(id INTEGER PRIMARY KEY, v TEXT)",
          ...Array.from({ length: HOT }, (_, i) => `INSERT INTO hot VALUES (${i + 1}, 'seed')`),
        ],
      });
      const p = await f.startProxy();
      const path = f.dir.file("r.db");
      await (await f.host("node", path, { via: p })).close(); // the bootstrap
      await p.cut();
      const writer = await f.host("python", path, { name: "writer", via: p });
      const values = Array.from({ length: N }, (_, i) => `w-${i}`);
      for (const [i, v] of values.entries())
        await writer.exec(
          "BEGIN",
          `INSERT INTO items VALUES ('${v}', 'x')`,
          `INSERT INTO log VALUES ('${v}')`,
          `UPDATE hot SET v = '${v}' WHERE id = ${(i % HOT) + 1}`,
          "COMMIT",
        );
      const before = (await writer.status()).pending_transactions;
      assert.equal(before, N);
      await writer.close();
      await f.client.batch(["UPDATE hot SET v = 'primary'", "INSERT INTO items VALUES ('p-1', 'p')", "INSERT INTO log VALUES ('p-1')"], "write");

      await p.heal();
      const victim = await f.host("node", path, { name: "victim", via: p });
      const t0 = Date.now();
      let last = null;
      let reached = m.when === null;
      if (m.when) {
        // Killed at the moment, or as soon as it shows the rebase done (the
        // moment passed unseen).
        const st = { dropped: false, regrown: false, peak: 0 };
        reached = await new Promise((res) => {
          const timer = setTimeout(() => res(false), 10000);
          victim.onLine = (msg) => {
            if (!msg.status) return;
            last = msg.status;
            if (last.pending_transactions === 0 && last.conflicts === 0) st.dropped = true;
            if (st.dropped && last.pending_transactions > 0) st.regrown = true;
            if (st.dropped) st.peak = Math.max(st.peak, last.pending_transactions);
            const hit = m.when(last, Date.now() - t0, st);
            if (hit || (st.regrown && last.pending_transactions === 0)) {
              clearTimeout(timer);
              victim.child.kill("SIGKILL");
              res(hit);
            }
          };
          victim.send({ op: "watch" });
        });
      }
      await victim.kill();
      const [[onPrimary]] = await primaryRows(f.client, "SELECT count(*) FROM log");
      t.diagnostic(
        `round ${round} (${m.name}): ${reached ? "killed" : "moment not seen, killed late"} with ` +
          `${JSON.stringify(last && { pending: last.pending_transactions, conflicts: last.conflicts })}; ${onPrimary} log rows on the primary`,
      );

      const h = await f.host("python", path, { name: `after round ${round}`, via: p });
      await syncAll(f, [h]);
      const counts = "SELECT (SELECT count(*) FROM log), (SELECT count(*) FROM items), (SELECT group_concat(v, ' ') FROM hot)";
      t.diagnostic(
        `round ${round} after the restart: primary log, items, hot: ${JSON.stringify(await primaryRows(f.client, counts))}; ` +
          `local: ${JSON.stringify(await h.query(counts))}; records (txn table key: primary -> replica): ` +
          (await h.conflicts()).map((x) => `${x.txn?.slice(0, 8)} ${x.table} ${JSON.stringify(x.key)}: ${x.primary?.v?.value} -> ${x.replica?.v?.value} ${x.resolution}`).join("; "),
      );
      const all = [...values, "p-1"].sort();
      const [[count, distinct]] = await primaryRows(f.client, "SELECT count(*), count(DISTINCT v) FROM log");
      assert.equal(count, distinct, `round ${round}: no transaction applied twice (${count} log rows, ${distinct} distinct)`);
      assert.deepEqual((await primaryRows(f.client, "SELECT v FROM log")).map(([v]) => v).sort(), all, `round ${round}: log`);
      assert.deepEqual((await primaryRows(f.client, "SELECT k FROM items")).map(([k]) => k).sort(), all, `round ${round}: items`);
      // Each hot row's last local update came after the primary's.
      const hot = Array.from({ length: HOT }, (_, j) => [j + 1, null]);
      for (const [i, v] of values.entries()) hot[i % HOT][1] = v;
      assert.deepEqual(await primaryRows(f.client, "SELECT id, v FROM hot ORDER BY id"), hot, `round ${round}: hot`);
      await assertAllEqualPrimary(f, [h], ["SELECT k, v FROM items ORDER BY k", "SELECT rowid, v FROM log ORDER BY rowid", "SELECT id, v FROM hot ORDER BY id"]);

      const records = await h.conflicts();
      const seen = new Set();
      for (const r of records) {
        const id = `${r.txn}|${r.table}|${JSON.stringify(r.key)}`;
        assert.ok(!seen.has(id), `round ${round}: recorded twice: ${JSON.stringify(r)}`);
        seen.add(id);
      }
      assert.ok(!records.some((x) => x.resolution === "skipped"), `round ${round}: nothing skipped: ${JSON.stringify(records)}`);
      const hotKeys = new Set(records.filter((x) => x.table === "hot").map((x) => x.key?.id?.value));
      assert.deepEqual([...hotKeys].sort(), ["1", "2", "3", "4", "5"], `round ${round}: each contested hot row recorded: ${JSON.stringify(records)}`);
      // The primary changed each hot row once: one conflict per row.
      assert.equal(records.filter((x) => x.table === "hot").length, HOT, `round ${round}: each hot row's conflict recorded once: ${JSON.stringify(records)}`);
      t.diagnostic(`round ${round}: ${records.length} records`);
      await h.close();
    }
  },
);

test(
  "8. a mixed workload: @libsql/client writes the primary while two offline replicas (node, python) insert, update and delete in the same key space, cut off for a while: all end equal to the primary",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const KEYS = 30;
    const f = await setup(t, {
      schema: [
        "CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT, n INTEGER NOT NULL DEFAULT 0)",
        ...Array.from({ length: KEYS }, (_, i) => `INSERT INTO kv VALUES ('k${i}', 'seed', 0)`),
      ],
    });
    const reps = [];
    const proxies = [];
    for (const kind of ["node", "python"]) {
      const p = await f.startProxy();
      proxies.push(p);
      reps.push(await f.host(kind, f.dir.file(`${kind}.db`), { name: kind, via: p, params: kind === "python" ? EXPLICIT : DEFAULT }));
    }
    // A seeded generator (xorshift), one per writer.
    const rng = (seed) => () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 4294967296;
    };
    const OPS = 120;
    // Keys k0.. are everyone's; a writer's own keys (TAG-i) only it writes,
    // once: each must end on the primary as written.
    const own = { node: [], python: [], client: [] };
    const statements = (tag, i, rand) => {
      const k = `k${Math.floor(rand() * KEYS)}`;
      const x = rand();
      if (x < 0.25) {
        own[tag].push([`${tag}-${i}`, tag, 0]);
        return [`INSERT INTO kv(k, v) VALUES ('${tag}-${i}', '${tag}')`];
      }
      if (x < 0.6) return [`UPDATE kv SET v = '${tag}-${i}', n = n + 1 WHERE k = '${k}'`];
      if (x < 0.75) return [`DELETE FROM kv WHERE k = '${k}'`];
      if (x < 0.85) return [`INSERT OR REPLACE INTO kv(k, v, n) VALUES ('${k}', '${tag}-${i}', 100)`];
      const k2 = `k${Math.floor(rand() * KEYS)}`;
      own[tag].push([`${tag}-${i}t`, "tx", 0]);
      return ["BEGIN", `UPDATE kv SET v = '${tag}-${i}a' WHERE k = '${k}'`, `DELETE FROM kv WHERE k = '${k2}'`, `INSERT INTO kv(k, v) VALUES ('${tag}-${i}t', 'tx')`, "COMMIT"];
    };
    const replicaWork = async (r, p, seed) => {
      const rand = rng(seed);
      for (let i = 0; i < OPS; i++) {
        if (i === 40) await p.cut();
        if (i === 80) await p.heal();
        await r.exec(...statements(r.name, i, rand));
      }
    };
    const clientWork = async () => {
      const rand = rng(99991);
      for (let i = 0; i < 100; i++) {
        const sql = statements("client", i, rand);
        if (sql[0] === "BEGIN") await f.client.batch(sql.slice(1, -1), "write");
        else await f.client.execute(sql[0]);
        if (i % 10 === 0) await sleep(5);
      }
    };
    await Promise.all([replicaWork(reps[0], proxies[0], 12345), replicaWork(reps[1], proxies[1], 67890), clientWork()]);
    for (const p of proxies) await p.heal();
    await syncAll(f, reps);
    const ROWS = "SELECT k, v, n FROM kv ORDER BY k";
    await assertAllEqualPrimary(f, reps, [ROWS]);
    for (const [tag, rows] of Object.entries(own)) {
      assert.ok(rows.length > 0, `${tag} inserted rows of its own`);
      const onPrimary = await primaryRows(f.client, `SELECT k, v, n FROM kv WHERE k LIKE '${tag}-%' ORDER BY k`);
      assert.deepEqual(onPrimary, rows.sort((a, b) => (a[0] < b[0] ? -1 : 1)), `every row only ${tag} wrote is on the primary, as written`);
    }
    let conflicts = 0;
    for (const r of reps) conflicts += (await r.conflicts()).length;
    t.diagnostic(`${(await primaryRows(f.client, "SELECT count(*) FROM kv"))[0][0]} rows; ${conflicts} conflict records`);
    for (const r of reps) await r.close();
  },
);

test(
  "9. through a rebase, replite_status().pending_transactions counts the local transactions until the primary holds them: it never reads 0 and then grows again (no local writes meanwhile)",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const N = 30;
    const f = await setup(t, { schema: ["CREATE TABLE items(k TEXT PRIMARY KEY, v TEXT)"] });
    const p = await f.startProxy();
    const path = f.dir.file("r.db");
    const h = await f.host("node", path, { name: "watched", via: p });
    await p.cut();
    for (let i = 0; i < N; i++) await h.exec(`INSERT INTO items VALUES ('r-${i}', 'x')`);
    await f.client.execute("INSERT INTO items VALUES ('p-1', 'p')"); // the conflict
    const seen = [];
    h.onLine = (msg) => msg.status && seen.push(msg.status.pending_transactions);
    h.send({ op: "watch" });
    await waitFor("the watch begins", () => seen.length, (n) => n > 0);
    await p.heal();
    await waitFor(
      "the primary holds every local transaction and the status shows none pending",
      async () => ({ onPrimary: (await primaryRows(f.client, "SELECT count(*) FROM items"))[0][0], pending: seen.at(-1) }),
      (x) => x.onPrimary === N + 1 && x.pending === 0,
    );
    await h.kill();
    const firstZero = seen.indexOf(0);
    const regrown = seen.findIndex((n, i) => i > firstZero && n > 0);
    const runs = seen.filter((n, i) => i === 0 || n !== seen[i - 1]);
    t.diagnostic(`pending through the rebase (changes only): ${runs.join(" ")}`);
    assert.equal(regrown, -1, `pending_transactions read 0 (status ${firstZero}) and then ${seen[regrown]} (status ${regrown}): ${runs.join(" ")}`);
    assert.ok(seen.every((n, i) => i === 0 || n <= seen[i - 1]), `pending_transactions only decreases: ${runs.join(" ")}`);
  },
);
