// Writes through replite replicas and through the real libSQL npm clients,
// against one `replite serve`, each seeing the others':
//   (a) writes through a replite replica (better-sqlite3 with libreplite
//       loaded: autocommit statements, transactions, DDL, overflow blobs, a
//       transaction larger than one push request) are on the primary for
//       @libsql/client (Hrana) and reach npm `libsql` embedded replicas,
//       default mode and offline mode, new and already bootstrapped;
//   (b) writes by @libsql/client, by a default-mode npm libsql replica (over
//       Hrana) and by an offline-mode one (frames pushed by sync()) reach
//       replite replicas, by PRAGMA replite_sync and by the live sync, and a
//       replite replica that is behind writes without an error;
//   (c) an npm libsql replica (default mode), a replite replica (each in its
//       own process) and @libsql/client write at the same time: every
//       transaction is there once, the counter they all increment equals
//       the number of commits, and every replica converges with the primary.
//
// The extension: $REPLITE_EXTENSION, else libreplite.so beside $REPLITE_BIN.

// better-sqlite3 reads SQLITE_USE_URI once, when its addon is loaded.
process.env.SQLITE_USE_URI = "1";

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import Database from "libsql";
import { createClient } from "@libsql/client";
import { REPLITE_BIN, copyDatabase, serverInfo, settledRequestLog, sleep, startServer, tempDir } from "./harness.mjs";

const { default: BetterSqlite } = await import("better-sqlite3");

const EXTENSION = process.env.REPLITE_EXTENSION ?? join(dirname(REPLITE_BIN), "libreplite.so");
const SNAPSHOT = "SELECT id, v, length(b), hex(substr(b, 1, 16)), hex(substr(b, -16)) FROM t ORDER BY id";
const SCHEMA = "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name";
const U_ROWS = "SELECT k, n FROM u ORDER BY k";
const LIVE_DEADLINE_MS = 5000;
const CONCURRENT_N = Number(process.env.WRITE_TEST_N ?? 200);

new BetterSqlite(":memory:").loadExtension(EXTENSION);

async function primaryRows(client, sql = SNAPSHOT) {
  const rs = await client.execute(sql);
  return rs.rows.map((row) => rs.columns.map((_, i) => row[i]));
}

const localRows = (db, sql = SNAPSHOT) => db.prepare(sql).raw().all();
const pushesIn = (log) => log.filter((r) => r.method === "POST" && r.path.startsWith("/sync/"));

async function waitUntil(what, fn, timeoutMs = LIVE_DEADLINE_MS) {
  const start = Date.now();
  for (;;) {
    if (await fn()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await sleep(5);
  }
}

// A file checked as a plain SQLite database (a copy: a default-mode libsql
// replica sends PRAGMAs to the primary, and the copy leaves the original
// alone): integrity and content.
function checkFile(dir, path, expected, what) {
  const db = new BetterSqlite(copyDatabase(path, dir));
  try {
    assert.equal(db.pragma("integrity_check", { simple: true }), "ok", `${what}: integrity`);
    assert.deepEqual(localRows(db), expected, `${what}: content`);
  } finally {
    db.close();
  }
}

async function withPrimary(fn) {
  const dir = tempDir("replite-write-");
  const server = await startServer({ dataDir: dir.file("data"), args: ["--log-requests"] });
  const client = createClient({ url: server.url });
  const open = [];
  const replite = (name, extra = "&sync_interval=0") => {
    const db = new BetterSqlite(`file:${dir.file(name)}?vfs=replite&sync_url=${server.url}${extra}`);
    open.push(db);
    return db;
  };
  const libsql = (name, opts = {}) => {
    const db = new Database(dir.file(name), { syncUrl: server.url, ...opts });
    open.push(db);
    db.sync();
    return db;
  };
  try {
    await client.batch(
      [
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT UNIQUE, b BLOB)",
        "INSERT INTO t(v, b) VALUES ('seed-1', x'01'), ('seed-2', randomblob(5000))",
      ],
      "write",
    );
    await fn({ dir, server, client, replite, libsql });
  } finally {
    for (const db of open.reverse()) {
      try {
        if (db.open) db.close();
      } catch {}
    }
    client.close();
    try {
      await server.stop();
    } finally {
      dir.remove();
    }
  }
}

