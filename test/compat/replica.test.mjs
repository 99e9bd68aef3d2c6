// The real npm `libsql` embedded replica against `replite serve`: default
// mode (pulls over HTTP sync, writes over Hrana v3), offline mode (local
// writes pushed with POST /sync), close and reopen, and generation rollovers.
// What the client does on the wire is checked in the server's request log.
import { test } from "node:test";
import assert from "node:assert/strict";
import Database from "libsql";
import { createClient } from "@libsql/client";
import { copyDatabase, startServer, tempDir, serverInfo, settledRequestLog, waitForGeneration } from "./harness.mjs";

const SNAPSHOT = "SELECT id, v, hex(b) FROM t ORDER BY id";

// Rows as arrays, comparable between the two clients.
async function primaryRows(client, sql = SNAPSHOT) {
  const rs = await client.execute(sql);
  return rs.rows.map((row) => rs.columns.map((_, i) => row[i]));
}

function localRows(db, sql = SNAPSHOT) {
  return db.prepare(sql).raw().all();
}

function integrity(db) {
  return db.prepare("PRAGMA integrity_check").pluck().all();
}

const exportsIn = (log) => log.filter((r) => r.method === "GET" && r.path.startsWith("/export/")).map((r) => r.path);

// GET /sync/{g}/{start}/{end} requests as numbers.
function pullsIn(log) {
  return log
    .filter((r) => r.method === "GET" && r.path.startsWith("/sync/"))
    .map((r) => {
      const [gen, start, end] = r.path.split("/").slice(2).map(Number);
      return { gen, start, end, status: r.status };
    });
}

const pushesIn = (log) => log.filter((r) => r.method === "POST" && r.path.startsWith("/sync/"));

// A default-mode replica runs PRAGMAs on the primary (they are not
// read-only statements to it), so the replica's own file is checked through
// a copy opened as a plain SQLite database: integrity and content.  Offline
// replicas run everything locally.
function checkReplicaFile(dir, replicaPath, expectedRows) {
  const db = new Database(copyDatabase(replicaPath, dir));
  try {
    assert.deepEqual(integrity(db), ["ok"], `integrity of a copy of ${replicaPath}`);
    assert.deepEqual(localRows(db), expectedRows, `content of a copy of ${replicaPath}`);
  } finally {
    db.close();
  }
}

