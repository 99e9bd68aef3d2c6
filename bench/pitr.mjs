// Forks, restores and backups (issue 12), against stock SQLite on the same
// data in the same run:
//   - fork now of a BENCH_PITR_MB (1024) MB database, and of one a tenth of
//     that size: wall time and the extra disk the fork takes (blocks of
//     files that are not hard links of the source's), against `VACUUM
//     INTO` of the same database by the stock sqlite3 (a copy made by
//     SQLite) and a plain `cp`;
//   - a restore at the state BENCH_PITR_BACK (5000) commits back, after
//     that many single-row commits;
//   - a backup (`replite db backup`) against `VACUUM INTO`.
// Medians of BENCH_PITR_RUNS (3) runs.
import { spawnSync } from "node:child_process";
import { readdirSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { REPLITE_BIN, executeConcurrently, fmt, percentile, startPrimary } from "./common.mjs";

const env = (name, dflt) => Number(process.env[name] ?? dflt);
const MB = env("BENCH_PITR_MB", 1024);
const BACK = env("BENCH_PITR_BACK", 5000);
const RUNS = env("BENCH_PITR_RUNS", 3);
const median = (xs) => percentile([...xs].sort((a, b) => a - b), 50);

async function freePort() {
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

// Blocks (bytes) of the files under dir whose inode is not in `shared`.
function ownBytes(dir, shared) {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) n += ownBytes(p, shared);
    else {
      const st = statSync(p);
      if (!shared.has(st.ino)) n += st.blocks * 512;
    }
  }
  return n;
}

function inodes(dir, set = new Set()) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) inodes(p, set);
    else set.add(statSync(p).ino);
  }
  return set;
}

function timed(fn) {
  const t0 = performance.now();
  const r = fn();
  return [performance.now() - t0, r];
}

function cli(admin, ...args) {
  const r = spawnSync(REPLITE_BIN, ["db", ...args, "--admin", admin], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`replite db ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

async function fill(url, name, mb) {
  const c = createClient({ url: `${url}/db/${name}/` });
  const rows = Math.round((mb * 1e6) / 4200);
  await c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v INT, body TEXT)");
  for (let done = 0; done < rows; done += 20000) {
    const n = Math.min(20000, rows - done);
    await c.execute(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${n}) INSERT INTO t SELECT ${done} + i, 0, hex(randomblob(2000)) FROM n`);
  }
  c.close();
}

async function run(results, mb, label) {
  const adminPort = await freePort();
  const admin = `http://127.0.0.1:${adminPort}`;
  const primary = await startPrimary(["--admin-listen", `127.0.0.1:${adminPort}`, "--generation-frames", String(env("BENCH_PITR_GEN_FRAMES", 25000))]);
  const data = join(primary.dir, "data");
  try {
    cli(admin, "create", "src");
    await fill(primary.url, "src", mb);
    const srcDir = join(data, "databases", "src");
    const shared = inodes(srcDir);
    const r = (results[label] ??= { fork: [], forkDisk: [], vacuum: [], cp: [], backup: [], restore: [], size: 0 });
    r.size = statSync(join(srcDir, "live.db")).size;

    let [ms] = timed(() => cli(admin, "fork", "src", "f1"));
    r.fork.push(ms);
    r.forkDisk.push(ownBytes(join(data, "databases", "f1"), shared));

    const out = join(primary.dir, "vacuum.db");
    [ms] = timed(() => spawnSync("sqlite3", [join(srcDir, "live.db"), `VACUUM INTO '${out}'`]));
    r.vacuum.push(ms);
    rmSync(out, { force: true });
    [ms] = timed(() => spawnSync("cp", [join(srcDir, "live.db"), out]));
    r.cp.push(ms);
    rmSync(out, { force: true });

    const bk = join(primary.dir, "backup.db");
    [ms] = timed(() => cli(admin, "backup", "src", "--out", bk));
    r.backup.push(ms);
    rmSync(bk, { force: true });

    if (label === "large") {
      // BACK single-row commits after a recorded time: restore to it.
      await new Promise((res) => setTimeout(res, 20));
      const when = new Date().toISOString();
      await new Promise((res) => setTimeout(res, 20));
      await executeConcurrently(`${primary.url}/db/src/`, BACK, (i) => ({ sql: "UPDATE t SET v = v + 1 WHERE id = ?", args: [1 + (i % 1000)] }));
      [ms] = timed(() => cli(admin, "restore", "src", "--at", when, "--to", "r1"));
      r.restore.push(ms);
      const c = createClient({ url: `${primary.url}/db/r1/` });
      const sum = Number((await c.execute("SELECT sum(v) AS s FROM t")).rows[0].s);
      c.close();
      if (sum !== 0) throw new Error(`the restore holds ${sum} updates; expected none`);
    }
  } finally {
    await primary.stop();
  }
}

const results = {};
for (let i = 0; i < RUNS; i++) {
  await run(results, MB, "large");
  await run(results, Math.max(1, Math.round(MB / 10)), "small");
}
console.log(`# forks, restores and backups (issue 12), medians of ${RUNS} runs; stock sqlite3 ${spawnSync("sqlite3", ["--version"], { encoding: "utf8" }).stdout.split(" ")[0]}`);
for (const label of ["small", "large"]) {
  const r = results[label];
  const mib = (b) => fmt(b / 1048576, 1);
  console.log(`${label}: database ${mib(r.size)} MiB`);
  console.log(`  fork now:              ${fmt(median(r.fork), 0)} ms (${fmt(median(r.fork) / median(r.vacuum))}x stock VACUUM INTO ${fmt(median(r.vacuum), 0)} ms; cp ${fmt(median(r.cp), 0)} ms); extra disk ${mib(median(r.forkDisk))} MiB (${fmt(median(r.forkDisk) / r.size)}x the database)`);
  console.log(`  backup:                ${fmt(median(r.backup), 0)} ms (${fmt(median(r.backup) / median(r.vacuum))}x stock VACUUM INTO)`);
  if (r.restore.length) console.log(`  restore ${BACK} commits back: ${fmt(median(r.restore), 0)} ms (${fmt(median(r.restore) / median(r.vacuum))}x stock VACUUM INTO)`);
}