test("(a) writes through a replite replica reach @libsql/client and npm libsql replicas", async () => {
  await withPrimary(async ({ dir, server, client, replite, libsql }) => {
    // Replicas of the other kind, bootstrapped before the writes.
    const lib = libsql("lib.db");
    const off = libsql("off.db", { offline: true });
    const r = replite("r.db");
    assert.deepEqual(localRows(r), await primaryRows(client));

    // Each write is on the primary when it returns.
    const expectOnPrimary = async (what) => {
      assert.deepEqual(await primaryRows(client), localRows(r), `${what}: the primary has the replica's rows`);
    };
    r.exec("INSERT INTO t(v) VALUES ('r-autocommit')");
    await expectOnPrimary("autocommit INSERT");
    const big = r.prepare("INSERT INTO t(v, b) VALUES (?, randomblob(?))").run("r-overflow", 20000);
    assert.equal(big.changes, 1);
    await expectOnPrimary("INSERT of an overflowing blob");
    r.transaction(() => {
      r.prepare("INSERT INTO t(v, b) VALUES (?, ?)").run("r-tx-1", Buffer.from("one"));
      r.prepare("INSERT INTO t(v, b) VALUES (?, ?)").run("r-tx-2", Buffer.from("two"));
      r.exec("UPDATE t SET b = x'ee' WHERE v = 'seed-1'");
      r.exec("DELETE FROM t WHERE v = 'seed-2'");
    })();
    await expectOnPrimary("transaction");
    r.exec("CREATE TABLE u(k TEXT PRIMARY KEY, n INTEGER); CREATE INDEX t_len ON t(length(b))");
    r.exec("INSERT INTO u VALUES ('a', 1), ('b', 2)");
    r.exec("UPDATE u SET n = n * 10");
    assert.deepEqual(await primaryRows(client, SCHEMA), localRows(r, SCHEMA), "DDL: the primary has the replica's schema");
    assert.deepEqual(await primaryRows(client, U_ROWS), [["a", 10], ["b", 20]]);
    // A transaction larger than one push request (1024 frames).
    r.transaction(() => {
      const ins = r.prepare("INSERT INTO t(v, b) VALUES (?, randomblob(3800))");
      for (let i = 0; i < 1100; i++) ins.run(`r-large-${i}`);
    })();
    await expectOnPrimary("a transaction of more than 1024 pages");
    const log = await settledRequestLog(server);
    assert.ok(pushesIn(log).length > 0 && pushesIn(log).every((x) => x.status === 200), JSON.stringify(pushesIn(log)));
    assert.ok(
      pushesIn(log).some((x) => x.path.split("/").length === 6),
      "the large transaction took several requests tied by a baton",
    );

    const expected = localRows(r);
    assert.equal(expected.filter(([, v]) => v.startsWith("r-large-")).length, 1100);
    assert.equal(r.pragma("integrity_check", { simple: true }), "ok");
    assert.deepEqual(await primaryRows(client, "PRAGMA integrity_check"), [["ok"]]);

    // The npm libsql replicas: the default-mode and the offline one pull
    // them, and a new one bootstraps with them.
    lib.sync();
    assert.deepEqual(localRows(lib), expected, "default-mode libsql replica after sync()");
    assert.deepEqual(localRows(lib, U_ROWS), [["a", 10], ["b", 20]]);
    off.sync();
    assert.deepEqual(localRows(off), expected, "offline libsql replica after sync()");
    assert.deepEqual(localRows(off, SCHEMA), localRows(r, SCHEMA));
    assert.deepEqual(localRows(off, "PRAGMA integrity_check"), [["ok"]]);
    const fresh = libsql("fresh.db");
    assert.deepEqual(localRows(fresh), expected, "a new libsql replica");
    assert.deepEqual(localRows(fresh, U_ROWS), [["a", 10], ["b", 20]]);

    // They can write on top of it, and the replite replica sees that.
    // (The offline one first: its push would conflict with a newer head.)
    off.exec("INSERT INTO u VALUES ('from-off', 3)");
    off.sync();
    lib.exec("INSERT INTO u VALUES ('from-lib', 4)");
    r.exec("INSERT INTO u VALUES ('from-r', 5)");
    assert.deepEqual(
      localRows(r, U_ROWS),
      [["a", 10], ["b", 20], ["from-lib", 4], ["from-off", 3], ["from-r", 5]],
      "the replite replica wrote after catching up with both",
    );
    assert.deepEqual(await primaryRows(client, U_ROWS), localRows(r, U_ROWS));
    lib.sync();
    assert.deepEqual(localRows(lib, U_ROWS), localRows(r, U_ROWS));

    checkFile(dir, dir.file("lib.db"), expected, "lib.db");
    checkFile(dir, dir.file("r.db"), expected, "r.db");
  });
});

