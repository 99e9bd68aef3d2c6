// Write benchmarks, against one `replite serve` at a time: writes through a
// replite replica (libreplite linked into bench/replica_bench, driven from
// here: `inserts N SQL`) next to the npm libsql embedded replica in default
// mode and to @libsql/client writing to the primary directly.
//   1. latency of a single-row autocommit INSERT, one at a time, with
//      read-your-writes: replite (the INSERT returns once the primary has
//      the commit and it is visible locally) vs npm libsql (its INSERT goes
//      to the primary over Hrana, then sync() pulls it back) vs
//      @libsql/client (Hrana, nothing local);
//   2. write throughput: one replica inserting in a row, several replicas
//      (each its own file and process) inserting at the same time with
//      retries on SQLITE_BUSY / SQLITE_BUSY_SNAPSHOT, and @libsql/client with
//      one and with as many concurrent clients.
import { createClient } from "@libsql/client";
import Database from "libsql";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fmt, percentile, startPrimary } from "./common.mjs";
import { Driver, replicaUri, tempDir } from "./driver.mjs";

const env = (name, dflt) => Number(process.env[name] ?? dflt);
const SAMPLES = env("BENCH_WRITE_SAMPLES", 300); // per writer, latency
const ROUNDS = env("BENCH_WRITE_ROUNDS", 3);
const WARMUP = 20;
const SINGLE_N = env("BENCH_WRITE_N", 1000); // inserts, one replica
const REPLICAS = env("BENCH_WRITE_REPLICAS", 4);
const PER_REPLICA = env("BENCH_WRITE_PER_REPLICA", 400); // inserts each
const LIBSQL_VERSION = JSON.parse(
  readFileSync(join(import.meta.dirname, "node_modules/libsql/package.json"), "utf8"),
).version;

const INSERT = "INSERT INTO w(v) VALUES (?1)";
const sorted = (xs) => [...xs].sort((a, b) => a - b);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

async function setup(url) {
  const c = createClient({ url });
  await c.execute("CREATE TABLE w(id INTEGER PRIMARY KEY, v INTEGER)");
  return c;
}

async function count(c) {
  return Number((await c.execute("SELECT count(*) FROM w")).rows[0][0]);
}

// ---------------------------------------------------------------------------
// 1. latency

async function latency() {
  const primary = await startPrimary();
  const dir = tempDir("replite-bench-wlat-");
  const c = await setup(primary.url);
  const driver = new Driver();
  const lib = new Database(dir.file("libsql.db"), { syncUrl: primary.url });
  try {
    await driver.send(`open ${replicaUri(dir.file("replite.db"), primary.url)}`);
    lib.sync();
    const libInsert = lib.prepare("INSERT INTO w(v) VALUES (?)");
    const libHas = lib.prepare("SELECT count(*) FROM w WHERE id = ?").raw();
    let libUnseen = 0; // rows not visible locally after sync()
    let libEarly = 0; // rows visible locally before sync()
    const writers = {
      // Latencies in ms, measured by the driver (C, CLOCK_MONOTONIC).
      replite: async (n) => (await driver.send(`inserts ${n} ${INSERT}`)).lat_us.map((x) => x / 1000),
      libsql: async (n) => {
        const write = [];
        const total = [];
        for (let i = 0; i < n; i++) {
          const t0 = performance.now();
          const r = libInsert.run(i);
          const t1 = performance.now();
          if (libHas.get(r.lastInsertRowid)[0] === 1) libEarly++; // (not timed)
          // Read-your-writes: sync() brings the row back.
          const t1b = performance.now();
          lib.sync();
          const t2 = performance.now();
          write.push(t1 - t0);
          total.push(t1 - t0 + (t2 - t1b));
          if (libHas.get(r.lastInsertRowid)[0] !== 1) libUnseen++;
        }
        return { write, total };
      },
      client: async (n) => {
        const out = [];
        for (let i = 0; i < n; i++) {
          const t0 = performance.now();
          await c.execute({ sql: "INSERT INTO w(v) VALUES (?)", args: [i] });
          out.push(performance.now() - t0);
        }
        return out;
      },
    };
    for (const w of Object.values(writers)) await w(WARMUP);
    libUnseen = 0;
    libEarly = 0;
    const res = { replite: [], libsql: [], libsqlWrite: [], client: [] };
    const order = Object.keys(writers);
    for (let round = 0; round < ROUNDS; round++) {
      const n = Math.ceil(SAMPLES / ROUNDS);
      for (let k = 0; k < order.length; k++) {
        const who = order[(k + round) % order.length];
        const r = await writers[who](n);
        if (who === "libsql") {
          res.libsql.push(...r.total);
          res.libsqlWrite.push(...r.write);
        } else res[who].push(...r);
      }
    }
    // Everything is on the primary, and the replite replica has it locally.
    const total = await count(c);
    const mine = (await driver.send("int SELECT count(*) FROM w")).value;
    if (mine !== total) throw new Error(`the replite replica has ${mine} rows, the primary ${total}`);

    console.log(
      `Write latency: single-row INSERT (autocommit), one at a time, ${res.replite.length} samples per writer ` +
        `(${ROUNDS} rounds, rotating order), against the same replite serve; ms`,
    );
    const head = ["p50", "p90", "p99", "mean"].map((h) => h.padStart(8)).join("");
    console.log(`${"writer".padEnd(58)}${head}`);
    const row = (label, xs) => {
      const s = sorted(xs);
      const ps = [50, 90, 99].map((p) => fmt(percentile(s, p), 3).padStart(8)).join("");
      console.log(`${label.padEnd(58)}${ps}${fmt(mean(s), 3).padStart(8)}`);
    };
    row("replite replica (INSERT; read-your-writes included)", res.replite);
    row(`npm libsql ${LIBSQL_VERSION} replica, default mode: INSERT + sync()`, res.libsql);
    row("  of which the INSERT (Hrana to the primary)", res.libsqlWrite);
    row("@libsql/client execute (Hrana, no local copy)", res.client);
    console.log(
      `  (npm libsql: ${libEarly} of ${res.libsql.length} rows visible locally before sync()` +
        (libUnseen > 0 ? `, ${libUnseen} not even after it)` : ")"),
    );
    const ratio = (a, b, p) => fmt(percentile(sorted(a), p) / percentile(sorted(b), p), 2);
    const ratios = (a, b) => [50, 90, 99].map((p) => `p${p} ${ratio(a, b, p)}x`).join(", ");
    console.log(`ratio npm libsql (INSERT + sync()) / replite: ${ratios(res.libsql, res.replite)}`);
    console.log(`ratio npm libsql (INSERT alone) / replite:    ${ratios(res.libsqlWrite, res.replite)}`);
    console.log(`ratio replite / @libsql/client:              ${ratios(res.replite, res.client)}`);
  } finally {
    lib.close();
    await driver.quit();
    c.close();
    dir.remove();
    await primary.stop();
  }
}

