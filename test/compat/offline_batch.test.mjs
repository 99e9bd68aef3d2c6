// Batched pushes of an offline replica (offline=1), against a real
// `replite serve` and real host processes (offline_host.py: Debian's
// /usr/bin/python3 sqlite3; offline_worker.mjs: Node's better-sqlite3; the
// protocol is described in offline_host.py); the primary is written and read
// with @libsql/client.
//
// The sync thread pushes up to 1,024 pending records (and ~4,096 pages) as
// ONE transaction; which records a push holds is saved in the state file
// ("outbox": {"pushed", "batch"}) before it is sent, so a retry (after a
// failure, a kill -9, or by another process on the same file) sends the
// same records under the same id, and the primary answers it by the id.
//
//   1. hours offline: 10,000 pending single-row transactions with the
//      primary stopped (SIGSTOP) the whole time; status counts them; after
//      the resume replite_sync() puts every row on the primary exactly once,
//      and the replica equals the primary (the host's peak memory is
//      reported and bounded);
//   2. the same with a conflict: the primary got a row from another client
//      after the replica's last sync (sync_interval=0: it does not pull
//      it): conflict=rebase re-applies the 10,000 on top: 10,001 rows;
//   3. kill -9 of the pushing process at several moments of a batched push
//      (~3,000 pending per round: several batches), into a table without a
//      primary key (a batch applied twice shows as extra rows) and a keyed
//      one: after a restart every row is on the primary exactly once;
//   4. two processes writing the same offline file, many pending each, both
//      calling replite_sync() at once: every row exactly once;
//   5. the primary stopped (SIGSTOP) in the middle of a batched push until
//      the replica gives up on the request (write_timeout=2), then resumed:
//      every row exactly once.
// No timing assertions: waits poll with generous deadlines; kill and stop
// moments are aimed at, and what they hit is reported as a diagnostic.
//
// The fixtures (the primary, the proxies, the host processes and their
// protocol) are in offline_harness.mjs.
// The extension: $REPLITE_EXTENSION, else libreplite.so beside $REPLITE_BIN.

// (offline_harness.mjs sets SQLITE_USE_URI, which better-sqlite3 reads once
// when its addon is loaded, as the node hosts do; this process does not load it.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { sleep } from "./harness.mjs";
import { primaryRows, pushedAll, setup as setupOffline, waitUntil } from "./offline_harness.mjs";

const OFFLINE = "&offline=1"; // conflict=rebase, the default
const DEADLINE_MS = 60000;
const TEST_TIMEOUT_MS = 180000;

// A keyed table and one without a primary key (a row applied twice shows
// as a duplicate there).
const KV_SCHEMA = "CREATE TABLE kv(k TEXT PRIMARY KEY, n INTEGER)";
const KV_INSERT = "INSERT INTO kv(k, n) VALUES (?, 1)";
const KV_ROWS = "SELECT k, n FROM kv ORDER BY k";
const EV_SCHEMA = "CREATE TABLE ev(tag TEXT)";
const EV_INSERT = "INSERT INTO ev(tag) VALUES (?)";
const EV_ROWS = "SELECT rowid, tag FROM ev ORDER BY rowid";

const range = (prefix, n, from = 0) => Array.from({ length: n }, (_, i) => `${prefix}-${String(from + i).padStart(5, "0")}`);
const waitFor = (what, probe, pred, timeoutMs = DEADLINE_MS) => waitUntil(what, probe, pred, timeoutMs);

// Peak and current resident memory of a process, in MiB (Linux /proc).
function memoryOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? NaN);
    return { peakMiB: Math.round(kb("VmHWM") / 1024), rssMiB: Math.round(kb("VmRSS") / 1024) };
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------
// Per test (offline_harness.mjs): a primary with `schema`, f.client on it,
// optionally the proxy (f.proxy, which f.url then goes through); replicas
// in other processes through f.host, with OFFLINE unless `params` says
// otherwise, each with PRAGMA synchronous=NORMAL: quicker local commits (a
// kill -9 of the process loses none: the OS has the writes).

const setup = (t, opts = {}) =>
  setupOffline(t, {
    ...opts,
    prefix: "replite-batch-",
    params: OFFLINE,
    hostName: (kind, path) => `${kind}:${path.split("/").pop()}`,
    prepareHost: (h) => h.exec("PRAGMA synchronous=NORMAL"),
    requestMs: DEADLINE_MS,
    insertEachMs: 150000,
  });