async function withServer(args, fn) {
  const dir = tempDir("replite-replica-");
  const server = await startServer({ dataDir: dir.file("data"), args: ["--log-requests", ...args] });
  const client = createClient({ url: server.url });
  const open = [];
  const replica = (name, opts = {}) => {
    const db = new Database(dir.file(name), { syncUrl: server.url, ...opts });
    open.push(db);
    return db;
  };
  try {
    await fn({ dir, server, client, replica });
  } finally {
    for (const db of open) {
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

test("default-mode replica: bootstrap, incremental pulls, writes through the primary with read-your-writes", async () => {
  await withServer([], async ({ dir, server, client: c, replica }) => {
    await c.batch(
      [
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT UNIQUE, b BLOB)",
        "INSERT INTO t(v, b) VALUES ('one', randomblob(5000)), ('two', NULL)",
      ],
      "write",
    );

    // Bootstrap: /info, then the base image of generation 1, then frames.
    const r = replica("r.db");
    r.sync();
    let log = await settledRequestLog(server);
    assert.ok(log.some((x) => x.method === "GET" && x.path === "/info"), "the client probes /info");
    assert.deepEqual(exportsIn(log), ["/export/1"]);
    assert.equal(pullsIn(log)[0].start, 1, "pulls start at frame 1 of the generation");
    assert.deepEqual(localRows(r), await primaryRows(c));
    assert.equal(localRows(r).length, 2);

    // Writes by another client appear after sync(), and only the new frames
    // are fetched.
    let { max_frame_no: head } = await serverInfo(server);
    await c.execute("INSERT INTO t(v) VALUES ('three')");
    assert.equal(localRows(r).length, 2, "nothing arrives before sync()");
    let n = log.length;
    r.sync();
    log = (await settledRequestLog(server)).slice(n);
    assert.deepEqual(exportsIn(log), []);
    let pulls = pullsIn(log);
    assert.equal(pulls[0].start, head + 1, "the pull starts right after what the replica had");
    assert.ok(pulls.every((p) => p.start > head));
    assert.equal(pulls.filter((p) => p.status === 200).length, 1);
    assert.deepEqual(localRows(r), await primaryRows(c));

    // A transaction of more than 128 frames takes several pulls.
    ({ max_frame_no: head } = await serverInfo(server));
    await c.batch(
      Array.from({ length: 160 }, (_, i) => ({ sql: "INSERT INTO t(v, b) VALUES (?, randomblob(3500))", args: [`big${i}`] })),
      "write",
    );
    const after = (await serverInfo(server)).max_frame_no;
    assert.ok(after - head > 128, `the transaction has ${after - head} frames`);
    n = (await settledRequestLog(server)).length;
    r.sync();
    log = (await settledRequestLog(server)).slice(n);
    pulls = pullsIn(log).filter((p) => p.status === 200);
    assert.ok(pulls.length >= 2, JSON.stringify(pulls));
    assert.equal(pulls[0].start, head + 1);
    for (let i = 1; i < pulls.length; i++) assert.equal(pulls[i].start, pulls[i - 1].end, "consecutive ranges");
    assert.deepEqual(exportsIn(log), []);
    assert.deepEqual(localRows(r), await primaryRows(c));

    // Writes on the replica go to the primary over Hrana v3 (not /sync) and
    // are visible locally as soon as they return.
    n = (await settledRequestLog(server)).length;
    r.exec("INSERT INTO t(v) VALUES ('from-replica')");
    assert.deepEqual(localRows(r, "SELECT v FROM t WHERE v = 'from-replica'"), [["from-replica"]]);
    const res = r.prepare("INSERT INTO t(v, b) VALUES (?, ?)").run("bound", Buffer.from([1, 2, 3]));
    assert.deepEqual(localRows(r, `SELECT v, hex(b) FROM t WHERE id = ${res.lastInsertRowid}`), [["bound", "010203"]]);
    r.transaction(() => {
      r.prepare("INSERT INTO t(v) VALUES (?)").run("tx-1");
      r.prepare("INSERT INTO t(v) VALUES (?)").run("tx-2");
    })();
    assert.deepEqual(localRows(r, "SELECT v FROM t WHERE v LIKE 'tx-%' ORDER BY v"), [["tx-1"], ["tx-2"]]);
    // A failing write is reported and changes nothing.
    const before = await primaryRows(c);
    assert.throws(() => r.exec("INSERT INTO t(v) VALUES ('one')"), /UNIQUE constraint failed/);
    assert.deepEqual(await primaryRows(c), before);
    log = (await settledRequestLog(server)).slice(n);
    assert.ok(log.some((x) => x.method === "POST" && x.path === "/v3/pipeline"), "writes use Hrana v3");
    assert.deepEqual(pushesIn(log), [], "a default-mode replica does not push frames");
    assert.deepEqual(exportsIn(log), []);
    // The other client sees the replica's writes.
    assert.deepEqual(
      await primaryRows(c, "SELECT v FROM t WHERE v IN ('from-replica', 'bound', 'tx-1', 'tx-2') ORDER BY id"),
      [["from-replica"], ["bound"], ["tx-1"], ["tx-2"]],
    );

    // A second replica's writes reach the first one through the primary.
    const r2 = replica("r2.db");
    r2.sync();
    r2.exec("INSERT INTO t(v) VALUES ('from-r2')");
    r.sync();
    assert.deepEqual(localRows(r, "SELECT v FROM t WHERE v = 'from-r2'"), [["from-r2"]]);
    assert.deepEqual(localRows(r), await primaryRows(c));
    assert.deepEqual(localRows(r2), await primaryRows(c));

    const expected = await primaryRows(c);
    checkReplicaFile(dir, dir.file("r.db"), expected);
    r.close();
    checkReplicaFile(dir, dir.file("r.db"), expected);
  });
});

test("a closed replica reopens and resumes pulling where it was", async () => {
  await withServer([], async ({ dir, server, client: c, replica }) => {
    await c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)");
    await c.execute("INSERT INTO t(v, b) VALUES ('before', randomblob(100))");
    const path = dir.file("r.db");
    const r = replica("r.db");
    r.sync();
    const seen = localRows(r);
    r.close();
    const { max_frame_no: head } = await serverInfo(server);

    await c.execute("INSERT INTO t(v, b) VALUES ('while-closed-1', randomblob(9000))");
    await c.execute("UPDATE t SET v = 'before-updated' WHERE v = 'before'");
    let n = (await settledRequestLog(server)).length;
    const again = replica("r.db");
    assert.deepEqual(localRows(again), seen, "reopened, it reads what it had");
    again.sync();
    let log = (await settledRequestLog(server)).slice(n);
    assert.deepEqual(exportsIn(log), [], "no second bootstrap");
    const pulls = pullsIn(log);
    assert.equal(pulls[0].start, head + 1, JSON.stringify(pulls));
    assert.deepEqual(localRows(again), await primaryRows(c));
    assert.deepEqual(
      localRows(again, "SELECT v FROM t ORDER BY id"),
      [["before-updated"], ["while-closed-1"]],
    );
    again.close();

    // Reopened with nothing new: one "caught up" answer, no frames.
    n = (await settledRequestLog(server)).length;
    const third = replica("r.db");
    third.sync();
    log = (await settledRequestLog(server)).slice(n);
    assert.deepEqual(exportsIn(log), []);
    assert.deepEqual(
      pullsIn(log).filter((p) => p.status === 200),
      [],
      "nothing to fetch",
    );
    assert.ok(pullsIn(log).length >= 1);
    const expected = await primaryRows(c);
    third.close();
    checkReplicaFile(dir, path, expected);
  });
});

test("offline replicas: local writes pushed by sync(), pulls of others' writes, conflicts refused", async () => {
  await withServer([], async ({ dir, server, client: c, replica }) => {
    await c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT UNIQUE, b BLOB)");
    const a = replica("a.db", { offline: true });
    const b = replica("b.db", { offline: true });
    a.sync();
    b.sync();

    // Local writes: visible locally at once, on the primary only after sync().
    a.exec("INSERT INTO t(v, b) VALUES ('a1', randomblob(6000))");
    a.prepare("INSERT INTO t(v) VALUES (?)").run("a2");
    assert.deepEqual(localRows(a, "SELECT v FROM t ORDER BY id"), [["a1"], ["a2"]]);
    assert.deepEqual(await primaryRows(c), [], "offline writes stay local until sync()");
    let n = (await settledRequestLog(server)).length;
    a.sync();
    let log = (await settledRequestLog(server)).slice(n);
    assert.ok(pushesIn(log).length >= 1, "sync() pushed");
    assert.ok(pushesIn(log).every((x) => x.status === 200), JSON.stringify(log));
    assert.deepEqual(localRows(a), await primaryRows(c));
    assert.deepEqual(
      await primaryRows(c, "SELECT v FROM t ORDER BY id"),
      [["a1"], ["a2"]],
    );
    // ... and to the other replicas.
    b.sync();
    assert.deepEqual(localRows(b), await primaryRows(c));
    const d = replica("d.db");
    d.sync();
    assert.deepEqual(localRows(d), await primaryRows(c));

    // Writes of other clients are pulled.
    await c.execute("INSERT INTO t(v) VALUES ('c1')");
    a.sync();
    b.sync();
    assert.deepEqual(localRows(a, "SELECT v FROM t WHERE v = 'c1'"), [["c1"]]);
    assert.deepEqual(localRows(a), await primaryRows(c));
    assert.deepEqual(localRows(b), await primaryRows(c));

    // A transaction of more than 128 frames is pushed in several requests
    // tied by a baton.
    b.exec("INSERT INTO t(v) VALUES ('b1')");
    b.transaction(() => {
      const ins = b.prepare("INSERT INTO t(v, b) VALUES (?, randomblob(3500))");
      for (let i = 0; i < 160; i++) ins.run(`b-big${i}`);
    })();
    n = (await settledRequestLog(server)).length;
    b.sync();
    log = (await settledRequestLog(server)).slice(n);
    const pushes = pushesIn(log);
    assert.ok(pushes.length >= 2, JSON.stringify(pushes));
    assert.ok(pushes.every((x) => x.status === 200), JSON.stringify(pushes));
    assert.ok(
      pushes.some((x) => x.path.split("/").length === 6),
      `a continuation carries a baton: ${JSON.stringify(pushes)}`,
    );
    assert.deepEqual(localRows(b), await primaryRows(c));
    assert.equal((await primaryRows(c, "SELECT count(*) FROM t WHERE v LIKE 'b-big%'"))[0][0], 160);
    a.sync();
    d.sync();
    assert.deepEqual(localRows(a), await primaryRows(c));
    assert.deepEqual(localRows(d), await primaryRows(c));

    // Two replicas write from the same base: the first push wins, the second
    // is reported as a conflict and changes nothing on the primary.
    a.exec("INSERT INTO t(v) VALUES ('a-wins')");
    b.exec("INSERT INTO t(v) VALUES ('b-loses')");
    a.sync();
    const rowsBefore = await primaryRows(c);
    const infoBefore = await serverInfo(server);
    assert.deepEqual(localRows(a), rowsBefore);
    n = (await settledRequestLog(server)).length;
    assert.throws(() => b.sync(), /Conflict/);
    log = (await settledRequestLog(server)).slice(n);
    assert.ok(pushesIn(log).length >= 1, "b tried to push");
    assert.deepEqual(await primaryRows(c), rowsBefore);
    assert.equal((await serverInfo(server)).max_frame_no, infoBefore.max_frame_no);
    assert.deepEqual(await primaryRows(c, "SELECT v FROM t WHERE v = 'b-loses'"), []);

    n = (await settledRequestLog(server)).length;
    for (const db of [a, b]) assert.deepEqual(integrity(db), ["ok"]);
    log = (await settledRequestLog(server)).slice(n);
    assert.deepEqual(log.filter((x) => x.path.startsWith("/v3/")), [], "offline replicas check themselves locally");
    assert.deepEqual(await primaryRows(c, "PRAGMA integrity_check"), [["ok"]]);
    d.sync();
    const expected = await primaryRows(c);
    checkReplicaFile(dir, dir.file("d.db"), expected);
    a.close();
    checkReplicaFile(dir, dir.file("a.db"), expected);
  });
});

