// Offline-mode benchmarks: a replite replica opened with offline=1 (&
// conflict=discard) commits locally, with no network, and its sync thread
// pushes the pending transactions in commit order once the primary is
// reachable.  Against one `replite serve` at a time:
//   1. local commit latency of a single-row autocommit INSERT while the
//      primary is stopped (SIGSTOP: nothing answers, nothing is pushed):
//      replite offline replica vs stock SQLite (default VFS, WAL, same
//      synchronous) in the same C process (replica_bench driver), and npm
//      libsql's offline replica (its local write path), for
//      synchronous=FULL and NORMAL;
//   2. push after reconnect: 10,000 single-row transactions committed
//      while the primary is stopped, then the time from its resumption to
//      nothing pending (SELECT replite_sync()), with the replica process's
//      RSS meanwhile, vs npm libsql offline: the same local writes, then
//      sync(); the primary's row count checked for both.
import { createClient } from "@libsql/client";
import Database from "libsql";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fmt, percentile, startPrimary } from "./common.mjs";
import { Driver, replicaUri, tempDir } from "./driver.mjs";

const env = (name, dflt) => Number(process.env[name] ?? dflt);
const SAMPLES = env("BENCH_OFFLINE_SAMPLES", 2400); // per writer and synchronous setting
const ROUNDS = env("BENCH_OFFLINE_ROUNDS", 6);
const WARMUP = env("BENCH_OFFLINE_WARMUP", 200); // per writer, before the rounds
const PUSH_TXNS = env("BENCH_OFFLINE_TXNS", 10000);
const LIBSQL_VERSION = JSON.parse(
  readFileSync(join(import.meta.dirname, "node_modules/libsql/package.json"), "utf8"),
).version;
// One generation for the whole push: npm libsql's sync() fails with
// InvalidPushFrameConflict when the primary starts a new generation in the
// middle of its push (at the default 10,000 frames); replite replicas
// continue in the new generation.
const PRIMARY_ARGS = ["--generation-frames", "1000000"];
const OFFLINE = "&offline=1&conflict=discard";

const TABLE = "CREATE TABLE o(id INTEGER PRIMARY KEY, v INTEGER)";
const INSERT = "INSERT INTO o(v) VALUES (?1)";
const COUNT = "SELECT count(*) FROM o";
const sorted = (xs) => [...xs].sort((a, b) => a - b);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const median = (xs) => percentile(sorted(xs), 50);

// The primary process stopped (SIGSTOP: connections are accepted by the
// kernel and never answered) and resumed.
const pause = (primary) => process.kill(primary.pid, "SIGSTOP");
const resume = (primary) => process.kill(primary.pid, "SIGCONT");

// From /proc: resident set (VmRSS) in kB, CPU time (user + system) in s.
function procStatus(pid) {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  return { rss: Number(/^VmRSS:\s+(\d+) kB/m.exec(s)?.[1]) };
}
function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8");
  const rest = f.slice(f.lastIndexOf(")") + 2).split(" "); // from field 3 (state)
  return (Number(rest[11]) + Number(rest[12])) / 100; // utime + stime, USER_HZ = 100
}

// Samples pid's VmRSS every ~5 ms until stopped; the peak and the last.
function rssSampler(pid) {
  let peak = 0;
  let last = 0;
  const take = () => {
    try {
      last = procStatus(pid).rss;
      peak = Math.max(peak, last);
    } catch {
      // the process is gone
    }
  };
  take();
  const timer = setInterval(take, 5);
  return {
    stop: () => {
      clearInterval(timer);
      take();
      return { peak, last };
    },
  };
}

async function primaryCount(url) {
  const c = createClient({ url });
  try {
    return Number((await c.execute(COUNT)).rows[0][0]);
  } finally {
    c.close();
  }
}

// ---------------------------------------------------------------------------
// 1. offline commit latency

