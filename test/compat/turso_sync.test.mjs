// Turso Sync clients against `replite serve` (issue 13): the real npm
// @tursodatabase/sync 0.7.2 (its prebuilt linux-x64-gnu engine) pulls with
// POST /pull-updates and pushes Hrana batches on /v2/pipeline; replite
// replicas and @libsql/client share the same primary.  Also hand-made
// /pull-updates bodies: the page filter, revisions, hostile input.

// better-sqlite3 reads SQLITE_USE_URI once, when its addon is loaded.
process.env.SQLITE_USE_URI = "1";

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { connect } from "@tursodatabase/sync";
import { createClient } from "@libsql/client";
import { REPLITE_BIN, startServer, makeAuth, tempDir, http, sleep } from "./harness.mjs";
import { bytesField, fields, intField, readVarint } from "./protobuf_wire.mjs";

const { default: Database } = await import("better-sqlite3");
const EXTENSION = process.env.REPLITE_EXTENSION ?? join(dirname(REPLITE_BIN), "libreplite.so");

const cleanups = [];
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

async function primary(opts = {}) {
  const server = await startServer(opts);
  cleanups.push(() => server.child.exitCode === null && server.child.signalCode === null ? server.stop() : undefined);
  return server;
}

// A Turso Sync client on a file of its own.
async function tursoClient(server, opts = {}) {
  const dir = tempDir("replite-turso-");
  const db = await connect({ path: join(dir.path, "local.db"), url: server.url, ...opts });
  cleanups.push(async () => {
    try {
      await db.close();
    } catch {}
  });
  return db;
}

// A replite replica (the extension in better-sqlite3).
function repliteReplica(server) {
  const dir = tempDir("replite-turso-replica-");
  const db = new Database(":memory:");
  db.loadExtension(EXTENSION);
  db.close();
  const r = new Database(`file:${join(dir.path, "app.db")}?vfs=replite&sync_url=${server.url}&sync_interval=0`);
  cleanups.push(() => r.close());
  return r;
}

const rows = async (db, sql = "SELECT id, v FROM t ORDER BY id") => (await db.all(sql)).map((r) => [r.id, r.v]);

// ---------------------------------------------------------------------------
// Hand-made /pull-updates.

// A /pull-updates answer: the header's fields and the pages {id, page}.
function parsePull(body) {
  const msgs = [];
  let pos = 0;
  while (pos < body.length) {
    let len;
    [len, pos] = readVarint(body, pos);
    msgs.push(fields(body.subarray(pos, pos + Number(len))));
    pos += Number(len);
  }
  const [h, ...pages] = msgs;
  return {
    revision: h[1]?.[0]?.toString() ?? "",
    dbSize: Number(h[2]?.[0] ?? 0n),
    pages: pages.map((p) => ({ id: Number(p[1]?.[0] ?? 0n), page: p[2][0] })),
  };
}
// A portable roaring bitmap of array containers (ids < 2^16 * n).
function roaring(ids) {
  const byKey = new Map();
  for (const id of [...new Set(ids)].sort((a, b) => a - b)) {
    const k = id >>> 16;
    if (!byKey.has(k)) byKey.set(k, []);
    byKey.get(k).push(id & 0xffff);
  }
  const keys = [...byKey.keys()];
  const head = Buffer.alloc(8 + keys.length * 8);
  head.writeUInt32LE(12346, 0); // no run containers
  head.writeUInt32LE(keys.length, 4);
  let offset = head.length;
  const data = [];
  keys.forEach((k, i) => {
    const vals = byKey.get(k);
    head.writeUInt16LE(k, 8 + i * 4);
    head.writeUInt16LE(vals.length - 1, 10 + i * 4);
    head.writeUInt32LE(offset, 8 + keys.length * 4 + i * 4);
    const b = Buffer.alloc(vals.length * 2);
    vals.forEach((v, j) => b.writeUInt16LE(v, j * 2));
    data.push(b);
    offset += b.length;
  });
  return Buffer.concat([head, ...data]);
}
const pull = (server, body, token) =>
  http(server, "POST", "/pull-updates", { body, token, headers: { "Content-Type": "application/protobuf" } });

// ---------------------------------------------------------------------------

