// Replica benchmarks, all against one `replite serve` at a time: the replica
// (libreplite linked into bench/replica_bench, a C program, driven from here)
// next to stock SQLite on the same file and next to the npm libsql embedded
// replica syncing from the same primary.
//   1. point reads through the replica vs a plain connection on the same file;
//   2. bootstrap of a ~60 MB database, then catch-up after 2,000 small
//      transactions, vs npm libsql (new Database(path, {syncUrl}) + sync());
//   3. commit on the primary -> row visible on a live-syncing replica.
import { createClient } from "@libsql/client";
import Database from "libsql";
import { spawn } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fmt, percentile, startPrimary } from "./common.mjs";
import { Driver, replicaUri, runBench, tempDir } from "./driver.mjs";

const env = (name, dflt) => Number(process.env[name] ?? dflt);
const READ_ROWS = env("BENCH_READ_ROWS", 100000);
const READS = env("BENCH_READS", 200000); // lookups per run
const READ_ROUNDS = env("BENCH_READ_ROUNDS", 5);
const BOOT_MB = env("BENCH_BOOT_MB", 60);
const BOOT_RUNS = env("BENCH_BOOT_RUNS", 3);
const TXNS = env("BENCH_TXNS", 2000);
const LIVE_SAMPLES = env("BENCH_LIVE_SAMPLES", 300);
const LIBSQL_SAMPLES = env("BENCH_LIBSQL_SAMPLES", 30);
const LIBSQL_SYNC_PERIOD = env("BENCH_LIBSQL_SYNC_PERIOD", 1);
const LIBSQL_VERSION = JSON.parse(
  readFileSync(join(import.meta.dirname, "node_modules/libsql/package.json"), "utf8"),
).version;
const FRAME = 24 + 4096;
const MB = 1e6;
const median = (xs) => percentile([...xs].sort((a, b) => a - b), 50);

// ---------------------------------------------------------------------------
// 1. point reads

async function pointReads() {
  const primary = await startPrimary();
  const dir = tempDir("replite-bench-reads-");
  try {
    const c = createClient({ url: primary.url });
    await c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    await c.execute(
      `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${READ_ROWS})
       INSERT INTO t SELECT x, hex(randomblob(16)) FROM c`,
    );
    c.close();
    const runs = await runBench(["reads", primary.url, dir.path, READ_ROWS, READS, READ_ROUNDS]);
    const by = (conn) => runs.filter((r) => r.conn === conn).sort((a, b) => a.round - b.round);
    const row = (label, conn) => {
      const rs = by(conn);
      const mean = median(rs.map((r) => r.ns / r.n / 1000));
      const ops = median(rs.map((r) => (r.n / r.ns) * 1e9));
      const p50 = median(rs.map((r) => r.p50_ns / 1000));
      const p99 = median(rs.map((r) => r.p99_ns / 1000));
      console.log(`${label.padEnd(40)} ${fmt(ops, 0).padStart(9)} ${fmt(mean, 3).padStart(8)} ${fmt(p50, 3).padStart(8)} ${fmt(p99, 3).padStart(8)}`);
    };
    // Replica / plain latency (mean, or p50: less sensitive to preemption on
    // a busy machine), paired within each round.
    const ratio = (replica, plain, key) => {
      const a = by(replica);
      const b = by(plain);
      const rs = a.map((r, i) => r[key] / b[i][key]).sort((x, y) => x - y);
      return `${fmt(median(rs), 3)} (rounds ${fmt(rs[0], 3)}..${fmt(rs[rs.length - 1], 3)})`;
    };
    console.log(
      `Point reads: SELECT v FROM t WHERE id = ? (prepared, random ids, ${READ_ROWS} rows), one thread, ` +
        `${READ_ROUNDS} rounds x ${READS} lookups per connection, rotating order; medians of the rounds`,
    );
    console.log(`${"connection".padEnd(40)} ${"ops/s".padStart(9)} ${"mean us".padStart(8)} ${"p50 us".padStart(8)} ${"p99 us".padStart(8)}`);
    row("replica, sync_interval=0 (a.db)", "replica0");
    row("stock SQLite, default VFS, same a.db", "plain0");
    row("replica, live sync (default interval)", "replica_live");
    row("stock SQLite, default VFS, same b.db", "plain_live");
    console.log(
      "replica / stock SQLite, median of the rounds: the reading thread's CPU time (target <= 1.02), " +
        "wall-clock latency (mean, p50)",
    );
    for (const [label, replica, plain] of [
      ["sync_interval=0", "replica0", "plain0"],
      ["live sync", "replica_live", "plain_live"],
    ])
      console.log(
        `  ${label.padEnd(16)} CPU time ${ratio(replica, plain, "cpu_ns")}   mean ${ratio(replica, plain, "ns")}   ` +
          `p50 ${ratio(replica, plain, "p50_ns")}`,
      );
  } finally {
    dir.remove();
    await primary.stop();
  }
}

