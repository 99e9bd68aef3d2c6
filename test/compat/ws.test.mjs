// Hrana over WebSocket (issue 14): the real clients against `replite serve`
// with ws:// URLs: @libsql/client 0.18.0 and @libsql/hrana-client 0.10.0's
// openWs (JSON subprotocols hrana1, hrana2, hrana3; hrana3-protobuf is in
// protobuf.test.mjs), auth by the hello's JWT,
// the handshake's refusals, the limits, and the server closing its sockets
// when it stops.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import * as hrana from "@libsql/hrana-client";
import WebSocket from "ws";
import { startServer, makeAuth, tempDir } from "./harness.mjs";

let server;
let wsUrl;
let nextTable = 0;
const table = (prefix = "w") => `${prefix}_${++nextTable}`;

before(async () => {
  server = await startServer();
  wsUrl = server.url.replace(/^http:/, "ws:");
});
after(async () => {
  await server.stop();
});

// A raw socket: resolves with {ws, protocol} once open, or rejects with the
// HTTP status of a refused upgrade.
function rawSocket(url, protocols, opts = {}) {
  return new Promise((res, rej) => {
    const ws = new WebSocket(url, protocols, opts);
    const messages = [];
    ws.on("message", (d) => messages.push(JSON.parse(d.toString())));
    ws.on("open", () => res({ ws, protocol: ws.protocol, messages }));
    ws.on("unexpected-response", (_req, r) => rej(Object.assign(new Error(`HTTP ${r.statusCode}`), { status: r.statusCode })));
    ws.on("error", rej);
  });
}
const closed = (ws) => new Promise((res) => ws.on("close", (code, reason) => res({ code, reason: reason.toString() })));
async function waitFor(fn, ms = 5000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("timed out");
}

test("ws: @libsql/client execute, batch, interactive transaction and error codes", async () => {
  const t = table();
  const c = createClient({ url: wsUrl, intMode: "bigint" });
  try {
    assert.deepEqual((await c.execute("SELECT 1 AS a, 'x' AS b")).rows.map((r) => [r.a, r.b]), [[1n, "x"]]);
    await c.execute(`CREATE TABLE ${t}(id INTEGER PRIMARY KEY, v TEXT UNIQUE)`);
    const ins = await c.execute({ sql: `INSERT INTO ${t}(v) VALUES (?)`, args: ["a"] });
    assert.equal(ins.rowsAffected, 1);
    assert.equal(ins.lastInsertRowid, 1n);
    const rs = await c.batch(
      [
        { sql: `INSERT INTO ${t}(v) VALUES (:v)`, args: { v: "b" } },
        `INSERT INTO ${t}(v) VALUES ('c')`,
        `SELECT v FROM ${t} ORDER BY id`,
      ],
      "write",
    );
    assert.deepEqual(rs[2].rows.map((r) => r.v), ["a", "b", "c"]);
    // A failing batch rolls back as a whole.
    await assert.rejects(c.batch([`INSERT INTO ${t}(v) VALUES ('d')`, `INSERT INTO ${t}(v) VALUES ('a')`], "write"), (e) =>
      /CONSTRAINT/.test(e.code),
    );
    assert.equal((await c.execute(`SELECT count(*) AS n FROM ${t}`)).rows[0].n, 3n);
    // Interactive transactions: rollback and commit.
    const tx = await c.transaction("write");
    await tx.execute(`INSERT INTO ${t}(v) VALUES ('e')`);
    assert.equal((await tx.execute(`SELECT count(*) AS n FROM ${t}`)).rows[0].n, 4n);
    await tx.rollback();
    const tx2 = await c.transaction("write");
    await tx2.execute(`INSERT INTO ${t}(v) VALUES ('f')`);
    await tx2.commit();
    assert.deepEqual((await c.execute(`SELECT v FROM ${t} ORDER BY id`)).rows.map((r) => r.v), ["a", "b", "c", "f"]);
    // Errors keep sqld's codes.
    await assert.rejects(c.execute("SELECT * FROM no_such_table"), (e) => e.code === "SQLITE_ERROR" && /no such table/.test(e.message));
    await assert.rejects(c.execute(`INSERT INTO ${t}(v) VALUES ('a')`), (e) => /SQLITE_CONSTRAINT/.test(e.code));
    await assert.rejects(c.execute("SELEC 1"), (e) => /SQLITE_ERROR|SQL_PARSE_ERROR/.test(e.code));
    // The socket survives errors.
    assert.equal((await c.execute("SELECT 2 AS x")).rows[0].x, 2n);
  } finally {
    c.close();
  }
});

