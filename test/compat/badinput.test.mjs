// Bad input to `replite serve`: every refusal has a clear error, and none
// of them changes the database or its frame log.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { startServer, http, tempDir, makeAuth, sleep } from "./harness.mjs";

const FRAME = 4120;
const PAGE = 4096;

// ---------------------------------------------------------------- helpers

async function pipeline(server, body, { path = "/v2/pipeline", token } = {}) {
  return http(server, "POST", path, {
    body: typeof body === "string" ? body : JSON.stringify(body),
    headers: { "content-type": "application/json" },
    token,
  });
}

const exec = (sql, args) => ({ type: "execute", stmt: { sql, ...(args ? { args } : {}) } });

// A refusal as the libSQL clients parse it: JSON with a message, served as
// exactly application/json.
function assertJsonError(r, status, code) {
  assert.equal(r.status, status, r.body.toString());
  assert.equal(r.headers.get("content-type"), "application/json");
  assert.equal(typeof r.json?.message, "string", r.body.toString());
  assert.ok(r.json.message.length > 0);
  if (code) assert.equal(r.json.code, code, r.body.toString());
}

async function info(server, token) {
  const r = await http(server, "GET", "/info", { token });
  assert.equal(r.status, 200, r.body.toString());
  return r.json;
}

async function query(server, sql, token) {
  const r = await pipeline(server, { requests: [exec(sql), { type: "close" }] }, { token });
  assert.equal(r.status, 200, r.body.toString());
  const res = r.json.results[0];
  assert.equal(res.type, "ok", JSON.stringify(res));
  return res.response.result.rows.map((row) => row.map((v) => v.value ?? null));
}

// What must not change: the log head, the generation and the data.
async function snapshot(server, token) {
  const i = await info(server, token);
  return {
    generation: i.current_generation,
    head: i.max_frame_no,
    rows: await query(server, "SELECT id, v FROM t ORDER BY id", token),
    tables: await query(server, "SELECT name FROM sqlite_schema ORDER BY name", token),
  };
}

async function seed(server, token) {
  for (const sql of ["CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t(v) VALUES ('a'), ('b')"]) {
    const r = await pipeline(server, { requests: [exec(sql), { type: "close" }] }, { token });
    assert.equal(r.json?.results?.[0]?.type, "ok", r.body.toString());
  }
}

function frame(pgno, dbSize, page) {
  const f = Buffer.alloc(FRAME);
  f.writeUInt32BE(pgno, 0);
  f.writeUInt32BE(dbSize, 4);
  if (page) page.copy(f, 24);
  return f;
}

// The latest image of every page and the database size, from the log.
async function currentPages(server, token) {
  const { current_generation: gen, max_frame_no: head } = await info(server, token);
  const r = await http(server, "GET", `/sync/${gen}/1/${head + 1}`, { token });
  assert.equal(r.status, 200);
  assert.equal(r.body.length % FRAME, 0);
  const pages = new Map();
  let dbSize = 0;
  for (let off = 0; off < r.body.length; off += FRAME) {
    const pgno = r.body.readUInt32BE(off);
    const size = r.body.readUInt32BE(off + 4);
    pages.set(pgno, r.body.subarray(off + 24, off + FRAME));
    if (size) dbSize = size;
  }
  return { gen, head, pages, dbSize };
}

// A push that was not applied: refused (4xx), a conflict, or "ok" with the
// head as max_frame_no (below the push's last frame: the libSQL client
// then pushes again from head + 1).
function assertPushNotApplied(r, head, code) {
  if (r.status === 200) {
    assert.ok(r.json.status === "conflict" || r.json.max_frame_no === head, r.body.toString());
  } else {
    assertJsonError(r, 400, code);
  }
}

async function push(server, gen, start, frames, { baton, token } = {}) {
  const path = `/sync/${gen}/${start}/${start + frames.length}` + (baton ? `/${baton}` : "");
  return http(server, "POST", path, { body: Buffer.concat(frames), token });
}

// ------------------------------------------------ one server for most tests