test("turso sync: bootstrap, pull what Hrana and replite replicas commit, push what everyone then sees", async () => {
  const server = await primary();
  const lc = createClient({ url: server.url });
  try {
    await lc.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    await lc.execute("INSERT INTO t(v) VALUES ('hrana 1')");
    const db = await tursoClient(server);
    assert.deepEqual(await rows(db), [[1, "hrana 1"]]);

    await lc.execute("INSERT INTO t(v) VALUES ('hrana 2')");
    const replica = repliteReplica(server);
    replica.prepare("INSERT INTO t(v) VALUES ('replica 3')").run();
    await db.pull();
    assert.deepEqual(await rows(db), [
      [1, "hrana 1"],
      [2, "hrana 2"],
      [3, "replica 3"],
    ]);
    assert.deepEqual(await db.all("PRAGMA integrity_check"), [{ integrity_check: "ok" }]);

    await db.exec("INSERT INTO t(v) VALUES ('turso 4')");
    await db.exec("UPDATE t SET v = 'turso changed 1' WHERE id = 1");
    await db.push();
    const want = [
      [1, "turso changed 1"],
      [2, "hrana 2"],
      [3, "replica 3"],
      [4, "turso 4"],
    ];
    assert.deepEqual(
      (await lc.execute("SELECT id, v FROM t ORDER BY id")).rows.map((r) => [r.id, r.v]),
      want,
    );
    replica.prepare("SELECT replite_sync()").get();
    assert.deepEqual(
      replica.prepare("SELECT id, v FROM t ORDER BY id").all().map((r) => [r.id, r.v]),
      want,
    );
    // Its own push comes back on its next pull without doubling anything.
    await db.pull();
    assert.deepEqual(await rows(db), want);
  } finally {
    lc.close();
  }
});

test("turso sync: two clients writing the same rows converge (last push wins)", async () => {
  const server = await primary();
  const lc = createClient({ url: server.url });
  try {
    await lc.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    await lc.batch(["INSERT INTO t VALUES (1, 'start')", "INSERT INTO t VALUES (2, 'start')"], "write");
    const a = await tursoClient(server, { clientName: "a" });
    const b = await tursoClient(server, { clientName: "b" });
    await a.exec("UPDATE t SET v = 'a' WHERE id = 1");
    await a.exec("INSERT INTO t VALUES (3, 'a only')");
    await b.exec("UPDATE t SET v = 'b' WHERE id = 1");
    await b.exec("UPDATE t SET v = 'b' WHERE id = 2");
    await a.push();
    await b.push(); // the later push wins row 1
    await a.pull();
    await b.pull();
    const want = [
      [1, "b"],
      [2, "b"],
      [3, "a only"],
    ];
    assert.deepEqual(await rows(a), want);
    assert.deepEqual(await rows(b), want);
    assert.deepEqual(
      (await lc.execute("SELECT id, v FROM t ORDER BY id")).rows.map((r) => [r.id, r.v]),
      want,
    );
  } finally {
    lc.close();
  }
});

test("turso sync: a long-poll pull waits for the next commit, and returns at its timeout when none comes", async () => {
  const server = await primary();
  const lc = createClient({ url: server.url });
  try {
    await lc.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    const db = await tursoClient(server, { longPollTimeoutMs: 3000 });
    let t0 = Date.now();
    const waiting = db.pull();
    await sleep(400);
    await lc.execute("INSERT INTO t(v) VALUES ('woke it')");
    await waiting;
    const waited = Date.now() - t0;
    assert.ok(waited >= 350 && waited < 2900, `the pull took ${waited} ms`);
    assert.deepEqual(await rows(db), [[1, "woke it"]]);
    t0 = Date.now();
    await db.pull();
    const idle = Date.now() - t0;
    assert.ok(idle >= 2500, `an idle pull returned after ${idle} ms`);
  } finally {
    lc.close();
  }
});

test("turso sync: pulls across generation rollovers, and every full image is one consistent state", async () => {
  const server = await primary({ args: ["--generation-frames", "30"] });
  const lc = createClient({ url: server.url });
  try {
    await lc.execute("CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER)");
    await lc.batch(
      Array.from({ length: 20 }, (_, i) => ({ sql: "INSERT INTO acct VALUES (?, 100)", args: [i] })),
      "write",
    );
    const db = await tursoClient(server);
    // Transfers keep the total at 2000; they roll over generations.
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        await lc.batch(
          [
            { sql: "UPDATE acct SET bal = bal - 7 WHERE id = ?", args: [i % 20] },
            { sql: "UPDATE acct SET bal = bal + 7 WHERE id = ?", args: [(i * 7 + 3) % 20] },
            { sql: "INSERT INTO acct(bal) SELECT 0", args: [] },
          ],
          "write",
        );
      }
    })();
    for (let round = 0; round < 8; round++) {
      await db.pull();
      const [{ total }] = await db.all("SELECT sum(bal) AS total FROM acct");
      assert.equal(total, 2000, `round ${round}`);
      // A fresh client each round: a full image taken under writes.
      const fresh = await tursoClient(server);
      const [{ total: t2 }] = await fresh.all("SELECT sum(bal) AS total FROM acct");
      assert.equal(t2, 2000, `fresh client, round ${round}`);
      assert.deepEqual(await fresh.all("PRAGMA integrity_check"), [{ integrity_check: "ok" }]);
      await fresh.close();
    }
    // Go on until two rollovers happened, pulling across them.
    for (let i = 0; (await http(server, "GET", "/info")).json.current_generation < 3; i++) {
      assert.ok(i < 300, "no second rollover within 30 s");
      await db.pull();
      const [{ total }] = await db.all("SELECT sum(bal) AS total FROM acct");
      assert.equal(total, 2000);
      await sleep(100);
    }
    stop = true;
    await writer;
    await db.pull();
    const want = (await lc.execute("SELECT count(*) AS n, sum(bal) AS s FROM acct")).rows[0];
    const [got] = await db.all("SELECT count(*) AS n, sum(bal) AS s FROM acct");
    assert.equal(got.n, Number(want.n));
    assert.equal(got.s, 2000);
    const info = (await http(server, "GET", "/info")).json;
    assert.ok(info.current_generation >= 3, `generation ${info.current_generation}: no rollover happened`);
  } finally {
    lc.close();
  }
});

