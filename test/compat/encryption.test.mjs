// Encryption at rest through the hosts a user has: the stock sqlite3 shell
// (.load, .open with encryption_key), Debian's Python and Node's
// better-sqlite3, each creating an encrypted replica, writing through it and
// reading the primary's rows; the files beside it hold no row in clear; the
// stock sqlite3 without the extension says "file is not a database"; a
// wrong key is refused naming the cause, in each host; and the same with
// offline=1 (the outbox and conflict files sealed).
process.env.SQLITE_USE_URI = "1";

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createClient } from "@libsql/client";
import { REPLITE_BIN, startServer, tempDir } from "./harness.mjs";

const { default: Database } = await import("better-sqlite3");

const EXTENSION = process.env.REPLITE_EXTENSION ?? join(dirname(REPLITE_BIN), "libreplite.so");
const EXTENSION_NO_SUFFIX = EXTENSION.replace(/\.so$/, "");
const SQLITE3 = "/usr/bin/sqlite3";
const PYTHON = "/usr/bin/python3";
const KEY = "encryption_key=host%20secret";

// Every file beside path holding text, by name.
function holding(path, text) {
  const dir = dirname(path);
  const base = path.slice(dir.length + 1);
  return readdirSync(dir)
    .filter((f) => f.startsWith(base))
    .filter((f) => readFileSync(join(dir, f)).includes(Buffer.from(text)));
}

function uri(path, url, extra = KEY) {
  return `file:${path}?vfs=replite&sync_url=${encodeURIComponent(url)}&${extra}`;
}

function shell(path, url, sql, extra) {
  return spawnSync(SQLITE3, ["-batch", "-bail"], {
    input: `.load ${EXTENSION_NO_SUFFIX}\n.open ${uri(path, url, extra)}\n${sql}\n`,
    encoding: "utf8",
    timeout: 30000,
  });
}

function python(path, url, sql, extra) {
  const code = [
    "import sqlite3, sys",
    "c = sqlite3.connect(':memory:')",
    "c.enable_load_extension(True)",
    `c.load_extension(${JSON.stringify(EXTENSION_NO_SUFFIX)})`,
    "c.close()",
    `db = sqlite3.connect(${JSON.stringify(uri(path, url, extra))}, uri=True, isolation_level=None)`,
    `for s in ${JSON.stringify(sql)}.split(';'):`,
    "    s = s.strip()",
    "    if s:",
    "        for row in db.execute(s): print('|'.join(str(x) for x in row))",
    "db.close()",
  ].join("\n");
  return spawnSync(PYTHON, ["-c", code], { encoding: "utf8", timeout: 30000 });
}

test("encryption: the sqlite3 shell, Python and better-sqlite3 write and read encrypted replicas; no row in clear on disk; wrong keys refused", async () => {
  const server = await startServer();
  const dir = tempDir("replite-encryption-");
  try {
    const c = createClient({ url: server.url });
    await c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    await c.execute("INSERT INTO t(v) VALUES ('PRIMARYROW one'), ('PRIMARYROW two')");

    // The sqlite3 shell.
    const shPath = dir.file("shell.db");
    let r = shell(shPath, server.url, "INSERT INTO t(v) VALUES ('SHELLROW');\nSELECT count(*) FROM t;\nSELECT json_extract(replite_status(), '$.encrypted');");
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), ["3", "1"]);

    // Python.
    const pyPath = dir.file("python.db");
    r = python(pyPath, server.url, "INSERT INTO t(v) VALUES ('PYTHONROW'); SELECT count(*) FROM t");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "4");

    // better-sqlite3 (its own SQLite, the extension through sqlite3_api).
    const nodePath = dir.file("node.db");
    const loader = new Database(":memory:");
    loader.loadExtension(EXTENSION);
    loader.close();
    const db = new Database(uri(nodePath, server.url));
    db.prepare("INSERT INTO t(v) VALUES ('NODEROW')").run();
    assert.equal(db.prepare("SELECT count(*) AS n FROM t").get().n, 5);
    db.prepare("SELECT replite_sync()").get();
    db.close();

    // Every replica has every row, read with its key.
    r = shell(shPath, server.url, "SELECT replite_sync() >= 0; SELECT group_concat(v, ',') FROM (SELECT v FROM t ORDER BY id);");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim().split("\n")[1], "PRIMARYROW one,PRIMARYROW two,SHELLROW,PYTHONROW,NODEROW");
    r = python(pyPath, server.url, "SELECT replite_sync() >= 0; SELECT count(*) FROM t; PRAGMA integrity_check");
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), ["1", "5", "ok"]);

    // Nothing in clear beside any of them.
    for (const p of [shPath, pyPath, nodePath]) {
      for (const marker of ["PRIMARYROW", "SHELLROW", "PYTHONROW", "NODEROW", "SQLite format 3"])
        assert.deepEqual(holding(p, marker), [], `${p}: ${marker}`);
    }
    // The stock sqlite3 without the extension cannot read them.
    r = spawnSync(SQLITE3, [shPath, "SELECT count(*) FROM t"], { encoding: "utf8" });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /file is not a database/);

    // A wrong key, in each host: refused, naming the cause, never the key.
    r = shell(shPath, server.url, "SELECT count(*) FROM t;", "encryption_key=not%20it");
    assert.match(r.stderr, /is not the one it was encrypted with/);
    assert.doesNotMatch(r.stderr, /not it/);
    r = python(pyPath, server.url, "SELECT count(*) FROM t", "sync_interval=1");
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /is an encrypted replica/);
    assert.throws(() => new Database(uri(nodePath, server.url, "encryption_key=x'" + "00".repeat(32) + "'")), /is not the one it was encrypted with/);
    c.close();
  } finally {
    dir.remove();
    await server.stop();
  }
});