let server;
before(async () => {
  server = await startServer();
  await seed(server);
});
after(async () => {
  await server.stop();
});

test("malformed Hrana requests: 400 with a JSON error, nothing executed", async () => {
  const before = await snapshot(server);
  const insert = exec("INSERT INTO t(v) VALUES ('must not run')");
  const cases = [
    ["/v2/pipeline", "{"],
    ["/v2/pipeline", ""],
    ["/v2/pipeline", "[]"],
    ["/v2/pipeline", "null"],
    ["/v2/pipeline", '{"requests": [] } trailing'],
    ["/v2/pipeline", {}],
    ["/v2/pipeline", { requests: 5 }],
    ["/v2/pipeline", { baton: 5, requests: [insert] }],
    ["/v2/pipeline", { requests: [5] }],
    ["/v2/pipeline", { requests: [{ stmt: { sql: "SELECT 1" } }] }],
    // An unknown or malformed request refuses the whole pipeline before
    // any of it runs, as sqld's deserialisation does.
    ["/v2/pipeline", { requests: [insert, { type: "no_such_request" }] }],
    ["/v3/pipeline", { requests: [insert, { type: "execute" }] }],
    ["/v3/pipeline", { requests: [insert, { type: "execute", stmt: "SELECT 1" }] }],
    ["/v3/pipeline", { requests: [insert, { type: "execute", stmt: { args: [] } }] }],
    ["/v3/pipeline", { requests: [insert, { type: "store_sql", sql: "SELECT 1" }] }],
    ["/v3/pipeline", { requests: [insert, { type: "close_sql" }] }],
    ["/v3/pipeline", { requests: [insert, { type: "sequence" }] }],
    ["/v3/pipeline", { requests: [insert, { type: "batch", batch: { steps: 1 } }] }],
    [
      "/v3/pipeline",
      { requests: [{ type: "batch", batch: { steps: [{ stmt: insert.stmt }, { stmt: insert.stmt, condition: { type: "ok", step: 5 } }] } }] },
    ],
    ["/v3/pipeline", { requests: [{ type: "batch", batch: { steps: [{ stmt: insert.stmt }, { stmt: insert.stmt, condition: { type: "bogus" } }] } }] }],
    // get_autocommit exists from Hrana 3 on (is_autocommit is taken on
    // v2 too, for Turso Sync's pushes).
    ["/v2/pipeline", { requests: [insert, { type: "get_autocommit" }] }],
    ["/v3/cursor", "not json"],
    ["/v3/cursor", { baton: null }],
    ["/v3/cursor", { batch: { steps: [{ stmt: insert.stmt }, { stmt: insert.stmt, condition: { type: "ok", step: 1 } }] } }],
    ["/v1/execute", "{"],
    ["/v1/execute", { stmt: 5 }],
    ["/v1/batch", { batch: { steps: [{ stmt: insert.stmt }, { stmt: insert.stmt, condition: { type: "error", step: 7 } }] } }],
  ];
  for (const [path, body] of cases) {
    const r = await pipeline(server, body, { path });
    assertJsonError(r, 400);
    assert.ok(!/must not run/.test(r.body.toString()));
  }
  assert.deepEqual(await snapshot(server), before);
});

