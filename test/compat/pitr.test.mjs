// Point-in-time restore (gen-N/times.log): `replite db fork|restore|backup`
// and the admin API's POST /v1/namespaces/FROM/fork/TO and
// GET /v1/namespaces/NAME/backup, against a real `replite serve`.
//
// 1. Restores at many recorded times (and by frame, and at a commit's own
//    timestamp) across rollovers give exactly the state of that time.
// 2. Forks (now and past) while a writer writes: a new database id, the base
//    hard-linked, fully separate from the source for every kind of client.
// 3. Backups (now and past) are plain, intact SQLite files of that state;
//    failed ones leave no file.
// 4. Retention: times before it are refused naming the oldest time; a fork
//    outlives its source generation's files.
// 5. Commit times survive a clean stop and a kill -9.
// 6. kill -9 during forks, restores and deletes of a ~30 MB database: every
//    database whole or absent after the restart, no leftovers.
// 7. Bad requests are refused with their documented status and code and
//    change nothing.

// better-sqlite3 reads SQLITE_USE_URI once, when its addon is loaded.
process.env.SQLITE_USE_URI = "1";

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { createClient } from "@libsql/client";
import Libsql from "libsql";
import { REPLITE_BIN, freePort, startAdminServer, makeAuth, tempDir, sleep } from "./harness.mjs";

const { default: Database } = await import("better-sqlite3");
const EXTENSION = process.env.REPLITE_EXTENSION ?? join(dirname(REPLITE_BIN), "libreplite.so");

const cleanups = [];
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

// --- fixtures (the patterns of databases.test.mjs) ---


// A primary with an admin listener; stopped (cleanly) after the file.
async function primary(opts = {}) {
  const server = await startAdminServer(opts);
  cleanups.push(() => (server.child.exitCode === null && server.child.signalCode === null ? server.stop() : undefined));
  return server;
}

// `replite db ...` against server's admin listener, asynchronously (so that
// writers in this process keep running meanwhile).
function db(server, ...args) {
  return new Promise((res) => {
    const child = spawn(REPLITE_BIN, ["db", ...args, "--admin", server.admin], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...(server.adminEnv ?? {}) },
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("close", (status, signal) => res({ status, signal, out, err }));
  });
}

// An admin request; with the server's admin token unless opts.token is
// given (undefined: none).
async function admin(server, method, path, opts = {}) {
  const { body } = opts;
  const token = "token" in opts ? opts.token : server.adminToken;
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(server.admin + path, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const buf = Buffer.from(await res.arrayBuffer());
  // (A backup's bytes are not text.)
  const text = res.headers.get("content-type") === "application/vnd.sqlite3" ? "" : buf.toString("utf8");
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, json, text, buf, headers: res.headers };
}