// ---------------------------------------------------------------------------
// 2. bootstrap and catch-up

function makeSource(path) {
  const db = new Database(path);
  db.exec("CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB); CREATE TABLE small(id INTEGER PRIMARY KEY, v TEXT)");
  // A 3800-byte blob fills a 4 KiB page.
  const rows = Math.round((BOOT_MB * 1e6) / 4096);
  db.exec(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${rows})
           INSERT INTO big SELECT x, randomblob(3800) FROM c`);
  db.close();
  return statSync(path).size;
}

async function commitSmall(url, n, concurrency = 4) {
  const clients = Array.from({ length: concurrency }, () => createClient({ url }));
  let next = 0;
  await Promise.all(
    clients.map(async (c) => {
      while (next < n) {
        next++;
        await c.execute({ sql: "INSERT INTO small(v) VALUES (?)", args: ["small row " + next] });
      }
    }),
  );
  clients.forEach((c) => c.close());
}

// The same database built on the primary by inserts (@libsql/client, 500 rows
// of 3,800 random bytes per transaction) instead of imported: with the
// default --generation-frames (10,000) it spans rollovers, and a new replica
// gets the current generation's base and then the frames after it.
async function buildByInserts(url) {
  const client = createClient({ url });
  await client.execute("CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB)");
  await client.execute("CREATE TABLE small(id INTEGER PRIMARY KEY, v TEXT)");
  const rows = Math.round((BOOT_MB * 1e6) / 4096);
  for (let done = 0; done < rows; done += 500) {
    const n = Math.min(500, rows - done);
    await client.execute(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${n})
                          INSERT INTO big(b) SELECT randomblob(3800) FROM c`);
  }
  const info = await (await fetch(url + "/info")).json();
  client.close();
  return info;
}