test("bad batons: 400 STREAM_EXPIRED, and a malformed request does not break a good stream", async () => {
  const before = await snapshot(server);
  // Unknown, and of the wrong type.
  assertJsonError(await pipeline(server, { baton: "no-such-baton", requests: [exec("DELETE FROM t")] }), 400, "STREAM_EXPIRED");
  assertJsonError(await pipeline(server, { baton: "", requests: [exec("DELETE FROM t")] }), 400, "STREAM_EXPIRED");
  assertJsonError(await pipeline(server, { baton: { x: 1 }, requests: [] }), 400);
  assertJsonError(await pipeline(server, { baton: "no-such-baton", batch: { steps: [] } }, { path: "/v3/cursor" }), 400, "STREAM_EXPIRED");

  // A stream in a transaction; a baton is good for one request only.
  const open = await pipeline(server, { requests: [exec("BEGIN IMMEDIATE"), exec("DELETE FROM t")] });
  assert.equal(open.status, 200);
  assert.deepEqual(open.json.results.map((r) => r.type), ["ok", "ok"]);
  const baton = open.json.baton;
  assert.equal(typeof baton, "string");
  // A malformed request naming it is refused without touching the stream...
  assertJsonError(await pipeline(server, { baton, requests: [{ type: "nonsense" }] }), 400);
  // ...which goes on: roll it back, get a new baton.
  const next = await pipeline(server, { baton, requests: [exec("ROLLBACK")] });
  assert.equal(next.status, 200, next.body.toString());
  assert.notEqual(next.json.baton, baton);
  // The old baton is spent.
  assertJsonError(await pipeline(server, { baton, requests: [exec("DELETE FROM t")] }), 400, "STREAM_EXPIRED");
  // Closing the stream spends the new one too.
  const closed = await pipeline(server, { baton: next.json.baton, requests: [{ type: "close" }] });
  assert.equal(closed.status, 200);
  assert.equal(closed.json.baton, null);
  assertJsonError(await pipeline(server, { baton: next.json.baton, requests: [exec("DELETE FROM t")] }), 400, "STREAM_EXPIRED");
  assert.deepEqual(await snapshot(server), before);
});

test("unknown routes and methods: 404 / 405 with a JSON error", async () => {
  const before = await snapshot(server);
  for (const [method, path] of [
    ["GET", "/nope"],
    ["POST", "/info"],
    ["GET", "/sync"],
    ["GET", "/sync/1/2"],
    ["GET", "/sync/1/2/3/4/5"],
    ["GET", "/sync/x/1/2"],
    ["GET", "/sync/1/1/99999999999"],
    ["POST", "/sync/1/1/2/"],
    ["GET", "/export/"],
    ["GET", "/export/1/2"],
    ["GET", "/export/one"],
    ["POST", "/export/1"],
    ["POST", "/v2/pipelinex"],
    ["DELETE", "/v2"],
  ]) {
    const r = await http(server, method, path);
    assertJsonError(r, 404);
  }
  for (const [method, path] of [
    ["GET", "/v2/pipeline"],
    ["GET", "/v3/cursor"],
    ["PUT", "/sync/1/1/2"],
    ["DELETE", "/sync/1/1/2"],
  ]) {
    assertJsonError(await http(server, method, path), 405);
  }
  assert.deepEqual(await snapshot(server), before);
});

test("POST /sync: frames of the wrong size or with page number 0 are refused", async () => {
  const before = await snapshot(server);
  const { gen, head, pages, dbSize } = await currentPages(server);
  const page1 = pages.get(1);
  const start = head + 1;
  const good = frame(1, dbSize, page1);
  const cases = [
    [`/sync/${gen}/${start}/${start + 1}`, Buffer.alloc(0)],
    [`/sync/${gen}/${start}/${start + 1}`, good.subarray(0, FRAME - 1)],
    [`/sync/${gen}/${start}/${start + 1}`, Buffer.concat([good, Buffer.alloc(1)])],
    [`/sync/${gen}/${start}/${start + 2}`, good],
    [`/sync/${gen}/${start}/${start + 1}`, Buffer.concat([good, good])],
    [`/sync/${gen}/${start}/${start + 1}`, Buffer.alloc(24 + 512)],
    [`/sync/${gen}/${start}/${start}`, Buffer.alloc(0)],
    [`/sync/${gen}/${start + 1}/${start}`, good],
    [`/sync/${gen}/0/1`, good],
    // page number 0, alone or after a good frame
    [`/sync/${gen}/${start}/${start + 1}`, frame(0, dbSize, page1)],
    [`/sync/${gen}/${start}/${start + 2}`, Buffer.concat([frame(2, 0, pages.get(2)), frame(0, dbSize, page1)])],
    // page 1 that is not a SQLite header
    [`/sync/${gen}/${start}/${start + 1}`, frame(1, dbSize, Buffer.alloc(PAGE, 7))],
  ];
  for (const [path, body] of cases) {
    const r = await http(server, "POST", path, { body });
    assertJsonError(r, 400);
    assert.match(r.json.code, /^INVALID_FRAME/);
  }
  assert.deepEqual(await snapshot(server), before);
});