// One synchronous setting: fresh files for every writer, the primary
// stopped from the warm-up to the end.  Returns, per writer, the latencies
// (ms) of each round.
async function latencyOne(primary, sync) {
  const dir = tempDir("replite-bench-olat-");
  const driver = new Driver();
  let lib = null;
  let plain = null;
  let stopped = false;
  try {
    // In the driver: slot 0 the replite offline replica, slot 1 stock SQLite.
    await driver.send(`open ${replicaUri(dir.file("replite.db"), primary.url, OFFLINE)}`);
    await driver.send(`exec PRAGMA synchronous=${sync}`);
    await driver.send("conn 1");
    await driver.send(`open file:${dir.file("stock.db")}`);
    await driver.send(`exec PRAGMA journal_mode=WAL; PRAGMA synchronous=${sync}; ${TABLE}`);
    lib = new Database(dir.file("libsql.db"), { syncUrl: primary.url, offline: true });
    lib.sync();
    lib.exec(`PRAGMA synchronous=${sync}`);
    plain = new Database(dir.file("plain.db"));
    plain.exec(`PRAGMA journal_mode=WAL; PRAGMA synchronous=${sync}; ${TABLE}`);
    // The same settings everywhere.
    const want = { FULL: 2, NORMAL: 1 }[sync];
    const settings = [];
    for (const slot of [0, 1]) {
      await driver.send(`conn ${slot}`);
      settings.push([
        (await driver.send("text PRAGMA journal_mode")).value,
        Number((await driver.send("text PRAGMA synchronous")).value),
      ]);
    }
    for (const db of [lib, plain])
      settings.push([db.prepare("PRAGMA journal_mode").raw().get()[0], db.prepare("PRAGMA synchronous").raw().get()[0]]);
    if (settings.some(([j, s]) => j !== "wal" || s !== want))
      throw new Error(`journal_mode/synchronous differ: ${JSON.stringify(settings)}, want wal/${want}`);

    const node = (db) => {
      const stmt = db.prepare("INSERT INTO o(v) VALUES (?)");
      return async (n) => {
        const out = new Array(n);
        for (let i = 0; i < n; i++) {
          const t0 = performance.now();
          stmt.run(i);
          out[i] = performance.now() - t0;
        }
        return out;
      };
    };
    const c = (slot) => async (n) => {
      await driver.send(`conn ${slot}`);
      return (await driver.send(`inserts ${n} ${INSERT}`)).lat_us.map((x) => x / 1000);
    };
    const writers = { replite: c(0), stock: c(1), libsql: node(lib), plain: node(plain) };
    // The replicas start with what the primary has (with the previous
    // setting's first pending transaction, when its push reached the
    // stopped primary's socket before the replica closed).
    const counts = async () => ({
      replite: (await driver.send("conn 0"), await driver.send(`int ${COUNT}`)).value,
      stock: (await driver.send("conn 1"), await driver.send(`int ${COUNT}`)).value,
      libsql: lib.prepare(COUNT).raw().get()[0],
      plain: plain.prepare(COUNT).raw().get()[0],
    });
    const base = await counts();
    pause(primary);
    stopped = true;
    await sleep(50);
    for (const w of Object.values(writers)) await w(WARMUP);
    const order = Object.keys(writers);
    const rounds = Object.fromEntries(order.map((k) => [k, []]));
    const n = Math.ceil(SAMPLES / ROUNDS);
    for (let round = 0; round < ROUNDS; round++)
      for (let k = 0; k < order.length; k++) {
        const who = order[(k + round) % order.length];
        rounds[who].push(await writers[who](n));
      }
    // Everything committed locally, nothing pushed.
    const rows = WARMUP + n * ROUNDS;
    await driver.send("conn 0");
    const st = (await driver.send("status")).status;
    const added = Object.fromEntries(Object.entries(await counts()).map(([k, x]) => [k, x - base[k]]));
    if (Object.values(added).some((x) => x !== rows) || st.pending_transactions !== rows)
      throw new Error(
        `after ${rows} inserts each: rows added ${JSON.stringify(added)}, replite pending_transactions ` +
          st.pending_transactions,
      );
    return { rounds, n, pending: st.pending_transactions };
  } finally {
    // Closed while the primary is still stopped: its pending transactions
    // stay unpushed (but the first, when its push request had reached the
    // stopped primary's socket: it is applied once the primary resumes).
    lib?.close();
    plain?.close();
    await driver.quit();
    if (stopped) resume(primary);
    dir.remove();
  }
}

