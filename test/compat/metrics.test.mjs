// GET /metrics (Prometheus text format) after known traffic: N commits give
// N, the page passes `promtool check metrics`, replicas appear with their
// lag and are forgotten after --replica-expiry, and the page is behind a
// token when the server has keys.  Also lag_ms in a replica's status.

// better-sqlite3 reads SQLITE_USE_URI once, when its addon is loaded.
process.env.SQLITE_USE_URI = "1";

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { createClient } from "@libsql/client";
import { REPLITE_BIN, http, makeAuth, sleep, startServer, tempDir } from "./harness.mjs";

const { default: Database } = await import("better-sqlite3");
const EXTENSION = process.env.REPLITE_EXTENSION ?? join(dirname(REPLITE_BIN), "libreplite.so");

// The page's samples: "name{labels}" -> value.
function parse(text) {
  const samples = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?) (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    samples.set(m[1], Number(m[2]));
  }
  return samples;
}

async function scrape(server, token) {
  const r = await http(server, "GET", "/metrics", { token });
  assert.equal(r.status, 200, r.body.toString());
  assert.match(r.headers.get("content-type"), /^text\/plain; version=0\.0\.4/);
  return { text: r.body.toString("utf8"), samples: parse(r.body.toString("utf8")) };
}

function promtool(text) {
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  if (r.error) throw new Error(`promtool: ${r.error.message} (Debian package prometheus)`);
  assert.equal(r.status, 0, `promtool check metrics:\n${r.stdout}${r.stderr}`);
}

const get = (s, key) => s.samples.get(key) ?? 0;

test("/metrics counts commits, statements, rows, requests and pulls exactly", async (t) => {
  const s = await startServer();
  t.after(() => s.stop());
  const client = createClient({ url: s.url });
  t.after(() => client.close());
  await client.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
  const before = await scrape(s);
  promtool(before.text);

  const N = 7;
  for (let i = 0; i < N; i++) await client.execute({ sql: "INSERT INTO t(v) VALUES (?)", args: [`row ${i}`] });
  const rows = await client.execute("SELECT * FROM t");
  assert.equal(rows.rows.length, N);
  const bad = await http(s, "GET", "/no/such/path/3f9a");
  assert.equal(bad.status, 404);
  const pull = await http(s, "GET", "/sync/1/1/100000", { headers: { "X-Replite-Replica": "metrics-test-puller" } });
  assert.equal(pull.status, 200);

  const after = await scrape(s);
  promtool(after.text);
  const d = (key) => get(after, key) - get(before, key);
  assert.equal(d('replite_commits_total{database="default",source="sql"}'), N);
  assert.equal(d('replite_commits_total{database="default",source="push"}'), 0);
  assert.equal(d("replite_sql_statements_total"), N + 1);
  assert.equal(d("replite_sql_rows_written_total"), N);
  assert.equal(d("replite_sql_rows_read_total"), N);
  assert.equal(d("replite_sql_statement_errors_total"), 0);
  assert.ok(d("replite_fsync_duration_seconds_count{database=\"default\"}") >= 1);
  assert.ok(d("replite_fsync_duration_seconds_count{database=\"default\"}") <= N);
  // One Hrana request per execute (the client's pipelines).
  assert.equal(d('replite_http_requests_total{route="/v2/pipeline",method="POST",status="200"}') +
    d('replite_http_requests_total{route="/v3/pipeline",method="POST",status="200"}'), N + 1);
  // Unknown paths are counted, but never become labels.
  assert.equal(d('replite_http_requests_total{route="other",method="GET",status="404"}'), 1);
  assert.doesNotMatch(after.text, /3f9a/);
  // The pull served every frame of the log.
  const head = get(after, 'replite_head_frame{database="default"}');
  assert.equal(pull.body.length, head * 4120);
  assert.equal(d("replite_frames_served_total"), head);
  assert.equal(d("replite_frame_bytes_served_total"), head * 4120);
  assert.ok(get(after, 'replite_log_bytes{database="default"}') >= head * 4120);
  assert.ok(get(after, 'replite_database_bytes{database="default"}') > 0);
  // The /metrics request before this one is in the histogram.
  assert.ok(get(after, 'replite_http_request_duration_seconds_count{route="/metrics"}') >= 1);
});

