// Encryption at rest (issue 11): an encrypted replica against a plain one of
// the same primary, same data, same run:
//   1. point reads, with a SQLite page cache of BENCH_ENC_CACHE_KIB (512) KiB
//      so that most reads miss it and the page is read (and decrypted) from
//      the file: the reading thread's CPU time, over interleaved rounds
//      (replica_bench enc-reads);
//   2. bootstrap of a BENCH_ENC_MB (60) MB imported database, then catch-up
//      after BENCH_ENC_TXNS (2000) small transactions;
//   3. write latency: a single-row autocommit INSERT through each replica
//      (pushed to the primary, then visible locally), and the same with
//      offline=1 (committed locally: WAL and sealed outbox record; the
//      primary stopped).
//   4. the same reads through npm libsql, in this process (its CPU time):
//      replite's two replicas (npm libsql hosting the extension) against
//      npm libsql's own encryption (SQLite3 Multiple Ciphers' aes256cbc, as
//      Turso's embedded replicas have it) on a plain and an encrypted local
//      file; the same page cache, rows and ids for all four.
// Targets (issue 11): reads <= 1.10x, sync and writes <= 1.15x, and at
// least as well as Turso's.
import { createClient } from "@libsql/client";
import Database from "libsql";
import { dirname, join } from "node:path";
import { REPLITE_BIN, fmt, percentile, startPrimary } from "./common.mjs";
import { Driver, replicaUri, runBench, tempDir } from "./driver.mjs";

const env = (name, dflt) => Number(process.env[name] ?? dflt);
const EXTENSION = process.env.REPLITE_EXTENSION ?? join(dirname(REPLITE_BIN), "libreplite.so");
const READ_ROWS = env("BENCH_ENC_READ_ROWS", 200000);
const READS = env("BENCH_ENC_READS", 100000);
const READ_ROUNDS = env("BENCH_ENC_READ_ROUNDS", 6);
const CACHE_KIB = env("BENCH_ENC_CACHE_KIB", 512);
const MB = env("BENCH_ENC_MB", 60);
const RUNS = env("BENCH_ENC_RUNS", 3);
const TXNS = env("BENCH_ENC_TXNS", 2000);
const WRITES = env("BENCH_ENC_WRITES", 300);
// A raw key: the figures are the cipher's; a passphrase adds its key
// derivation (scrypt) once per open of the replica in a process, measured
// apart (kdf()).
const KEY = "&encryption_key=x'" + "5a".repeat(32) + "'";
const READS_TABLE = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)";
const READS_FILL = `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${READ_ROWS})
  INSERT INTO t SELECT x, hex(randomblob(24)) FROM c`;
const median = (xs) => percentile([...xs].sort((a, b) => a - b), 50);
const results = [];

function report(label, plain, enc, unit = "ms", digits = 1) {
  const ratio = enc / plain;
  results.push({ label, ratio });
  console.log(`${label.padEnd(34)} ${fmt(plain, digits).padStart(10)} ${fmt(enc, digits).padStart(10)} ${unit.padEnd(4)} ${fmt(ratio, 3).padStart(7)}x`);
}

// The reads' table on the primary: READ_ROWS rows of 48 hex digits.
async function fillPrimary(url) {
  const c = createClient({ url });
  await c.execute(READS_TABLE);
  await c.execute(READS_FILL);
  c.close();
}

async function reads() {
  const primary = await startPrimary();
  const dir = tempDir("replite-bench-enc-reads-");
  try {
    await fillPrimary(primary.url);
    const runs = await runBench(["enc-reads", primary.url, dir.path, READ_ROWS, READS, READ_ROUNDS, CACHE_KIB]);
    const by = (conn) => runs.filter((r) => r.conn === conn);
    const perRead = (r) => r.cpu_ns / r.n / 1000;
    const plain = median(by("plain").map(perRead));
    const enc = median(by("encrypted").map(perRead));
    const misses = median(by("encrypted").map((r) => r.misses / r.n));
    const pairs = by("plain").map((p, i) => perRead(by("encrypted")[i]) / perRead(p));
    report(`point read, CPU us (cache ${CACHE_KIB} KiB)`, plain, enc, "us", 2);
    console.log(`  ${fmt(misses, 2)} page-cache misses per read; per-round ratios ${pairs.map((x) => fmt(x, 3)).join(", ")}`);
  } finally {
    dir.remove();
    await primary.stop();
  }
}