async function latency() {
  const primary = await startPrimary(PRIMARY_ARGS);
  const res = {};
  try {
    const c = createClient({ url: primary.url });
    await c.execute(TABLE);
    c.close();
    for (const sync of ["FULL", "NORMAL"]) res[sync] = await latencyOne(primary, sync);
  } finally {
    await primary.stop();
  }
  const labels = {
    replite: "replite offline replica (primary stopped)",
    stock: "stock SQLite, default VFS, WAL (same process)",
    libsql: `npm libsql ${LIBSQL_VERSION} offline replica (Node)`,
    plain: `  npm libsql, plain local file (Node; reference)`,
  };
  const stat = (xs) => {
    const s = sorted(xs);
    return { p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), mean: mean(s) };
  };
  const keys = ["p50", "p90", "p99", "mean"];
  console.log(
    `Offline commit latency: single-row INSERT (autocommit), one at a time, ${SAMPLES} samples per writer ` +
      `(${ROUNDS} rounds, rotating order, after ${WARMUP} warm-up writes), fresh files per setting, ` +
      `the primary stopped (SIGSTOP) throughout; medians of the rounds, ms`,
  );
  for (const [sync, r] of Object.entries(res)) {
    const per = Object.fromEntries(Object.entries(r.rounds).map(([k, rs]) => [k, rs.map(stat)]));
    console.log(`${`PRAGMA synchronous=${sync}`.padEnd(58)}${keys.map((h) => h.padStart(9)).join("")}`);
    for (const [who, label] of Object.entries(labels)) {
      const cols = keys.map((k) => fmt(median(per[who].map((x) => x[k])), 4).padStart(9)).join("");
      console.log(`  ${label.padEnd(56)}${cols}`);
    }
    // Ratios paired within each round; the median and the range of the rounds.
    const ratio = (a, b, k) => {
      const rs = per[a].map((x, i) => x[k] / per[b][i][k]).sort((x, y) => x - y);
      return `${fmt(median(rs), 2)} (${fmt(rs[0], 2)}..${fmt(rs[rs.length - 1], 2)})`;
    };
    const line = (label, a, b) =>
      console.log(`  ${label.padEnd(40)}${keys.map((k) => `${k} ${ratio(a, b, k)}`).join("  ")}`);
    line("ratio replite / stock (target <= 1.5):", "replite", "stock");
    line("ratio replite / libsql offline:", "replite", "libsql");
    line("ratio libsql offline / libsql plain:", "libsql", "plain");
  }
}

// ---------------------------------------------------------------------------
// 2. push after reconnect

async function repliteCatchUp(conflict = false) {
  const primary = await startPrimary(PRIMARY_ARGS);
  const dir = tempDir("replite-bench-opush-");
  const driver = new Driver();
  let stopped = false;
  try {
    const c = createClient({ url: primary.url });
    await c.execute(TABLE);
    c.close();
    // conflict: the default conflict=rebase, and the primary moves after
    // the replica's last sync (one row from another client; sync_interval=0
    // so that the replica does not pull it), so that the pending
    // transactions are rebased (re-applied as one) and pushed.
    const params = conflict ? "&offline=1&sync_interval=0" : OFFLINE;
    await driver.send(`open ${replicaUri(dir.file("replite.db"), primary.url, params)}`);
    await driver.send("exec PRAGMA synchronous=NORMAL");
    if (conflict) {
      const other = createClient({ url: primary.url });
      await other.execute("INSERT INTO o(id, v) VALUES (-1, -1)");
      other.close();
    }
    pause(primary);
    stopped = true;
    const w = await driver.send(`inserts ${PUSH_TXNS} ${INSERT}`);
    const before = (await driver.send("status")).status;
    if (before.pending_transactions !== PUSH_TXNS)
      throw new Error(`replite: ${before.pending_transactions} transactions pending, expected ${PUSH_TXNS}`);
    const pid = driver.child.pid;
    const rssBefore = procStatus(pid).rss;
    const cpu0 = [cpuSeconds(pid), cpuSeconds(primary.pid)];
    const sampler = rssSampler(pid);
    const t0 = performance.now();
    resume(primary);
    stopped = false;
    await driver.send("sync");
    const ms = performance.now() - t0;
    const rss = sampler.stop();
    const cpu = [cpuSeconds(pid) - cpu0[0], cpuSeconds(primary.pid) - cpu0[1]];
    const after = (await driver.send("status")).status;
    const local = (await driver.send(`int ${COUNT}`)).value;
    const remote = await primaryCount(primary.url);
    const want = PUSH_TXNS + (conflict ? 1 : 0);
    if (after.pending_transactions !== 0 || local !== want || remote !== want)
      throw new Error(
        `replite push incomplete: ${after.pending_transactions} pending, ${local} rows locally, ` +
          `${remote} on the primary, expected ${want} (last_error ${after.last_error})`,
      );
    return {
      writeMs: w.ns / 1e6,
      ms,
      rssBefore,
      peak: rss.peak,
      end: rss.last,
      cpu,
      remote,
    };
  } finally {
    if (stopped) resume(primary);
    await driver.quit();
    dir.remove();
    await primary.stop();
  }
}

// The npm libsql offline replica in a child process (`offline.mjs
// libsql-push URL PATH N`), so that its RSS is sampled from outside while
// sync() blocks it: writes N rows, prints one JSON line, waits for a line
// on stdin, then times sync() and prints a second line.
async function libsqlPushChild(url, path, n) {
  const lib = new Database(path, { syncUrl: url, offline: true });
  lib.sync();
  lib.exec("PRAGMA synchronous=NORMAL");
  const stmt = lib.prepare("INSERT INTO o(v) VALUES (?)");
  const t0 = performance.now();
  for (let i = 0; i < n; i++) stmt.run(i);
  const writeMs = performance.now() - t0;
  process.stdout.write(JSON.stringify({ writeMs }) + "\n");
  const lines = createInterface({ input: process.stdin });
  await new Promise((res) => lines.once("line", res));
  const t1 = performance.now();
  lib.sync();
  const ms = performance.now() - t1;
  const local = lib.prepare(COUNT).raw().get()[0];
  process.stdout.write(JSON.stringify({ ms, local }) + "\n");
  lines.close();
  lib.close();
}