test("POST /sync: a push whose baton sequence never commits changes nothing", async () => {
  const before = await snapshot(server);
  const { gen, head, pages, dbSize } = await currentPages(server);
  // Two frames without a commit frame: accepted and buffered, not applied.
  const r1 = await push(server, gen, head + 1, [frame(2, 0, pages.get(2)), frame(1, 0, pages.get(1))]);
  assert.equal(r1.status, 200, r1.body.toString());
  assert.equal(r1.json.status, "ok");
  assert.equal(r1.json.max_frame_no, head + 2);
  assert.equal(typeof r1.json.baton, "string");
  assert.deepEqual(await snapshot(server), before);
  // Continuing at the wrong frame, or with an unknown baton, is refused.
  assertJsonError(await push(server, gen, head + 5, [frame(2, 0, pages.get(2))], { baton: r1.json.baton }), 400, "PUSH_OUT_OF_ORDER");
  assertPushNotApplied(await push(server, gen, head + 3, [frame(2, dbSize, pages.get(2))], { baton: "not-a-baton" }), head, "PUSH_BATON_INVALID");
  assert.deepEqual(await snapshot(server), before);
  // The abandoned push blocks nothing: a complete push of the same page
  // images (the database stays equal) is applied at the head.
  const r2 = await push(server, gen, head + 1, [frame(2, 0, pages.get(2)), frame(1, dbSize, pages.get(1))]);
  assert.equal(r2.status, 200, r2.body.toString());
  assert.deepEqual(
    { status: r2.json.status, max: r2.json.max_frame_no },
    { status: "ok", max: head + 2 },
  );
  const after = await snapshot(server);
  assert.equal(after.head, head + 2, "the control push was applied");
  assert.deepEqual(after.rows, before.rows);
  // A push that does not start right after the head is a conflict.
  // A push that does not start right after the head is not applied.
  const r3 = await push(server, gen, head + 1, [frame(2, 0, pages.get(2)), frame(1, dbSize, Buffer.alloc(PAGE, 0).fill(pages.get(1), 0, 100))]);
  assert.equal(r3.status, 200, r3.body.toString());
  assert.equal(r3.json.status, "conflict", r3.body.toString());
  assertPushNotApplied(await push(server, gen, head + 10, [frame(1, dbSize, pages.get(1))]), head + 2);
  assert.deepEqual(await snapshot(server), after);
});

test("GET /sync and /export: unknown generations are 404, caught up is 400 {generation}", async () => {
  const before = await snapshot(server);
  const { current_generation: gen, max_frame_no: head } = await info(server);
  for (const path of [`/sync/${gen + 1}/1/129`, `/sync/999/1/129`, `/sync/0/1/129`, `/export/${gen + 1}`, `/export/0`, `/export/4294967295`]) {
    assertJsonError(await http(server, "GET", path), 404, "GENERATION_NOT_FOUND");
  }
  const caughtUp = await http(server, "GET", `/sync/${gen}/${head + 1}/${head + 129}`);
  assert.equal(caughtUp.status, 400);
  assert.equal(caughtUp.json.generation, gen);
  assertJsonError(await http(server, "GET", `/sync/${gen}/0/10`), 400, "INVALID_FRAME_RANGE");
  // A push to an unknown generation is not applied.
  const { pages, dbSize } = await currentPages(server);
  const r = await push(server, gen + 1, 1, [frame(1, dbSize, pages.get(1))]);
  assert.ok(r.status === 200 ? r.json.status === "conflict" : r.status >= 400, r.body.toString());
  assert.deepEqual(await snapshot(server), before);
});

