// The replite side of the replica benchmarks (replica.mjs, write.mjs,
// offline.mjs): one replica connection in a `replica_bench driver` process
// (bench/replica_bench.c, linking the replica like an application calling
// replite_register()).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { REPLITE_BIN } from "./common.mjs";

export const BENCH_BIN = process.env.REPLICA_BENCH_BIN ?? join(dirname(REPLITE_BIN), "bench", "replica_bench");

export function tempDir(prefix) {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, file: (n) => join(path, n), remove: () => rmSync(path, { recursive: true, force: true }) };
}

// One replica connection in a replica_bench driver process: a command line
// in, one JSON line out (two for watch).  `conn N` switches the process to
// another of its connections (offline.mjs: a stock SQLite one beside the
// replica).
export class Driver {
  // bin: another build's replica_bench (catchup.mjs compares with one).
  constructor(bin = BENCH_BIN) {
    this.child = spawn(bin, ["driver"], { stdio: ["pipe", "pipe", "inherit"] });
    this.waiters = [];
    createInterface({ input: this.child.stdout }).on("line", (l) => this.waiters.shift()?.(JSON.parse(l)));
    this.exited = new Promise((res) =>
      this.child.on("exit", (code) => {
        for (const w of this.waiters.splice(0)) w({ ok: false, error: `replica_bench exited with ${code}` });
        res(code);
      }),
    );
  }
  reply(what) {
    return new Promise((res) => this.waiters.push(res)).then((r) => {
      if (!r.ok) throw new Error(`replica_bench ${what}: ${r.error}`);
      return r;
    });
  }
  send(line) {
    const r = this.reply(line);
    this.child.stdin.write(line + "\n");
    return r;
  }
  // Resolves once the driver polls sql; .seen resolves with the CLOCK_MONOTONIC
  // ns (as process.hrtime.bigint()) at which it first returned >= target.
  async watch(target, sql) {
    const ready = this.send(`watch ${target} ${sql}`);
    const seen = this.reply("watch");
    seen.catch(() => {});
    await ready;
    return { seen: seen.then((r) => BigInt(r.seen_ns)) };
  }
  async quit() {
    this.child.stdin.end();
    await this.exited;
  }
}

// Run `replica_bench ARGS...` to its end: its JSON lines, parsed.
export async function runBench(args) {
  const child = spawn(BENCH_BIN, args.map(String), { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  const code = await new Promise((res) => child.on("exit", res));
  if (code !== 0) throw new Error(`replica_bench ${args[0]} exited with ${code}: ${err}`);
  return out.trim().split("\n").map((l) => JSON.parse(l));
}

export function replicaUri(path, url, params = "") {
  return `file:${path}?vfs=replite&sync_url=${encodeURIComponent(url)}${params}`;
}
