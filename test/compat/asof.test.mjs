// As-of replicas (issue 12): a replite replica opened with as_of=TIME (or
// GENERATION:FRAME) holds the primary's state at that time, read-only, and
// never syncs forward.  A primary with small generations (several rollovers)
// gets a sequence of commits through @libsql/client, the time after each one
// recorded; replicas as of several of those times (of the default database
// and of a named one) must hold exactly the state recorded then, page for
// page the backup of the same time, while the primary goes on; they refuse
// writes and syncs, open again with the primary stopped, and every wrong
// open is refused with a clear message and leaves the files as they were.

// better-sqlite3 reads SQLITE_USE_URI once, when its addon is loaded.
process.env.SQLITE_USE_URI = "1";

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createClient } from "@libsql/client";
import { REPLITE_BIN, startAdminServer, tempDir, http, sleep, settledRequestLog } from "./harness.mjs";

const { default: Database } = await import("better-sqlite3");
const EXTENSION = process.env.REPLITE_EXTENSION ?? join(dirname(REPLITE_BIN), "libreplite.so");
{
  const probe = new Database(":memory:");
  probe.loadExtension(EXTENSION);
  probe.close();
}

const cleanups = [];
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});


const dir = tempDir("replite-asof-");
let server;
// Per database: its sync URL, its client, and the recorded history: after
// commit i, at time times[i] (RFC 3339), the table's rows were states[i].
const dbs = {};

// Every row of every table (and the schema) of a SQLite connection, in a
// fixed order.
function dump(db) {
  const out = { schema: db.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").all() };
  for (const { name } of out.schema.filter((r) => r.type === "table")) out[name] = db.prepare(`SELECT * FROM "${name}" ORDER BY rowid`).all();
  return out;
}

const rowsSql = "SELECT id, v, length(b) AS blen, hex(substr(b, 1, 8)) AS bhead FROM t ORDER BY id";

function asOfUri(path, url, asOf, extra = "") {
  return `file:${path}?vfs=replite&sync_url=${encodeURIComponent(url)}${asOf === undefined ? "" : `&as_of=${encodeURIComponent(asOf)}`}${extra}`;
}

function open(uri) {
  const db = new Database(uri);
  cleanups.push(() => db.open && db.close());
  return db;
}

function status(db) {
  return JSON.parse(db.prepare("SELECT replite_status() AS s").get().s);
}

// The error of an open that must fail.
function openError(uri) {
  try {
    const db = new Database(uri);
    db.close();
  } catch (e) {
    return e.message;
  }
  assert.fail(`the open of ${uri} succeeded`);
}

// The database's files (name -> sha256), to show a refused open changed
// nothing.
function files(path) {
  const d = dirname(path);
  const base = path.slice(d.length + 1);
  const out = {};
  for (const name of readdirSync(d).filter((n) => n === base || n.startsWith(`${base}-`)).sort())
    out[name] = createHash("sha256").update(readFileSync(join(d, name))).digest("hex");
  return out;
}

before(async () => {
  server = await startAdminServer({ args: ["--generation-frames", "20", "--log-requests"] });
  cleanups.push(() => (server.child.exitCode === null && server.child.signalCode === null ? server.stop() : undefined));
  const created = await fetch(`${server.admin}/v1/namespaces/shop/create`, { method: "POST" });
  assert.equal(created.status, 200, await created.text());
  dbs.default = { name: "default", url: server.url, client: createClient({ url: server.url }) };
  dbs.shop = { name: "shop", url: `${server.url}/db/shop`, client: createClient({ url: `${server.url}/db/shop/` }) };
  for (const d of Object.values(dbs)) {
    cleanups.push(() => d.client.close());
    d.times = [];
    d.states = [];
  }
  // Inserts (some with blobs over several overflow pages), updates and
  // deletes, so that states differ in ways a wrong frame would show; both
  // databases written in turn, with distinct times around every commit.
  for (let i = 0; i < 30; i++) {
    for (const d of Object.values(dbs)) {
      const c = d.client;
      if (i === 0) await c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)");
      else if (i % 7 === 3) await c.execute({ sql: "UPDATE t SET v = v || ? WHERE id % 2 = 0", args: [`-u${i}`] });
      else if (i % 7 === 5) await c.execute({ sql: "DELETE FROM t WHERE id = (SELECT min(id) FROM t)", args: [] });
      else if (i === 12) await c.execute("CREATE INDEX t_v ON t(v)");
      else
        await c.execute({
          sql: "INSERT INTO t(v, b) VALUES (?, randomblob(?))",
          args: [`${d.name}-${i}`, i % 2 === 0 ? 20000 : 40],
        });
      await sleep(20);
      d.times.push(new Date().toISOString());
      d.states.push((await c.execute(rowsSql)).rows.map((r) => ({ ...r })));
      await sleep(20);
    }
  }
  const info = (await http(server, "GET", "/info")).json;
  assert.ok(info.current_generation >= 4, `several rollovers: ${JSON.stringify(info)}`);
});