// replite_sync() until it succeeds with nothing pending (a sync may fail
// while another process's push races with it); returns the frame.
async function syncUntilDone(h, timeoutMs = DEADLINE_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await h.trySync(timeoutMs);
    const s = await h.status();
    if (!last.error && pushedAll(s)) return last.frame;
    if (Date.now() > deadline) assert.fail(`${h.name}: still pending after replite_sync(): ${JSON.stringify({ last, s })}`);
    await sleep(20);
  }
}

// `table`.`col` on the primary holds each of `values` exactly once and
// nothing else.
async function checkExactlyOnce(client, table, col, values, what) {
  const [[count, distinct]] = await primaryRows(client, `SELECT count(*), count(DISTINCT ${col}) FROM ${table}`);
  const got = (await primaryRows(client, `SELECT ${col} FROM ${table}`)).map(([v]) => v);
  const want = new Set(values);
  const seen = new Map();
  for (const v of got) seen.set(v, (seen.get(v) ?? 0) + 1);
  const twice = [...seen].filter(([, n]) => n > 1);
  const missing = values.filter((v) => !seen.has(v));
  const extra = got.filter((v) => !want.has(v));
  assert.deepEqual(
    { twice: twice.length, missing: missing.length, extra: extra.length },
    { twice: 0, missing: 0, extra: 0 },
    `${what}: ${table} on the primary: ${count} rows, ${distinct} distinct, ${values.length} expected; ` +
      `twice e.g. ${JSON.stringify(twice.slice(0, 5))}, missing e.g. ${JSON.stringify(missing.slice(0, 5))}, ` +
      `extra e.g. ${JSON.stringify(extra.slice(0, 5))}`,
  );
  assert.equal(count, values.length, `${what}: ${table}: the primary's row count`);
}

// The replica holds what the primary holds (each query), nothing pending,
// integrity ok on both, replite_verify() matches.
async function checkEqualsPrimary(f, h, queries, what) {
  const s = await h.status();
  assert.equal(s.pending_transactions, 0, `${what}: ${h.name}: pending_transactions: ${JSON.stringify(s)}`);
  assert.equal(s.pending_frames, 0, `${what}: ${h.name}: pending_frames: ${JSON.stringify(s)}`);
  assert.deepEqual(await primaryRows(f.client, "PRAGMA integrity_check"), [["ok"]], `${what}: the primary's integrity`);
  for (const q of queries) {
    const p = await primaryRows(f.client, q);
    const l = await h.query(q);
    assert.equal(l.length, p.length, `${what}: ${h.name}: as many rows as the primary: ${q}`);
    assert.deepEqual(l, p, `${what}: ${h.name} equals the primary: ${q}`);
  }
  assert.equal(await h.value("PRAGMA integrity_check"), "ok", `${what}: ${h.name}: integrity_check`);
  const v = JSON.parse(await h.value("SELECT replite_verify()"));
  assert.equal(v.match, true, `${what}: ${h.name}: replite_verify(): ${JSON.stringify(v)}`);
}

// ---------------------------------------------------------------------------

const HOURS = 10000;
// The host's peak resident memory: far above what one batch needs (4,096
// pages of 4 KiB, with their old images: 32 MiB) plus the interpreter, and
// below what holding all 10,000 records' pages and old images at once would
// add (~20,000 frames, 80 MiB each).
const PEAK_LIMIT_MIB = 128;