// kind "import": the primary imports the database (one generation);
// "inserts": it is built on the primary across rollovers (buildByInserts).
async function bootstrapAndCatchUp(kind = "import") {
  const src = tempDir("replite-bench-src-");
  let size = kind === "import" ? makeSource(src.file("source.db")) : 0;
  const res = { replite: { boot: [], catchup: [] }, libsql: { boot: [], catchup: [] } };
  let frames = 0, generation = 1;
  try {
    for (let run = 0; run < BOOT_RUNS; run++) {
      const primary = await startPrimary(
        kind === "import" ? ["--import", src.file("source.db"), "--generation-frames", "1000000"] : [],
      );
      if (kind === "inserts") {
        generation = (await buildByInserts(primary.url)).current_generation;
        size = (await (await fetch(primary.url + "/metrics")).text()).match(/^replite_database_bytes\{[^}]*\} (\d+)/m)?.[1] * 1 || 0;
      }
      const dir = tempDir("replite-bench-boot-");
      const driver = new Driver();
      let lib = null;
      try {
        const steps = {
          replite: {
            boot: async () =>
              (await driver.send(`open ${replicaUri(dir.file("replite.db"), primary.url, "&sync_interval=0")}`)).ms,
            catchup: async () => (await driver.send("sync")).ms,
          },
          libsql: {
            boot: async () => {
              const t0 = performance.now();
              lib = new Database(dir.file("libsql.db"), { syncUrl: primary.url });
              lib.sync();
              return performance.now() - t0;
            },
            catchup: async () => {
              const t0 = performance.now();
              lib.sync();
              return performance.now() - t0;
            },
          },
        };
        // Alternate which one goes first.
        const order = run % 2 === 0 ? ["replite", "libsql"] : ["libsql", "replite"];
        for (const who of order) res[who].boot.push(await steps[who].boot());
        const before = await (await fetch(primary.url + "/info")).json();
        await commitSmall(primary.url, TXNS);
        const info = await (await fetch(primary.url + "/info")).json();
        // The catch-up's frames (a rollover meanwhile: those of the new
        // generation only).
        frames = info.max_frame_no - (info.current_generation === before.current_generation ? before.max_frame_no : 0);
        generation = info.current_generation;
        for (const who of order) res[who].catchup.push(await steps[who].catchup());
        const mine = (await driver.send("int SELECT count(*) FROM small")).value;
        const theirs = lib.prepare("SELECT count(*) FROM small").raw().get()[0];
        const st = (await driver.send("status")).status;
        if (mine !== TXNS || theirs !== TXNS || st.frame_no !== info.max_frame_no)
          throw new Error(`catch-up incomplete: replite ${mine} rows (frame ${st.frame_no} of ${info.max_frame_no}), libsql ${theirs} rows, expected ${TXNS}`);
      } finally {
        lib?.close();
        await driver.quit();
        dir.remove();
        await primary.stop();
      }
    }
  } finally {
    src.remove();
  }
  const catchupMB = (frames * FRAME) / MB;
  const line = (label, key, mb) => {
    const a = median(res.replite[key]);
    const b = median(res.libsql[key]);
    console.log(
      `${label.padEnd(10)} ${fmt(a, 1).padStart(10)} ${fmt(mb / (a / 1000), 1).padStart(8)}   ${fmt(b, 1).padStart(10)} ${fmt(mb / (b / 1000), 1).padStart(8)}   ${fmt(b / a, 2).padStart(6)}x`,
    );
  };
  console.log(
    `Bootstrap of a ${fmt(size / MB, 1)} MB database (${kind === "import" ? "imported" : `built by inserts on the primary, generation ${generation}`}), ` +
      `then catch-up after ${TXNS} small transactions ` +
      `(${frames} frames, ${fmt(catchupMB, 1)} MB); median of ${BOOT_RUNS} runs, fresh replicas and primary each run`,
  );
  console.log(`${"".padEnd(10)} ${"replite ms".padStart(10)} ${"MB/s".padStart(8)}   ${"libsql ms".padStart(10)} ${"MB/s".padStart(8)}   libsql/replite`);
  line("bootstrap", "boot", size / MB);
  line("catch-up", "catchup", catchupMB);
  const runs = (xs) => xs.map((x) => fmt(x, 0)).join(", ");
  console.log(`runs (ms): replite bootstrap ${runs(res.replite.boot)}, catch-up ${runs(res.replite.catchup)}; ` +
    `libsql ${LIBSQL_VERSION} bootstrap ${runs(res.libsql.boot)}, catch-up ${runs(res.libsql.catchup)}`);
}

// ---------------------------------------------------------------------------
// 3. commit -> visible

const pause = () => sleep(2 + Math.random() * 18);
const MAX_ID = "SELECT coalesce(max(id), 0) FROM live";

// One sample: commit row id on the primary, then await seen() (the
// process.hrtime.bigint() at which the replica first showed it).
async function timedInsert(client, id, seen) {
  const sent = process.hrtime.bigint();
  await client.execute({ sql: "INSERT INTO live(id, v) VALUES (?, 'x')", args: [id] });
  const ack = process.hrtime.bigint();
  const at = await seen();
  return { fromAck: Number(at - ack) / 1e6, fromSend: Number(at - sent) / 1e6 };
}

// The npm libsql replica with its periodic sync, in a child process
// (`replica.mjs libsql-visibility URL PATH FIRST_ID`): its background sync
// outlives close(), so the parent kills the child while the primary still
// runs.  Prints the samples as one JSON line.
async function libsqlVisibilityChild(url, path, firstId) {
  const c = createClient({ url });
  const lib = new Database(path, { syncUrl: url, syncPeriod: LIBSQL_SYNC_PERIOD });
  lib.sync();
  const stmt = lib.prepare(MAX_ID).raw();
  const tick = new Int32Array(new SharedArrayBuffer(4));
  const poll = (target) => {
    const giveUp = process.hrtime.bigint() + 30_000_000_000n;
    while (stmt.get()[0] < target) {
      if (process.hrtime.bigint() > giveUp) throw new Error(`libsql replica: row ${target} not visible after 30 s`);
      Atomics.wait(tick, 0, 0, 0.02); // 20 us
    }
    return process.hrtime.bigint();
  };
  const samples = [];
  for (let i = 0; i < LIBSQL_SAMPLES; i++) {
    // A random phase against its sync period.
    await sleep(Math.random() * LIBSQL_SYNC_PERIOD * 1000);
    const id = firstId + i;
    samples.push(await timedInsert(c, id, async () => poll(id)));
  }
  process.stdout.write(JSON.stringify(samples) + "\n");
  setInterval(() => {}, 60000); // until killed
}