// The indexes of the recorded times the tests open: spread over the
// generations, the first commit and the last included.
const PICKS = [0, 5, 11, 17, 23, 29];

test("as-of replicas hold exactly the state recorded at each time, page for page the backup of that time", async () => {
  for (const d of Object.values(dbs)) {
    // The picked states lie in several generations, ended ones and the
    // current one.
    const gens = new Set();
    for (const i of PICKS) gens.add((await http(server, "GET", `${d.name === "default" ? "" : `/db/${d.name}`}/info?as_of=${d.times[i]}`)).json.current_generation);
    assert.ok(gens.size >= 3, `${d.name}: generations ${[...gens]}`);
    d.replicas = {};
    for (const i of PICKS) {
      const T = d.times[i];
      const expected = (await http(server, "GET", `${d.name === "default" ? "" : `/db/${d.name}`}/info?as_of=${T}`)).json;
      assert.ok(expected.as_of <= T, `${d.name} @${T}: ${JSON.stringify(expected)}`);
      const before = (await settledRequestLog(server)).length;
      const path = join(dir.path, `${d.name}-${i}.db`);
      const r = open(asOfUri(path, d.url, T));
      d.replicas[i] = { path, db: r, T };
      assert.deepEqual(r.prepare(rowsSql).all(), d.states[i], `${d.name} as of ${T} (commit ${i})`);
      assert.equal(r.prepare("PRAGMA integrity_check").get().integrity_check, "ok");
      const s = status(r);
      assert.equal(s.as_of, expected.as_of, JSON.stringify(s));
      assert.equal(s.generation, expected.current_generation);
      assert.equal(s.frame_no, expected.max_frame_no);
      assert.equal(s.rejected_transfers, 0);
      assert.equal(s.last_error, null);
      assert.match(s.checksum, /^[0-9a-f]{16}$/);
      // The state file records what was asked and what it resolved to.
      const stateText = readFileSync(`${path}-replite`).toString("latin1");
      assert.ok(stateText.includes(`"as_of":"${expected.as_of}","as_of_request":"${T}"`), stateText);
      // Nothing past the state was asked for: /sync requests of its
      // generation end at its frame.
      const log = (await settledRequestLog(server)).slice(before).filter((l) => l.database === d.name);
      const syncs = log.filter((l) => l.method === "GET" && l.route.startsWith("/sync/"));
      for (const l of syncs) {
        const [, g, start, end] = l.path.split("/").slice(1).map(Number);
        assert.equal(g, expected.current_generation, JSON.stringify(l));
        assert.ok(end <= expected.max_frame_no + 1 && start <= expected.max_frame_no, `${JSON.stringify(l)} past frame ${expected.max_frame_no}`);
      }
      assert.equal(syncs.length > 0, expected.max_frame_no > 0, JSON.stringify(log));
      assert.ok(log.some((l) => l.route === "/info"), JSON.stringify(log));
      assert.equal(log.filter((l) => l.route.startsWith("/export/")).length, 1, JSON.stringify(log));

      // The backup of the same time: the same rows and schema, and the
      // same pages (the backup's header says rollback journal, bytes 18
      // and 19; the replica is in WAL mode).
      const res = await fetch(`${server.admin}/v1/namespaces/${d.name}/backup?timestamp=${encodeURIComponent(T)}`);
      assert.equal(res.status, 200);
      const backupBytes = Buffer.from(await res.arrayBuffer());
      const backupPath = join(dir.path, `${d.name}-${i}.backup.db`);
      writeFileSync(backupPath, backupBytes);
      const b = new Database(backupPath, { readonly: true });
      assert.deepEqual(dump(r), dump(b), `${d.name} as of ${T}: rows of the backup`);
      b.close();
      const mine = r.serialize();
      assert.equal(mine.length, backupBytes.length, `${d.name} as of ${T}: size`);
      assert.deepEqual([mine[18], mine[19], backupBytes[18], backupBytes[19]], [2, 2, 1, 1]);
      mine[18] = mine[19] = 1;
      assert.ok(mine.equals(backupBytes), `${d.name} as of ${T}: the pages differ from the backup's`);
    }
  }
});