// hrana-client with version 3 offers hrana3-protobuf first, which the server
// prefers: this runs on protobuf (JSON hrana3 is exercised by the raw
// sockets here and in ws_badinput.test.mjs, and the same JSON answers by
// HTTP's /v3 routes).
test("ws: hrana-client with version 3 (hrana3-protobuf): version, interleaved streams, describe, store_sql, get_autocommit, cursors", async () => {
  const t = table();
  const client = hrana.openWs(wsUrl, undefined, 3);
  try {
    assert.equal(await client.getVersion(), 3);
    const a = client.openStream();
    const b = client.openStream();
    await a.run(`CREATE TABLE ${t}(x)`);
    assert.equal(await a.getAutocommit(), true);
    await a.run("BEGIN");
    assert.equal(await a.getAutocommit(), false);
    // Interleave requests of both streams on the one socket.
    const [ra, rb] = await Promise.all([a.run(`INSERT INTO ${t} VALUES (1)`), b.queryValue(`SELECT count(*) FROM ${t}`)]);
    assert.equal(ra.affectedRowCount, 1);
    assert.equal(rb.value, 0); // a's transaction is its own
    assert.equal(await b.getAutocommit(), true);
    await a.run("COMMIT");
    assert.equal((await b.queryValue(`SELECT count(*) FROM ${t}`)).value, 1);
    // describe
    const d = await a.describe(`SELECT x, ? AS p FROM ${t} WHERE x = :named`);
    assert.deepEqual(d.paramNames, [undefined, ":named"]);
    assert.deepEqual(d.columns.map((col) => col.name), ["x", "p"]);
    assert.equal(d.isReadonly, true);
    // store_sql, shared by the socket's streams, and close_sql
    const sql = client.storeSql(`INSERT INTO ${t} VALUES (?)`);
    await a.run([sql, [2]]);
    await b.run([sql, [3]]);
    assert.equal((await a.queryValue(`SELECT sum(x) FROM ${t}`)).value, 6);
    sql.close();
    // sequence
    await a.sequence(`INSERT INTO ${t} VALUES (10); INSERT INTO ${t} VALUES (20);`);
    assert.equal((await b.queryValue(`SELECT sum(x) FROM ${t}`)).value, 36);
    // a batch through a cursor (hrana3)
    const batch = a.batch(true);
    const step1 = batch.step();
    step1.run(`INSERT INTO ${t} VALUES (100)`);
    const s2 = batch.step().condition(hrana.BatchCond.ok(step1)).query(`SELECT x FROM ${t} ORDER BY x`);
    const s3 = batch.step().condition(hrana.BatchCond.isAutocommit(batch)).queryValue("SELECT 7");
    await batch.execute();
    assert.deepEqual((await s2).rows.map((r) => r[0]), [1, 2, 3, 10, 20, 100]);
    assert.equal((await s3).value, 7);
    // errors on a stream are answered, the stream stays usable
    await assert.rejects(a.run("SELECT * FROM nope_nope"), (e) => e.code === "SQLITE_ERROR");
    assert.equal((await a.queryValue("SELECT 5")).value, 5);
    a.close();
    b.close();
  } finally {
    client.close();
  }
});