for (const conflict of [false, true]) {
  const name = conflict
    ? `2. the same ${HOURS} with a conflict: the primary got a row from another client after the replica's last sync; rebase puts all ${HOURS} on top: ${HOURS + 1} rows, replica == primary`
    : `1. hours offline: ${HOURS} pending transactions with the primary stopped the whole time, then replite_sync(): every row on the primary exactly once, replica == primary`;
  test(name, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const f = await setup(t, { schema: [KV_SCHEMA] });
    const path = f.dir.file("r.db");
    const h = await f.host("python", path, { params: conflict ? `${OFFLINE}&sync_interval=0` : OFFLINE }); // bootstraps
    const base = conflict ? [["primary-1", 7]] : [];
    if (conflict) {
      await f.client.execute("INSERT INTO kv(k, n) VALUES ('primary-1', 7)");
      assert.deepEqual(await h.query(KV_ROWS), [], "sync_interval=0: the replica did not pull the primary's row");
    }
    f.pause();
    const keys = range("off", HOURS);
    const t0 = Date.now();
    await h.insertEach(KV_INSERT, keys);
    const s = await h.status();
    const mem0 = memoryOf(h.child.pid);
    const outboxMiB = Math.round(statSync(`${path}-replite-outbox`).size / 1048576);
    t.diagnostic(
      `${HOURS} local commits in ${Date.now() - t0} ms; outbox ${outboxMiB} MiB; status ${JSON.stringify(s)}; memory ${JSON.stringify(mem0)}`,
    );
    assert.equal(s.pending_transactions, HOURS, `pending_transactions: ${JSON.stringify(s)}`);
    assert.ok(s.pending_frames >= HOURS, `pending_frames: ${JSON.stringify(s)}`);
    assert.equal((await h.query("SELECT count(*) FROM kv"))[0][0], HOURS, "the local rows");

    f.resume();
    const t1 = Date.now();
    const sync = await h.trySync(120000);
    const mem1 = memoryOf(h.child.pid);
    t.diagnostic(`replite_sync() after the resume: ${JSON.stringify(sync)} in ${Date.now() - t1} ms; memory ${JSON.stringify(mem1)}`);
    assert.ok(!sync.error, `replite_sync() after the resume: ${JSON.stringify(sync.error)}\n${h.stderr}`);
    assert.equal(sync.frame, await f.head(), "replite_sync() returns the primary's head");
    t.diagnostic(`the primary's head: ${sync.frame} frames`);
    const after = await h.status();
    assert.equal(after.pending_transactions, 0, JSON.stringify(after));
    assert.ok(after.last_push_unix_ms > 0, JSON.stringify(after));

    await checkExactlyOnce(f.client, "kv", "k", [...keys, ...base.map(([k]) => k)], "after the sync");
    assert.deepEqual(await primaryRows(f.client, "SELECT k, n FROM kv WHERE k NOT LIKE 'off-%'"), base, "the other client's row");
    const conflicts = JSON.parse(await h.value("SELECT replite_conflicts()"));
    assert.deepEqual(conflicts.slice(0, 3), [], `no row was contested, nothing skipped: ${conflicts.length} records`);
    await checkEqualsPrimary(f, h, [KV_ROWS, "SELECT type, name, sql FROM sqlite_schema ORDER BY name"], "after the sync");
    if (mem1) assert.ok(mem1.peakMiB < PEAK_LIMIT_MIB, `the replica's peak memory stays bounded: ${JSON.stringify({ mem0, mem1 })}`);
    await h.close();
  });
}

// ---------------------------------------------------------------------------

// N pending transactions, half into ev (no key), half into kv, written by a
// python host with the primary cut off (the proxy); returns the values.
async function writePending(f, path, prefix, n) {
  await f.proxy.cut();
  const w = await f.host("python", path, { name: `writer ${prefix}` });
  const ev = range(`${prefix}-e`, n / 2);
  const kv = range(`${prefix}-k`, n / 2);
  await w.insertEach(EV_INSERT, ev);
  await w.insertEach(KV_INSERT, kv);
  const s = await w.status();
  assert.ok(s.pending_transactions >= n, `${prefix}: ${n} local commits pending: ${JSON.stringify(s)}`);
  await w.close();
  return { ev, kv, pending: s.pending_transactions };
}

// Sends replite_sync() to h without waiting; the answer, if one comes
// before the process ends, lands in the returned object.
function syncInBackground(h) {
  const got = { answer: null };
  h.onLine = (m) => (got.answer = m);
  h.send({ op: "query", sql: "SELECT replite_sync()", args: [] });
  return got;
}

// The state file's "outbox" field (what was pushed, the batch in flight),
// from its newest version (sync/state_file.h: three 16 KiB slots, each
// "RPLS", version, seq at 8, text length at 16, text at 32; the checksum is
// not checked here, a diagnostic only).
function stateOutbox(path) {
  try {
    const file = readFileSync(`${path}-replite`);
    let best = null;
    for (let off = 0; off + 32 <= file.length; off += 16384) {
      if (file.toString("latin1", off, off + 4) !== "RPLS") continue;
      const seq = file.readBigUInt64BE(off + 8);
      if (best === null || seq > best.seq) best = { seq, text: file.toString("utf8", off + 32, off + 32 + file.readUInt32BE(off + 16)) };
    }
    return JSON.parse(best ? best.text : file.toString("utf8")).outbox ?? null;
  } catch (e) {
    return `(unreadable: ${e.message})`;
  }
}

// Polls the primary's row count of `table` until it passes `above`; returns
// it, or null after the deadline.
async function primaryCountAbove(f, table, above, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const [[n]] = await primaryRows(f.client, `SELECT count(*) FROM ${table}`);
    if (n > above) return n;
  }
  return null;
}