test("an ended generation past retention is gone: 404 for /sync and /export", async () => {
  const s = await startServer({ args: ["--generation-frames", "2", "--retention", "0"] });
  try {
    await seed(s);
    for (let i = 0; i < 3; i++) await query(s, `INSERT INTO t(v) VALUES ('${i}')`);
    let i = await info(s);
    const deadline = Date.now() + 20000;
    while (i.oldest_generation <= 1 && Date.now() < deadline) {
      await sleep(50);
      i = await info(s);
    }
    assert.ok(i.current_generation > 1 && i.oldest_generation > 1, JSON.stringify(i));
    assertJsonError(await http(s, "GET", "/sync/1/1/129"), 404, "GENERATION_NOT_FOUND");
    assertJsonError(await http(s, "GET", "/export/1"), 404, "GENERATION_NOT_FOUND");
    const cur = await http(s, "GET", `/export/${i.current_generation}`);
    assert.equal(cur.status, 200);
    assert.equal(cur.body.subarray(0, 16).toString("latin1"), "SQLite format 3\0");
    assert.equal((await query(s, "SELECT count(*) FROM t"))[0][0], "5");
  } finally {
    await s.stop();
  }
});

test("bodies over --max-body are refused with 413", async () => {
  const s = await startServer({ args: ["--max-body", "65536"] });
  try {
    await seed(s);
    const before = await snapshot(s);
    const big = JSON.stringify({ requests: [exec(`INSERT INTO t(v) VALUES ('${"x".repeat(70000)}')`)] });
    assertJsonError(await pipeline(s, big), 413, "BODY_TOO_LARGE");
    assertJsonError(await pipeline(s, { batch: { steps: [{ stmt: { sql: `SELECT '${"y".repeat(70000)}'` } }] } }, { path: "/v3/cursor" }), 413);
    const { gen, head, pages, dbSize } = await currentPages(s);
    const frames = Array.from({ length: 16 }, () => frame(2, 0, pages.get(2)));
    frames.push(frame(1, dbSize, pages.get(1)));
    assertJsonError(await push(s, gen, head + 1, frames), 413, "BODY_TOO_LARGE");
    assert.deepEqual(await snapshot(s), before);
    // Just under the limit is fine.
    const ok = JSON.stringify({ requests: [exec(`INSERT INTO t(v) VALUES ('${"z".repeat(60000)}')`)] });
    const r = await pipeline(s, ok);
    assert.equal(r.status, 200);
    assert.equal(r.json.results[0].type, "ok");
  } finally {
    await s.stop();
  }
});

// ----------------------------------------------------------------- auth

