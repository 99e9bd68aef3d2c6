// Offline replicas of both kinds on one primary (issue 10, "Interoperation"):
// a replite offline replica (better-sqlite3 with the extension, offline=1)
// and an npm `libsql` embedded replica with `offline: true`, plus an online
// replite replica and @libsql/client over Hrana, all writing to the same
// `replite serve`.  Their writes interleave (each pushed before the next
// writer starts, so no conflict arises), and after the last syncs every
// replica holds exactly the primary's rows, the replite ones with
// replite_verify() matching and integrity_check ok.

// better-sqlite3 reads SQLITE_USE_URI once, when its addon is loaded.
process.env.SQLITE_USE_URI = "1";

import { test } from "node:test";
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { createClient } from "@libsql/client";
import Libsql from "libsql";
import { REPLITE_BIN, sleep, startServer, tempDir } from "./harness.mjs";

const { default: Database } = await import("better-sqlite3");
const EXTENSION = process.env.REPLITE_EXTENSION ?? join(dirname(REPLITE_BIN), "libreplite.so");
const ROWS = "SELECT id, v FROM t ORDER BY id";

function loadExtension() {
  const boot = new Database(":memory:");
  boot.loadExtension(EXTENSION);
  boot.close();
}

const status = (db) => JSON.parse(db.prepare("SELECT replite_status()").pluck().get());

async function waitPushed(db, what) {
  const deadline = Date.now() + 15000;
  while (status(db).pending_transactions !== 0) {
    assert.ok(Date.now() < deadline, `${what}: still pending: ${JSON.stringify(status(db))}`);
    await sleep(20);
  }
}

const rowsOf = (db) => db.prepare(ROWS).raw().all();

async function primaryRows(client) {
  const rs = await client.execute(ROWS);
  return rs.rows.map((r) => [Number(r[0]), r[1]]);
}

test("replite offline, libsql offline, replite online and Hrana clients write to one primary", async () => {
  loadExtension();
  const dir = tempDir("replite-offline-interop-");
  const server = await startServer({ dataDir: dir.file("data") });
  const client = createClient({ url: server.url });
  const opened = [];
  try {
    await client.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    const off = new Database(`file:${dir.file("off.db")}?vfs=replite&sync_url=${server.url}&offline=1&conflict=discard`);
    const on = new Database(`file:${dir.file("on.db")}?vfs=replite&sync_url=${server.url}`);
    const lib = new Libsql(dir.file("lib.db"), { syncUrl: server.url, offline: true });
    opened.push(off, on, lib);

    // Round robin: each writer starts from everything before it.
    for (let round = 0; round < 3; round++) {
      off.prepare("SELECT replite_sync()").get();
      off.prepare("INSERT INTO t(v) VALUES (?)").run(`replite-offline-${round}`);
      await waitPushed(off, `round ${round}`);

      lib.sync();
      lib.prepare("INSERT INTO t(v) VALUES (?)").run(`libsql-offline-${round}`);
      lib.sync();

      on.prepare("SELECT replite_sync()").get();
      on.prepare("INSERT INTO t(v) VALUES (?)").run(`replite-online-${round}`);

      await client.execute({ sql: "INSERT INTO t(v) VALUES (?)", args: [`hrana-${round}`] });
    }

    off.prepare("SELECT replite_sync()").get();
    on.prepare("SELECT replite_sync()").get();
    lib.sync();
    const expected = await primaryRows(client);
    assert.equal(expected.length, 12, "every write reached the primary once");
    assert.deepEqual(
      expected.map((r) => r[1]),
      [0, 1, 2].flatMap((i) => [`replite-offline-${i}`, `libsql-offline-${i}`, `replite-online-${i}`, `hrana-${i}`]),
      "in the order they were written",
    );
    for (const [name, db] of [
      ["replite offline", off],
      ["replite online", on],
    ]) {
      assert.deepEqual(rowsOf(db), expected, `${name} equals the primary`);
      const v = JSON.parse(db.prepare("SELECT replite_verify()").pluck().get());
      assert.equal(v.match, true, `${name}: replite_verify ${JSON.stringify(v)}`);
      assert.equal(db.prepare("PRAGMA integrity_check").pluck().get(), "ok");
    }
    assert.deepEqual(
      lib.prepare(ROWS).raw().all().map((r) => [Number(r[0]), r[1]]),
      expected,
      "the libsql replica equals the primary",
    );
    assert.equal(status(off).conflicts, 0, "no conflict: every writer started from the others' writes");
  } finally {
    for (const db of opened) db.close();
    client.close();
    try {
      await server.stop();
    } finally {
      dir.remove();
    }
  }
});