test(
  "3. kill -9 of the pushing process at several moments of a batched push (3,000 pending: several batches): after a restart every row is on the primary exactly once, replica == primary",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const f = await setup(t, { proxy: true, schema: [EV_SCHEMA, KV_SCHEMA] });
    const path = f.dir.file("r.db");
    await (await f.host("python", path)).close(); // the bootstrap
    const N = 3000;
    // sync: replite_sync() sent right after the open (sync_interval=0: no
    // push before it); else the background push at the open (default
    // sync_interval).  Kill after `ms`, or once the primary's ev count
    // rose (the first batch acknowledged, or about to be).
    const moments = [
      { name: "replite_sync(), kill at once", sync: true, ms: 0 },
      { name: "replite_sync(), kill after 5 ms", sync: true, ms: 5 },
      { name: "replite_sync(), kill after 20 ms", sync: true, ms: 20 },
      { name: "replite_sync(), kill after 60 ms", sync: true, ms: 60 },
      { name: "replite_sync(), kill once the first batch is on the primary", sync: true, first: true },
      { name: "background push, kill once the first batch is on the primary", sync: false, first: true },
      { name: "background push, kill after 30 ms", sync: false, ms: 30 },
    ];
    const all = { ev: [], kv: [] };
    let hitMidPush = 0;
    for (const [round, m] of moments.entries()) {
      const w = await writePending(f, path, `r${round}`, N);
      all.ev.push(...w.ev);
      all.kv.push(...w.kv);
      const [[evBefore]] = await primaryRows(f.client, "SELECT count(*) FROM ev");
      const [[kvBefore]] = await primaryRows(f.client, "SELECT count(*) FROM kv");

      await f.proxy.heal();
      const kind = round % 2 ? "node" : "python";
      const pusher = await f.host(kind, path, { name: `pusher ${round}`, params: m.sync ? `${OFFLINE}&sync_interval=0` : OFFLINE });
      const got = m.sync ? syncInBackground(pusher) : { answer: null };
      let seen = null;
      if (m.first) {
        seen = await primaryCountAbove(f, "ev", evBefore);
        assert.ok(seen !== null, `round ${round}: the push did not begin`);
      } else if (m.ms) await sleep(m.ms);
      await pusher.kill();

      const outbox = stateOutbox(path);
      const [[ev, evDistinct]] = await primaryRows(f.client, "SELECT count(*), count(DISTINCT tag) FROM ev");
      const [[kv]] = await primaryRows(f.client, "SELECT count(*) FROM kv");
      const mid = ev + kv > evBefore + kvBefore && ev + kv < evBefore + kvBefore + w.pending;
      if (mid) hitMidPush++;
      t.diagnostic(
        `round ${round} (${m.name}, ${kind}): ${w.pending} pending; the primary went from ${evBefore + kvBefore} to ` +
          `${ev + kv} rows (${seen === null ? "" : `ev ${seen} seen before the kill, `}${mid ? "mid-push" : "not mid-push"}); ` +
          `replite_sync() ${got.answer ? `answered ${JSON.stringify(got.answer).slice(0, 120)}` : "had not answered"}; ` +
          `the state's outbox: ${JSON.stringify(outbox)}`,
      );
      assert.equal(ev, evDistinct, `round ${round}: nothing reached the primary twice so far (ev ${ev} rows, ${evDistinct} distinct)`);
    }
    assert.ok(hitMidPush > 0, "at least one kill landed in the middle of a batched push");

    // A last process with the primary reachable: everything arrives once.
    const h = await f.host("node", path, { name: "the last" });
    const pending = (await h.status()).pending_transactions;
    const frame = await syncUntilDone(h);
    t.diagnostic(`the last process found ${pending} pending; replite_sync() -> ${frame}`);
    assert.equal(frame, await f.head(), "replite_sync() returns the primary's head");
    await checkExactlyOnce(f.client, "ev", "tag", all.ev, "after the kills");
    await checkExactlyOnce(f.client, "kv", "k", all.kv, "after the kills");
    await checkEqualsPrimary(f, h, [EV_ROWS, KV_ROWS], "after the kills");
    await h.close();
  },
);