test("auth: missing, garbage, wrong-key and expired tokens get 401; /health needs none", async () => {
  const dir = tempDir();
  const auth = makeAuth(dir.path);
  const s = await startServer({ args: ["--auth-jwt-key-file", auth.keyFile] });
  try {
    const rw = auth.token({ a: "rw" });
    await seed(s, rw);
    const before = await snapshot(s, rw);
    const now = Math.floor(Date.now() / 1000);
    const bad = {
      missing: {},
      empty: { headers: { Authorization: "Bearer " } },
      scheme: { headers: { Authorization: `Basic ${rw}` } },
      garbage: { token: "garbage" },
      "three parts": { token: "a.b.c" },
      "wrong key": { token: auth.token({ a: "rw" }, auth.otherKey) },
      expired: { token: auth.token({ a: "rw", exp: now - 60 }) },
      "tampered claims": { token: rw.split(".")[0] + "." + Buffer.from('{"a":"rw","x":1}').toString("base64url") + "." + rw.split(".")[2] },
      "alg none": { token: Buffer.from('{"alg":"none"}').toString("base64url") + "." + Buffer.from('{"a":"rw"}').toString("base64url") + "." },
    };
    const { pages, dbSize, gen, head } = await currentPages(s, rw);
    const requests = [
      ["GET", "/info"],
      ["GET", `/sync/${gen}/1/129`],
      ["GET", `/export/${gen}`],
      ["POST", "/v2/pipeline", JSON.stringify({ requests: [exec("DELETE FROM t")] })],
      ["POST", "/v3/pipeline", JSON.stringify({ requests: [exec("DELETE FROM t")] })],
      ["POST", "/v3/cursor", JSON.stringify({ batch: { steps: [{ stmt: { sql: "DELETE FROM t" } }] } })],
      ["POST", "/v1/execute", JSON.stringify({ stmt: { sql: "DELETE FROM t" } })],
      ["POST", "/v1/batch", JSON.stringify({ batch: { steps: [{ stmt: { sql: "DELETE FROM t" } }] } })],
      ["POST", `/sync/${gen}/${head + 1}/${head + 2}`, frame(1, dbSize, pages.get(1))],
    ];
    for (const [name, opts] of Object.entries(bad)) {
      for (const [method, path, body] of requests) {
        const r = await http(s, method, path, { ...opts, body });
        assert.equal(r.status, 401, `${name}: ${method} ${path}: ${r.body}`);
        assert.equal(typeof r.json?.message, "string", `${name}: ${r.body}`);
      }
    }
    assert.deepEqual(await snapshot(s, rw), before);
    // Liveness and version need no token.
    assert.equal((await http(s, "GET", "/health")).status, 200);
    assert.equal((await http(s, "GET", "/version")).status, 200);
    // A token that has not expired yet, or without exp, works.
    assert.equal((await http(s, "GET", "/info", { token: auth.token({ exp: now + 600 }) })).status, 200);
    // The client reports a refused token as an error, and works with a good one.
    const noToken = createClient({ url: s.url });
    await assert.rejects(noToken.execute("SELECT 1"), (e) => /401|nauthori|AUTH/i.test(`${e.code} ${e.message}`));
    const wrong = createClient({ url: s.url, authToken: auth.token({}, auth.otherKey) });
    await assert.rejects(wrong.execute("SELECT 1"));
    const good = createClient({ url: s.url, authToken: rw, intMode: "bigint" });
    assert.equal((await good.execute("SELECT count(*) AS n FROM t")).rows[0].n, 2n);
    noToken.close();
    wrong.close();
    good.close();
  } finally {
    await s.stop();
    dir.remove();
  }
});

