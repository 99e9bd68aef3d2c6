// Many databases in one `replite serve` (issue 12, first part): the admin
// API on --admin-listen and `replite db`, databases addressed by /db/NAME/,
// the x-namespace header and the Host's first label, kept apart from each
// other through Hrana (HTTP and WebSocket), replite replicas, npm libsql
// replicas and Turso Sync clients; deletes while in use; kill -9 during
// creates and deletes.

// better-sqlite3 reads SQLITE_USE_URI once, when its addon is loaded.
process.env.SQLITE_USE_URI = "1";

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { request } from "node:http";
import { dirname, join } from "node:path";
import { createClient } from "@libsql/client";
import Libsql from "libsql";
import { connect } from "@tursodatabase/sync";
import { REPLITE_BIN, freePort, startAdminServer, makeAuth, tempDir, http, sleep } from "./harness.mjs";

const { default: Database } = await import("better-sqlite3");
const EXTENSION = process.env.REPLITE_EXTENSION ?? join(dirname(REPLITE_BIN), "libreplite.so");

const cleanups = [];
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});


async function primary(opts = {}) {
  const server = await startAdminServer(opts);
  cleanups.push(() => (server.child.exitCode === null && server.child.signalCode === null ? server.stop() : undefined));
  return server;
}

// `replite db ...` against server's admin listener.
function db(server, ...args) {
  const r = spawnSync(REPLITE_BIN, ["db", ...args, "--admin", server.admin], { encoding: "utf8", env: { ...process.env, ...(server.adminEnv ?? {}) } });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

async function admin(server, method, path, token) {
  const res = await fetch(server.admin + path, { method, headers: token ? { Authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, json, text };
}

function replica(url) {
  const dir = tempDir("replite-dbs-replica-");
  const probe = new Database(":memory:");
  probe.loadExtension(EXTENSION);
  probe.close();
  const r = new Database(`file:${join(dir.path, "app.db")}?vfs=replite&sync_url=${url}&sync_interval=0`);
  cleanups.push(() => r.close());
  return r;
}

const rowsOf = async (c, sql = "SELECT v FROM t ORDER BY v") => (await c.execute(sql)).rows.map((r) => r.v);

test("databases: replite db and the admin API create, list and delete; refusals name the cause and change nothing", async () => {
  const server = await primary();
  assert.equal(db(server, "list").status, 0);
  let r = db(server, "create", "shop");
  assert.equal(r.status, 0, r.err);
  assert.match(r.out, /created database shop/);
  assert.equal(db(server, "create", "blog").status, 0);
  r = db(server, "list");
  assert.match(r.out, /^default\s/m);
  assert.match(r.out, /^shop\s/m);
  assert.match(r.out, /^blog\s/m);
  const list = await admin(server, "GET", "/v1/namespaces");
  assert.deepEqual(list.json.namespaces.map((n) => n.name), ["default", "shop", "blog"]);
  assert.equal(new Set(list.json.namespaces.map((n) => n.database_id)).size, 3);

  const refusals = [
    ["POST", "/v1/namespaces/shop/create", 409, "DATABASE_EXISTS"],
    ["POST", "/v1/namespaces/default/create", 400, "INVALID_DATABASE"],
    ["POST", "/v1/namespaces/v2/create", 400, "INVALID_DATABASE"],
    ["POST", "/v1/namespaces/Shop/create", 400, "INVALID_DATABASE"],
    ["POST", "/v1/namespaces/..%2Fetc/create", 400, "INVALID_DATABASE"],
    ["POST", "/v1/namespaces/a.b/create", 400, "INVALID_DATABASE"],
    ["POST", `/v1/namespaces/${"x".repeat(64)}/create`, 400, "INVALID_DATABASE"],
    ["DELETE", "/v1/namespaces/nope", 404, "DATABASE_NOT_FOUND"],
    ["DELETE", "/v1/namespaces/default", 400, "INVALID_DATABASE"],
    ["GET", "/v1/namespaces/shop/create", 404, "NOT_FOUND"],
    ["PUT", "/v1/namespaces", 405, "METHOD_NOT_ALLOWED"],
  ];
  for (const [method, path, status, code] of refusals) {
    const a = await admin(server, method, path);
    assert.equal(a.status, status, `${method} ${path}: ${a.text}`);
    assert.equal(a.json?.code, code, `${method} ${path}`);
    assert.ok(a.json.message.length > 10);
  }
  r = db(server, "create", "../etc");
  assert.notEqual(r.status, 0);
  assert.ok(!existsSync(join(server.dataDir, "etc")));
  assert.deepEqual((await admin(server, "GET", "/v1/namespaces")).json.namespaces.map((n) => n.name), ["default", "shop", "blog"]);

  r = db(server, "delete", "blog");
  assert.equal(r.status, 0, r.err);
  assert.equal((await http(server, "GET", "/db/blog/info")).status, 404);
  r = db(server, "delete", "blog");
  assert.equal(r.status, 1);
  assert.match(r.err, /no database is named "blog"/);
  assert.deepEqual(readdirSync(join(server.dataDir, "databases")), ["shop"]);
  // The admin listener serves /metrics, with every database's numbers.
  const m = await (await fetch(server.admin + "/metrics")).text();
  assert.match(m, /replite_generation\{database="default"\} 1/);
  assert.match(m, /replite_generation\{database="shop"\} 1/);
  assert.doesNotMatch(m, /database="blog"/);
});

test("databases: two databases written at once through Hrana, WebSocket and replicas stay apart", async () => {
  const server = await primary();
  for (const name of ["a", "b"]) assert.equal(db(server, "create", name).status, 0);
  const ws = server.url.replace(/^http/, "ws");
  const clients = {
    // @libsql/client over HTTP resolves "v2/pipeline" against the URL:
    // it needs the trailing slash (WebSocket works either way).
    a: createClient({ url: `${server.url}/db/a/` }),
    b: createClient({ url: `${ws}/db/b` }),
    root: createClient({ url: server.url }),
  };
  try {
    await Promise.all(Object.values(clients).map((c) => c.execute("CREATE TABLE t(v TEXT)")));
    const writes = [];
    for (let i = 0; i < 30; i++)
      for (const [name, c] of Object.entries(clients)) writes.push(c.execute({ sql: "INSERT INTO t VALUES (?)", args: [`${name}${String(i).padStart(2, "0")}`] }));
    const ra = replica(`${server.url}/db/a`);
    const rb = replica(`${server.url}/db/b`);
    await Promise.all(writes);
    ra.prepare("INSERT INTO t VALUES ('a-replica')").run();
    rb.prepare("INSERT INTO t VALUES ('b-replica')").run();
    // npm libsql appends "/info" and so on: with or without a trailing slash.
    const lib = new Libsql(join(tempDir("replite-dbs-libsql-").path, "l.db"), { syncUrl: `${server.url}/db/a/` });
    cleanups.push(() => lib.close());
    lib.sync();
    for (const name of ["a", "b", "root"]) {
      const got = await rowsOf(clients[name]);
      const mine = name === "root" ? got.filter((v) => v.startsWith("root")) : got.filter((v) => v.startsWith(name));
      assert.equal(got.length, mine.length, `${name} holds another database's rows: ${got}`);
      assert.equal(got.length, name === "root" ? 30 : 31, name);
    }
    assert.equal(lib.prepare("SELECT count(*) AS n FROM t").get().n, 31);
    assert.equal(lib.prepare("SELECT count(*) AS n FROM t WHERE v LIKE 'a%'").get().n, 31);
    ra.prepare("SELECT replite_sync()").get();
    rb.prepare("SELECT replite_sync()").get();
    assert.equal(ra.prepare("SELECT count(*) AS n FROM t WHERE v LIKE 'a%'").get().n, 31);
    assert.equal(rb.prepare("SELECT count(*) AS n FROM t").get().n, 31);
    assert.equal(rb.prepare("PRAGMA integrity_check").get().integrity_check, "ok");
    // The same database by x-namespace and by the Host's first label.
    const ns = await http(server, "GET", "/info", { headers: { "x-namespace": "b" } });
    const direct = await http(server, "GET", "/db/b/info");
    assert.equal(ns.json.database_id, direct.json.database_id);
    const port = new URL(server.url).port;
    const byHost = await new Promise((res, rej) => {
      const q = request({ host: "127.0.0.1", port, path: "/info", headers: { Host: `b.replite.test:${port}` } }, (r) => {
        let body = "";
        r.on("data", (d) => (body += d));
        r.on("end", () => res(JSON.parse(body)));
      });
      q.on("error", rej);
      q.end();
    });
    assert.equal(byHost.database_id, direct.json.database_id);
    assert.equal((await http(server, "GET", "/info", { headers: { "x-namespace": "zzz" } })).status, 404);
    assert.equal((await http(server, "GET", "/info", { headers: { "x-namespace": "../b" } })).status, 400);
    // A Turso Sync client of database a.
    const ts = await connect({ path: join(tempDir("replite-dbs-turso-").path, "t.db"), url: `${server.url}/db/a` });
    assert.equal((await ts.all("SELECT count(*) AS n FROM t"))[0].n, 31);
    await ts.exec("INSERT INTO t VALUES ('a-turso')");
    await ts.push();
    await ts.close();
    assert.equal((await rowsOf(clients.a)).length, 32);
    assert.equal((await rowsOf(clients.b)).length, 31);
  } finally {
    Object.values(clients).forEach((c) => c.close());
  }
});

test("databases: a delete while a database is in use, and the name created again is a new database", async () => {
  const server = await primary();
  assert.equal(db(server, "create", "tmp").status, 0);
  const c = createClient({ url: `${server.url}/db/tmp/` });
  const w = createClient({ url: `${server.url.replace(/^http/, "ws")}/db/tmp` });
  try {
    await c.execute("CREATE TABLE t(v)");
    await w.execute("INSERT INTO t VALUES (1)");
    const oldId = (await http(server, "GET", "/db/tmp/info")).json.database_id;
    assert.equal(db(server, "delete", "tmp").status, 0);
    const gone = await http(server, "GET", "/db/tmp/info");
    assert.equal(gone.status, 404);
    assert.equal(gone.json.code, "DATABASE_NOT_FOUND");
    await assert.rejects(c.execute("SELECT 1"));
    assert.equal(db(server, "create", "tmp").status, 0);
    const again = await http(server, "GET", "/db/tmp/info");
    assert.notEqual(again.json.database_id, oldId);
    assert.equal(again.json.max_frame_no, 0);
    // The server is whole: the default database still serves.
    assert.equal((await http(server, "GET", "/info")).status, 200);
  } finally {
    c.close();
    w.close();
  }
  await server.stop();
  const { readdirSync: ls } = await import("node:fs");
  assert.deepEqual(ls(join(server.dataDir, "databases")), ["tmp"]);
});

test("databases: kill -9 during creates and deletes leaves every database whole or absent", async () => {
  const dataDir = tempDir("replite-dbs-kill-").path;
  const adminPort = await freePort();
  let server = await primary({ dataDir, adminPort });
  const listen = server.url.replace(/^http:\/\//, "");
  for (let round = 0; round < 3; round++) {
    const busy = (async () => {
      for (let i = 0; ; i++) {
        const name = `r${round}-${i}`;
        const a = await admin(server, "POST", `/v1/namespaces/${name}/create`).catch(() => null);
        if (a === null) return;
        if (i % 2 === 1) await admin(server, "DELETE", `/v1/namespaces/r${round}-${i - 1}`).catch(() => null);
      }
    })();
    await sleep(300 + round * 100);
    await server.kill9();
    await busy;
    server = await primary({ dataDir, adminPort, listen });
    const names = (await admin(server, "GET", "/v1/namespaces")).json.namespaces.map((n) => n.name);
    const onDisk = readdirSync(join(dataDir, "databases"));
    assert.deepEqual(onDisk.filter((n) => n.startsWith(".")), [], `leftovers: ${onDisk}`);
    assert.deepEqual([...onDisk].sort(), names.filter((n) => n !== "default").sort());
    for (const name of names.filter((n) => n !== "default")) {
      const c = createClient({ url: `${server.url}/db/${name}/` });
      assert.equal((await c.execute("PRAGMA integrity_check")).rows[0][0], "ok", name);
      await c.execute("CREATE TABLE IF NOT EXISTS t(v)");
      c.close();
    }
  }
});

test("databases: the admin API takes only admin tokens when --admin-auth-key-file is given", async () => {
  const dir = tempDir("replite-dbs-auth-");
  const user = makeAuth(dir.path);
  const { mkdirSync } = await import("node:fs");
  mkdirSync(join(dir.path, "admin"));
  const adminAuth = makeAuth(join(dir.path, "admin"));
  const server = await primary({ args: ["--auth-jwt-key-file", user.keyFile, "--admin-auth-key-file", adminAuth.keyFile] });
  const adminToken = adminAuth.token({ a: "rw" });
  assert.equal((await admin(server, "GET", "/v1/namespaces")).status, 401);
  assert.equal((await admin(server, "POST", "/v1/namespaces/x/create", user.token({ a: "rw" }))).status, 401);
  assert.equal((await admin(server, "POST", "/v1/namespaces/x/create", adminAuth.token({ a: "ro" }))).status, 401);
  assert.equal((await fetch(server.admin + "/health")).status, 200);
  assert.equal((await fetch(server.admin + "/metrics")).status, 401);
  assert.equal((await admin(server, "POST", "/v1/namespaces/x/create", adminToken)).status, 200);
  server.adminEnv = { REPLITE_ADMIN_TOKEN: adminToken };
  assert.match(db(server, "list").out, /^x\s/m);
  const denied = spawnSync(REPLITE_BIN, ["db", "list", "--admin", server.admin], { encoding: "utf8", env: { ...process.env, REPLITE_ADMIN_TOKEN: "" } });
  assert.equal(denied.status, 1);
  assert.match(denied.stderr, /HTTP 401/);
  // The user listener still wants user tokens for the new database.
  assert.equal((await http(server, "GET", "/db/x/info")).status, 401);
  assert.equal((await http(server, "GET", "/db/x/info", { token: user.token({ a: "ro" }) })).status, 200);
});

test("databases: a token limited to one database (sqld's id and p claims) is refused on the others", async () => {
  const dir = tempDir("replite-dbs-scope-");
  const user = makeAuth(dir.path);
  const server = await primary({ args: ["--auth-jwt-key-file", user.keyFile] });
  for (const name of ["x", "y"]) assert.equal(db(server, "create", name).status, 0);
  const forX = user.token({ id: "x" });
  const p = user.token({ p: { rw: { ns: ["y"] }, ro: { ns: ["default"] } } });
  const cases = [
    [forX, "/db/x/info", 200],
    [forX, "/db/y/info", 403],
    [forX, "/info", 403],
    [p, "/db/y/info", 200],
    [p, "/info", 200],
    [p, "/db/x/info", 403],
  ];
  for (const [token, path, status] of cases) {
    const r = await http(server, "GET", path, { token });
    assert.equal(r.status, status, `${path}: ${r.body}`);
    if (status === 403) {
      assert.equal(r.json.code, "AUTH_WRONG_DATABASE");
      assert.match(r.json.message, /database/);
    }
  }
  // Through the clients: writes follow the scope's permission.
  const cy = createClient({ url: `${server.url}/db/y/`, authToken: p });
  const cd = createClient({ url: server.url, authToken: p });
  const cx = createClient({ url: `${server.url.replace(/^http/, "ws")}/db/x`, authToken: p });
  try {
    await cy.execute("CREATE TABLE t(v)");
    await assert.rejects(cd.execute("CREATE TABLE t(v)"), /read-only|READONLY|not allowed|denied/i);
    await assert.rejects(cx.execute("SELECT 1"), /database/);
  } finally {
    cy.close();
    cd.close();
    cx.close();
  }
  // replite token --db NAME makes such a token.
  const keyDir = tempDir("replite-dbs-keys-");
  assert.equal(spawnSync(REPLITE_BIN, ["keygen", "--out", keyDir.path]).status, 0);
  const server2 = await primary({ args: ["--auth-jwt-key-file", join(keyDir.path, "jwt_public.pem")] });
  assert.equal(db(server2, "create", "x").status, 0);
  const t = spawnSync(REPLITE_BIN, ["token", "--key", join(keyDir.path, "jwt_private.pem"), "--db", "x"], { encoding: "utf8" }).stdout.trim();
  assert.equal((await http(server2, "GET", "/db/x/info", { token: t })).status, 200);
  assert.equal((await http(server2, "GET", "/info", { token: t })).status, 403);
});
