// Compression on the wire: bytes a new replica receives, and how long its
// bootstrap takes, for each `--compression-level` of the primary, on a
// text-heavy database and on one of random blobs (incompressible), both
// imported (`serve --import`). The replica asks for zstd (Accept-Encoding);
// its `replite_status()` reports `bytes_pulled` (decoded) and
// `wire_bytes_pulled` (as received). Level 0 is the uncompressed baseline;
// the npm `libsql` embedded replica bootstraps from the same primary for
// reference. Medians of BENCH_WIRE_RUNS (3) fresh replicas per level.
import Database from "libsql";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fmt, percentile, startPrimary } from "./common.mjs";
import { Driver, replicaUri, tempDir } from "./driver.mjs";

const env = (name, dflt) => process.env[name] ?? dflt;
const MB_TARGET = Number(env("BENCH_WIRE_MB", 60));
const RUNS = Number(env("BENCH_WIRE_RUNS", 3));
// "-" runs the primary without the flag: for a build that has none, to
// compare with (REPLITE_BIN and REPLICA_BENCH_BIN of that build).
const LEVELS = env("BENCH_WIRE_LEVELS", "0,1,3,6")
  .split(",")
  .map((l) => (l === "-" ? l : Number(l)));
const BIG_MB = Number(env("BENCH_BIG_MB", 1000));
const MB = 1e6;

// Peak resident set of a process so far (VmHWM), MB.
const peakRss = (pid) => Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1000;
const median = (xs) => percentile([...xs].sort((a, b) => a - b), 50);

// A deterministic generator, so every run and level sees the same data.
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Text as applications store it: names, e-mail addresses, dates, and
// paragraphs drawn from a 2,000-word vocabulary, with an index on the name.
function makeText(path) {
  const rand = rng(42);
  const letters = "abcdefghijklmnopqrstuvwxyz";
  const vocab = Array.from({ length: 2000 }, () => {
    const n = 2 + Math.floor(rand() * 9);
    let w = "";
    for (let i = 0; i < n; i++) w += letters[Math.floor(rand() * 26)];
    return w;
  });
  const word = () => vocab[Math.floor(Math.pow(rand(), 2) * vocab.length)];
  const db = new Database(path);
  db.exec("PRAGMA journal_mode=WAL");
  db.exec("CREATE TABLE docs(id INTEGER PRIMARY KEY, author TEXT, email TEXT, created TEXT, title TEXT, body TEXT)");
  db.exec("CREATE INDEX docs_author ON docs(author)");
  const ins = db.prepare("INSERT INTO docs(author, email, created, title, body) VALUES (?, ?, ?, ?, ?)");
  let bytes = 0;
  db.exec("BEGIN");
  while (bytes < MB_TARGET * MB * 0.85) {
    const author = `${word()} ${word()}`;
    const words = Array.from({ length: 40 + Math.floor(rand() * 120) }, word);
    const body = words.join(" ") + ".";
    const day = new Date(1.6e12 + Math.floor(rand() * 1e11)).toISOString();
    ins.run(author, author.replace(" ", ".") + "@example.com", day, words.slice(0, 6).join(" "), body);
    bytes += body.length + 80;
  }
  db.exec("COMMIT");
  db.close();
  return statSync(path).size;
}