test("ws: subprotocol negotiation: hrana2, hrana1, none, and refusals", async () => {
  const v2 = hrana.openWs(wsUrl); // offers hrana2 and hrana1
  try {
    assert.equal(await v2.getVersion(), 2);
    const s = v2.openStream();
    assert.equal((await s.queryValue("SELECT 40 + 2")).value, 42);
  } finally {
    v2.close();
  }
  // hrana1: execute works, hrana2 requests are protocol errors (socket closed)
  const one = await rawSocket(wsUrl, ["hrana1"]);
  assert.equal(one.protocol, "hrana1");
  one.ws.send(JSON.stringify({ type: "hello", jwt: null }));
  one.ws.send(JSON.stringify({ type: "request", request_id: 1, request: { type: "open_stream", stream_id: 0 } }));
  one.ws.send(JSON.stringify({ type: "request", request_id: 2, request: { type: "execute", stream_id: 0, stmt: { sql: "SELECT 1", want_rows: true } } }));
  await waitFor(() => one.messages.length >= 3);
  assert.deepEqual(one.messages.map((m) => m.type), ["hello_ok", "response_ok", "response_ok"]);
  assert.deepEqual(one.messages[2].response.result.rows, [[{ type: "integer", value: "1" }]]);
  const oneClosed = closed(one.ws);
  one.ws.send(JSON.stringify({ type: "request", request_id: 3, request: { type: "describe", stream_id: 0, sql: "SELECT 1" } }));
  assert.equal((await oneClosed).code, 1002);
  // No subprotocol header: Hrana 1, no protocol in the answer.
  const none = await rawSocket(wsUrl);
  assert.equal(none.protocol, "");
  none.ws.close();
  // Only unknown subprotocols: 400 before upgrading (protobuf is taken:
  // protobuf.test.mjs).
  await assert.rejects(rawSocket(wsUrl, ["foo"]), (e) => e.status === 400);
  // A request before the hello, and garbage, are protocol errors.
  const early = await rawSocket(wsUrl, ["hrana3"]);
  const earlyClosed = closed(early.ws);
  early.ws.send(JSON.stringify({ type: "request", request_id: 1, request: { type: "open_stream", stream_id: 0 } }));
  assert.equal((await earlyClosed).code, 1002);
  const garbage = await rawSocket(wsUrl, ["hrana3"]);
  const garbageClosed = closed(garbage.ws);
  garbage.ws.send("{not json");
  assert.equal((await garbageClosed).code, 1002);
  // Binary messages on a JSON subprotocol.
  const bin = await rawSocket(wsUrl, ["hrana2"]);
  const binClosed = closed(bin.ws);
  bin.ws.send(Buffer.from([1, 2, 3]));
  assert.equal((await binClosed).code, 1003);
  // Unknown stream: an error answer, the socket stays open.
  const us = await rawSocket(wsUrl, ["hrana2"]);
  us.ws.send(JSON.stringify({ type: "hello" }));
  us.ws.send(JSON.stringify({ type: "request", request_id: 9, request: { type: "execute", stream_id: 5, stmt: { sql: "SELECT 1" } } }));
  await waitFor(() => us.messages.length >= 2);
  assert.equal(us.messages[1].type, "response_error");
  assert.equal(us.messages[1].request_id, 9);
  assert.equal(us.messages[1].error.code, "STREAM_NOT_FOUND");
  us.ws.close();
  // A plain HTTP request still works beside the sockets.
  assert.equal((await fetch(server.url + "/health")).status, 200);
});

test("ws: auth by the hello's JWT: missing, wrong, expired refused; read-only; hello re-sent; expiry on an open socket", async () => {
  const dir = tempDir();
  const auth = makeAuth(dir.path);
  const s = await startServer({ args: ["--auth-jwt-key-file", auth.keyFile] });
  const url = s.url.replace(/^http:/, "ws:");
  const now = Math.floor(Date.now() / 1000);
  try {
    for (const [name, token] of [
      ["none", undefined],
      ["wrong key", auth.token({ a: "rw" }, auth.otherKey)],
      ["expired", auth.token({ a: "rw", exp: now - 60 })],
    ]) {
      const c = createClient({ url, authToken: token });
      await assert.rejects(c.execute("SELECT 1"), (e) => /AUTH|JWT/i.test(`${e.code} ${e.message} ${e.cause?.code}`), name);
      c.close();
    }
    const rw = createClient({ url, authToken: auth.token({ a: "rw", exp: now + 600 }), intMode: "number" });
    await rw.execute("CREATE TABLE t(x)");
    await rw.execute("INSERT INTO t VALUES (1)");
    rw.close();
    const ro = createClient({ url, authToken: auth.token({ a: "ro" }) });
    assert.equal((await ro.execute("SELECT count(*) AS n FROM t")).rows[0].n, 1);
    await assert.rejects(ro.execute("INSERT INTO t VALUES (2)"), (e) => /READ_?ONLY|AUTH|readonly/i.test(`${e.code} ${e.message}`));
    ro.close();
    // The hello may be sent again (hrana2+, a fresh token on expiry): each is
    // answered; a bad one closes the socket.
    const raw = await rawSocket(url, ["hrana2"]);
    raw.ws.send(JSON.stringify({ type: "hello", jwt: auth.token({ a: "ro" }) }));
    raw.ws.send(JSON.stringify({ type: "request", request_id: 1, request: { type: "open_stream", stream_id: 1 } }));
    raw.ws.send(JSON.stringify({ type: "hello", jwt: auth.token({ a: "rw", exp: now + 600 }) }));
    raw.ws.send(JSON.stringify({ type: "request", request_id: 2, request: { type: "execute", stream_id: 1, stmt: { sql: "INSERT INTO t VALUES (3)" } } }));
    await waitFor(() => raw.messages.length >= 4).catch((e) => {
      throw new Error(`${e.message}: ${JSON.stringify(raw.messages)}`);
    });
    assert.deepEqual(raw.messages.map((m) => m.type), ["hello_ok", "response_ok", "hello_ok", "response_ok"]);
    const rawClosed = closed(raw.ws);
    raw.ws.send(JSON.stringify({ type: "hello", jwt: auth.token({ a: "rw", exp: now - 1 }) }));
    await waitFor(() => raw.messages.length >= 5);
    assert.equal(raw.messages[4].type, "hello_error");
    assert.match(raw.messages[4].error.code, /AUTH/);
    assert.equal((await rawClosed).code, 1008);

    // A token that expires while its socket stays open stops granting
    // access then: requests are refused until a hello brings a new one.
    const soon = await rawSocket(url, ["hrana2"]);
    const expiresAt = Math.floor(Date.now() / 1000) + 2;
    soon.ws.send(JSON.stringify({ type: "hello", jwt: auth.token({ a: "rw", exp: expiresAt }) }));
    soon.ws.send(JSON.stringify({ type: "request", request_id: 1, request: { type: "open_stream", stream_id: 1 } }));
    await waitFor(() => soon.messages.length >= 2);
    assert.deepEqual(soon.messages.map((m) => m.type), ["hello_ok", "response_ok"]);
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt * 1000 - Date.now()) + 100));
    soon.ws.send(JSON.stringify({ type: "request", request_id: 2, request: { type: "execute", stream_id: 1, stmt: { sql: "SELECT 1" } } }));
    await waitFor(() => soon.messages.length >= 3);
    assert.equal(soon.messages[2].type, "response_error");
    assert.equal(soon.messages[2].error.code, "AUTH_JWT_EXPIRED");
    soon.ws.send(JSON.stringify({ type: "hello", jwt: auth.token({ a: "rw", exp: now + 600 }) }));
    soon.ws.send(JSON.stringify({ type: "request", request_id: 3, request: { type: "execute", stream_id: 1, stmt: { sql: "SELECT 1" } } }));
    await waitFor(() => soon.messages.length >= 5);
    assert.deepEqual(soon.messages.slice(3).map((m) => m.type), ["hello_ok", "response_ok"]);
    soon.ws.close();
  } finally {
    await s.stop();
  }
});