test("turso sync: the primary killed (-9) during pulls and pushes loses no acknowledged push, and clients recover", async () => {
  const dataDir = tempDir("replite-turso-kill-").path;
  let server = await primary({ dataDir });
  const listen = server.url.replace(/^http:\/\//, "");
  const lc = createClient({ url: server.url });
  await lc.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
  await lc.execute("INSERT INTO t(v) SELECT hex(randomblob(2000)) FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3)");
  lc.close();
  const db = await tursoClient(server);
  const acked = [];
  for (let round = 0; round < 4; round++) {
    const pushes = (async () => {
      for (let i = 0; i < 50; i++) {
        const v = `r${round}-${i}`;
        try {
          await db.exec(`INSERT INTO t(v) VALUES ('${v}')`);
          await db.push();
          acked.push(v);
        } catch {
          return; // the primary is gone; the row stays local
        }
      }
    })();
    const pulls = (async () => {
      for (let i = 0; i < 50; i++) {
        try {
          await (await tursoClient(server)).pull();
        } catch {
          return;
        }
      }
    })();
    await sleep(150 + round * 50);
    await server.kill9();
    await Promise.all([pushes, pulls]);
    server = await primary({ dataDir, listen });
    // The client pushes what is left and agrees with the primary.
    await db.push();
    await db.pull();
    const check = createClient({ url: server.url });
    const onPrimary = new Set((await check.execute("SELECT v FROM t")).rows.map((r) => r.v));
    check.close();
    for (const v of acked) assert.ok(onPrimary.has(v), `acknowledged push ${v} lost`);
    const local = (await db.all("SELECT v FROM t ORDER BY id")).map((r) => r.v);
    assert.deepEqual(new Set(local), onPrimary, `round ${round}`);
    assert.equal(local.length, onPrimary.size, `round ${round}: a row applied twice`);
  }
  assert.ok(acked.length > 0);
});

test("turso sync: auth: the token is checked on /pull-updates and on the pushes", async () => {
  const dir = tempDir("replite-turso-auth-");
  const auth = makeAuth(dir.path);
  const server = await primary({ args: ["--auth-jwt-key-file", auth.keyFile] });
  const rw = auth.token({ a: "rw" });
  const ro = auth.token({ a: "ro" });
  const lc = createClient({ url: server.url, authToken: rw });
  try {
    await lc.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    const db = await tursoClient(server, { authToken: rw });
    await db.exec("INSERT INTO t(v) VALUES ('signed')");
    await db.push();
    assert.deepEqual((await lc.execute("SELECT v FROM t")).rows.map((r) => r.v), ["signed"]);
    await assert.rejects(tursoClient(server), /401|[Uu]nauthorized|AUTH/);
    await assert.rejects(tursoClient(server, { authToken: auth.token({ a: "rw" }, auth.otherKey) }), /401|[Uu]nauthorized|AUTH/);
    // A read-only token pulls but cannot push.
    const reader = await tursoClient(server, { authToken: ro });
    assert.deepEqual(await rows(reader), [[1, "signed"]]);
    await reader.exec("INSERT INTO t(v) VALUES ('not allowed')");
    await assert.rejects(reader.push(), /read-only|READONLY|not allowed|denied|403|readonly/i);
    assert.equal((await lc.execute("SELECT count(*) AS n FROM t")).rows[0].n, 1);
  } finally {
    lc.close();
  }
});

test("turso sync: /pull-updates by hand: the page filter, revisions, and hostile bodies", async () => {
  const server = await primary({ args: ["--max-body", "65536"] });
  const lc = createClient({ url: server.url });
  try {
    await lc.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    await lc.execute("INSERT INTO t(v) SELECT hex(randomblob(3000)) FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4)");
    const full = parsePull((await pull(server, Buffer.alloc(0))).body);
    assert.ok(full.dbSize >= 4);
    assert.deepEqual(
      full.pages.map((p) => p.id),
      Array.from({ length: full.dbSize }, (_, i) => i),
    );
    assert.ok(full.pages.every((p) => p.page.length === 4096));
    assert.equal(full.pages[0].page.subarray(0, 15).toString(), "SQLite format 3");
    assert.match(full.revision, /^[0-9a-f-]+:1:\d+$/);

    // The filter: only pages 1 and 3, as of the same state.
    const some = parsePull((await pull(server, bytesField(5, roaring([1, 3])))).body);
    assert.deepEqual(
      some.pages.map((p) => p.id),
      [1, 3],
    );
    assert.ok(some.pages[1].page.equals(full.pages[3].page));
    // Pinned to the current revision: the same; pinned to another: 409.
    const pinned = await pull(server, Buffer.concat([bytesField(2, Buffer.from(full.revision)), bytesField(5, roaring([0]))]));
    assert.equal(pinned.status, 200);
    // Incremental: nothing new, then one page after an update.
    const none = parsePull((await pull(server, bytesField(3, Buffer.from(full.revision)))).body);
    assert.equal(none.pages.length, 0);
    assert.equal(none.revision, full.revision);
    await lc.execute("UPDATE t SET v = 'short' WHERE id = 4");
    const inc = parsePull((await pull(server, bytesField(3, Buffer.from(full.revision)))).body);
    assert.ok(inc.pages.length >= 1 && inc.pages.length < full.pages.length, `${inc.pages.length} pages`);
    assert.notEqual(inc.revision, full.revision);
    const gone = await pull(server, bytesField(2, Buffer.from(full.revision)));
    assert.equal(gone.status, 409);
    assert.equal(gone.json?.code, "PULL_REVISION_GONE");
    // Another database's revision: every page.
    const other = parsePull((await pull(server, bytesField(3, Buffer.from("00000000-0000-0000-0000-000000000000:1:5")))).body);
    assert.equal(other.pages.length, inc.dbSize);

    const [id] = full.revision.split(":");
    const cases = [
      ["not protobuf", Buffer.from([0xff, 0xff, 0xff]), 400, "PULL_BAD_REQUEST"],
      ["a malformed revision", bytesField(3, Buffer.from("yesterday")), 400, "PULL_BAD_REVISION"],
      ["a revision with generation 0", bytesField(3, Buffer.from(`${id}:0:1`)), 400, "PULL_BAD_REVISION"],
      ["a revision from the future", bytesField(3, Buffer.from(`${id}:1:999999`)), 400, "PULL_REVISION_FROM_THE_FUTURE"],
      ["a generation from the future", bytesField(3, Buffer.from(`${id}:77:0`)), 400, "PULL_REVISION_FROM_THE_FUTURE"],
      ["a frame past 2^32", bytesField(3, Buffer.from(`${id}:1:99999999999`)), 400, "PULL_BAD_REVISION"],
      ["a bad selector", bytesField(5, Buffer.from("not a bitmap")), 400, "PULL_BAD_SELECTOR"],
      ["an MVCC stream", intField(8, 1), 400, "PULL_UNSUPPORTED"],
      ["a query selector", bytesField(7, Buffer.from("SELECT 1")), 400, "PULL_UNSUPPORTED"],
      ["an oversized body", bytesField(6, randomBytes(70000)), 413, null],
    ];
    for (const [name, body, status, code] of cases) {
      const r = await pull(server, body);
      assert.equal(r.status, status, `${name}: ${r.status} ${r.body}`);
      if (code) assert.equal(r.json?.code, code, name);
      assert.ok(r.json?.message?.length > 10, `${name}: ${r.body}`);
    }
    // Fuzz: random and mutated bodies get 200 or 4xx, never break it.
    const valid = Buffer.concat([bytesField(3, Buffer.from(full.revision)), bytesField(5, roaring([0, 2])), intField(4, 10)]);
    for (let i = 0; i < 300; i++) {
      let body;
      if (i % 2 === 0) body = randomBytes(1 + (i % 61));
      else {
        body = Buffer.from(valid);
        body[(i * 13) % body.length] ^= 1 << i % 8;
      }
      const r = await pull(server, body);
      assert.ok(r.status === 200 || (r.status >= 400 && r.status < 500), `fuzz ${i}: ${r.status} ${r.body}`);
    }
    assert.equal(parsePull((await pull(server, Buffer.alloc(0))).body).dbSize, inc.dbSize);
  } finally {
    lc.close();
  }
});
