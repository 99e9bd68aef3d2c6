// Turso Sync clients against replite serve (issue 13): a first pull (the
// @tursodatabase/sync client's connect() on an empty path, which downloads
// every page through POST /pull-updates) and an incremental pull after
// BENCH_UPDATES single-row updates (db.pull()), against a replite replica's
// bootstrap (open + sync) and catch-up (sync) from the same primary, in the
// same run.  The database: BENCH_TURSO_MB (60) MB of rows.  Medians of
// BENCH_TURSO_RUNS (3) runs, fresh primary and clients each run.
import { connect } from "@tursodatabase/sync";
import { createClient } from "@libsql/client";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { executeConcurrently, fmt, percentile, startPrimary } from "./common.mjs";
import { Driver, replicaUri, tempDir } from "./driver.mjs";

const env = (name, dflt) => Number(process.env[name] ?? dflt);
const MB = env("BENCH_TURSO_MB", 60);
const UPDATES = env("BENCH_UPDATES", 2000);
const RUNS = env("BENCH_TURSO_RUNS", 3);
const TURSO_VERSION = JSON.parse(
  readFileSync(join(import.meta.dirname, "node_modules/@tursodatabase/sync/package.json"), "utf8"),
).version;
const median = (xs) => percentile([...xs].sort((a, b) => a - b), 50);

const updates = (url, n) => executeConcurrently(url, n, (i) => ({ sql: "UPDATE t SET v = v + 1 WHERE id = ?", args: [1 + ((i * 7919) % 1000)] }));

async function run(results) {
  const primary = await startPrimary(["--generation-frames", "1000000"]);
  const dir = tempDir("replite-bench-turso-");
  let driver = null;
  let turso = null;
  try {
    const setup = createClient({ url: primary.url });
    const rows = Math.round((MB * 1e6) / 4200);
    await setup.batch(
      [
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v INT, body TEXT)",
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${rows}) INSERT INTO t SELECT i, 0, hex(randomblob(2000)) FROM n`,
      ],
      "write",
    );
    const size = (await setup.execute("SELECT page_count * page_size AS n FROM pragma_page_count, pragma_page_size")).rows[0].n;
    results.bytes = Number(size);

    let t0 = performance.now();
    turso = await connect({ path: dir.file("turso.db"), url: primary.url });
    (results.tursoFirst ??= []).push(performance.now() - t0);

    driver = new Driver();
    t0 = performance.now();
    await driver.send(`open ${replicaUri(dir.file("replite.db"), primary.url, "&sync_interval=0")}`);
    await driver.send("sync");
    (results.repliteFirst ??= []).push(performance.now() - t0);

    await updates(primary.url, UPDATES);
    const want = Number((await setup.execute("SELECT sum(v) AS s FROM t")).rows[0].s);
    setup.close();

    t0 = performance.now();
    await turso.pull();
    (results.tursoInc ??= []).push(performance.now() - t0);
    const [{ s }] = await turso.all("SELECT sum(v) AS s FROM t");
    if (s !== want) throw new Error(`the Turso Sync client caught up to ${s}, expected ${want}`);

    t0 = performance.now();
    await driver.send("sync");
    (results.repliteInc ??= []).push(performance.now() - t0);
    const got = (await driver.send("int SELECT sum(v) FROM t")).value;
    if (got !== want) throw new Error(`the replite replica caught up to ${got}, expected ${want}`);
  } finally {
    await turso?.close();
    await driver?.quit();
    dir.remove();
    await primary.stop();
  }
}

const results = {};
for (let i = 0; i < RUNS; i++) await run(results);
console.log(
  `Turso Sync (@tursodatabase/sync ${TURSO_VERSION}) against replite serve: a ${fmt(results.bytes / 1e6, 1)} MB database, ` +
    `then ${UPDATES} single-row updates; median of ${RUNS} runs`,
);
console.log(`${"".padEnd(34)} ${"Turso Sync ms".padStart(14)} ${"replite ms".padStart(11)} ${"turso/replite".padStart(14)}`);
for (const [label, a, b] of [
  ["first pull / bootstrap", results.tursoFirst, results.repliteFirst],
  [`pull after ${UPDATES} updates / catch-up`, results.tursoInc, results.repliteInc],
]) {
  console.log(`${label.padEnd(34)} ${fmt(median(a), 1).padStart(14)} ${fmt(median(b), 1).padStart(11)} ${fmt(median(a) / median(b), 2).padStart(13)}x`);
}
console.log(
  `runs (ms): ${Object.entries(results)
    .filter(([, r]) => Array.isArray(r))
    .map(([w, r]) => `${w} ${r.map((x) => fmt(x, 0)).join(", ")}`)
    .join("; ")}`,
);
