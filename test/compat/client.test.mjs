// The real libSQL clients against `replite serve` over http://:
// @libsql/client 0.18.0 (Hrana 2 over HTTP), npm libsql 0.5.29 in remote
// mode (Hrana 3: /v3/pipeline and /v3/cursor), and @libsql/hrana-client
// 0.10.0's streams over HTTP.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createClient, LibsqlError } from "@libsql/client";
import Database from "libsql";
import * as hrana from "@libsql/hrana-client";
import { startServer } from "./harness.mjs";

let server;
let nextTable = 0;
// Every test works on tables of its own, so tests share one server.
const table = (prefix = "t") => `${prefix}_${++nextTable}`;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server.stop();
});

function client(opts = {}) {
  return createClient({ url: server.url, intMode: "bigint", ...opts });
}

// Asserts that `promise` rejects with a LibsqlError whose code is `code` and
// whose message matches `message`.
async function rejectsWithCode(promise, code, message) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof LibsqlError, `expected a LibsqlError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

async function rows(c, sql, args) {
  return (await c.execute({ sql, args: args ?? [] })).rows.map((r) => ({ ...r }));
}

const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

test("@libsql/client: every value type round-trips", async () => {
  const c = client();
  const t = table();
  await c.execute(`CREATE TABLE ${t}(id INTEGER PRIMARY KEY, v)`);
  const bytes = new Uint8Array([0, 1, 2, 127, 128, 254, 255]);
  const values = [
    // [argument, expected value read back, expected typeof() on the server]
    [2n ** 53n + 1n, 2n ** 53n + 1n, "integer"],
    [INT64_MAX, INT64_MAX, "integer"],
    [INT64_MIN, INT64_MIN, "integer"],
    [-42n, -42n, "integer"],
    [0n, 0n, "integer"],
    [1.5, 1.5, "real"],
    [-0.25, -0.25, "real"],
    [0.1 + 0.2, 0.1 + 0.2, "real"],
    [5e-324, 5e-324, "real"],
    [-1.7976931348623157e308, -1.7976931348623157e308, "real"],
    ["", "", "text"],
    ["héllo wörld — 中文 🎉 \u{10FFFF}", "héllo wörld — 中文 🎉 \u{10FFFF}", "text"],
    ["nul \u0000 inside", "nul \u0000 inside", "text"],
    ["x".repeat(100000), "x".repeat(100000), "text"],
    [bytes, bytes.buffer, "blob"],
    [bytes.buffer, bytes.buffer, "blob"],
    [new Uint8Array(0), new ArrayBuffer(0), "blob"],
    [null, null, "null"],
    // The client sends booleans as integers and dates as their milliseconds.
    [true, 1n, "integer"],
    [false, 0n, "integer"],
    [new Date(1700000000123), 1700000000123, "real"],
  ];
  for (const [i, [arg]] of values.entries()) {
    await c.execute({ sql: `INSERT INTO ${t}(id, v) VALUES (?, ?)`, args: [i, arg] });
  }
  const rs = await c.execute(`SELECT id, v, typeof(v) AS type FROM ${t} ORDER BY id`);
  assert.equal(rs.rows.length, values.length);
  for (const [i, [, expected, type]] of values.entries()) {
    const row = rs.rows[i];
    assert.equal(row.id, BigInt(i));
    assert.equal(row.type, type, `row ${i}`);
    if (expected instanceof ArrayBuffer) {
      assert.ok(row.v instanceof ArrayBuffer, `row ${i} is a blob`);
      assert.deepEqual(new Uint8Array(row.v), new Uint8Array(expected), `row ${i}`);
    } else {
      assert.equal(row.v, expected, `row ${i}`);
    }
  }
  // The same values as query parameters come back unchanged, too.
  const echo = await c.execute({ sql: "SELECT ? AS a, ? AS b, ? AS c, ? AS d", args: [INT64_MIN, INT64_MAX, -1n, 3.25] });
  assert.deepEqual({ ...echo.rows[0] }, { a: INT64_MIN, b: INT64_MAX, c: -1n, d: 3.25 });
  assert.deepEqual(echo.columns, ["a", "b", "c", "d"]);
  c.close();
});

test("@libsql/client: integer modes, columns, rowsAffected and lastInsertRowid", async () => {
  const t = table();
  const c = client();
  await c.execute(`CREATE TABLE ${t}(id INTEGER PRIMARY KEY, name TEXT, n INTEGER)`);
  const ins = await c.execute({ sql: `INSERT INTO ${t}(name, n) VALUES (?, ?), (?, ?)`, args: ["a", 1n, "b", 2n ** 60n] });
  assert.equal(ins.rowsAffected, 2);
  assert.equal(ins.lastInsertRowid, 2n);
  const upd = await c.execute(`UPDATE ${t} SET name = upper(name)`);
  assert.equal(upd.rowsAffected, 2);
  const sel = await c.execute(`SELECT id, name, n FROM ${t} ORDER BY id`);
  assert.deepEqual(sel.columns, ["id", "name", "n"]);
  assert.deepEqual(sel.columnTypes, ["INTEGER", "TEXT", "INTEGER"]);
  assert.equal(sel.rowsAffected, 0);
  assert.deepEqual(sel.rows.map((r) => [r.id, r.name, r.n]), [
    [1n, "A", 1n],
    [2n, "B", 2n ** 60n],
  ]);
  // Rows are also indexed by column number.
  assert.equal(sel.rows[0].length, 3);
  assert.deepEqual([sel.rows[1][0], sel.rows[1][1], sel.rows[1][2]], [2n, "B", 2n ** 60n]);
  // intMode "number" refuses integers a JS number cannot hold exactly;
  // "string" returns them as decimal text.
  const num = client({ intMode: "number" });
  await assert.rejects(num.execute(`SELECT n FROM ${t} WHERE id = 2`), RangeError);
  assert.equal((await num.execute(`SELECT n FROM ${t} WHERE id = 1`)).rows[0].n, 1);
  const str = client({ intMode: "string" });
  assert.equal((await str.execute(`SELECT n FROM ${t} WHERE id = 2`)).rows[0].n, String(2n ** 60n));
  c.close();
  num.close();
  str.close();
});

test("@libsql/client: positional and named arguments", async () => {
  const c = client();
  assert.deepEqual(await rows(c, "SELECT ? AS a, ? AS b", [1n, "two"]), [{ a: 1n, b: "two" }]);
  assert.deepEqual(await rows(c, "SELECT ?2 AS a, ?1 AS b", [1n, "two"]), [{ a: "two", b: 1n }]);
  // Names without their prefix, as libSQL documents them...
  assert.deepEqual(await rows(c, "SELECT :a AS a, @b AS b, $c AS c", { a: 1n, b: "x", c: null }), [
    { a: 1n, b: "x", c: null },
  ]);
  // ...and with it.
  assert.deepEqual(await rows(c, "SELECT :a AS a, @b AS b, $c AS c", { ":a": 2n, "@b": "y", $c: 1.5 }), [
    { a: 2n, b: "y", c: 1.5 },
  ]);
  // A name used twice binds both places.
  assert.deepEqual(await rows(c, "SELECT :v + :v AS s", { v: 21n }), [{ s: 42n }]);
  const t = table();
  await c.execute(`CREATE TABLE ${t}(k TEXT PRIMARY KEY, v)`);
  await c.execute({ sql: `INSERT INTO ${t} VALUES (:k, :v)`, args: { k: "key", v: new Uint8Array([9, 8]) } });
  const got = await rows(c, `SELECT v FROM ${t} WHERE k = $k`, { k: "key" });
  assert.deepEqual(new Uint8Array(got[0].v), new Uint8Array([9, 8]));
  // More positional arguments than parameters is an error.
  await rejectsWithCode(c.execute({ sql: "SELECT ?", args: [1n, 2n] }), "ARGS_INVALID");
  c.close();
});

test("@libsql/client: constraint and SQL errors carry sqld's codes", async () => {
  // sqld (libsql-server/src/hrana/stmt.rs) reports SQLite errors by their
  // primary result code name, and statements it cannot parse as
  // SQL_PARSE_ERROR; @libsql/client 0.18 exposes that code as e.code (it
  // has no extended code over HTTP).
  const c = client();
  const t = table();
  await c.execute(`CREATE TABLE ${t}(id INTEGER PRIMARY KEY, u TEXT UNIQUE, nn TEXT NOT NULL, ck INTEGER CHECK (ck > 0))`);
  await c.execute(`INSERT INTO ${t} VALUES (1, 'a', 'x', 1)`);
  await c.execute(
    `CREATE TRIGGER ${t}_guard BEFORE INSERT ON ${t} WHEN NEW.u = 'forbidden' BEGIN SELECT RAISE(ABORT, 'no way'); END`,
  );
  const cases = [
    [`INSERT INTO ${t} VALUES (1, 'b', 'x', 1)`, /UNIQUE constraint failed: .*\.id/],
    [`INSERT INTO ${t} VALUES (2, 'a', 'x', 1)`, /UNIQUE constraint failed: .*\.u/],
    [`INSERT INTO ${t} VALUES (3, 'c', NULL, 1)`, /NOT NULL constraint failed/],
    [`INSERT INTO ${t} VALUES (4, 'd', 'x', 0)`, /CHECK constraint failed/],
    [`INSERT INTO ${t} VALUES (5, 'forbidden', 'x', 1)`, /no way/],
  ];
  for (const [sql, message] of cases) await rejectsWithCode(c.execute(sql), "SQLITE_CONSTRAINT", message);
  await rejectsWithCode(c.execute("SELEC 1"), "SQL_PARSE_ERROR", /syntax error/);
  await rejectsWithCode(c.execute("SELECT * FROM"), "SQL_PARSE_ERROR");
  await rejectsWithCode(c.execute("SELECT * FROM no_such_table"), "SQLITE_ERROR", /no such table/);
  await rejectsWithCode(c.execute("SELECT 1; SELECT 2"), "SQL_MANY_STATEMENTS");
  await rejectsWithCode(c.execute("  -- nothing\n"), "SQL_NO_STATEMENT");
  // Nothing of the failed statements was written, and the client still works.
  assert.deepEqual(await rows(c, `SELECT id, u FROM ${t}`), [{ id: 1n, u: "a" }]);
  c.close();
});

test("@libsql/client: a batch is atomic in write and deferred modes", async () => {
  const c = client();
  const t = table();
  await c.execute(`CREATE TABLE ${t}(id INTEGER PRIMARY KEY, v TEXT)`);
  for (const mode of ["write", "deferred"]) {
    const ok = await c.batch(
      [
        { sql: `INSERT INTO ${t}(v) VALUES (?)`, args: [`${mode}-1`] },
        { sql: `INSERT INTO ${t}(v) VALUES (:v)`, args: { v: `${mode}-2` } },
        `SELECT count(*) AS n FROM ${t}`,
      ],
      mode,
    );
    assert.equal(ok.length, 3);
    assert.equal(ok[0].rowsAffected, 1);
    assert.equal(ok[1].rowsAffected, 1);
    assert.ok(ok[1].lastInsertRowid > ok[0].lastInsertRowid);
    const n = ok[2].rows[0].n;
    // The third statement fails: the two inserts before it are undone.
    await assert.rejects(
      c.batch(
        [
          `INSERT INTO ${t}(v) VALUES ('${mode}-doomed-1')`,
          `UPDATE ${t} SET v = 'changed'`,
          `INSERT INTO ${t}(id, v) VALUES (1, 'duplicate')`,
          `INSERT INTO ${t}(v) VALUES ('${mode}-never')`,
        ],
        mode,
      ),
      (e) => {
        assert.equal(e.code, "SQLITE_CONSTRAINT", e.message);
        assert.equal(e.statementIndex, 2);
        return true;
      },
    );
    assert.equal((await c.execute(`SELECT count(*) AS n FROM ${t}`)).rows[0].n, n);
    assert.deepEqual(await rows(c, `SELECT v FROM ${t} WHERE v LIKE '%doomed%' OR v = 'changed' OR v LIKE '%never'`), []);
    // A syntax error fails the batch the same way.
    await rejectsWithCode(c.batch([`INSERT INTO ${t}(v) VALUES ('x')`, "SELEC 1"], mode), "SQL_PARSE_ERROR");
    assert.equal((await c.execute(`SELECT count(*) AS n FROM ${t}`)).rows[0].n, n);
  }
  c.close();
});

test("@libsql/client: a read batch reads and refuses writes", async () => {
  const c = client();
  const t = table();
  await c.execute(`CREATE TABLE ${t}(v)`);
  await c.execute(`INSERT INTO ${t} VALUES (1), (2)`);
  const rs = await c.batch([`SELECT count(*) AS n FROM ${t}`, `SELECT sum(v) AS s FROM ${t}`], "read");
  assert.equal(rs[0].rows[0].n, 2n);
  assert.equal(rs[1].rows[0].s, 3n);
  for (const stmt of [`INSERT INTO ${t} VALUES (3)`, `DELETE FROM ${t}`, `CREATE TABLE ${t}_x(y)`, `DROP TABLE ${t}`]) {
    await rejectsWithCode(c.batch([`SELECT 1`, stmt], "read"), "SQLITE_READONLY");
  }
  assert.deepEqual(await rows(c, `SELECT v FROM ${t} ORDER BY v`), [{ v: 1n }, { v: 2n }]);
  // The refused batch left no transaction (or lock) behind: a write works.
  await c.execute(`INSERT INTO ${t} VALUES (3)`);
  assert.equal((await c.execute(`SELECT count(*) AS n FROM ${t}`)).rows[0].n, 3n);
  c.close();
});

test("@libsql/client: interactive transactions commit and roll back", async () => {
  const c = client();
  const t = table();
  await c.execute(`CREATE TABLE ${t}(id INTEGER PRIMARY KEY, v TEXT)`);

  const tx = await c.transaction("write");
  await tx.execute({ sql: `INSERT INTO ${t}(v) VALUES (?)`, args: ["committed"] });
  const inside = await tx.execute(`SELECT v FROM ${t}`);
  assert.deepEqual(inside.rows.map((r) => r.v), ["committed"]);
  await tx.batch([`INSERT INTO ${t}(v) VALUES ('b1')`, `UPDATE ${t} SET v = v || '!' WHERE v = 'b1'`]);
  await tx.commit();
  assert.equal(tx.closed, true);
  assert.deepEqual((await rows(c, `SELECT v FROM ${t} ORDER BY id`)).map((r) => r.v), ["committed", "b1!"]);

  const rb = await c.transaction("write");
  await rb.execute(`INSERT INTO ${t}(v) VALUES ('rolled back')`);
  await rb.execute(`DELETE FROM ${t} WHERE v = 'committed'`);
  await rb.rollback();
  assert.deepEqual((await rows(c, `SELECT v FROM ${t} ORDER BY id`)).map((r) => r.v), ["committed", "b1!"]);

  // A failing statement does not end the transaction; the rest commits.
  const partial = await c.transaction("deferred");
  await partial.execute(`INSERT INTO ${t}(v) VALUES ('kept')`);
  await rejectsWithCode(partial.execute(`INSERT INTO ${t}(id, v) VALUES (1, 'dup')`), "SQLITE_CONSTRAINT");
  await partial.commit();
  assert.deepEqual((await rows(c, `SELECT v FROM ${t} ORDER BY id`)).map((r) => r.v), ["committed", "b1!", "kept"]);

  // executeMultiple inside a transaction, then rollback.
  const multi = await c.transaction("write");
  await multi.executeMultiple(`INSERT INTO ${t}(v) VALUES ('m1'); INSERT INTO ${t}(v) VALUES ('m2');`);
  assert.equal((await multi.execute(`SELECT count(*) AS n FROM ${t}`)).rows[0].n, 5n);
  await multi.rollback();
  assert.equal((await c.execute(`SELECT count(*) AS n FROM ${t}`)).rows[0].n, 3n);

  // A closed transaction refuses further use.
  await rejectsWithCode(tx.execute("SELECT 1"), "TRANSACTION_CLOSED");
  c.close();
});

test("@libsql/client: transactions are isolated from other clients", async () => {
  const a = client();
  const b = client();
  const t = table();
  await a.execute(`CREATE TABLE ${t}(v TEXT)`);
  await a.execute(`INSERT INTO ${t} VALUES ('before')`);

  const tx = await a.transaction("write");
  await tx.execute(`INSERT INTO ${t} VALUES ('uncommitted')`);
  // Another client does not see the uncommitted row, and can still read.
  assert.deepEqual((await rows(b, `SELECT v FROM ${t}`)).map((r) => r.v), ["before"]);
  // A read transaction keeps its snapshot while the writer commits.
  const reader = await b.transaction("read");
  assert.equal((await reader.execute(`SELECT count(*) AS n FROM ${t}`)).rows[0].n, 1n);
  await tx.commit();
  assert.deepEqual((await rows(b, `SELECT v FROM ${t} ORDER BY rowid`)).map((r) => r.v), ["before", "uncommitted"]);
  assert.equal((await reader.execute(`SELECT count(*) AS n FROM ${t}`)).rows[0].n, 1n, "snapshot of the read transaction");
  // A read transaction refuses writes.
  await rejectsWithCode(reader.execute(`INSERT INTO ${t} VALUES ('from reader')`), "SQLITE_READONLY");
  await reader.commit();
  assert.equal((await b.execute(`SELECT count(*) AS n FROM ${t}`)).rows[0].n, 2n);
  a.close();
  b.close();
});

test("@libsql/client: a second write transaction waits for the first", async () => {
  const a = client();
  const b = client();
  const t = table();
  await a.execute(`CREATE TABLE ${t}(v TEXT)`);
  const first = await a.transaction("write");
  await first.execute(`INSERT INTO ${t} VALUES ('first')`);
  const second = await b.transaction("write");
  let secondDone = false;
  const secondInsert = second.execute(`INSERT INTO ${t} VALUES ('second')`).finally(() => (secondDone = true));
  // The first writer holds the write lock; it can still work and commit.
  await first.execute(`UPDATE ${t} SET v = 'first!'`);
  assert.equal(secondDone, false, "the second writer cannot have written while the first holds the lock");
  await first.commit();
  // The second then proceeds (the server's busy timeout waits for the lock)
  // on a snapshot that includes the first transaction.
  await secondInsert;
  assert.deepEqual((await second.execute(`SELECT v FROM ${t} ORDER BY rowid`)).rows.map((r) => r.v), ["first!", "second"]);
  await second.commit();
  assert.deepEqual((await rows(a, `SELECT v FROM ${t} ORDER BY rowid`)).map((r) => r.v), ["first!", "second"]);
  a.close();
  b.close();
});

test("@libsql/client: executeMultiple and migrate", async () => {
  const c = client();
  const t = table();
  await c.executeMultiple(`
    -- a comment
    CREATE TABLE ${t}(id INTEGER PRIMARY KEY, v TEXT);
    INSERT INTO ${t}(v) VALUES ('one');
    /* another comment */
    INSERT INTO ${t}(v) VALUES ('two; with a semicolon');
  `);
  assert.deepEqual((await rows(c, `SELECT v FROM ${t} ORDER BY id`)).map((r) => r.v), ["one", "two; with a semicolon"]);
  await rejectsWithCode(c.executeMultiple(`SELECT 1; SELEC 2;`), "SQL_PARSE_ERROR");
  await rejectsWithCode(c.executeMultiple(`INSERT INTO ${t}(id, v) VALUES (1, 'dup');`), "SQLITE_CONSTRAINT");
  assert.equal((await c.execute(`SELECT count(*) AS n FROM ${t}`)).rows[0].n, 2n);

  assert.equal(typeof c.migrate, "function");
  const parent = table("parent");
  const child = table("child");
  const res = await c.migrate([
    `CREATE TABLE ${parent}(id INTEGER PRIMARY KEY)`,
    `CREATE TABLE ${child}(p INTEGER REFERENCES ${parent}(id))`,
    `INSERT INTO ${parent} VALUES (1)`,
    `INSERT INTO ${child} VALUES (1)`,
  ]);
  assert.equal(res.length, 4);
  assert.deepEqual(await rows(c, `SELECT p FROM ${child}`), [{ p: 1n }]);
  // A failing migration is rolled back as a whole.
  await assert.rejects(
    c.migrate([`ALTER TABLE ${parent} ADD COLUMN name TEXT`, `INSERT INTO ${parent}(id) VALUES (1)`]),
    (e) => e.code === "SQLITE_CONSTRAINT",
  );
  const cols = await rows(c, `SELECT name FROM pragma_table_info('${parent}')`);
  assert.deepEqual(cols.map((r) => r.name), ["id"]);
  c.close();
});

test("npm libsql in remote mode: prepare, get, all, run, exec, iterate", () => {
  // Synchronous client; the server runs in its own process.
  const db = new Database(server.url);
  const t = table();
  db.exec(`CREATE TABLE ${t}(id INTEGER PRIMARY KEY, i INTEGER, f REAL, s TEXT, b BLOB)`);
  const ins = db.prepare(`INSERT INTO ${t}(i, f, s, b) VALUES (?, ?, ?, ?)`);
  const r1 = ins.run(42, 1.25, "héllo 🎉", Buffer.from([0, 1, 255]));
  assert.equal(r1.changes, 1);
  assert.equal(Number(r1.lastInsertRowid), 1);
  const r2 = ins.run(INT64_MIN, -0.5, "", Buffer.alloc(0));
  assert.equal(Number(r2.lastInsertRowid), 2);
  ins.run(INT64_MAX, null, null, null);

  const get = db.prepare(`SELECT i, f, s, b FROM ${t} WHERE id = ?`);
  const row = get.get(1);
  assert.equal(row.i, 42);
  assert.equal(row.f, 1.25);
  assert.equal(row.s, "héllo 🎉");
  assert.deepEqual(new Uint8Array(row.b), new Uint8Array([0, 1, 255]));
  assert.equal(get.get(99), undefined);

  const big = db.prepare(`SELECT i FROM ${t} ORDER BY id`).safeIntegers(true).all();
  assert.deepEqual(big.map((r) => r.i), [42n, INT64_MIN, INT64_MAX]);
  const all = db.prepare(`SELECT id, s, f FROM ${t} ORDER BY id`).all();
  assert.deepEqual(all.map((r) => [r.id, r.s, r.f]), [
    [1, "héllo 🎉", 1.25],
    [2, "", -0.5],
    [3, null, null],
  ]);
  assert.deepEqual(db.prepare(`SELECT id FROM ${t} ORDER BY id`).pluck().all(), [1, 2, 3]);
  assert.deepEqual(db.prepare(`SELECT id, s FROM ${t} WHERE id = 2`).raw().all(), [[2, ""]]);
  const seen = [];
  for (const r of db.prepare(`SELECT id FROM ${t} WHERE id >= ? ORDER BY id`).iterate(2)) seen.push(r.id);
  assert.deepEqual(seen, [2, 3]);

  const upd = db.prepare(`UPDATE ${t} SET s = ?2 WHERE id = ?1`).run(3, "three");
  assert.equal(upd.changes, 1);
  assert.equal(db.prepare(`SELECT s FROM ${t} WHERE id = 3`).get().s, "three");

  db.exec(`INSERT INTO ${t}(s) VALUES ('e1'); INSERT INTO ${t}(s) VALUES ('e2');`);
  assert.equal(db.prepare(`SELECT count(*) AS n FROM ${t}`).get().n, 5);

  // Errors: a constraint violation changes nothing; bad SQL fails at prepare.
  assert.throws(() => db.prepare(`INSERT INTO ${t}(id, s) VALUES (1, 'dup')`).run(), /UNIQUE constraint failed/);
  assert.throws(() => db.exec(`INSERT INTO ${t}(id) VALUES (1)`), /UNIQUE constraint failed/);
  assert.throws(() => db.prepare("SELEC 1"), /SQL_PARSE_ERROR|syntax error/);
  assert.equal(db.prepare(`SELECT count(*) AS n FROM ${t}`).get().n, 5);

  // Transactions: a throwing function rolls back.
  const tx = db.transaction((s, fail) => {
    db.prepare(`INSERT INTO ${t}(s) VALUES (?)`).run(s);
    if (fail) throw new Error("abort");
  });
  tx("in tx", false);
  assert.throws(() => tx("rolled back", true), /abort/);
  assert.deepEqual(db.prepare(`SELECT s FROM ${t} WHERE s IN ('in tx', 'rolled back')`).pluck().all(), ["in tx"]);
  db.close();
});

test("npm libsql and @libsql/client see each other's writes", async () => {
  const c = client();
  const t = table();
  await c.execute(`CREATE TABLE ${t}(v)`);
  await c.execute({ sql: `INSERT INTO ${t} VALUES (?)`, args: [2n ** 62n] });
  const db = new Database(server.url);
  assert.deepEqual(db.prepare(`SELECT v FROM ${t}`).safeIntegers(true).pluck().all(), [2n ** 62n]);
  db.prepare(`INSERT INTO ${t} VALUES (?)`).run("from libsql");
  db.close();
  assert.deepEqual((await rows(c, `SELECT v FROM ${t} ORDER BY rowid`)).map((r) => r.v), [2n ** 62n, "from libsql"]);
  c.close();
});

// Issue 14, bug 1: the server reuses SQLite connections across streams, and
// a new stream must not see another client's last_insert_rowid (sqld opens
// a connection per stream: 0 until the stream inserts).
test("a new stream does not see another stream's last_insert_rowid", async () => {
  const a = client();
  const b = client();
  const t = table();
  await a.execute(`CREATE TABLE ${t}(v)`);
  for (let i = 0; i < 3; i++) await a.execute({ sql: `INSERT INTO ${t} VALUES (?)`, args: [i] });
  const inserted = await a.execute({ sql: `INSERT INTO ${t} VALUES (?)`, args: ["last"] });
  assert.equal(inserted.lastInsertRowid, 4n);
  for (let i = 0; i < 4; i++) {
    const rs = await b.execute("SELECT 1 AS a");
    assert.ok(rs.lastInsertRowid === undefined || rs.lastInsertRowid === 0n, `a new stream saw last_insert_rowid ${rs.lastInsertRowid}`);
  }
  a.close();
  b.close();
});

// Issue 14, bug 2: a pooled connection must not prepare against a schema
// another connection has changed since (SQLite reports "table t has 1
// columns but 2 values were supplied" while preparing, and never re-reads
// the schema for that error).
test("a pooled connection sees the schema another stream changed", async () => {
  const c = hrana.openHttp(server.url);
  const t = table();
  for (let round = 0; round < 3; round++) {
    const s1 = c.openStream();
    await s1.run(`CREATE TABLE ${t}_${round} (number)`);
    await s1.query(`SELECT * FROM ${t}_${round}`);
    const s2 = c.openStream();
    await s2.query("SELECT 1");
    s1.close();
    // The close reaches the server before s2's next request (one client, in
    // order): s1's connection, with the one-column table in its schema
    // cache, goes back to the pool.
    await c.getVersion();
    await s2.run(`DROP TABLE ${t}_${round}`);
    await s2.run(`CREATE TABLE ${t}_${round} (stream, value)`);
    const s3 = c.openStream();
    await s3.run(`INSERT INTO ${t}_${round} VALUES (1, 2)`);
    const rs = await s3.query(`SELECT stream, value FROM ${t}_${round}`);
    assert.deepEqual(rs.rows.map((r) => [r.stream, r.value]), [[1, 2]]);
    s2.close();
    s3.close();
  }
  c.close();
});