// Replite's encryption and npm libsql's own (Turso's) measured through one
// binding: npm libsql hosts replite too (the extension loaded, a replica's
// URI opened), so node's per-call cost is the same on all four connections.
async function libsqlReads() {
  const primary = await startPrimary();
  const dir = tempDir("replite-bench-enc-libsql-");
  const conn = {};
  try {
    await fillPrimary(primary.url);
    const local = { libsql: {}, "libsql enc": { encryptionKey: "bench passphrase" } };
    for (const [who, opts] of Object.entries(local)) {
      const db = new Database(dir.file(`${who}.db`), opts);
      db.exec("PRAGMA journal_mode=WAL");
      db.exec(READS_TABLE);
      db.exec(READS_FILL);
      db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      db.close();
      conn[who] = new Database(dir.file(`${who}.db`), opts);
    }
    // Registers the VFS in this process (a connection of its own).
    conn.loader = new Database(":memory:");
    conn.loader.loadExtension(EXTENSION);
    conn.replite = new Database(replicaUri(dir.file("replite.db"), primary.url, "&sync_interval=0"));
    conn["replite enc"] = new Database(replicaUri(dir.file("replite-enc.db"), primary.url, "&sync_interval=0" + KEY));
    const names = ["libsql", "libsql enc", "replite", "replite enc"];
    const stmt = {};
    for (const who of names) {
      conn[who].exec(`PRAGMA cache_size=-${CACHE_KIB}`);
      stmt[who] = conn[who].prepare("SELECT v FROM t WHERE id = ?").raw();
    }
    const per = Object.fromEntries(names.map((who) => [who, []]));
    for (let round = 0; round < READ_ROUNDS; round++) {
      const ids = Array.from({ length: READS }, () => 1 + Math.floor(Math.random() * READ_ROWS));
      for (const who of round % 2 ? [...names].reverse() : names) {
        const st = stmt[who];
        const t0 = process.cpuUsage();
        for (const id of ids) if (st.get(id) === undefined) throw new Error(`${who}: no row ${id}`);
        const t = process.cpuUsage(t0);
        per[who].push((t.user + t.system) / READS);
      }
    }
    const m = Object.fromEntries(names.map((who) => [who, median(per[who])]));
    report("via npm libsql: replite, CPU us", m.replite, m["replite enc"], "us", 2);
    report("via npm libsql: libsql aes256cbc", m.libsql, m["libsql enc"], "us", 2);
    console.log(
      `  CPU an encrypted read adds: replite ${fmt(m["replite enc"] - m.replite, 2)} us, ` +
        `npm libsql's encryption (SQLite3 Multiple Ciphers, Turso's) ${fmt(m["libsql enc"] - m.libsql, 2)} us`,
    );
  } finally {
    for (const db of Object.values(conn)) db.close();
    dir.remove();
    await primary.stop();
  }
}