test("(b) writes by @libsql/client and npm libsql replicas reach replite replicas", async (t) => {
  await withPrimary(async ({ dir, server, client, replite, libsql }) => {
    const r = replite("r.db"); // explicit syncs only
    const live = replite("live.db", ""); // the default sync_interval: live
    const lib = libsql("lib.db");
    const off = libsql("off.db", { offline: true });
    const same = async (what) => {
      const expected = await primaryRows(client);
      assert.equal(
        Number(r.pragma("replite_sync", { simple: true })),
        (await serverInfo(server)).max_frame_no,
        `${what}: PRAGMA replite_sync returns the head`,
      );
      assert.deepEqual(localRows(r), expected, `${what}: after PRAGMA replite_sync`);
      const ms = await waitUntil(`${what}: the live replica`, () =>
        JSON.stringify(localRows(live)) === JSON.stringify(expected),
      );
      t.diagnostic(`${what}: on the live replica after ${ms} ms`);
      return expected;
    };

    // @libsql/client: a statement, a batch with DDL, an interactive
    // transaction.
    await client.execute({ sql: "INSERT INTO t(v, b) VALUES (?, ?)", args: ["c-1", new Uint8Array([7, 8])] });
    await client.batch(
      ["CREATE TABLE u(k TEXT PRIMARY KEY, n INTEGER)", "INSERT INTO u VALUES ('c', 1)", "ALTER TABLE t ADD COLUMN extra TEXT"],
      "write",
    );
    const tx = await client.transaction("write");
    await tx.execute("INSERT INTO t(v, b) VALUES ('c-tx', randomblob(9000))");
    await tx.execute("UPDATE t SET extra = 'x' WHERE v = 'seed-1'");
    await tx.commit();
    await same("@libsql/client writes");
    assert.deepEqual(localRows(r, "SELECT extra FROM t WHERE v = 'seed-1'"), [["x"]], "the new column");
    assert.deepEqual(localRows(live, U_ROWS), [["c", 1]], "the new table on the live replica");

    // The default-mode npm libsql replica: its writes go over Hrana.
    lib.exec("INSERT INTO t(v) VALUES ('lib-1')");
    lib.transaction(() => {
      lib.prepare("INSERT INTO t(v, b) VALUES (?, ?)").run("lib-tx", Buffer.from([1, 2, 3]));
      lib.prepare("UPDATE u SET n = n + 1 WHERE k = ?").run("c");
    })();
    lib.exec("CREATE INDEX u_n ON u(n)");
    await same("default-mode libsql writes");
    assert.deepEqual(localRows(r, U_ROWS), [["c", 2]]);
    assert.deepEqual(localRows(r, SCHEMA), await primaryRows(client, SCHEMA));

    // The offline npm libsql replica: local writes, pushed as frames by sync().
    off.sync();
    off.exec("INSERT INTO t(v, b) VALUES ('off-1', randomblob(6000))");
    off.transaction(() => {
      off.exec("INSERT INTO t(v) VALUES ('off-tx')");
      off.exec("UPDATE u SET n = n + 100");
    })();
    const before = (await settledRequestLog(server)).length;
    off.sync();
    const pushes = pushesIn((await settledRequestLog(server)).slice(before));
    assert.ok(pushes.length > 0 && pushes.every((x) => x.status === 200), JSON.stringify(pushes));
    assert.deepEqual(await primaryRows(client, "SELECT v FROM t WHERE v LIKE 'off-%' ORDER BY id"), [["off-1"], ["off-tx"]]);
    await same("offline libsql writes (pushed frames)");
    assert.deepEqual(localRows(live, U_ROWS), [["c", 102]]);

    // A replite replica that is behind (sync_interval=0) writes: no error,
    // and it has the others' rows with its own.
    await client.execute("INSERT INTO t(v) VALUES ('c-2')");
    lib.exec("INSERT INTO t(v) VALUES ('lib-2')");
    r.exec("INSERT INTO t(v) VALUES ('r-behind')");
    const vs = localRows(r, "SELECT v FROM t WHERE v IN ('c-2', 'lib-2', 'r-behind') ORDER BY id");
    assert.deepEqual(vs, [["c-2"], ["lib-2"], ["r-behind"]]);
    assert.deepEqual(localRows(r), await primaryRows(client));
    const final = await same("after the replite write");
    assert.equal(r.pragma("integrity_check", { simple: true }), "ok");
    assert.equal(live.pragma("integrity_check", { simple: true }), "ok");
    lib.sync();
    assert.deepEqual(localRows(lib), final);
    checkFile(dir, dir.file("r.db"), final, "r.db");
    checkFile(dir, dir.file("live.db"), final, "live.db");
  });
});

// ---------------------------------------------------------------------------
// (c) concurrent writers, each in its own process (the npm libsql replica is
// synchronous: it would block this process's event loop).