test("as-of replicas are read-only, do not sync, and keep their state while the primary goes on", async () => {
  for (const d of Object.values(dbs)) {
    for (const i of PICKS) {
      const { db: r, T, path } = d.replicas[i];
      assert.throws(() => r.prepare("INSERT INTO t(v) VALUES ('no')").run(), (e) => e.code === "SQLITE_READONLY", `${d.name} @${T}`);
      assert.throws(() => r.exec("CREATE TABLE x(y)"), (e) => e.code === "SQLITE_READONLY");
      assert.match(status(r).last_error, /is an as-of replica, the primary's state as of .* it is read-only, and writes are refused/);
      assert.throws(() => r.prepare("SELECT replite_sync()").get(), /is an as-of replica, the primary's state as of .*: it does not sync/);
      assert.throws(() => r.pragma("replite_sync"), /does not sync/);
      const v = JSON.parse(r.prepare("SELECT replite_verify() AS v").get().v);
      assert.equal(v.match, true, JSON.stringify(v));
      assert.equal(v.primary, null);
      // A second connection of the process shares it.
      const r2 = open(asOfUri(path, d.url, T));
      assert.deepEqual(r2.prepare(rowsSql).all(), d.states[i]);
      r2.close();
    }
  }
  const pulled = {};
  for (const d of Object.values(dbs)) for (const i of PICKS) pulled[`${d.name}-${i}`] = status(d.replicas[i].db).bytes_pulled;
  for (const d of Object.values(dbs)) await d.client.execute("INSERT INTO t(v) VALUES ('after')");
  for (const d of Object.values(dbs)) await d.client.execute("DELETE FROM t WHERE id < 5");
  await sleep(1500); // a live replica would have synced by now
  for (const d of Object.values(dbs))
    for (const i of PICKS) {
      const { db: r } = d.replicas[i];
      assert.deepEqual(r.prepare(rowsSql).all(), d.states[i], `${d.name} commit ${i} after the primary went on`);
      assert.equal(status(r).bytes_pulled, pulled[`${d.name}-${i}`]);
    }
});

test("as-of replicas by frame, and by the state's own time, name the same state", async () => {
  const d = dbs.default;
  const i = 11;
  const at = (await http(server, "GET", `/info?as_of=${d.times[i]}`)).json;
  const byFrame = open(asOfUri(join(dir.path, "frame.db"), d.url, `${at.current_generation}:${at.max_frame_no}`));
  assert.deepEqual(byFrame.prepare(rowsSql).all(), d.states[i]);
  assert.equal(status(byFrame).as_of, at.as_of);
  // A time with an offset, the same instant.
  const ms = Date.parse(d.times[i]) + 3600000;
  const plus1 = new Date(ms).toISOString().replace("Z", "+01:00");
  const byOffset = open(asOfUri(join(dir.path, "offset.db"), d.url, plus1));
  assert.deepEqual(byOffset.prepare(rowsSql).all(), d.states[i]);
  // The replica of commit i opens again with the state's own time, its
  // frame, or the request spelt otherwise.
  const { path, db } = d.replicas[i];
  db.close();
  for (const asOf of [at.as_of, `${at.current_generation}:${at.max_frame_no}`, plus1]) {
    const r = new Database(asOfUri(path, d.url, asOf));
    assert.deepEqual(r.prepare(rowsSql).all(), d.states[i], asOf);
    r.close();
  }
  d.replicas[i].db = open(asOfUri(path, d.url, d.times[i]));
});

test("wrong opens are refused with clear messages and leave the files byte-identical", async () => {
  const d = dbs.default;
  const i = 5;
  const { path, T } = d.replicas[i];
  d.replicas[i].db.close();
  // A live replica of the same primary.
  const livePath = join(dir.path, "live.db");
  const live = new Database(asOfUri(livePath, d.url, undefined, "&sync_interval=0"));
  live.close();
  const asOfFiles = files(path);
  const liveFiles = files(livePath);
  const other = d.times[17];
  const refusals = [
    [asOfUri(path, d.url, undefined), /replite: .*asof-.*default-5\.db is an as-of replica: it holds the primary's state as of .* \(opened with as_of=.*\), is read-only and never syncs; open it with as_of=/],
    [`file:${path}?vfs=replite`, /is an as-of replica: .* open it with as_of=/],
    [asOfUri(path, d.url, other), new RegExp(`is an as-of replica of another state: as of .*, not as_of=${other.replace(/[.]/g, "\\.")}; open it with as_of=`)],
    [asOfUri(path, d.url, "1:0"), /is an as-of replica of another state/],
    [asOfUri(path, d.url, "yesterday"), /replite: as_of 'yesterday' is not a time or a frame: expected an RFC 3339 time/],
    [asOfUri(path, d.url, T, "&offline=1"), /as_of and offline=1 exclude each other/],
    [asOfUri(livePath, d.url, T), /live\.db is a live replica of http:\/\/127\.0\.0\.1:\d+; as_of=.* needs a file of its own/],
    [asOfUri(livePath, d.url, "2:3"), /is a live replica of .*; as_of=2:3 needs a file of its own/],
  ];
  for (const [uri, want] of refusals) {
    const msg = openError(uri);
    assert.match(msg, want, uri);
    assert.match(msg, /^automatic extension loading failed: replite: /);
  }
  assert.deepEqual(files(path), asOfFiles);
  assert.deepEqual(files(livePath), liveFiles);
  // Still fine afterwards.
  const again = open(asOfUri(path, d.url, T));
  assert.deepEqual(again.prepare(rowsSql).all(), d.states[i]);
  d.replicas[i].db = again;

  // Times the primary does not have: its message.
  const future = new Date(Date.now() + 3600000).toISOString();
  assert.match(openError(asOfUri(join(dir.path, "future.db"), d.url, future)), /could not get the primary's state as_of=.*: the primary answered GET \/info\?as_of=.* with HTTP 400: .* is in the future: the primary's clock says/);
  const old = new Date(Date.parse(d.times[0]) - 60000).toISOString();
  assert.match(openError(asOfUri(join(dir.path, "old.db"), d.url, old)), /is outside retention: the oldest state this database keeps is from /);
  assert.match(openError(asOfUri(join(dir.path, "gone.db"), d.url, "99:1")), /generation 99 is not retained/);
  assert.match(openError(asOfUri(join(dir.path, "nocommit.db"), `${server.url}/db/shop`, "1:999999")), /frame 999999 of generation 1 is not a commit/);
  // The primary's own refusals of malformed values.
  for (const [q, code] of [["2026-13-01T00:00:00Z", "INVALID_TIMESTAMP"], ["0:3", "INVALID_FRAME"], ["", "INVALID_TIMESTAMP"], ["x", "INVALID_TIMESTAMP"]]) {
    const r = await http(server, "GET", `/info?as_of=${encodeURIComponent(q)}`);
    assert.equal(r.status, 400, q);
    assert.equal(r.json.code, code, q);
  }
});

test("as-of replicas open again, in this process and another, with the primary stopped", async () => {
  for (const d of Object.values(dbs)) for (const i of PICKS) d.replicas[i].db.close();
  await server.stop();
  for (const d of Object.values(dbs))
    for (const i of PICKS) {
      const { path, T } = d.replicas[i];
      const r = new Database(asOfUri(path, d.url, T));
      assert.deepEqual(r.prepare(rowsSql).all(), d.states[i], `${d.name} commit ${i}, primary stopped`);
      assert.equal(status(r).last_error, null);
      assert.equal(status(r).as_of <= T, true);
      // Another process on the same file at the same time.
      const child = spawnSync(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          `process.env.SQLITE_USE_URI = "1";
           const { default: Database } = await import("better-sqlite3");
           new Database(":memory:").loadExtension(${JSON.stringify(EXTENSION)});
           const db = new Database(${JSON.stringify(asOfUri(path, d.url, T))});
           let readonly = false;
           try { db.exec("DELETE FROM t"); } catch (e) { readonly = e.code === "SQLITE_READONLY"; }
           console.log(JSON.stringify({ rows: db.prepare(${JSON.stringify(rowsSql)}).all(), readonly }));
           db.close();`,
        ],
        { encoding: "utf8", cwd: import.meta.dirname, timeout: 30000 },
      );
      assert.equal(child.status, 0, child.stderr);
      const got = JSON.parse(child.stdout);
      assert.equal(got.readonly, true);
      assert.deepEqual(got.rows.map((x) => ({ ...x, bhead: x.bhead })), d.states[i].map((x) => ({ ...x })));
      assert.deepEqual(r.prepare(rowsSql).all(), d.states[i]);
      r.close();
    }
  // A new as-of replica needs the primary: its open fails naming it.
  assert.match(openError(asOfUri(join(dir.path, "down.db"), dbs.default.url, dbs.default.times[3])), /could not get the primary's state as_of=.*(Couldn't connect|connect)/i);
});