test("auth: a read-only token reads but cannot write through SQL or push frames", async () => {
  const dir = tempDir();
  const auth = makeAuth(dir.path);
  const s = await startServer({ args: ["--auth-jwt-key-file", auth.keyFile] });
  try {
    const rw = auth.token({ a: "rw" });
    const ro = auth.token({ a: "ro" });
    await seed(s, rw);
    const before = await snapshot(s, rw);
    // Reads work everywhere.
    assert.deepEqual(await snapshot(s, ro), before);
    const v1 = await http(s, "POST", "/v1/execute", { token: ro, body: JSON.stringify({ stmt: { sql: "SELECT count(*) FROM t" } }) });
    assert.equal(v1.status, 200, v1.body.toString());
    assert.equal(v1.json.result.rows[0][0].value, "2");
    const cur = await http(s, "POST", "/v3/cursor", { token: ro, body: JSON.stringify({ batch: { steps: [{ stmt: { sql: "SELECT v FROM t ORDER BY id" } }] } }) });
    assert.equal(cur.status, 200);
    assert.match(cur.body.toString(), /"type":"row"/);
    const { gen, head, pages, dbSize } = await currentPages(s, ro);
    assert.equal((await http(s, "GET", `/export/${gen}`, { token: ro })).status, 200);

    // Writes through every SQL path are refused with SQLITE_READONLY.
    const writes = [
      "INSERT INTO t(v) VALUES ('ro')",
      "UPDATE t SET v = 'ro'",
      "DELETE FROM t",
      "CREATE TABLE ro(x)",
      "DROP TABLE t",
      "CREATE INDEX t_v ON t(v)",
      "PRAGMA user_version = 7",
      "REPLACE INTO t(id, v) VALUES (1, 'ro')",
      "WITH x AS (SELECT 1) INSERT INTO t(v) SELECT 'ro' FROM x",
      // No write lock for a read-only token either.
      "BEGIN IMMEDIATE",
      "BEGIN EXCLUSIVE",
    ];
    for (const sql of writes) {
      for (const path of ["/v2/pipeline", "/v3/pipeline"]) {
        const r = await pipeline(s, { requests: [exec(sql), { type: "batch", batch: { steps: [{ stmt: { sql } }] } }, { type: "sequence", sql }, { type: "close" }] }, { path, token: ro });
        assert.equal(r.status, 200, r.body.toString());
        const [e, b, q] = r.json.results;
        assert.equal(e.type, "error", `${sql}: ${JSON.stringify(e)}`);
        assert.equal(e.error.code, "SQLITE_READONLY");
        assert.equal(b.response.result.step_errors[0]?.code, "SQLITE_READONLY", sql);
        assert.equal(q.type, "error");
        assert.equal(q.error.code, "SQLITE_READONLY");
      }
      const x = await http(s, "POST", "/v1/execute", { token: ro, body: JSON.stringify({ stmt: { sql } }) });
      assert.equal(x.status, 400, x.body.toString());
      assert.equal(x.json.code, "SQLITE_READONLY");
      const y = await http(s, "POST", "/v1/batch", { token: ro, body: JSON.stringify({ batch: { steps: [{ stmt: { sql } }] } }) });
      assert.equal(y.json.result.step_errors[0]?.code, "SQLITE_READONLY", y.body.toString());
      const z = await http(s, "POST", "/v3/cursor", { token: ro, body: JSON.stringify({ batch: { steps: [{ stmt: { sql } }] } }) });
      assert.match(z.body.toString(), /"type":"step_error".*SQLITE_READONLY/);
    }
    // A multi-statement sequence stops at the first write.
    const seq = await pipeline(s, { requests: [{ type: "sequence", sql: "SELECT 1; DELETE FROM t; SELECT 2" }] }, { token: ro });
    assert.equal(seq.json.results[0].error.code, "SQLITE_READONLY");
    // The client sees the same.
    const c = createClient({ url: s.url, authToken: ro, intMode: "bigint" });
    assert.equal((await c.execute("SELECT count(*) AS n FROM t")).rows[0].n, 2n);
    await assert.rejects(c.execute("DELETE FROM t"), (e) => e.code === "SQLITE_READONLY");
    await assert.rejects(c.batch(["DELETE FROM t"], "write"), (e) => e.code === "SQLITE_READONLY");
    await assert.rejects(c.batch(["DELETE FROM t"], "deferred"), (e) => e.code === "SQLITE_READONLY");
    assert.equal((await c.batch(["SELECT count(*) AS n FROM t"], "read"))[0].rows[0].n, 2n);
    c.close();

    // Pushing frames is refused with 403, valid frames or not.
    const control = [frame(2, 0, pages.get(2)), frame(1, dbSize, pages.get(1))];
    for (const frames of [control, [frame(1, dbSize, pages.get(1))], [frame(0, 0)]]) {
      assertJsonError(await push(s, gen, head + 1, frames, { token: ro }), 403, "AUTH_READ_ONLY");
    }
    assertJsonError(await push(s, gen, head + 1, control, { token: ro, baton: "x" }), 403);
    assert.deepEqual(await snapshot(s, rw), before);
    // The same push with the read-write token is applied (so the refusal
    // above was the token's doing).
    const ok = await push(s, gen, head + 1, control, { token: rw });
    assert.equal(ok.status, 200, ok.body.toString());
    assert.equal(ok.json.status, "ok");
    assert.equal((await info(s, rw)).max_frame_no, head + 2);
    // And the read-write token can write through SQL.
    await query(s, "INSERT INTO t(v) VALUES ('rw')", rw);
    assert.equal((await query(s, "SELECT count(*) FROM t", ro))[0][0], "3");
  } finally {
    await s.stop();
    dir.remove();
  }
});
