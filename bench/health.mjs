// The primary under heavy SQL (issue 15): while HEAVY (10) concurrent
// long-running queries (a recursive CTE that counts until the statement
// timeout interrupts it) occupy the server, how long do a GET /health, a
// point read over Hrana (@libsql/client), and a replica's sync (a replite
// replica, `SELECT replite_sync()` after a commit on the primary) take?
// Each is repeated SAMPLES times, spaced, and compared with the same on the
// idle server in the same run.  Target: each within 100 ms under load.
import { createClient } from "@libsql/client";
import { REPLITE_BIN, fmt, startPrimary, summarize } from "./common.mjs";
import { Driver, replicaUri, tempDir } from "./driver.mjs";

const HEAVY = Number(process.env.BENCH_HEAVY ?? 10);
const SAMPLES = Number(process.env.BENCH_HEALTH_SAMPLES ?? 20);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const HEAVY_SQL =
  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000000000) SELECT count(*) FROM n";

async function time(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function measure(primary, writer, reader, driver, label) {
  const lat = { health: [], read: [], sync: [] };
  for (let i = 0; i < SAMPLES; i++) {
    lat.health.push(
      await time(async () => {
        const r = await fetch(`${primary.url}/health`);
        await r.arrayBuffer();
        if (r.status !== 200) throw new Error(`/health answered ${r.status}`);
      }),
    );
    lat.read.push(await time(() => reader.execute({ sql: "SELECT v FROM kv WHERE k = ?", args: [1 + (i % 100)] })));
    await writer.execute({ sql: "INSERT INTO kv(v) VALUES (?)", args: [`${label} ${i}`] });
    lat.sync.push(await time(() => driver.send("sync")));
    await sleep(20);
  }
  return lat;
}

const primary = await startPrimary(["--statement-timeout", "60000"]);
const dir = tempDir("replite-bench-health-");
const driver = new Driver();
try {
  const writer = createClient({ url: primary.url });
  const reader = createClient({ url: primary.url });
  await writer.execute("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)");
  for (let i = 0; i < 100; i++) await writer.execute({ sql: "INSERT INTO kv(v) VALUES (?)", args: [`row ${i}`] });
  await driver.send(`open ${replicaUri(dir.file("r.db"), primary.url, "&sync_interval=0")}`);

  const idle = await measure(primary, writer, reader, driver, "idle");
  const heavyClients = Array.from({ length: HEAVY }, () => createClient({ url: primary.url }));
  // Run until the clients are closed (the statements end with their
  // streams, or at the 60 s timeout).
  const running = heavyClients.map((c) => c.execute(HEAVY_SQL).catch(() => {}));
  await sleep(500);
  const loaded = await measure(primary, writer, reader, driver, "loaded");

  console.log(
    `Under load: ${HEAVY} concurrent heavy queries (recursive CTE, CPU-bound) on the primary (${REPLITE_BIN}); ${SAMPLES} samples of each, ms`,
  );
  console.log("what                                   idle p50   idle max   loaded p50   loaded max   target");
  for (const [what, key] of [
    ["GET /health", "health"],
    ["point read (@libsql/client)", "read"],
    ["replica sync after a commit", "sync"],
  ]) {
    const a = summarize(idle[key]);
    const b = summarize(loaded[key]);
    const max = Math.max(...loaded[key]);
    console.log(
      `${what.padEnd(36)} ${fmt(a.p50).padStart(9)} ${fmt(Math.max(...idle[key])).padStart(10)} ${fmt(b.p50).padStart(12)} ${fmt(max).padStart(12)}   <= 100 ms: ${max <= 100 ? "met" : "NOT met"}`,
    );
  }
  writer.close();
  reader.close();
  await primary.stop(); // ends the heavy statements with the server
  for (const c of heavyClients) c.close();
  await Promise.all(running);
} finally {
  await driver.quit().catch(() => {});
  dir.remove();
}
