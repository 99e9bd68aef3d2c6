// Shared by the benchmarks: start a primary, percentiles, formatting.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const REPLITE_BIN =
  process.env.REPLITE_BIN ?? resolve(import.meta.dirname, "../build/replite");

export async function startPrimary(args = []) {
  const dir = mkdtempSync(join(tmpdir(), "replite-bench-"));
  const child = spawn(REPLITE_BIN, ["serve", "--data-dir", join(dir, "data"), "--listen", "127.0.0.1:0", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const url = await new Promise((res, rej) => {
    child.stderr.on("data", (d) => {
      log += d;
      const m = /listening on (http:\/\/\S+)/.exec(log);
      if (m) res(m[1]);
    });
    child.on("exit", (c) => rej(new Error(`replite serve exited ${c}: ${log}`)));
  });
  return {
    url,
    dir,
    pid: child.pid, // offline.mjs stops it (SIGSTOP) and resumes it (SIGCONT)
    stop: async () => {
      child.kill("SIGCONT"); // a stopped process would not act on SIGTERM
      child.kill("SIGTERM");
      await new Promise((r) => child.on("exit", r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export function summarize(latenciesMs) {
  const s = [...latenciesMs].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99), n: s.length };
}

export const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : String(x));

// n statements over `concurrency` @libsql/client clients of url at once:
// stmt(i) is the i-th (catch-up benchmarks' updates).
export async function executeConcurrently(url, n, stmt, concurrency = 4) {
  const { createClient } = await import("@libsql/client");
  const clients = Array.from({ length: concurrency }, () => createClient({ url }));
  let next = 0;
  await Promise.all(
    clients.map(async (c) => {
      while (next < n) await c.execute(stmt(next++));
    }),
  );
  clients.forEach((c) => c.close());
}