test("encryption, offline=1: the sqlite3 shell, Python and better-sqlite3 commit locally; the outbox and every other file hold no row in clear; every row reaches the primary once", async () => {
  const server = await startServer();
  const dir = tempDir("replite-encryption-offline-");
  const OFF = `${KEY}&offline=1&sync_interval=0`;
  try {
    const c = createClient({ url: server.url });
    await c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    await c.execute("INSERT INTO t(v) VALUES ('PRIMARYROW one')");
    // Keys that cannot collide between the replicas (README, "Offline
    // mode"): rows inserted under one key by two replicas would be one row.
    const rows = (marker, base) => Array.from({ length: 20 }, (_, i) => `(${base + i}, '${marker} ${i} ${"x".repeat(200)}')`).join(", ");

    const shPath = dir.file("shell.db");
    let r = shell(shPath, server.url, `INSERT INTO t(id, v) VALUES ${rows("OFFSHELL", 1000)};\nSELECT count(*) FROM t;`, OFF);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "21");
    const pyPath = dir.file("python.db");
    r = python(pyPath, server.url, `INSERT INTO t(id, v) VALUES ${rows("OFFPYTHON", 2000)}; SELECT count(*) FROM t`, OFF);
    assert.equal(r.status, 0, r.stderr);
    const nodePath = dir.file("node.db");
    const db = new Database(uri(nodePath, server.url, OFF));
    db.prepare(`INSERT INTO t(id, v) VALUES ${rows("OFFNODE", 3000)}`).run();
    assert.equal(JSON.parse(db.prepare("SELECT replite_status() AS s").get().s).encrypted, true);
    for (const p of [shPath, pyPath, nodePath]) {
      for (const marker of ["PRIMARYROW", "OFFSHELL", "OFFPYTHON", "OFFNODE", "SQLite format 3"])
        assert.deepEqual(holding(p, marker), [], `${p}: ${marker}`);
    }
    // Pushed (an emptied outbox keeps its blocks: still nothing in clear).
    db.prepare("SELECT replite_sync()").get();
    assert.equal(JSON.parse(db.prepare("SELECT replite_status() AS s").get().s).pending_transactions, 0);
    db.close();
    r = shell(shPath, server.url, "SELECT replite_sync() >= 0;\nSELECT json_extract(replite_status(), '$.pending_transactions');", OFF);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), ["1", "0"]);
    r = python(pyPath, server.url, "SELECT replite_sync() >= 0; SELECT count(*) FROM t; PRAGMA integrity_check", OFF);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), ["1", "61", "ok"]);
    for (const marker of ["OFFSHELL", "OFFPYTHON", "OFFNODE"]) {
      const n = (await c.execute(`SELECT count(*) AS n FROM t WHERE v LIKE '${marker} %'`)).rows[0].n;
      assert.equal(Number(n), 20, marker);
    }
    for (const p of [shPath, pyPath, nodePath]) {
      for (const marker of ["PRIMARYROW", "OFFSHELL", "OFFPYTHON", "OFFNODE"])
        assert.deepEqual(holding(p, marker), [], `${p}: ${marker}`);
    }
    // Without the key, refused in each host.
    r = shell(shPath, server.url, "SELECT count(*) FROM t;", "offline=1");
    assert.match(r.stderr, /is an encrypted replica/);
    c.close();
  } finally {
    dir.remove();
    await server.stop();
  }
});