function makeSource(path) {
  const db = new Database(path);
  db.exec("PRAGMA page_size=4096; CREATE TABLE big(id INTEGER PRIMARY KEY, v TEXT, b BLOB)");
  const rows = Math.round((MB * 1e6) / 1100);
  db.exec(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${rows})
           INSERT INTO big(v, b) SELECT printf('row %d %s', x, hex(randomblob(200))), randomblob(600) FROM c`);
  db.close();
}

async function syncAndWrites() {
  const src = tempDir("replite-bench-enc-src-");
  makeSource(src.file("source.db"));
  const res = { boot: { plain: [], enc: [] }, catchup: { plain: [], enc: [] }, write: { plain: [], enc: [] }, offline: { plain: [], enc: [] } };
  try {
    for (let run = 0; run < RUNS; run++) {
      const primary = await startPrimary(["--import", src.file("source.db"), "--generation-frames", "1000000"]);
      const dir = tempDir("replite-bench-enc-");
      const d = { plain: new Driver(), enc: new Driver() };
      const uri = { plain: replicaUri(dir.file("plain.db"), primary.url, "&sync_interval=0"), enc: replicaUri(dir.file("enc.db"), primary.url, "&sync_interval=0" + KEY) };
      const order = run % 2 === 0 ? ["plain", "enc"] : ["enc", "plain"];
      try {
        // A bootstrap first that is not measured: the first one after the
        // start pays for what the primary then caches (the image's pages
        // read from disk, its zstd copy made), 70-90 ms more whichever
        // replica it is; the two measured ones then meet the same primary.
        const warm = new Driver();
        await warm.send(`open ${replicaUri(dir.file("warm.db"), primary.url, "&sync_interval=0")}`);
        await warm.quit();
        for (const who of order) res.boot[who].push((await d[who].send(`open ${uri[who]}`)).ms);
        const c = createClient({ url: primary.url });
        await c.execute("CREATE TABLE small(id INTEGER PRIMARY KEY, v TEXT)");
        for (let i = 0; i < TXNS; i++) await c.execute({ sql: "INSERT INTO small(v) VALUES (?)", args: [`txn ${i}`] });
        c.close();
        for (const who of order) res.catchup[who].push((await d[who].send("sync")).ms);
        for (const who of order) {
          const n = (await d[who].send("int SELECT count(*) FROM small")).value;
          if (n !== TXNS) throw new Error(`${who}: ${n} rows after catch-up, expected ${TXNS}`);
        }
        for (const who of order) await d[who].send("exec CREATE TABLE IF NOT EXISTS w(id INTEGER PRIMARY KEY, v INTEGER)");
        const per = Math.ceil(WRITES / RUNS / 3);
        for (let k = 0; k < 3; k++) {
          for (const who of k % 2 ? [...order].reverse() : order) {
            const r = await d[who].send(`inserts ${per} INSERT INTO w(v) VALUES (?1)`);
            res.write[who].push(...r.lat_us.map((x) => x / 1000));
          }
        }
        // Offline commits (the outbox record's images sealed, when
        // encrypted): the same files opened again with offline=1.
        for (const who of order) await d[who].quit();
        d.plain = new Driver();
        d.enc = new Driver();
        for (const who of order) await d[who].send(`open ${uri[who]}&offline=1`);
        // The primary stopped (SIGSTOP, as offline.mjs): nothing is
        // pushed, so the two replicas' commits never meet as conflicts
        // there and what is measured is the local commit alone.
        process.kill(primary.pid, "SIGSTOP");
        for (let k = 0; k < 3; k++) {
          for (const who of k % 2 ? [...order].reverse() : order) {
            const r = await d[who].send(`inserts ${per} INSERT INTO w(v) VALUES (?1)`);
            res.offline[who].push(...r.lat_us.map((x) => x / 1000));
          }
        }
      } finally {
        await d.plain.quit();
        await d.enc.quit();
        dir.remove();
        await primary.stop();
      }
    }
  } finally {
    src.remove();
  }
  report(`bootstrap, ${MB} MB imported`, median(res.boot.plain), median(res.boot.enc));
  report(`catch-up, ${TXNS} transactions`, median(res.catchup.plain), median(res.catchup.enc));
  report("write (INSERT, pushed), p50", median(res.write.plain), median(res.write.enc), "ms", 3);
  report("offline write (INSERT, local), p50", median(res.offline.plain), median(res.offline.enc), "ms", 3);
  console.log(`  runs (ms): bootstrap plain ${res.boot.plain.map((x) => fmt(x, 0)).join(", ")}, encrypted ${res.boot.enc.map((x) => fmt(x, 0)).join(", ")}`);
}

console.log(`# encryption at rest: encrypted vs plain replica of the same primary (medians; ${RUNS} runs)`);
console.log(`${"".padEnd(34)} ${"plain".padStart(10)} ${"encrypted".padStart(10)}      ${"ratio".padStart(7)}`);
// What a passphrase adds to an open: an already bootstrapped replica
// opened again in a new process, passphrase vs raw key.
async function kdf() {
  const primary = await startPrimary();
  const dir = tempDir("replite-bench-enc-kdf-");
  const times = { raw: [], pass: [] };
  const params = { raw: KEY, pass: "&encryption_key=bench%20passphrase" };
  try {
    for (const who of ["raw", "pass"]) {
      const d = new Driver();
      await d.send(`open ${replicaUri(dir.file(`${who}.db`), primary.url, "&sync_interval=0" + params[who])}`);
      await d.quit();
    }
    for (let i = 0; i < 5; i++) {
      for (const who of ["raw", "pass"]) {
        const d = new Driver();
        times[who].push((await d.send(`open ${replicaUri(dir.file(`${who}.db`), primary.url, "&sync_interval=0" + params[who])}`)).ms);
        await d.quit();
      }
    }
  } finally {
    dir.remove();
    await primary.stop();
  }
  console.log(`open of an encrypted replica: raw key ${fmt(median(times.raw), 1)} ms, passphrase ${fmt(median(times.pass), 1)} ms (scrypt N=2^14, r=8, p=1: once per open in a process)`);
}

// BENCH_ENC_PARTS (default "reads,libsql,sync,kdf"): which parts to run.
const parts = (process.env.BENCH_ENC_PARTS ?? "reads,libsql,sync,kdf").split(",");
if (parts.includes("reads")) await reads();
if (parts.includes("libsql")) await libsqlReads();
if (parts.includes("sync")) await syncAndWrites();
if (parts.includes("kdf")) await kdf();