// ---------------------------------------------------------------------------
// 2. throughput

// k replite replicas (fresh files, one driver process each) inserting n rows
// each at the same time; commits/s over the wall time from the first
// command sent to the last answer.
async function repliteThroughput(url, dir, k, n, tag) {
  const drivers = Array.from({ length: k }, () => new Driver());
  try {
    await Promise.all(drivers.map((d, i) => d.send(`open ${replicaUri(dir.file(`${tag}-${i}.db`), url)}`)));
    const t0 = performance.now();
    // Each replica inserts its own values (see bench/README.md).
    const rs = await Promise.all(
      drivers.map((d, i) => d.send(`inserts ${n} INSERT INTO w(v) VALUES (${i} * 1000000 + ?1)`)),
    );
    const ms = performance.now() - t0;
    const sum = (key) => rs.reduce((a, r) => a + r[key], 0);
    return { commits: k * n, ms, perS: (k * n * 1000) / ms, snapshot: sum("busy_snapshot"), busy: sum("busy") };
  } finally {
    await Promise.all(drivers.map((d) => d.quit()));
  }
}

async function clientThroughput(url, k, n) {
  const clients = Array.from({ length: k }, () => createClient({ url }));
  try {
    const t0 = performance.now();
    await Promise.all(
      clients.map(async (c) => {
        for (let i = 0; i < n; i++) await c.execute({ sql: "INSERT INTO w(v) VALUES (?)", args: [i] });
      }),
    );
    const ms = performance.now() - t0;
    return { commits: k * n, ms, perS: (k * n * 1000) / ms };
  } finally {
    clients.forEach((c) => c.close());
  }
}

async function throughput() {
  const primary = await startPrimary();
  const dir = tempDir("replite-bench-wtput-");
  const c = await setup(primary.url);
  try {
    await repliteThroughput(primary.url, dir, 1, WARMUP, "warm");
    const before = await count(c);
    const one = await repliteThroughput(primary.url, dir, 1, SINGLE_N, "one");
    const many = await repliteThroughput(primary.url, dir, REPLICAS, PER_REPLICA, "many");
    const cOne = await clientThroughput(primary.url, 1, SINGLE_N);
    const cMany = await clientThroughput(primary.url, REPLICAS, PER_REPLICA);
    const expected = before + one.commits + many.commits + cOne.commits + cMany.commits;
    const total = await count(c);
    if (total !== expected) throw new Error(`the primary has ${total} rows, expected ${expected}`);

    console.log(
      `Write throughput: single-row INSERTs (autocommit) in a row per writer; several replicas = separate files ` +
        `and processes, retrying on SQLITE_BUSY/BUSY_SNAPSHOT; commits/s over the wall time`,
    );
    const line = (label, commits, ms, perS, extra) =>
      console.log(`${label.padEnd(52)}${commits.padStart(8)}${ms.padStart(9)}${perS.padStart(11)}   ${extra}`);
    line("writers", "commits", "ms", "commits/s", "app-visible retries");
    const row = (label, r, extra = "") => line(label, String(r.commits), fmt(r.ms, 0), fmt(r.perS, 0), extra);
    const retries = (r) => `${r.snapshot} BUSY_SNAPSHOT, ${r.busy} BUSY`;
    row("1 replite replica", one, retries(one));
    row(`${REPLICAS} replite replicas at once`, many, retries(many));
    row("1 @libsql/client (Hrana, sequential)", cOne);
    row(`${REPLICAS} @libsql/client clients at once`, cMany);
    console.log(
      `ratios: ${REPLICAS} replicas / 1 replica ${fmt(many.perS / one.perS, 2)}x; ` +
        `1 replica / 1 client ${fmt(one.perS / cOne.perS, 2)}x; ` +
        `${REPLICAS} replicas / ${REPLICAS} clients ${fmt(many.perS / cMany.perS, 2)}x; ` +
        `conflicts per commit with ${REPLICAS} replicas ${fmt(many.snapshot / many.commits, 2)}`,
    );
  } finally {
    c.close();
    dir.remove();
    await primary.stop();
  }
}

// BENCH_WRITE_ONLY=latency|throughput runs one part.
const ONLY = process.env.BENCH_WRITE_ONLY ?? "";
if (ONLY !== "throughput") await latency();
if (ONLY === "") console.log();
if (ONLY !== "latency") await throughput();