async function libsqlVisibility(url, path, firstId) {
  const child = spawn(process.execPath, [import.meta.filename, "libsql-visibility", url, path, firstId], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise((res) => child.on("exit", res));
  try {
    const line = await new Promise((res, rej) => {
      createInterface({ input: child.stdout }).once("line", res);
      exited.then((code) => rej(new Error(`libsql visibility child exited with ${code}`)));
    });
    return JSON.parse(line);
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
}

async function visibility() {
  const primary = await startPrimary();
  const dir = tempDir("replite-bench-live-");
  const c = createClient({ url: primary.url });
  // Percentiles of the delays from the INSERT's acknowledgment (negative:
  // visible before the client had its answer) and from its sending.
  const report = (label, samples) => {
    const cols = (key) => {
      const s = samples.map((x) => x[key]).sort((a, b) => a - b);
      return [50, 90, 99, 100].map((p) => fmt(p === 100 ? s[s.length - 1] : percentile(s, p), 2).padStart(8)).join("");
    };
    const early = samples.filter((x) => x.fromAck < 0).length;
    console.log(`${label.padEnd(40)}${cols("fromAck")}   ${cols("fromSend")}` + (early ? `   ${early} seen before the ack` : ""));
  };
  let id = 0;
  try {
    await c.execute("CREATE TABLE live(id INTEGER PRIMARY KEY, v TEXT)");
    // replite, default sync_interval (live long-poll).
    const driver = new Driver();
    const mine = [];
    try {
      await driver.send(`open ${replicaUri(dir.file("replite.db"), primary.url)}`);
      for (let i = -10; i < LIVE_SAMPLES; i++) {
        await pause();
        const w = await driver.watch(++id, MAX_ID);
        const t = await timedInsert(c, id, () => w.seen);
        if (i >= 0) mine.push(t); // the first 10 warm up
      }
    } finally {
      await driver.quit();
    }
    const theirs = await libsqlVisibility(primary.url, dir.file("libsql.db"), id + 1);
    console.log(
      `Commit on the primary (@libsql/client, single-row INSERT; 2-20 ms apart for replite, at a random phase of the ` +
        `libsql sync period) -> row visible on the replica (SELECT max(id) polled every ~0.1 ms), ms`,
    );
    const head = ["p50", "p90", "p99", "max"].map((h) => h.padStart(8)).join("");
    console.log(`${"".padEnd(40)}${"from the ack".padStart(32)}   ${"from the send".padStart(32)}`);
    console.log(`${"replica".padEnd(40)}${head}   ${head}`);
    report(`replite, live sync (${mine.length} samples)`, mine);
    report(`npm libsql, syncPeriod=${LIBSQL_SYNC_PERIOD} s (${theirs.length} samples)`, theirs);
    const p50 = (xs) => median(xs.map((x) => x.fromSend));
    console.log(`p50 ratio libsql/replite (from the send): ${fmt(p50(theirs) / p50(mine), 1)}x`);
  } finally {
    c.close();
    dir.remove();
    await primary.stop();
  }
}

if (process.argv[2] === "libsql-visibility") {
  await libsqlVisibilityChild(process.argv[3], process.argv[4], Number(process.argv[5]));
} else {
  // BENCH_REPLICA_PARTS: a comma-separated subset of reads, boot,
  // boot-inserts, live.
  const parts = (process.env.BENCH_REPLICA_PARTS ?? "reads,boot,boot-inserts,live").split(",");
  if (parts.includes("reads")) await pointReads();
  if (parts.includes("boot")) await (console.log(), bootstrapAndCatchUp("import"));
  if (parts.includes("boot-inserts")) await (console.log(), bootstrapAndCatchUp("inserts"));
  if (parts.includes("live")) await (console.log(), visibility());
}