function makeBlobs(path, mb = MB_TARGET) {
  const db = new Database(path);
  db.exec("CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB)");
  const rows = Math.round((mb * MB) / 4096);
  db.exec(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${rows})
           INSERT INTO big SELECT x, randomblob(3800) FROM c`);
  db.close();
  return statSync(path).size;
}

async function measure(source, level, runs = RUNS) {
  const out = { ms: [], wire: 0, bytes: 0, libsqlMs: [], rss: [] };
  const args = ["--import", source, "--generation-frames", "1000000"];
  if (level !== "-") args.push("--compression-level", String(level));
  const primary = await startPrimary(args);
  try {
    // A running primary compresses each generation's image once, in the
    // background (gen-G/base.db.zst): measure that steady state, not the
    // bootstraps racing the compression for the 2 cores.
    if (level !== 0 && level !== "-") {
      const copy = join(primary.dir, "data", "gen-00000001", "base.db.zst");
      for (let i = 0; i < 600 && !existsSync(copy); i++) await sleep(100);
      await sleep(300); // the copy is weighed right after its rename
    }
    for (let run = 0; run < runs; run++) {
      const dir = tempDir("replite-bench-wire-");
      const driver = new Driver();
      try {
        const opened = await driver.send(`open ${replicaUri(dir.file("replite.db"), primary.url, "&sync_interval=0")}`);
        out.ms.push(opened.ms);
        out.rss.push(peakRss(driver.child.pid));
        const st = (await driver.send("status")).status;
        out.wire = st.wire_bytes_pulled ?? st.bytes_pulled; // older builds: no field
        out.bytes = st.bytes_pulled;
        if (level === 0 || level === "-" || runs === 1) {
          const t0 = performance.now();
          const lib = new Database(dir.file("libsql.db"), { syncUrl: primary.url });
          lib.sync();
          out.libsqlMs.push(performance.now() - t0);
          lib.close();
        }
      } finally {
        await driver.quit();
        dir.remove();
      }
    }
  } finally {
    await primary.stop();
  }
  return out;
}

async function main() {
  const src = tempDir("replite-bench-wire-src-");
  try {
    const sets = [
      ["text-heavy", makeText(src.file("text.db"))],
      ["random blobs", makeBlobs(src.file("blobs.db"))],
    ];
    console.log(
      `Bytes on the wire and bootstrap time by --compression-level (zstd), imported databases; ` +
        `median of ${RUNS} fresh replicas per level, one primary per level`,
    );
    console.log(
      `${"database".padEnd(13)} ${"level".padStart(5)} ${"received MB".padStart(11)} ${"wire MB".padStart(8)} ` +
        `${"wire/level0".padStart(11)} ${"boot ms".padStart(8)} ${"boot/level0".padStart(11)} ${"libsql ms".padStart(9)} ${"libsql/replite".padStart(14)} ${"peak RSS MB".padStart(11)}`,
    );
    for (const [name, size] of sets) {
      const file = src.file(name === "text-heavy" ? "text.db" : "blobs.db");
      let base = null;
      for (const level of LEVELS) {
        const m = await measure(file, level);
        const ms = median(m.ms);
        if (level === 0 || level === "-" || base === null) base = { wire: m.wire, ms, libsqlMs: median(m.libsqlMs) };
        console.log(
          `${name.padEnd(13)} ${String(level).padStart(5)} ${fmt(m.bytes / MB, 1).padStart(11)} ${fmt(m.wire / MB, 1).padStart(8)} ` +
            `${fmt(m.wire / base.wire, 3).padStart(11)} ${fmt(ms, 0).padStart(8)} ${fmt(ms / base.ms, 2).padStart(11)} ` +
            `${fmt(base.libsqlMs, 0).padStart(9)} ${fmt(base.libsqlMs / ms, 2).padStart(13)}x ${fmt(median(m.rss), 0).padStart(11)}`,
        );
      }
      console.log(`  (${name}: ${fmt(size / MB, 1)} MB file; runs of level ${LEVELS.join("/")} in this order)`);
    }
    if (BIG_MB > 0) {
      // One large database (random blobs), default level: time and the
      // replica process's peak RSS (the C driver: SQLite, libcurl and
      // replite), against npm libsql's bootstrap time.
      const size = makeBlobs(src.file("big.db"), BIG_MB);
      const bigLevel = LEVELS.includes(1) ? 1 : LEVELS[0];
      const m = await measure(src.file("big.db"), bigLevel, 1);
      console.log(
        `Bootstrap of a ${fmt(size / MB, 0)} MB database (random blobs, level ${bigLevel}): replite ${fmt(median(m.ms), 0)} ms, ` +
          `peak RSS of the replica process ${fmt(median(m.rss), 0)} MB; npm libsql ${fmt(median(m.libsqlMs), 0)} ms ` +
          `(libsql/replite ${fmt(median(m.libsqlMs) / median(m.ms), 2)}x)`,
      );
    }
  } finally {
    src.remove();
  }
}

await main();