function startWorker(args) {
  const child = spawn(process.execPath, [join(import.meta.dirname, "write_worker.mjs"), ...args], {
    cwd: import.meta.dirname,
    stdio: ["pipe", "pipe", "pipe"],
  });
  const w = { child, stderr: "", waiters: [] };
  child.stderr.setEncoding("utf8").on("data", (d) => (w.stderr += d));
  createInterface({ input: child.stdout }).on("line", (l) => w.waiters.shift()?.resolve(JSON.parse(l)));
  w.exited = new Promise((res) =>
    child.on("exit", (code, signal) => {
      for (const x of w.waiters.splice(0))
        x.reject(new Error(`worker ${args[0]} exited (${code ?? signal}):\n${w.stderr}`));
      res({ code, signal });
    }),
  );
  w.next = (what, ms = 60000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker ${args[0]}: no answer to ${what}:\n${w.stderr}`)), ms);
      w.waiters.push({
        resolve: (x) => (clearTimeout(timer), resolve(x)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  w.send = (line) => {
    const r = w.next(line);
    child.stdin.write(`${line}\n`);
    return r;
  };
  w.ready = w.next("start");
  w.kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  return w;
}

test("(c) an npm libsql replica, a replite replica and @libsql/client write concurrently: nothing lost", async (t) => {
  await withPrimary(async ({ dir, server, client }) => {
    await client.batch(["CREATE TABLE counter(id INTEGER PRIMARY KEY, n INTEGER)", "INSERT INTO counter VALUES (1, 0)"], "write");
    const n = CONCURRENT_N;
    const workers = [
      startWorker(["libsql", server.url, dir.file("lib.db"), "lib", String(n)]),
      startWorker(["replite", server.url, dir.file("rep.db"), "rep", String(n), EXTENSION]),
    ];
    try {
      await Promise.all(workers.map((w) => w.ready));
      // Go together; @libsql/client writes meanwhile from here.
      const done = workers.map((w) => w.send("go"));
      let clientRetries = 0;
      const t0 = Date.now();
      for (let i = 0; i < n; i++) {
        for (;;) {
          try {
            await client.batch(
              [{ sql: "INSERT INTO t(v) VALUES (?)", args: [`cli-${i}`] }, "UPDATE counter SET n = n + 1 WHERE id = 1"],
              "write",
            );
            break;
          } catch (e) {
            if (!/BUSY|locked/i.test(String(e.code ?? "") + e.message) || ++clientRetries > 100 * n) throw e;
            await sleep(1);
          }
        }
      }
      const clientMs = Date.now() - t0;
      const [lib, rep] = await Promise.all(done);
      t.diagnostic(
        `${n} transactions each: @libsql/client ${clientMs} ms (${clientRetries} retries), ` +
          `libsql ${Math.round(lib.ms)} ms (${lib.retries} retries ${JSON.stringify(lib.errors)}), ` +
          `replite ${Math.round(rep.ms)} ms (${rep.retries} retries ${JSON.stringify(rep.errors)})`,
      );

      // Nothing lost, nothing twice.
      const vs = (await primaryRows(client, "SELECT v FROM t WHERE v NOT LIKE 'seed-%'")).map(([v]) => v);
      for (const tag of ["cli", "lib", "rep"]) {
        const mine = vs.filter((v) => v.startsWith(`${tag}-`));
        assert.equal(mine.length, n, `${tag}: ${mine.length} rows on the primary, expected ${n}`);
        assert.equal(new Set(mine).size, n, `${tag}: no duplicates`);
      }
      assert.deepEqual(await primaryRows(client, "SELECT n FROM counter"), [[3 * n]], "the counter counts every commit");
      assert.deepEqual(await primaryRows(client, "PRAGMA integrity_check"), [["ok"]]);

      // Every replica converges with the primary.
      const expected = await primaryRows(client, "SELECT id, v FROM t ORDER BY id");
      for (const [name, w] of [
        ["libsql", workers[0]],
        ["replite", workers[1]],
      ]) {
        const s = await w.send("sync");
        assert.equal(s.counter, 3 * n, `${name}: the counter after sync`);
        assert.deepEqual(s.rows, expected, `${name}: rows after sync`);
      }
      for (const w of workers) {
        w.child.stdin.end();
        assert.deepEqual(await w.exited, { code: 0, signal: null }, w.stderr);
      }
      const all = await primaryRows(client);
      checkFile(dir, dir.file("rep.db"), all, "rep.db");
      checkFile(dir, dir.file("lib.db"), all, "lib.db");
    } finally {
      for (const w of workers) w.kill();
    }
  });
});