test("replicas follow generation rollovers without downloading /export again", async () => {
  await withServer(["--generation-frames", "16"], async ({ dir, server, client: c, replica }) => {
    await c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)");
    let k = 0;
    const write = async (count, size = 200) => {
      for (let i = 0; i < count; i++)
        await c.execute({ sql: "INSERT INTO t(v, b) VALUES (?, randomblob(?))", args: [`w${k++}`, size] });
    };
    await write(3);
    const a = replica("a.db");
    const late = replica("late.db");
    const o = replica("o.db", { offline: true });
    a.sync();
    late.sync();
    o.sync();
    let log = await settledRequestLog(server);
    assert.deepEqual(exportsIn(log), ["/export/1", "/export/1", "/export/1"]);

    // One rollover, in the middle of which a replica syncs.
    await write(20);
    await waitForGeneration(server, 2);
    await write(3);
    let n = log.length;
    a.sync();
    log = await settledRequestLog(server);
    let mine = log.slice(n);
    assert.deepEqual(exportsIn(mine), []);
    assert.ok(pullsIn(mine).some((p) => p.gen === 2 && p.start === 1 && p.status === 200), JSON.stringify(mine));
    assert.deepEqual(localRows(a), await primaryRows(c));
    checkReplicaFile(dir, dir.file("a.db"), await primaryRows(c));

    // An offline replica pulls across the rollover, then pushes in the new
    // generation.
    o.sync();
    assert.deepEqual(localRows(o), await primaryRows(c));
    o.exec("INSERT INTO t(v) VALUES ('offline-after-rollover')");
    o.sync();
    assert.deepEqual(
      await primaryRows(c, "SELECT v FROM t WHERE v = 'offline-after-rollover'"),
      [["offline-after-rollover"]],
    );
    assert.deepEqual(localRows(o), await primaryRows(c));

    // Two more rollovers, one of them ended by a transaction larger than a
    // whole generation.
    await c.batch(
      Array.from({ length: 40 }, (_, i) => ({ sql: "INSERT INTO t(v, b) VALUES (?, randomblob(3000))", args: [`big${i}`] })),
      "write",
    );
    await waitForGeneration(server, 3);
    await write(20);
    const { current_generation: gen } = await waitForGeneration(server, 4);
    await write(2);

    // `late` last synced in generation 1; it walks every generation.
    n = log.length;
    late.sync();
    a.sync();
    o.sync();
    log = await settledRequestLog(server);
    mine = log.slice(n);
    assert.deepEqual(exportsIn(mine), [], "no replica downloaded the database again");
    const gens = new Set(pullsIn(mine).filter((p) => p.status === 200).map((p) => p.gen));
    for (let g = 1; g <= gen; g++) assert.ok(gens.has(g), `frames of generation ${g} were pulled: ${JSON.stringify(mine)}`);
    const expected = await primaryRows(c);
    assert.equal(expected.length, 3 + 20 + 3 + 1 + 40 + 20 + 2);
    for (const db of [late, a, o]) assert.deepEqual(localRows(db), expected);
    assert.deepEqual(integrity(o), ["ok"]);
    for (const name of ["late.db", "a.db", "o.db"]) checkReplicaFile(dir, dir.file(name), expected);

    // A new replica bootstraps from the current generation's base.
    n = log.length;
    const fresh = replica("fresh.db");
    fresh.sync();
    mine = (await settledRequestLog(server)).slice(n);
    assert.deepEqual(exportsIn(mine), [`/export/${(await serverInfo(server)).current_generation}`]);
    assert.deepEqual(localRows(fresh), expected);
    checkReplicaFile(dir, dir.file("fresh.db"), expected);
  });
});