// A fork that must succeed: its 200 answer.
async function fork(server, from, to, body) {
  const a = await admin(server, "POST", `/v1/namespaces/${from}/fork/${to}`, { body });
  assert.equal(a.status, 200, `fork ${from} -> ${to} ${JSON.stringify(body)}: ${a.text}`);
  assert.equal(a.json.name, to);
  assert.equal(a.json.from, from);
  assert.match(a.json.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  return a.json;
}

async function list(server) {
  const a = await admin(server, "GET", "/v1/namespaces");
  assert.equal(a.status, 200, a.text);
  return a.json.namespaces;
}

const iso = (ms) => new Date(ms).toISOString();
const ms = (text) => Date.parse(text);

// Two answers naming the same state: the same commit time, and the same
// generation and frame, or, when a rollover came in between, the later
// generation's base (frame 0: the state of the earlier one's last commit).
function assertSameState(a, b, what = "") {
  assert.equal(a.timestamp, b.timestamp, what);
  const [x, y] = a.generation <= b.generation ? [a, b] : [b, a];
  if (x.generation === y.generation) assert.equal(a.frame, b.frame, what);
  else assert.equal(y.frame, 0, `${what}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
}

// "created database TO from FROM as of TS (generation G, frame F)"
function parseFork(out) {
  const m = /^created database (\S+) from (\S+) as of (\S+) \(generation (\d+), frame (\d+)\)$/m.exec(out);
  assert.ok(m, `unexpected output: ${out}`);
  return { name: m[1], from: m[2], timestamp: m[3], generation: Number(m[4]), frame: Number(m[5]) };
}

function clientOf(server, name) {
  const c = createClient({ url: name === "default" ? server.url : `${server.url}/db/${name}/` });
  cleanups.push(() => c.close());
  return c;
}

function dbDir(server, name) {
  return name === "default" ? server.dataDir : join(server.dataDir, "databases", name);
}
const genDir = (server, name, g) => join(dbDir(server, name), `gen-${String(g).padStart(8, "0")}`);
const baseOf = (server, name, g) => statSync(join(genDir(server, name, g), "base.db"));

// The whole content of a database: {table: [[column values...] by rowid]},
// blobs as x'HEX' so that the SQLite shell's JSON output compares too.
async function dump(query) {
  const tables = (await query("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")).map((r) => r[0]);
  const out = {};
  for (const t of tables) {
    const cols = (await query(`SELECT name FROM pragma_table_info('${t}') ORDER BY cid`)).map((r) => r[0]);
    const sel = cols.map((c) => `CASE WHEN typeof("${c}") = 'blob' THEN 'x''' || hex("${c}") || '''' ELSE "${c}" END`).join(", ");
    out[t] = await query(`SELECT ${sel} FROM "${t}" ORDER BY rowid`);
  }
  return out;
}

const hranaQuery = (client) => async (sql) => {
  const rs = await client.execute(sql);
  return rs.rows.map((row) => rs.columns.map((_, i) => row[i]));
};

// The SQLite shell on a file: rows of a query (JSON mode).
function shell(file, sql, json = true) {
  const r = spawnSync("sqlite3", [...(json ? ["-json"] : []), file, sql], { encoding: "utf8" });
  assert.equal(r.status, 0, `sqlite3 ${file} ${sql}: ${r.stderr}`);
  return r.stdout;
}
const shellQuery = (file) => async (sql) => {
  const out = shell(file, sql).trim();
  return out === "" ? [] : JSON.parse(out).map((o) => Object.values(o));
};
const dumpFile = (file) => dump(shellQuery(file));
const dumpDb = (server, name) => {
  const c = createClient({ url: name === "default" ? server.url : `${server.url}/db/${name}/` });
  return dump(hranaQuery(c)).finally(() => c.close());
};

// PRAGMA integrity_check and journal_mode of a file, by the SQLite shell.
function checkFile(file) {
  return shell(file, "PRAGMA integrity_check; PRAGMA journal_mode;", false).trim().split("\n");
}

async function waitFor(what, fn, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// A writer inserting rows (id i, 'v' || i) one commit at a time into
// table t(id INTEGER PRIMARY KEY, v TEXT, pad TEXT); after each commit, a
// mark {n, T}: T is strictly after commit n's answer and strictly before
// commit n+1's request, so the state as of T is rows 1..n.
function startWriter(client, { pad = 700, gap = 6, first = 1 } = {}) {
  const w = { n: first - 1, sent: first - 1, marks: [], stop: false, error: null };
  w.done = (async () => {
    try {
      for (let i = first; !w.stop; i++) {
        w.sent = i;
        await client.execute({ sql: "INSERT INTO t(id, v, pad) VALUES (?, ?, ?)", args: [i, `v${i}`, String(i).padEnd(pad, "p")] });
        w.n = i;
        await sleep(gap);
        w.marks.push({ n: i, T: Date.now() });
        await sleep(gap);
      }
    } catch (e) {
      w.error = e;
    }
  })();
  w.until = async (n) => {
    while (w.n < n) {
      if (w.error) throw w.error;
      await sleep(5);
    }
  };
  w.finish = async () => {
    w.stop = true;
    await w.done;
    if (w.error) throw w.error;
  };
  return w;
}
const rowsUpTo = (n, from = 1) => Array.from({ length: n - from + 1 }, (_, k) => [from + k, `v${from + k}`]);
async function idRows(client) {
  return (await hranaQuery(client)("SELECT id, v FROM t ORDER BY id"));
}
// Rows 1..m for some m in [lo, hi]: returns m.
function assertPrefix(rows, lo, hi, what) {
  const m = rows.length;
  assert.ok(m >= lo && m <= hi, `${what}: ${m} rows, expected ${lo}..${hi}`);
  assert.deepEqual(rows, rowsUpTo(m), what);
  return m;
}

function replica(url) {
  const dir = tempDir("replite-pitr-replica-");
  const probe = new Database(":memory:");
  probe.loadExtension(EXTENSION);
  probe.close();
  const r = new Database(`file:${join(dir.path, "app.db")}?vfs=replite&sync_url=${url}&sync_interval=0`);
  cleanups.push(() => r.close());
  return r;
}

// Every file under dir, relative, sorted, with the sizes of the store's
// own files (the live database's files change size when the server
// checkpoints, and the maintenance thread makes base.db.zst in the
// background, through base.db.zst.tmp: names only, and neither of those).
function tree(dir) {
  const out = [];
  const walk = (d, rel) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(join(d, e.name), r);
      else if (/\/live\.db/.test(r)) out.push(r);
      else if (!/\.zst(\.tmp)?$/.test(r)) out.push(`${r} ${statSync(join(d, e.name)).size}`);
    }
  };
  walk(dir, "");
  return out.sort();
}

// --- 1 ---------------------------------------------------------------------

// One transaction of the history of database "hist" (step i), applied to
// the model too: inserts, updates, deletes, a table created and dropped.
function histStep(i, m) {
  const stmts = [];
  const run = (sql, args = []) => stmts.push({ sql, args });
  if (i === 1) {
    run("CREATE TABLE a(id INTEGER PRIMARY KEY, name TEXT, pad TEXT, b BLOB, r REAL)");
    m.a = new Map();
    return stmts;
  }
  const row = [i, `n${i}`, String(i).padEnd(900 + (i % 5) * 300, "-"), Buffer.from([i & 255, (i * 7) & 255, 0, 255]), i / 4];
  run("INSERT INTO a VALUES (?, ?, ?, ?, ?)", row);
  m.a.set(i, row);
  if (i % 5 === 0 && m.a.has(i - 3)) {
    run("UPDATE a SET name = ?, r = NULL WHERE id = ?", [`u${i}`, i - 3]);
    const r = [...m.a.get(i - 3)];
    r[1] = `u${i}`;
    r[4] = null;
    m.a.set(i - 3, r);
  }
  if (i % 7 === 0) {
    run("DELETE FROM a WHERE id = ?", [i - 5]);
    m.a.delete(i - 5);
  }
  if (i === 6) {
    run("CREATE TABLE b(id INTEGER PRIMARY KEY, v INTEGER)");
    m.b = new Map();
  }
  if (m.b && i % 3 === 0) {
    run("INSERT INTO b VALUES (?, ?)", [i, i * i]);
    m.b.set(i, [i, i * i]);
  }
  if (i === 20) {
    run("DROP TABLE b");
    delete m.b;
  }
  if (i === 24) {
    run("CREATE TABLE c(id INTEGER PRIMARY KEY, t TEXT)");
    run("INSERT INTO c VALUES (1, 'c1')");
    m.c = new Map([[1, [1, "c1"]]]);
  }
  return stmts;
}

function snapshot(model) {
  const out = {};
  for (const [t, rows] of Object.entries(model))
    out[t] = [...rows.keys()].sort((x, y) => x - y).map((k) => rows.get(k).map((v) => (Buffer.isBuffer(v) ? `x'${v.toString("hex").toUpperCase()}'` : v)));
  return out;
}

test("pitr: restores as of many recorded times, by frame and at a commit's own timestamp give exactly that state, across rollovers", async () => {
  const server = await primary({ args: ["--generation-frames", "20"] });
  let r = await db(server, "create", "hist");
  assert.equal(r.status, 0, r.err);
  const hist = clientOf(server, "hist");
  const def = clientOf(server, "default");
  const model = { hist: {}, def: {} };
  // marks[k]: a time after the k-th commit (of either database) and before
  // the next one, with both databases' states then.
  await sleep(15);
  const marks = [{ T: Date.now(), db: null, hist: {}, def: {} }];
  await sleep(15);
  const mark = async (which) => {
    await sleep(12);
    marks.push({ T: Date.now(), db: which, hist: snapshot(model.hist), def: snapshot(model.def) });
    await sleep(12);
  };
  let generation = 1;
  for (let i = 1; i <= 200 && (i < 36 || generation < 4); i++) {
    await hist.batch(histStep(i, model.hist), "write");
    await mark("hist");
    if (i % 4 === 2) {
      const k = (i + 2) / 4;
      const stmts = [];
      if (k === 1) {
        stmts.push("CREATE TABLE d(id INTEGER PRIMARY KEY, v TEXT)");
        model.def.d = new Map();
      }
      stmts.push({ sql: "INSERT INTO d VALUES (?, ?)", args: [k, `d${k}`] });
      model.def.d.set(k, [k, `d${k}`]);
      if (k % 3 === 0) {
        stmts.push({ sql: "DELETE FROM d WHERE id = ?", args: [k - 1] });
        model.def.d.delete(k - 1);
      }
      await def.batch(stmts, "write");
      await mark("default");
    }
    if (i % 5 === 0) generation = (await list(server)).find((n) => n.name === "hist").generation;
  }
  assert.ok(generation >= 4, `only ${generation} generations`);
  // The live databases are the models (so that the models are right).
  assert.deepEqual(await dumpDb(server, "hist"), snapshot(model.hist));
  assert.deepEqual(await dumpDb(server, "default"), snapshot(model.def));

  // Restores by time through the CLI, in three spellings of the time (UTC
  // with Z, naive = UTC, an offset).
  const spell = (T, k) => {
    if (k % 3 === 1) return iso(T).slice(0, -1);
    if (k % 3 === 2) return iso(T + 5.5 * 3600000).replace("Z", "+05:30");
    return iso(T);
  };
  const n = marks.length;
  const picks = [0, 1, 2, Math.floor(n / 5), Math.floor(n / 3), Math.floor(n / 2), Math.floor((2 * n) / 3), Math.floor((5 * n) / 6), n - 2, n - 1];
  const gens = new Set();
  for (const [k, j] of picks.entries()) {
    const name = `r${k}`;
    r = await db(server, "restore", "hist", "--at", spell(marks[j].T, k), "--to", name);
    assert.equal(r.status, 0, `restore as of mark ${j}: ${r.err}`);
    const f = parseFork(r.out);
    assert.equal(f.name, name);
    assert.equal(f.from, "hist");
    gens.add(f.generation);
    // The state's commit time is at or before the time asked for.
    assert.ok(ms(f.timestamp) <= marks[j].T, `${f.timestamp} after ${iso(marks[j].T)}`);
    assert.deepEqual(await dumpDb(server, name), marks[j].hist, `hist as of mark ${j} (${iso(marks[j].T)})`);
  }
  // (r0, as of mark 0, before the first commit: the database as created,
  // no tables.)
  assert.ok(gens.size >= 3, `the restores span generations ${[...gens]}`);

  // The default database, by its name "default".
  for (const [k, j] of [1, Math.floor(n / 2), n - 1].entries()) {
    r = await db(server, "restore", "default", "--at", iso(marks[j].T), "--to", `d${k}`);
    assert.equal(r.status, 0, r.err);
    assert.deepEqual(await dumpDb(server, `d${k}`), marks[j].def, `default as of mark ${j}`);
  }

  // By frame, and at the exact commit time: a commit of hist in a later
  // generation (mark j follows it).
  const j = marks.findLastIndex((m, x) => m.db === "hist" && x > n / 2 && marks[x - 1].db === "hist");
  const ans = await fork(server, "hist", "fk", { timestamp: iso(marks[j].T) });
  assert.ok(ms(ans.timestamp) > marks[j - 1].T && ms(ans.timestamp) <= marks[j].T, `commit time ${ans.timestamp} between ${iso(marks[j - 1].T)} and ${iso(marks[j].T)}`);
  assert.ok(ans.generation >= 2);
  r = await db(server, "restore", "hist", "--at", `${ans.generation}:${ans.frame}`, "--to", "byframe");
  assert.equal(r.status, 0, r.err);
  assert.deepEqual(parseFork(r.out), { name: "byframe", from: "hist", timestamp: ans.timestamp, generation: ans.generation, frame: ans.frame });
  assert.deepEqual(await dumpDb(server, "byframe"), marks[j].hist);
  assert.deepEqual(await dumpDb(server, "fk"), marks[j].hist);
  r = await db(server, "restore", "hist", "--at", ans.timestamp, "--to", "exact");
  assert.equal(r.status, 0, r.err);
  assertSameState(parseFork(r.out), ans);
  assert.deepEqual(await dumpDb(server, "exact"), marks[j].hist, "as of a commit's own time: that commit included");
  r = await db(server, "restore", "hist", "--at", iso(ms(ans.timestamp) - 1), "--to", "justbefore");
  assert.equal(r.status, 0, r.err);
  assert.ok(parseFork(r.out).frame < ans.frame || parseFork(r.out).generation < ans.generation);
  assert.deepEqual(await dumpDb(server, "justbefore"), marks[j - 1].hist, "a millisecond before a commit: without it");
  assert.notDeepEqual(marks[j - 1].hist, marks[j].hist);

  // Frame 0 of a later generation: its base, the state of the previous
  // generation's last commit (whose time it carries).
  const base = await fork(server, "hist", "gbase", { frame: "3:0" });
  assert.deepEqual([base.generation, base.frame], [3, 0]);
  const k3 = marks.findIndex((m) => m.T >= ms(base.timestamp));
  assert.ok(k3 > 0 && marks[k3 - 1].T < ms(base.timestamp));
  assert.deepEqual(await dumpDb(server, "gbase"), marks[k3].hist);
  // The same state by time names the same commit time.
  const again = await fork(server, "hist", "gbase2", { timestamp: base.timestamp });
  assert.equal(again.timestamp, base.timestamp);
  assert.deepEqual(await dumpDb(server, "gbase2"), marks[k3].hist);
});

// --- 2 ---------------------------------------------------------------------

test("pitr: forks now and in the past while a writer writes are new databases (own id, shared base inode) kept apart from the source for every client", async () => {
  const server = await primary({ args: ["--generation-frames", "30"] });
  assert.equal((await db(server, "create", "src")).status, 0);
  const src = clientOf(server, "src");
  await src.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, pad TEXT)");
  const rep = replica(`${server.url}/db/src`);
  const w = startWriter(src);
  const synced = [];
  try {
    await w.until(15);
    // The replite replica of the source follows while forks are made.
    rep.prepare("SELECT replite_sync()").get();
    synced.push(rep.prepare("SELECT count(*) AS n FROM t").get().n);
    const past = w.marks[9];
    const pastFork = await fork(server, "src", "past", { timestamp: iso(past.T) });
    const loNow = w.n;
    const nowCli = await db(server, "fork", "src", "now");
    const hiNow = w.sent;
    assert.equal(nowCli.status, 0, nowCli.err);
    const nowFork = parseFork(nowCli.out);
    rep.prepare("SELECT replite_sync()").get();
    synced.push(rep.prepare("SELECT count(*) AS n FROM t").get().n);
    const lo2 = w.n;
    const now2 = await fork(server, "src", "now2");
    const hi2 = w.sent;
    await w.until(w.n + 10);
    await waitFor("a rollover of src", async () => (await list(server)).find((x) => x.name === "src").generation >= 2);
    await w.finish();

    // Contents: past = rows 1..n of its mark; now = a prefix between what
    // was acknowledged before the request and what was sent by its answer.
    assert.deepEqual(await idRows(clientOf(server, "past")), rowsUpTo(past.n));
    const mNow = assertPrefix(await idRows(clientOf(server, "now")), loNow, hiNow, "fork now");
    const mNow2 = assertPrefix(await idRows(clientOf(server, "now2")), lo2, hi2, "fork now2");
    assert.ok(mNow2 >= mNow);
    assert.ok(w.n > mNow2 + 5, "the writer went on after the forks");

    // Identity: new ids; generation 1 holding the state's frames (a fork
    // holding --generation-frames frames or more may have rolled over to
    // its generation 2 since).
    const ns = await list(server);
    const byName = Object.fromEntries(ns.map((x) => [x.name, x]));
    const ids = ["default", "src", "past", "now", "now2"].map((x) => byName[x].database_id);
    assert.equal(new Set(ids).size, 5, `database ids ${ids}`);
    for (const [name, a] of [["past", pastFork], ["now", nowFork], ["now2", now2]]) {
      if (byName[name].generation === 1) assert.equal(byName[name].frame_no, a.frame, name);
      else assert.ok(a.frame >= 30 && byName[name].generation === 2, `${name}: ${JSON.stringify(byName[name])}`);
      const mine = baseOf(server, name, 1);
      const theirs = baseOf(server, "src", a.generation);
      assert.equal(mine.ino, theirs.ino, `${name}'s base.db is the source generation ${a.generation}'s`);
      assert.ok(mine.nlink >= 2);
      // The fork's state is the source's state it names (backups of each:
      // the fork now, and the fork's own 1:F).
      const sb = await admin(server, "GET", `/v1/namespaces/src/backup?frame=${a.generation}:${a.frame}`);
      assert.equal(sb.status, 200, sb.text);
      assert.equal(sb.headers.get("x-replite-timestamp"), a.timestamp);
      for (const q of ["", `?frame=1:${a.frame}`]) {
        const fb = await admin(server, "GET", `/v1/namespaces/${name}/backup${q}`);
        assert.equal(fb.status, 200, fb.text);
        assert.ok(fb.buf.equals(sb.buf), `${name}${q} is the state ${a.generation}:${a.frame} of src`);
      }
      assert.equal((await admin(server, "GET", `/v1/namespaces/${name}/backup?frame=1:${a.frame}`)).headers.get("x-replite-timestamp"), a.timestamp);
    }
    assert.ok(byName.src.generation >= 2, "the source rolled over");
    // A fork of a whole ended generation (its last commit: more frames than
    // --generation-frames) rolls over itself, and is still that state.
    const logSize = statSync(join(genDir(server, "src", 1), "frames.log")).size;
    const last = (logSize - 32) / (24 + 4096);
    assert.equal((await admin(server, "GET", `/v1/namespaces/src/backup?frame=1:${last + 1}`)).status, 400);
    const whole = await fork(server, "src", "whole", { frame: `1:${last}` });
    assert.ok(last >= 30, `generation 1 ends at frame ${last}`);
    await waitFor("the fork's rollover", async () => (await list(server)).find((x) => x.name === "whole").generation === 2);
    const wholeNow = await admin(server, "GET", "/v1/namespaces/whole/backup");
    assert.equal(wholeNow.headers.get("x-replite-state"), "2:0");
    assert.equal(wholeNow.headers.get("x-replite-timestamp"), whole.timestamp);
    assert.ok(wholeNow.buf.equals((await admin(server, "GET", `/v1/namespaces/src/backup?frame=1:${last}`)).buf));
    assert.equal((await clientOf(server, "whole").execute("PRAGMA integrity_check")).rows[0][0], "ok");

    // Writes to a fork stay there; writes to the source stay there.
    const f = clientOf(server, "now");
    await f.execute("INSERT INTO t(id, v) VALUES (100000, 'fork-only')");
    await src.execute("INSERT INTO t(id, v) VALUES (200000, 'src-after')");
    rep.prepare("INSERT INTO t(id, v) VALUES (300000, 'replica-write')").run();
    const srcRows = await idRows(src);
    assert.deepEqual(srcRows, [...rowsUpTo(w.n), [200000, "src-after"], [300000, "replica-write"]]);
    assert.deepEqual(await idRows(f), [...rowsUpTo(mNow), [100000, "fork-only"]]);
    assert.deepEqual(await idRows(clientOf(server, "past")), rowsUpTo(past.n));

    // The replica of the source: all of the source, none of the fork.
    rep.prepare("SELECT replite_sync()").get();
    assert.deepEqual(rep.prepare("SELECT id, v FROM t ORDER BY id").raw().all(), srcRows);
    assert.ok(synced[0] >= 15 && synced[1] >= synced[0], `replica counts ${synced}`);

    // An npm libsql embedded replica of the fork reads it and writes to it.
    const lib = new Libsql(join(tempDir("replite-pitr-libsql-").path, "l.db"), { syncUrl: `${server.url}/db/now/` });
    cleanups.push(() => lib.close());
    lib.sync();
    assert.deepEqual(lib.prepare("SELECT id, v FROM t ORDER BY id").raw().all(), [...rowsUpTo(mNow), [100000, "fork-only"]]);
    lib.exec("INSERT INTO t(id, v) VALUES (100001, 'libsql-on-fork')");
    lib.sync();
    assert.equal(lib.prepare("SELECT count(*) FROM t WHERE v = 'libsql-on-fork'").raw().get()[0], 1);
    assert.deepEqual((await idRows(f)).slice(-2), [[100000, "fork-only"], [100001, "libsql-on-fork"]]);
    // And a replite replica of the fork pushes to it (the fork's page map,
    // which its open skips while it shares its base, is built for it).
    const frep = replica(`${server.url}/db/now`);
    frep.prepare("INSERT INTO t(id, v) VALUES (100002, 'replite-on-fork')").run();
    assert.deepEqual((await idRows(f)).at(-1), [100002, "replite-on-fork"]);
    assert.equal(frep.prepare("PRAGMA integrity_check").get().integrity_check, "ok");
    assert.deepEqual(await idRows(src), srcRows);
    rep.prepare("SELECT replite_sync()").get();
    assert.equal(rep.prepare("SELECT count(*) AS n FROM t WHERE id >= 100000 AND id < 200000").get().n, 0);
    assert.equal(rep.prepare("PRAGMA integrity_check").get().integrity_check, "ok");

    // A transaction open on the source is not in a fork made meanwhile.
    const tx = await src.transaction("write");
    await tx.execute("INSERT INTO t(id, v) VALUES (400000, 'uncommitted')");
    const during = await fork(server, "src", "during");
    await tx.commit();
    assert.deepEqual((await idRows(src)).at(-1), [400000, "uncommitted"]);
    assert.deepEqual(await idRows(clientOf(server, "during")), srcRows);
  } finally {
    w.stop = true;
    await w.done;
  }
});

// --- 3 ---------------------------------------------------------------------

test("pitr: backups now and in the past are intact rollback-journal SQLite files of that state; failed ones leave no file", async () => {
  const server = await primary({ args: ["--generation-frames", "40"] });
  assert.equal((await db(server, "create", "bk")).status, 0);
  const c = clientOf(server, "bk");
  await c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, pad TEXT)");
  await clientOf(server, "default").batch(["CREATE TABLE d(x)", "INSERT INTO d VALUES ('root')"], "write");
  const dir = tempDir("replite-pitr-backup-");
  const w = startWriter(c);
  let pastOut, pastMark, nowOut, lo, hi;
  try {
    await w.until(30);
    await waitFor("a rollover of bk", async () => (await list(server)).find((x) => x.name === "bk").generation >= 2);
    pastMark = w.marks[12];
    const pastFile = dir.file("past.db");
    let r = await db(server, "backup", "bk", "--out", pastFile, "--at", iso(pastMark.T));
    assert.equal(r.status, 0, r.err);
    pastOut = r.out;
    lo = w.n;
    r = await db(server, "backup", "bk", "--out", dir.file("now.db"));
    hi = w.sent;
    assert.equal(r.status, 0, r.err);
    nowOut = r.out;
    await w.until(w.n + 5);
  } finally {
    await w.finish();
  }
  const parse = (out, file) => {
    const m = /^wrote (\S+): database bk as of (\S+) \(state (\d+):(\d+), (\d+) pages\)$/m.exec(out);
    assert.ok(m, out);
    assert.equal(m[1], file);
    return { timestamp: m[2], generation: Number(m[3]), frame: Number(m[4]), pages: Number(m[5]) };
  };
  const past = parse(pastOut, dir.file("past.db"));
  const now = parse(nowOut, dir.file("now.db"));
  for (const [file, info] of [[dir.file("past.db"), past], [dir.file("now.db"), now]]) {
    assert.equal(statSync(file).size, info.pages * 4096);
    assert.ok(!existsSync(`${file}.tmp`));
    assert.deepEqual(checkFile(file), ["ok", "delete"], file);
    assert.ok(!existsSync(`${file}-wal`));
  }
  assert.ok(ms(past.timestamp) <= pastMark.T && ms(past.timestamp) > w.marks[11].T);
  assert.deepEqual((await dumpFile(dir.file("past.db"))).t, rowsUpTo(pastMark.n).map(([id, v]) => [id, v, String(id).padEnd(700, "p")]));
  assert.deepEqual(Object.keys(await dumpFile(dir.file("past.db"))), ["t"]);
  const nowRows = (await shellQuery(dir.file("now.db"))("SELECT id, v FROM t ORDER BY id"));
  assertPrefix(nowRows, lo, hi, "backup now");
  assert.ok(now.generation > past.generation || now.frame > past.frame);
  assert.ok(now.generation >= 2, "the writes crossed a rollover");

  // The admin API: the same bytes for the same state, by frame and by
  // time, with the state in headers.
  const byFrame = await admin(server, "GET", `/v1/namespaces/bk/backup?frame=${past.generation}:${past.frame}`);
  assert.equal(byFrame.status, 200, byFrame.text);
  assert.equal(byFrame.headers.get("content-type"), "application/vnd.sqlite3");
  assert.equal(byFrame.headers.get("x-replite-state"), `${past.generation}:${past.frame}`);
  assert.equal(byFrame.headers.get("x-replite-timestamp"), past.timestamp);
  assert.equal(Number(byFrame.headers.get("x-replite-pages")), past.pages);
  assert.ok(byFrame.buf.equals(readFileSync(dir.file("past.db"))));
  const byTime = await admin(server, "GET", `/v1/namespaces/bk/backup?timestamp=${encodeURIComponent(past.timestamp)}`);
  assert.equal(byTime.headers.get("x-replite-state"), `${past.generation}:${past.frame}`);
  assert.ok(byTime.buf.equals(byFrame.buf));
  // The time with an offset, in the query string (a '+').
  const offset = iso(ms(past.timestamp) + 3600000).replace("Z", "+01:00");
  let r = await db(server, "backup", "bk", "--out", dir.file("offset.db"), "--at", offset);
  assert.equal(r.status, 0, r.err);
  assert.equal(parse(r.out, dir.file("offset.db")).frame, past.frame);
  assert.ok(readFileSync(dir.file("offset.db")).equals(byFrame.buf));
  // The default database, by name.
  r = await db(server, "backup", "default", "--out", dir.file("root.db"));
  assert.equal(r.status, 0, r.err);
  assert.deepEqual(checkFile(dir.file("root.db")), ["ok", "delete"]);
  assert.deepEqual(await dumpFile(dir.file("root.db")), { d: [["root"]] });

  // Failures: exit 1, the cause on stderr, neither FILE nor FILE.tmp.
  const failures = [
    [["backup", "nope", "--out", dir.file("f1.db")], /HTTP 404.*no database is named "nope"/],
    [["backup", "bk", "--out", dir.file("f2.db"), "--at", "2001-01-01T00:00:00Z"], /HTTP 400.*outside retention/],
    [["backup", "bk", "--out", dir.file("f3.db"), "--at", iso(Date.now() + 3600000)], /HTTP 400.*in the future/],
    [["backup", "bk", "--out", dir.file("f4.db"), "--at", "yesterday"], /HTTP 400.*RFC 3339/],
    [["backup", "bk", "--out", dir.file("f5.db"), "--at", "99:0"], /HTTP 400.*not retained/],
    [["backup", "bk", "--out", dir.file("f6.db"), "--at", `${now.generation}:${now.frame + 100000}`], /HTTP 400.*not a commit/],
  ];
  for (const [args, message] of failures) {
    r = await db(server, ...args);
    assert.equal(r.status, 1, `${args}: ${r.out} ${r.err}`);
    assert.match(r.err, message, args.join(" "));
    assert.ok(!existsSync(args[3]), `${args[3]} exists`);
    assert.ok(!existsSync(`${args[3]}.tmp`), `${args[3]}.tmp exists`);
  }
  // A failed backup onto an existing file leaves it as it was.
  const before = readFileSync(dir.file("past.db"));
  r = await db(server, "backup", "bk", "--out", dir.file("past.db"), "--at", "2001-01-01T00:00:00Z");
  assert.equal(r.status, 1);
  assert.ok(readFileSync(dir.file("past.db")).equals(before));
  assert.ok(!existsSync(dir.file("past.db.tmp")));
  // Without --out: usage error.
  r = await db(server, "backup", "bk");
  assert.equal(r.status, 2);
  assert.match(r.err, /--out/);
});

// --- 4 ---------------------------------------------------------------------

test("pitr: retention drops old states (refused naming the oldest time); a fork outlives its source generation's files", async () => {
  const server = await primary({ args: ["--retention", "1", "--generation-frames", "20"] });
  assert.equal((await db(server, "create", "r")).status, 0);
  const c = clientOf(server, "r");
  await c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, pad TEXT)");
  let w = startWriter(c, { pad: 1500 });
  await w.until(3);
  await w.finish();
  const early = w.marks[1];
  // A fork while generation 1 is still there (it is the current one).
  const keep = await fork(server, "r", "keep", { timestamp: iso(early.T) });
  assert.equal(keep.generation, 1);
  const keepBase = baseOf(server, "keep", 1);
  assert.equal(keepBase.ino, baseOf(server, "r", 1).ino);
  // Three names: r's, keep's, and keep's live.base (its live database is
  // sparse over the same file).
  assert.equal(keepBase.nlink, 3);
  // Roll over several times, then let the ended generations expire.
  w = startWriter(c, { pad: 1500, first: w.n + 1 });
  try {
    await waitFor("generation 5 of r", async () => (await list(server)).find((x) => x.name === "r").generation >= 5);
  } finally {
    await w.finish();
  }
  const final = w.n;
  const gens = () => readdirSync(dbDir(server, "r")).filter((x) => x.startsWith("gen-"));
  await waitFor("the ended generations of r to expire", () => gens().length === 1);
  const info = (await list(server)).find((x) => x.name === "r");
  const current = info.generation;
  assert.ok(current >= 5);
  assert.deepEqual(gens(), [`gen-${String(current).padStart(8, "0")}`]);
  const since = info.restorable_since;
  assert.ok(ms(since) > early.T, `restorable since ${since}`);
  // `replite db list` shows it.
  const listed = await db(server, "list");
  assert.equal(listed.status, 0, listed.err);
  assert.match(listed.out, /^NAME\s+DATABASE ID\s+GENERATION\s+FRAME\s+RESTORABLE SINCE$/m);
  assert.match(listed.out, new RegExp(`^r\\s+${info.database_id}\\s+${current}\\s+${info.frame_no}\\s+${since.replace(/\./g, "\\.")}$`, "m"));

  // Before the oldest state: refused, naming it.
  let a = await admin(server, "POST", "/v1/namespaces/r/fork/late", { body: { timestamp: iso(early.T) } });
  assert.equal(a.status, 400, a.text);
  assert.equal(a.json.code, "POINT_NOT_AVAILABLE");
  assert.match(a.json.message, /outside retention/);
  assert.ok(a.json.message.includes(`the oldest state this database keeps is from ${since}`), a.json.message);
  a = await admin(server, "POST", "/v1/namespaces/r/fork/late", { body: { timestamp: iso(ms(since) - 1) } });
  assert.equal(a.status, 400, a.text);
  assert.equal(a.json.code, "POINT_NOT_AVAILABLE");
  a = await admin(server, "POST", "/v1/namespaces/r/fork/late", { body: { frame: "1:0" } });
  assert.equal(a.status, 400);
  assert.equal(a.json.code, "POINT_NOT_AVAILABLE");
  assert.match(a.json.message, /generation 1 is not retained/);
  let r = await db(server, "restore", "r", "--at", iso(early.T), "--to", "late");
  assert.equal(r.status, 1);
  assert.match(r.err, /HTTP 400/);
  assert.ok(r.err.includes(`outside retention: the oldest state this database keeps is from ${since}`), r.err);
  const tmp = tempDir("replite-pitr-ret-");
  r = await db(server, "backup", "r", "--out", tmp.file("old.db"), "--at", iso(early.T));
  assert.equal(r.status, 1);
  assert.ok(!existsSync(tmp.file("old.db")) && !existsSync(tmp.file("old.db.tmp")));
  assert.ok(!(await list(server)).some((x) => x.name === "late"));
  assert.ok(!existsSync(join(server.dataDir, "databases", "late")));

  // At the oldest state itself: the base of the current generation.
  const oldest = await fork(server, "r", "oldest", { timestamp: since });
  assert.deepEqual([oldest.generation, oldest.frame, oldest.timestamp], [current, 0, since]);
  const k = w.marks.findIndex((m) => m.T >= ms(since));
  assert.deepEqual(await idRows(clientOf(server, "oldest")), rowsUpTo(w.marks[k].n));
  assert.deepEqual(await idRows(c), rowsUpTo(final));

  // The fork made before the expiry: its base outlived the source's name.
  assert.ok(!existsSync(genDir(server, "r", 1)));
  const now = baseOf(server, "keep", 1);
  assert.equal(now.ino, keepBase.ino);
  assert.equal(now.nlink, 2); // keep's base.db and live.base
  const kc = clientOf(server, "keep");
  assert.deepEqual(await idRows(kc), rowsUpTo(early.n));
  assert.equal((await kc.execute("PRAGMA integrity_check")).rows[0][0], "ok");
  r = await db(server, "backup", "keep", "--out", tmp.file("keep.db"));
  assert.equal(r.status, 0, r.err);
  assert.deepEqual(checkFile(tmp.file("keep.db")), ["ok", "delete"]);
  assert.deepEqual(await shellQuery(tmp.file("keep.db"))("SELECT id, v FROM t ORDER BY id"), rowsUpTo(early.n));
  await kc.execute("INSERT INTO t(id, v) VALUES (1000, 'keep')");
  assert.deepEqual((await idRows(kc)).at(-1), [1000, "keep"]);
  // The fork keeps its own history: restorable back to r's creation.
  const keepInfo = (await list(server)).find((x) => x.name === "keep");
  assert.ok(ms(keepInfo.restorable_since) < early.T);
  const back = await fork(server, "keep", "keep-back", { timestamp: iso(early.T) });
  assert.equal(back.timestamp, keep.timestamp);
  assert.deepEqual(await idRows(clientOf(server, "keep-back")), rowsUpTo(early.n));
});

// --- 5 ---------------------------------------------------------------------

test("pitr: commit times survive a clean stop and a kill -9: the same times restore the same states", async () => {
  const dataDir = tempDir("replite-pitr-restart-").path;
  let server = await primary({ dataDir, args: ["--generation-frames", "20"] });
  assert.equal((await db(server, "create", "p")).status, 0);
  let c = clientOf(server, "p");
  await c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, pad TEXT)");
  await clientOf(server, "default").execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, pad TEXT)");
  const checks = []; // {name, T, n, answer}
  const probe = async (srv, name, m) => {
    const a = await fork(srv, name, `x${checks.length}`, { timestamp: iso(m.T) });
    checks.push({ name, T: m.T, n: m.n, answer: a });
  };
  const verify = async (srv, what) => {
    assert.doesNotMatch(srv.stderr, /had no recorded time/, what);
    for (const [k, chk] of checks.entries()) {
      const a = await fork(srv, chk.name, `y${k}-${what}`, { timestamp: iso(chk.T) });
      assert.deepEqual(a.timestamp, chk.answer.timestamp, `${what}: the commit time as of ${iso(chk.T)}`);
      assertSameState(a, chk.answer, what);
      assert.deepEqual(await idRows(clientOf(srv, `y${k}-${what}`)), rowsUpTo(chk.n), `${what}: ${chk.name} as of ${iso(chk.T)}`);
      // The fork made before the restart is still that state.
      assert.deepEqual(await idRows(clientOf(srv, `x${k}`)), rowsUpTo(chk.n), `${what}: x${k}`);
    }
  };
  const round = async (srv, first) => {
    const p = startWriter(clientOf(srv, "p"), { pad: 1200, first: first.p });
    const d = startWriter(clientOf(srv, "default"), { pad: 300, gap: 15, first: first.d });
    await p.until(first.p + 24);
    await p.finish();
    await d.finish();
    for (const i of [0, 7, 15, p.marks.length - 1]) await probe(srv, "p", p.marks[i]);
    for (const i of [0, d.marks.length - 1]) await probe(srv, "default", d.marks[i]);
    return { p: p.n, d: d.n };
  };
  let last = await round(server, { p: 1, d: 1 });
  const sinceOf = async (srv) => (await list(srv)).filter((x) => x.name === "default" || x.name === "p").map((x) => [x.name, x.restorable_since]);
  const since = await sinceOf(server);
  assert.deepEqual(since.map((x) => x[0]), ["default", "p"]);
  assert.ok((await list(server)).find((x) => x.name === "p").generation >= 2);
  await server.stop();
  server = await primary({ dataDir, args: ["--generation-frames", "20"] });
  await verify(server, "stop");
  assert.deepEqual(await sinceOf(server), since);

  last = await round(server, { p: last.p + 1, d: last.d + 1 });
  // A transaction pushed by an offline npm libsql replica (POST /sync, the
  // push log) has its commit time too.
  const off = new Libsql(join(tempDir("replite-pitr-offline-").path, "o.db"), { syncUrl: `${server.url}/db/p/`, offline: true });
  off.sync();
  await sleep(15);
  const beforePush = Date.now();
  await sleep(15);
  off.exec("INSERT INTO t(id, v) VALUES (900001, 'pushed'); INSERT INTO t(id, v) VALUES (900002, 'pushed')");
  off.sync();
  await sleep(15);
  const afterPush = Date.now();
  off.close();
  const pushed = await fork(server, "p", "xpushed", { timestamp: iso(afterPush) });
  assert.ok(ms(pushed.timestamp) > beforePush && ms(pushed.timestamp) <= afterPush, `pushed at ${pushed.timestamp}`);
  await server.kill9();
  server = await primary({ dataDir, args: ["--generation-frames", "20"] });
  await verify(server, "kill");
  assert.deepEqual(await sinceOf(server), since);
  const withPush = [...rowsUpTo(last.p), [900001, "pushed"], [900002, "pushed"]];
  assert.deepEqual(await idRows(clientOf(server, "p")), withPush);
  for (const [name, T, rows] of [["zbefore", beforePush, rowsUpTo(last.p)], ["zafter", afterPush, withPush]]) {
    const a = await fork(server, "p", name, { timestamp: iso(T) });
    if (T === afterPush) assertSameState(a, pushed);
    assert.deepEqual(await idRows(clientOf(server, name)), rows, name);
  }
  assert.deepEqual(await idRows(clientOf(server, "default")), rowsUpTo(last.d));
});

// --- 6 ---------------------------------------------------------------------

test("pitr: kill -9 during forks, restores and deletes of a 30 MB database leaves each database whole (the state it names) or absent", async () => {
  const dataDir = tempDir("replite-pitr-kill-").path;
  const adminPort = await freePort();
  const args = ["--generation-frames", "100000"];
  let server = await primary({ dataDir, adminPort, args });
  const listen = server.url.replace(/^http:\/\//, "");
  assert.equal((await db(server, "create", "big")).status, 0);
  let c = clientOf(server, "big");
  await c.execute("CREATE TABLE b(id INTEGER PRIMARY KEY, v BLOB)");
  const fill = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 100) INSERT INTO b(v) SELECT randomblob(100000) FROM s";
  await c.execute(fill);
  await sleep(10);
  const T1 = Date.now();
  await sleep(10);
  await c.execute(fill);
  await c.execute(fill);
  // The two states forks and restores take, as backups (bytes) and sums.
  const states = new Map();
  for (const q of [`?timestamp=${iso(T1)}`, ""]) {
    const b = await admin(server, "GET", `/v1/namespaces/big/backup${q}`);
    assert.equal(b.status, 200);
    const [g, f] = b.headers.get("x-replite-state").split(":").map(Number);
    assert.equal(g, 1);
    states.set(f, b.buf);
  }
  const [F1, F3] = [...states.keys()];
  assert.ok(states.get(F3).length > 30e6, `${states.get(F3).length} bytes`);
  const summary = async (client) => (await hranaQuery(client)("SELECT count(*), sum(length(v)) FROM b"))[0];
  const expectSummary = { [F1]: [100, 10e6], [F3]: [300, 30e6] };

  // Each round: a fork that completes (answered before the kill), then,
  // at once, deletes of the previous round's databases, a restore (CLI) and
  // a fork by frame, and a kill -9 0-300 ms later (a fork of this size takes
  // longer than that: it is cut at varied stages); in the last round, the
  // kill comes as soon as one of the two is answered (the other one is
  // being built then).
  let previous = [];
  const delays = [0, 75, 150, 225, 300, "first answer"];
  for (const [round, delay] of delays.entries()) {
    const answered = { forks: [], deletes: [] };
    const done = await fork(server, "big", `f${round}`);
    answered.forks.push([`f${round}`, done.frame]);
    let first;
    const firstAnswer = new Promise((res) => (first = res));
    const ops = [
      ...previous.map((name) =>
        admin(server, "DELETE", `/v1/namespaces/${name}`)
          .then((a) => a.status === 200 && answered.deletes.push(name))
          .catch(() => {}),
      ),
      db(server, "restore", "big", "--at", iso(T1), "--to", `rs${round}`).then((r) => {
        if (r.status !== 0) return;
        answered.forks.push([`rs${round}`, parseFork(r.out).frame]);
        first();
      }),
      admin(server, "POST", `/v1/namespaces/big/fork/g${round}`, { body: { frame: `1:${F3}` } })
        .then((a) => {
          if (a.status !== 200) return;
          answered.forks.push([`g${round}`, a.json.frame]);
          first();
        })
        .catch(() => {}),
    ];
    await (typeof delay === "number" ? sleep(delay) : Promise.race([firstAnswer, sleep(10000)]));
    await server.kill9();
    await Promise.all(ops);
    server = await primary({ dataDir, adminPort, listen, args });

    const names = (await list(server)).map((x) => x.name);
    const onDisk = readdirSync(join(dataDir, "databases"));
    assert.deepEqual(onDisk.filter((x) => x.startsWith(".")), [], `round ${round}: leftovers ${onDisk}`);
    assert.deepEqual([...onDisk].sort(), names.filter((x) => x !== "default").sort(), `round ${round}`);
    for (const [name] of answered.forks) assert.ok(names.includes(name), `round ${round}: ${name} was answered but is gone`);
    for (const name of answered.deletes) assert.ok(!names.includes(name), `round ${round}: ${name} was deleted but is back`);
    const frames = new Map(answered.forks);
    const ns = await list(server);
    for (const { name, frame_no, generation } of ns) {
      const cl = clientOf(server, name);
      assert.equal((await cl.execute("PRAGMA integrity_check")).rows[0][0], "ok", `round ${round}: ${name}`);
      if (name === "default") continue;
      // Each fork is one of the two states, exactly.
      assert.equal(generation, 1, name);
      assert.ok(states.has(frame_no), `round ${round}: ${name} at frame ${frame_no}`);
      if (frames.has(name)) assert.equal(frame_no, frames.get(name), name);
      if (name.startsWith("rs")) assert.equal(frame_no, F1, name);
      assert.deepEqual(await summary(cl), expectSummary[frame_no], `round ${round}: ${name}`);
      const b = await admin(server, "GET", `/v1/namespaces/${name}/backup`);
      assert.ok(b.buf.equals(states.get(frame_no)), `round ${round}: ${name} is the state 1:${frame_no} of big`);
    }
    // Next round deletes what this one made (and what its deletes left).
    previous = names.filter((x) => x !== "default" && x !== "big");
  }
  c = clientOf(server, "big");
  assert.deepEqual(await summary(c), [300, 30e6]);
});

// --- 7 ---------------------------------------------------------------------

test("pitr: bad fork and backup requests get their status and code and change nothing", async () => {
  const dir = tempDir("replite-pitr-bad-");
  mkdirSync(join(dir.path, "admin"));
  const adminAuth = makeAuth(join(dir.path, "admin"));
  const user = makeAuth(dir.path);
  const server = await primary({ args: ["--admin-auth-key-file", adminAuth.keyFile, "--auth-jwt-key-file", user.keyFile] });
  const token = adminAuth.token({ a: "rw" });
  server.adminToken = token;
  server.adminEnv = { REPLITE_ADMIN_TOKEN: token };
  for (const name of ["a", "b"]) assert.equal((await db(server, "create", name)).status, 0);
  const c = createClient({ url: `${server.url}/db/a/`, authToken: user.token({ a: "rw" }) });
  cleanups.push(() => c.close());
  await c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
  // One transaction of many frames: its frames before the last are not
  // commits.
  await c.execute({ sql: "INSERT INTO t VALUES (1, ?)", args: ["x".repeat(30000)] });
  const head = (await list(server)).find((x) => x.name === "a").frame_no;
  assert.ok(head >= 5, `head ${head}`);
  await sleep(20);

  const listBefore = await list(server);
  const treeBefore = tree(join(server.dataDir, "databases"));
  const since = listBefore.find((x) => x.name === "a").restorable_since;
  const F = "/v1/namespaces/a/fork/z";
  const cases = [
    ["POST", "/v1/namespaces/nope/fork/z", undefined, 404, "DATABASE_NOT_FOUND", /no database is named "nope"/],
    ["POST", "/v1/namespaces/a/fork/b", undefined, 409, "DATABASE_EXISTS", /"b" already exists/],
    ["POST", "/v1/namespaces/a/fork/..%2Fx", undefined, 400, "INVALID_DATABASE", /invalid database name/],
    ["POST", "/v1/namespaces/a/fork/A", undefined, 400, "INVALID_DATABASE", /invalid database name/],
    ["POST", "/v1/namespaces/a/fork/v2", undefined, 400, "INVALID_DATABASE", /invalid database name/],
    ["POST", "/v1/namespaces/a/fork/default", undefined, 400, "INVALID_DATABASE", /invalid database name/],
    ["POST", `/v1/namespaces/a/fork/${"x".repeat(64)}`, undefined, 400, "INVALID_DATABASE", /invalid database name/],
    ["POST", "/v1/namespaces/a/fork/", undefined, 400, "INVALID_DATABASE", /invalid database name/],
    ["POST", "/v1/namespaces/..%2Fa/fork/z", undefined, 400, "INVALID_DATABASE", /not a database name/],
    ["POST", F, "{not json", 400, "INVALID_BODY", /JSON object/],
    ["POST", F, "[]", 400, "INVALID_BODY", /JSON object/],
    ["POST", F, { timestamp: iso(Date.now() - 5), frame: "1:0" }, 400, "INVALID_POINT", /not both/],
    ["POST", F, { timestamp: "yesterday" }, 400, "INVALID_TIMESTAMP", /RFC 3339/],
    ["POST", F, { timestamp: "2026-13-01T00:00:00Z" }, 400, "INVALID_TIMESTAMP", /RFC 3339/],
    ["POST", F, { timestamp: "2025-02-29T00:00:00Z" }, 400, "INVALID_TIMESTAMP", /RFC 3339/],
    ["POST", F, { timestamp: 1764780000000 }, 400, "INVALID_TIMESTAMP", /RFC 3339/],
    ["POST", F, { frame: "1" }, 400, "INVALID_FRAME", /GENERATION:FRAME/],
    ["POST", F, { frame: "0:0" }, 400, "INVALID_FRAME", /GENERATION:FRAME/],
    ["POST", F, { frame: "1:2:3" }, 400, "INVALID_FRAME", /GENERATION:FRAME/],
    ["POST", F, { timestamp: iso(Date.now() + 600000) }, 400, "POINT_NOT_AVAILABLE", /in the future/],
    ["POST", F, { timestamp: iso(ms(since) - 1) }, 400, "POINT_NOT_AVAILABLE", new RegExp(`outside retention: the oldest state this database keeps is from ${since.replace(/\./g, "\\.")}`)],
    ["POST", F, { timestamp: "1999-12-31T23:59:59Z" }, 400, "POINT_NOT_AVAILABLE", /outside retention/],
    ["POST", F, { frame: `1:${head - 1}` }, 400, "POINT_NOT_AVAILABLE", new RegExp(`frame ${head - 1} of generation 1 is not a commit`)],
    ["POST", F, { frame: `1:${head + 1}` }, 400, "POINT_NOT_AVAILABLE", /is not a commit/],
    ["POST", F, { frame: "2:0" }, 400, "POINT_NOT_AVAILABLE", /generation 2 is not retained/],
    ["GET", "/v1/namespaces/nope/backup", undefined, 404, "DATABASE_NOT_FOUND", /nope/],
    ["GET", "/v1/namespaces/a/backup?timestamp=yesterday", undefined, 400, "INVALID_TIMESTAMP", /RFC 3339/],
    ["GET", "/v1/namespaces/a/backup?frame=x:y", undefined, 400, "INVALID_FRAME", /GENERATION:FRAME/],
    // Not UTF-8: refused, not taken for "now".
    ["GET", "/v1/namespaces/a/backup?timestamp=%FF", undefined, 400, "INVALID_TIMESTAMP", /RFC 3339/],
    ["GET", "/v1/namespaces/a/backup?frame=%FF", undefined, 400, "INVALID_FRAME", /GENERATION:FRAME/],
    ["GET", `/v1/namespaces/a/backup?frame=1:${head - 1}`, undefined, 400, "POINT_NOT_AVAILABLE", /not a commit/],
    ["GET", "/v1/namespaces/a/backup?timestamp=2001-01-01T00:00:00Z", undefined, 400, "POINT_NOT_AVAILABLE", /outside retention/],
  ];
  const wrong = [];
  for (const [method, path, body, status, code, message] of cases) {
    const a = await admin(server, method, path, { body, token });
    const got = `${a.status} ${a.json?.code} ${a.json?.message}`;
    if (a.status !== status || a.json?.code !== code || !message.test(a.json?.message ?? ""))
      wrong.push(`${method} ${path} ${JSON.stringify(body)}: expected ${status} ${code} ${message}, got ${got}`);
  }
  // Tokens: none, a user token, a read-only admin token, another key's.
  for (const t of [undefined, user.token({ a: "rw" }), adminAuth.token({ a: "ro" }), adminAuth.token({ a: "rw" }, adminAuth.otherKey)]) {
    for (const [method, path] of [["POST", "/v1/namespaces/a/fork/z"], ["GET", "/v1/namespaces/a/backup"], ["GET", "/v1/namespaces"]]) {
      const a = await admin(server, method, path, { token: t });
      if (a.status !== 401 || !/^AUTH_/.test(a.json?.code ?? "")) wrong.push(`${method} ${path} with token ${t?.slice(0, 12)}: ${a.status} ${a.text}`);
    }
  }
  // The CLI: errors exit 1 naming the cause; usage errors exit 2.
  const cli = [
    [["fork", "a", "b"], 1, /HTTP 409.*already exists/],
    [["fork", "nope", "z"], 1, /HTTP 404/],
    [["restore", "a", "--at", "yesterday", "--to", "z"], 1, /HTTP 400.*RFC 3339/],
    [["restore", "a", "--at", "2001-01-01T00:00:00Z", "--to", "z"], 1, /HTTP 400.*outside retention/],
    [["restore", "a", "--at", iso(Date.now() - 5)], 2, /--to NEW/],
    [["restore", "a", "--to", "z"], 2, /--at WHEN/],
    [["fork", "a", "../z"], 2, /not a database name/],
  ];
  for (const [args, status, message] of cli) {
    const r = await db(server, ...args);
    if (r.status !== status || !message.test(r.err)) wrong.push(`replite db ${args.join(" ")}: expected ${status} ${message}, got ${r.status} ${r.err}`);
  }
  const noToken = await db({ ...server, adminEnv: { REPLITE_ADMIN_TOKEN: "" } }, "fork", "a", "z");
  if (noToken.status !== 1 || !/HTTP 401/.test(noToken.err)) wrong.push(`replite db fork without a token: ${noToken.status} ${noToken.err}`);

  const listAfter = await list(server);
  if (!isDeepStrictEqual(listAfter, listBefore)) wrong.push(`the list changed: ${JSON.stringify(listAfter)}`);
  const treeAfter = tree(join(server.dataDir, "databases"));
  if (!isDeepStrictEqual(treeAfter, treeBefore)) {
    const gone = treeBefore.filter((x) => !treeAfter.includes(x));
    const came = treeAfter.filter((x) => !treeBefore.includes(x));
    wrong.push(`files under databases/ changed: gone ${JSON.stringify(gone)}, new ${JSON.stringify(came)}`);
  }
  // And a good request still works afterwards (the refusals were not
  // refusing everything).
  const ok = await fork(server, "a", "z", { frame: `1:${head}` });
  assert.deepEqual([ok.generation, ok.frame], [1, head]);
  const z = createClient({ url: `${server.url}/db/z/`, authToken: user.token({ a: "rw" }) });
  cleanups.push(() => z.close());
  assert.equal((await z.execute("SELECT length(v) FROM t")).rows[0][0], 30000);
  assert.deepEqual(wrong, []);
});