test("ws: message size limit, and the server closes its sockets when it stops", async () => {
  const dir = tempDir();
  const s = await startServer({ args: ["--max-body", String(1 << 16), "--max-ws-connections", "16"] });
  const url = s.url.replace(/^http:/, "ws:");
  let stopped = false;
  try {
    const big = await rawSocket(url, ["hrana2"]);
    const bigClosed = closed(big.ws);
    big.ws.send(JSON.stringify({ type: "hello", jwt: "x".repeat(1 << 17) }));
    assert.equal((await bigClosed).code, 1009);
    // At most --max-ws-connections sockets: the next upgrade is refused
    // with 503, plain HTTP still works, and closing one makes room.
    const many = await Promise.all(Array.from({ length: 16 }, () => rawSocket(url, ["hrana3"])));
    await assert.rejects(rawSocket(url, ["hrana3"]), (e) => e.status === 503);
    assert.equal((await fetch(s.url + "/health")).status, 200);
    const oneClosed = closed(many[0].ws);
    many[0].ws.close();
    await oneClosed;
    // (the server frees the slot when the socket's thread ends)
    let again = null;
    for (let i = 0; i < 100 && again === null; i++) {
      again = await rawSocket(url, ["hrana3"]).catch(() => new Promise((r) => setTimeout(() => r(null), 20)));
    }
    assert.ok(again, "no room after a close");
    again.ws.close();
    for (const m of many.slice(1)) m.ws.close();
    await Promise.all(many.slice(1).map((m) => (m.ws.readyState === WebSocket.CLOSED ? null : closed(m.ws))));
    // Open sockets, one with a transaction open, then stop the server.
    const client = hrana.openWs(url, undefined, 3);
    const st = client.openStream();
    await st.run("CREATE TABLE t(x)");
    await st.run("BEGIN");
    await st.run("INSERT INTO t VALUES (1)");
    const raw = await rawSocket(url, ["hrana3"]);
    const rawClosed = closed(raw.ws);
    const t0 = Date.now();
    await s.stop(); // asserts a clean exit
    stopped = true;
    assert.ok(Date.now() - t0 < 5000, "stop took too long");
    assert.equal((await rawClosed).code, 1001);
    await assert.rejects(st.queryValue("SELECT 1"));
    client.close();
    // The open transaction was rolled back.
    const s2 = await startServer({ dataDir: s.dataDir });
    try {
      const c = createClient({ url: s2.url.replace(/^http:/, "ws:") });
      assert.equal((await c.execute("SELECT count(*) AS n FROM t")).rows[0].n, 0);
      c.close();
    } finally {
      await s2.stop();
    }
  } finally {
    if (!stopped) await s.stop();
    dir.remove();
  }
});
