// Catch-up after many small transactions on the same rows (issue 16,
// "squashed catch-up"): a primary with 100 rows, replicas that synced once,
// then BENCH_UPDATES (2,000) single-row UPDATE transactions through
// @libsql/client; then each replica catches up, timed:
//   - replite (replica_bench of this build; it asks for squashed answers:
//     each changed page once);
//   - replite as before squashing, when BENCH_BEFORE_REPLICA_BENCH names an
//     older build's replica_bench (it receives every frame);
//   - the npm libsql embedded replica (sync()).
// Bytes: frames received x 4,120 (bytes_pulled) and as received on the wire
// (wire_bytes_pulled, zstd), and the latter against the log's frames as
// plain bytes (what npm libsql receives; it does not ask for zstd).  Medians
// of BENCH_CATCHUP_RUNS (3) runs, fresh primary and replicas each run.
import { createClient } from "@libsql/client";
import Database from "libsql";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { executeConcurrently, fmt, percentile, startPrimary } from "./common.mjs";
import { Driver, replicaUri, tempDir } from "./driver.mjs";

const env = (name, dflt) => Number(process.env[name] ?? dflt);
const UPDATES = env("BENCH_UPDATES", 2000);
const RUNS = env("BENCH_CATCHUP_RUNS", 3);
const BEFORE = process.env.BENCH_BEFORE_REPLICA_BENCH;
const LIBSQL_VERSION = JSON.parse(
  readFileSync(join(import.meta.dirname, "node_modules/libsql/package.json"), "utf8"),
).version;
const median = (xs) => percentile([...xs].sort((a, b) => a - b), 50);
const MB = 1e6;

const updates = (url, n) =>
  executeConcurrently(url, n, (i) => ({ sql: "UPDATE t SET v = v + 1, note = ? WHERE id = ?", args: [`update ${i} `.repeat(8), 1 + (i % 100)] }));

async function run(results) {
  const primary = await startPrimary(["--generation-frames", "1000000"]);
  const dir = tempDir("replite-bench-catchup-");
  const drivers = {};
  let lib = null;
  try {
    const setup = createClient({ url: primary.url });
    await setup.batch(
      [
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v INT, note TEXT)",
        "CREATE INDEX t_v ON t(v)",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) INSERT INTO t SELECT i, 0, hex(randomblob(100)) FROM n",
      ],
      "write",
    );
    const who = ["replite", ...(BEFORE ? ["before"] : []), "libsql"];
    for (const w of who) {
      if (w === "libsql") {
        lib = new Database(dir.file("libsql.db"), { syncUrl: primary.url });
        lib.sync();
      } else {
        drivers[w] = new Driver(w === "before" ? BEFORE : undefined);
        await drivers[w].send(`open ${replicaUri(dir.file(`${w}.db`), primary.url, "&sync_interval=0")}`);
      }
    }
    const startFrame = (await (await fetch(primary.url + "/info")).json()).max_frame_no;
    await updates(primary.url, UPDATES);
    const info = await (await fetch(primary.url + "/info")).json();
    const want = (await setup.execute("SELECT sum(v) AS s FROM t")).rows[0].s;
    setup.close();
    results.frames = info.max_frame_no - startFrame;
    for (const w of who) {
      let ms, status0, status1;
      if (w === "libsql") {
        const t0 = performance.now();
        lib.sync();
        ms = performance.now() - t0;
        const got = lib.prepare("SELECT sum(v) FROM t").raw().get()[0];
        if (got !== want) throw new Error(`libsql caught up to sum ${got}, expected ${want}`);
      } else {
        status0 = (await drivers[w].send("status")).status;
        ms = (await drivers[w].send("sync")).ms;
        status1 = (await drivers[w].send("status")).status;
        const got = (await drivers[w].send("int SELECT sum(v) FROM t")).value;
        if (got !== want || status1.frame_no !== info.max_frame_no)
          throw new Error(`${w} caught up to sum ${got} at frame ${status1.frame_no}, expected ${want} at ${info.max_frame_no}`);
      }
      const r = (results[w] ??= { ms: [], frames: [], bytes: [], wire: [] });
      r.ms.push(ms);
      if (status1) {
        r.frames.push(status1.frames_pulled - status0.frames_pulled);
        r.bytes.push(status1.bytes_pulled - status0.bytes_pulled);
        r.wire.push((status1.wire_bytes_pulled ?? status1.bytes_pulled) - (status0.wire_bytes_pulled ?? status0.bytes_pulled));
      }
    }
  } finally {
    lib?.close();
    for (const d of Object.values(drivers)) await d.quit();
    dir.remove();
    await primary.stop();
  }
}

const results = {};
for (let i = 0; i < RUNS; i++) await run(results);
const libMs = median(results.libsql.ms);
const plainBytes = results.frames * 4120;
console.log(
  `Catch-up after ${UPDATES} single-row updates of the same 100 rows (${results.frames} frames of the log, ` +
    `${fmt(plainBytes / MB, 1)} MB); median of ${RUNS} runs, fresh primary and replicas each run`,
);
console.log(`${"".padEnd(22)} ${"ms".padStart(8)} ${"frames".padStart(8)} ${"KB".padStart(9)} ${"wire KB".padStart(9)} ${"wire/plain".padStart(11)} ${"libsql/this".padStart(12)}`);
for (const [w, label] of [["replite", "replite (squashed)"], ["before", "replite (every frame)"], ["libsql", `libsql ${LIBSQL_VERSION}`]]) {
  const r = results[w];
  if (!r) continue;
  const ms = median(r.ms);
  const bytes = r.bytes.length ? median(r.bytes) : NaN;
  const wire = r.wire.length ? median(r.wire) : NaN;
  console.log(
    `${label.padEnd(22)} ${fmt(ms, 1).padStart(8)} ${(r.frames.length ? String(median(r.frames)) : "-").padStart(8)} ` +
      `${(r.bytes.length ? fmt(bytes / 1e3, 1) : "-").padStart(9)} ${(r.wire.length ? fmt(wire / 1e3, 1) : "-").padStart(9)} ` +
      `${(r.wire.length ? fmt(wire / plainBytes, 5) : "-").padStart(11)} ${fmt(libMs / ms, 2).padStart(11)}x`,
  );
}
console.log(`runs (ms): ${Object.entries(results).filter(([, r]) => r.ms).map(([w, r]) => `${w} ${r.ms.map((x) => fmt(x, 0)).join(", ")}`).join("; ")}`);