test(
  "4. two processes write the same offline file (2,000 pending each), then both call replite_sync() at once: every row on the primary exactly once",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const f = await setup(t, { schema: [EV_SCHEMA, KV_SCHEMA] });
    const path = f.dir.file("r.db");
    const py = await f.host("python", path, { name: "python" }); // bootstraps
    const node = await f.host("node", path, { name: "node" });
    f.pause();
    const N = 2000;
    const vals = { python: range("py", N), node: range("node", N) };
    const [rp, rn] = await Promise.all([py.insertEach(EV_INSERT, vals.python), node.insertEach(EV_INSERT, vals.node)]);
    await py.exec("BEGIN", "INSERT INTO kv(k, n) VALUES ('py-tx', 1)", "INSERT INTO ev(tag) VALUES ('py-tx')", "COMMIT");
    await node.exec("BEGIN", "INSERT INTO kv(k, n) VALUES ('node-tx', 1)", "INSERT INTO ev(tag) VALUES ('node-tx')", "COMMIT");
    const allEv = [...vals.python, ...vals.node, "py-tx", "node-tx"];
    for (const h of [py, node]) {
      const s = await h.status();
      assert.equal(s.pending_transactions, 2 * N + 2, `${h.name}: pending: ${JSON.stringify(s)}`);
    }
    t.diagnostic(`busy retries: python ${rp.retries}, node ${rn.retries}`);

    f.resume();
    const both = await Promise.all([py.trySync(), node.trySync()]);
    t.diagnostic(`replite_sync() at once: ${JSON.stringify(both)}`);
    for (const h of [py, node]) await syncUntilDone(h);
    await checkExactlyOnce(f.client, "ev", "tag", allEv, "after both synced");
    await checkExactlyOnce(f.client, "kv", "k", ["py-tx", "node-tx"], "after both synced");
    for (const h of [py, node]) {
      await checkEqualsPrimary(f, h, [EV_ROWS, KV_ROWS], "after both synced");
      await h.close();
    }
  },
);

test(
  "5. the primary stopped (SIGSTOP) in the middle of a batched push until the replica gives up on the request, then resumed: every row exactly once",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const f = await setup(t, { schema: [EV_SCHEMA] });
    const path = f.dir.file("r.db");
    // write_timeout=2: the replica gives up on an unanswered push after 2 s.
    const params = `${OFFLINE}&sync_interval=0&write_timeout=2`;
    let h = await f.host("python", path, { params });
    const N = 4000;
    const all = [];
    // When to stop the primary after replite_sync() was sent: once the
    // first batch is on it (the next one on its way), or after a few ms.
    // kill: once the replica gave up, kill -9 it while the primary is still
    // stopped; another process sends the batch again after the resume (the
    // primary may meanwhile have applied the request it had buffered).
    const moments = [
      { name: "once the first batch is on the primary", first: true },
      { name: "10 ms after replite_sync()", ms: 10 },
      { name: "40 ms after replite_sync()", ms: 40 },
      { name: "once the first batch is on the primary, then kill -9, another process retries", first: true, kill: true },
    ];
    let stalled = 0;
    for (const [round, m] of moments.entries()) {
      f.pause();
      const values = range(`s${round}`, N);
      await h.insertEach(EV_INSERT, values);
      all.push(...values);
      f.resume();
      const [[before]] = await primaryRows(f.client, "SELECT count(*) FROM ev");
      const got = syncInBackground(h);
      let seen = null;
      if (m.first) seen = await primaryCountAbove(f, "ev", before, DEADLINE_MS);
      else await sleep(m.ms);
      f.pause();
      // The replica gives up: replite_sync() answers (with an error when
      // the primary stopped before the last batch was answered).
      await waitFor(`round ${round}: replite_sync() answers`, () => got.answer, (a) => a !== null, 30000);
      h.onLine = null;
      const s = await h.status();
      if (got.answer.error) {
        stalled++;
        assert.equal(typeof s.last_error, "string", `round ${round}: last_error after the failed sync: ${JSON.stringify(s)}`);
        assert.ok(s.pending_transactions > 0, `round ${round}: still pending after the failed sync: ${JSON.stringify(s)}`);
      }
      t.diagnostic(
        `round ${round} (${m.name}): ${seen === null ? "" : `ev ${seen} (was ${before}) when stopped; `}` +
          `replite_sync() answered ${JSON.stringify(got.answer).slice(0, 200)}; ${s.pending_transactions} pending; ` +
          `the state's outbox: ${JSON.stringify(stateOutbox(path))}`,
      );
      if (m.kill) {
        await h.kill();
        f.resume();
        // Let the primary handle what it had buffered before the retry.
        await primaryRows(f.client, "SELECT count(*) FROM ev");
        h = await f.host("node", path, { params, name: "the retrying process" });
      } else f.resume();
      const frame = await syncUntilDone(h);
      assert.equal(frame, await f.head(), `round ${round}: replite_sync() returns the primary's head`);
      await checkExactlyOnce(f.client, "ev", "tag", all, `round ${round}: after the resume`);
    }
    assert.ok(stalled > 0, "at least one stop caught a batched push unanswered");
    await checkEqualsPrimary(f, h, [EV_ROWS], "at the end");
    await h.close();
  },
);