async function libsqlCatchUp() {
  const primary = await startPrimary(PRIMARY_ARGS);
  const dir = tempDir("replite-bench-opush-");
  const c = createClient({ url: primary.url });
  await c.execute(TABLE);
  c.close();
  const child = spawn(
    process.execPath,
    [import.meta.filename, "libsql-push", primary.url, dir.file("libsql.db"), PUSH_TXNS],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const exited = new Promise((res) => child.on("exit", res));
  const lines = createInterface({ input: child.stdout });
  const next = () =>
    new Promise((res, rej) => {
      lines.once("line", (l) => res(JSON.parse(l)));
      exited.then((code) => rej(new Error(`libsql push child exited with ${code}`)));
    });
  try {
    const w = await next();
    const pid = child.pid;
    const rssBefore = procStatus(pid).rss;
    const cpu0 = [cpuSeconds(pid), cpuSeconds(primary.pid)];
    const sampler = rssSampler(pid);
    const done = next();
    const t0 = performance.now();
    child.stdin.write("go\n");
    const r = await done;
    const wall = performance.now() - t0;
    const rss = sampler.stop();
    const cpu = [cpuSeconds(pid) - cpu0[0], cpuSeconds(primary.pid) - cpu0[1]];
    await exited;
    const remote = await primaryCount(primary.url);
    if (r.local !== PUSH_TXNS || remote !== PUSH_TXNS)
      throw new Error(`libsql push incomplete: ${r.local} rows locally, ${remote} on the primary, expected ${PUSH_TXNS}`);
    return { writeMs: w.writeMs, ms: r.ms, wall, rssBefore, peak: rss.peak, end: rss.last, cpu, remote };
  } finally {
    child.kill("SIGKILL");
    await exited;
    dir.remove();
    await primary.stop();
  }
}

async function catchUp() {
  const mine = await repliteCatchUp();
  const rebased = await repliteCatchUp(true);
  const theirs = await libsqlCatchUp();
  const mb = (kb) => fmt(kb / 1024, 1);
  console.log(
    `Push after reconnect: ${PUSH_TXNS} single-row transactions (autocommit INSERTs, synchronous=NORMAL) committed ` +
      `offline, then pushed; fresh primary each; RSS of the replica's process (VmRSS sampled every ~5 ms), MB`,
  );
  const cols = ["local ms", "push ms", "txn/s", "RSS before", "peak", "end", "+peak", "CPU s rep/prim"];
  console.log(`${"".padEnd(44)}${cols.map((h, i) => h.padStart(i === cols.length - 1 ? 16 : 11)).join("")}`);
  const row = (label, r) =>
    console.log(
      `${label.padEnd(44)}${[
        fmt(r.writeMs, 0),
        fmt(r.ms, 0),
        fmt((PUSH_TXNS * 1000) / r.ms, 0),
        mb(r.rssBefore),
        mb(r.peak),
        mb(r.end),
        mb(r.peak - r.rssBefore),
      ]
        .map((x) => x.padStart(11))
        .join("")}${`${fmt(r.cpu[0], 2)}/${fmt(r.cpu[1], 2)}`.padStart(16)}`,
    );
  row("replite (resume -> SELECT replite_sync())", mine);
  row("replite, conflict: rebased, then pushed", rebased);
  row(`npm libsql ${LIBSQL_VERSION} offline, sync() (Node child)`, theirs);
  console.log(
    `  the primary has ${mine.remote} and ${theirs.remote} rows (checked with @libsql/client); ` +
      `"conflict": the primary got one row from another client after the replica's last sync, so its ` +
      `transactions were re-applied on the primary's state (conflict=rebase) as one and pushed; ` +
      `+peak: the growth of the process's RSS during the push (replite's process is the C driver, libsql's ` +
      `a Node.js process)`,
  );
  console.log(
    `ratio libsql/replite: push time ${fmt(theirs.ms / mine.ms, 2)}x (libsql's sync() alone; ` +
      `${fmt(theirs.wall, 0)} ms from the parent's signal to its answer)`,
  );
}

if (process.argv[2] === "libsql-push") {
  await libsqlPushChild(process.argv[3], process.argv[4], Number(process.argv[5]));
} else {
  await latency();
  console.log();
  await catchUp();
}