test("/metrics: replicas' lag, pushes from a replite replica, and expiry", async (t) => {
  const s = await startServer({ args: ["--replica-expiry", "2"] });
  t.after(() => s.stop());
  const dir = tempDir("replite-metrics-");
  const client = createClient({ url: s.url });
  t.after(() => client.close());
  await client.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");

  // A "replica" that pulled from the start and then went quiet, while the
  // primary commits: its lag is the age of the first commit it lacks.
  const lagger = "lagging-replica";
  const sent = Date.now();
  await client.execute("INSERT INTO t(v) VALUES ('a')");
  const acked = Date.now();
  const r = await http(s, "GET", "/sync/1/1/2", { headers: { "X-Replite-Replica": lagger } });
  assert.equal(r.status, 200);
  assert.ok(Number(r.headers.get("x-replite-behind-since")) > 0, "frames short of the head carry X-Replite-Behind-Since");
  await sleep(400);
  const m = await scrape(s);
  const scraped = Date.now();
  const lag = get(m, `replite_replica_lag_seconds{database="default",replica="${lagger}"}`);
  // The CREATE TABLE is older than 'a': the lag is at least since it.
  assert.ok(lag * 1000 >= scraped - acked - 50, `lag ${lag}s, expected at least ${(scraped - acked) / 1000}s`);
  assert.ok(lag * 1000 <= Date.now() - sent + 5000);
  assert.equal(get(m, `replite_replica_lag_frames{database="default",replica="${lagger}"}`), get(m, 'replite_head_frame{database="default"}'));

  // A replite replica: caught up after its writes, which are pushes.
  new Database(":memory:").loadExtension(EXTENSION);
  const replica = new Database(`file:${dir.file("r.db")}?vfs=replite&sync_url=${s.url}`);
  t.after(() => replica.close());
  const before = await scrape(s);
  for (let i = 0; i < 3; i++) replica.prepare("INSERT INTO t(v) VALUES (?)").run(`pushed ${i}`);
  const status = JSON.parse(replica.prepare("SELECT replite_status()").pluck().get());
  assert.equal(status.lag_ms, 0);
  let after;
  const deadline = Date.now() + 10000;
  for (;;) {
    after = await scrape(s);
    promtool(after.text);
    const ids = [...after.samples.keys()].filter((k) => k.startsWith("replite_replica_lag_seconds{") && !k.includes(lagger));
    // Its long-poll, after its last push, says it is current.
    if (ids.length === 1 && after.samples.get(ids[0]) === 0 &&
        get(after, ids[0].replace("lag_seconds", "lag_frames")) === 0) break;
    assert.ok(Date.now() < deadline, `the replite replica never showed as current:\n${after.text}`);
    await sleep(100);
  }
  assert.equal(get(after, 'replite_commits_total{database="default",source="push"}') -
    get(before, 'replite_commits_total{database="default",source="push"}'), 3);
  assert.equal(get(after, 'replite_pushes_total{outcome="ok"}') - get(before, 'replite_pushes_total{outcome="ok"}'), 3);
  assert.equal(get(after, 'replite_pushes_total{outcome="conflict"}'), 0);
  assert.ok(get(after, "replite_exports_total") >= 1, "the replica bootstrapped");

  // The lagger stops pulling: gone after --replica-expiry (2 s); the live
  // replica long-polls and stays.
  const gone = Date.now() + 10000;
  for (;;) {
    const now = await scrape(s);
    if (!now.text.includes(lagger)) {
      assert.equal(get(now, 'replite_replicas{database="default"}'), 1);
      break;
    }
    assert.ok(Date.now() < gone, "the quiet replica was never forgotten");
    await sleep(250);
  }
});

test("/metrics is behind a token when the server has keys", async (t) => {
  const dir = tempDir("replite-metrics-auth-");
  const auth = makeAuth(dir.path);
  const s = await startServer({ args: ["--auth-jwt-key-file", auth.keyFile] });
  t.after(() => s.stop());
  const none = await http(s, "GET", "/metrics");
  assert.equal(none.status, 401);
  const foreign = await http(s, "GET", "/metrics", { token: auth.token({ a: "rw" }, auth.otherKey) });
  assert.equal(foreign.status, 401);
  const ro = await scrape(s, auth.token({ a: "ro" }));
  promtool(ro.text);
  assert.ok(ro.samples.has('replite_http_requests_total{route="/metrics",method="GET",status="401"}'));
});
