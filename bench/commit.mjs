// Group commit on the primary: durable commits/s of single-row autocommit
// INSERTs sent as Hrana pipelines (POST /v2/pipeline) by wrk, with 1 and
// with 8 connections, each against a fresh `replite serve`, read against
// this machine's fdatasync rate (4 KiB overwrite + fdatasync of a small
// file in the primary's temporary directory, as fsync.mjs measures it).
// With group commit, concurrent commits share one fdatasync of the frame
// log, so 8 writers should commit more often than the disk syncs.
// BENCH_BEFORE_BIN (optional): an older build measured the same way in the
// same run, in alternating order, for the ratio new/before.
import { createClient } from "@libsql/client";
import { execFileSync, spawn } from "node:child_process";
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fmt, percentile, REPLITE_BIN } from "./common.mjs";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const FSYNC_SECONDS = Number(process.env.BENCH_FSYNC_SECONDS ?? 2);
const BEFORE_BIN = process.env.BENCH_BEFORE_BIN || null;
const WRITERS = [1, 8];

const work = mkdtempSync(join(tmpdir(), "replite-bench-commit-"));

// common.mjs's startPrimary() runs REPLITE_BIN only; this one takes the
// binary, so that BENCH_BEFORE_BIN can be run beside it.
async function startServer(bin) {
  const dir = mkdtempSync(join(tmpdir(), "replite-bench-"));
  const child = spawn(bin, ["serve", "--data-dir", join(dir, "data"), "--listen", "127.0.0.1:0", "--threads", "8"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  let exited = null;
  let url;
  try {
    url = await new Promise((res, rej) => {
      child.stderr.on("data", (d) => {
        log += d;
        const m = /listening on (http:\/\/\S+)/.exec(log);
        if (m) res(m[1]);
      });
      child.on("error", (e) => rej(new Error(`cannot run ${bin}: ${e.message}`)));
      child.on("exit", (c, sig) => {
        exited = sig ?? c;
        rej(new Error(`${bin} serve exited (${exited}):\n${log}`));
      });
    });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    url,
    dir,
    alive: () => (exited === null ? null : `${bin} serve exited (${exited}) during the run:\n${log}`),
    stop: async () => {
      if (exited === null) {
        child.kill("SIGTERM");
        await new Promise((r) => child.on("exit", r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// fsync.mjs runs when imported and exports nothing: the same measurement,
// in the given directory (the primary's, so the same file system).  With
// append = true, the frame log's own pattern instead: each fdatasync covers
// one more 4120-byte frame appended to the file, whose size then changes
// too (a costlier sync on ext4 than an overwrite).
function fdatasyncRate(dir, append) {
  const path = join(dir, "fsync-probe");
  const fd = openSync(path, "w");
  const page = Buffer.alloc(append ? 4120 : 4096, 0x5a);
  const lat = [];
  try {
    for (let i = 0; i < 64; i++) writeSync(fd, page, 0, page.length, i * page.length);
    fdatasyncSync(fd);
    const end = performance.now() + FSYNC_SECONDS * 1000;
    for (let i = 0; performance.now() < end; i++) {
      const t0 = performance.now();
      writeSync(fd, page, 0, page.length, (append ? 64 + i : i % 64) * page.length);
      fdatasyncSync(fd);
      lat.push(performance.now() - t0);
    }
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
  const sorted = [...lat].sort((a, b) => a - b);
  const total = lat.reduce((a, b) => a + b, 0);
  return { rate: lat.length / (total / 1000), p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

// One INSERT per request, as @libsql/client sends it.  A Hrana statement
// error comes back as HTTP 200 with {"type":"error"} in the results: the
// response() hook counts those per thread, done() prints the sum.
const body = JSON.stringify({
  requests: [{ type: "execute", stmt: { sql: "INSERT INTO kv(v) VALUES ('w')" } }, { type: "close" }],
});
const insertLua = join(work, "insert.lua");
writeFileSync(
  insertLua,
  `wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.path = "/v2/pipeline"
wrk.body = [[${body}]]
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
hrana_errors = 0
hrana_first = nil
function response(status, headers, body)
  if status == 200 and string.find(body, '"type":"error"', 1, true) then
    hrana_errors = hrana_errors + 1
    if hrana_first == nil then hrana_first = body end
  end
end
function done(summary, latency, requests)
  local n, first = 0, nil
  for _, t in ipairs(threads) do
    n = n + t:get("hrana_errors")
    first = first or t:get("hrana_first")
  end
  io.write(string.format("hrana errors: %d\\n", n))
  if first then io.write("first hrana error: " .. first .. "\\n") end
end
`,
);

function wrk(url, connections) {
  const args = ["-t", String(Math.min(2, connections)), "-c", String(connections), "-d", `${SECONDS}s`, "--latency", "-s", insertLua, url];
  let out;
  try {
    out = execFileSync("wrk", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    if (e.code === "ENOENT") {
      throw new Error("wrk is not installed: `apt-get install -y wrk` (bench/run does it through ensure_packages wrk)");
    }
    throw new Error(`wrk ${args.join(" ")} failed (exit ${e.status ?? e.signal}):\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
  const fail = (what) => {
    throw new Error(`cannot read ${what} in wrk's output:\n${out}`);
  };
  const ms = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)\\s*$`, "m").exec(out);
    if (!m) fail(`the ${p}% latency`);
    return Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]];
  };
  const requests = Number(/^\s*(\d+) requests in /m.exec(out)?.[1] ?? fail("the request count"));
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? fail("Requests/sec"));
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const hranaErrors = Number(/^hrana errors: (\d+)/m.exec(out)?.[1] ?? fail("the Lua script's error count"));
  const firstError = /^first hrana error: (.*)$/m.exec(out)?.[1];
  const socket = /Socket errors: (.*)/.exec(out)?.[1];
  return { requests, rps, non2xx, hranaErrors, firstError, socket, p50: ms(50), p90: ms(90), p99: ms(99), out };
}

// One fresh primary: create the table, run wrk, count the rows.
async function measure(label, bin, writers, fsyncFirst) {
  const server = await startServer(bin);
  try {
    const fsync = fsyncFirst ? { overwrite: fdatasyncRate(server.dir, false), append: fdatasyncRate(server.dir, true) } : null;
    const client = createClient({ url: server.url });
    try {
      await client.execute("CREATE TABLE kv(id INTEGER PRIMARY KEY, v TEXT)");
      const r = wrk(server.url, writers);
      const dead = server.alive();
      if (dead) throw new Error(dead);
      const rows = Number((await client.execute("SELECT count(*) AS n FROM kv")).rows[0].n);
      return { label, writers, fsync, rows, ...r };
    } finally {
      client.close();
    }
  } finally {
    await server.stop();
  }
}

const builds = [{ label: "new", bin: REPLITE_BIN }];
if (BEFORE_BIN) builds.push({ label: "before", bin: BEFORE_BIN });

const results = [];
const report = (r) => {
  console.log(
    `${r.label.padEnd(7)}${String(r.writers).padStart(8)} ${fmt(r.rps, 0).padStart(10)} ${fmt(r.p50, 3).padStart(8)} ${fmt(r.p90, 3).padStart(8)} ${fmt(r.p99, 3).padStart(8)} ${String(r.rows).padStart(8)}`,
  );
  const ok = r.requests - r.non2xx - r.hranaErrors;
  const notes = [];
  if (r.non2xx) notes.push(`${r.non2xx} non-2xx responses`);
  if (r.hranaErrors) notes.push(`${r.hranaErrors} Hrana statement errors (first: ${r.firstError})`);
  if (r.socket) notes.push(`socket errors: ${r.socket}`);
  if (notes.length) console.log(`  WARNING: ${notes.join("; ")}`);
  // wrk stops with up to one request per connection in flight: the server
  // may have committed those without wrk counting an answer.  Anything
  // else is a lost or duplicated commit.
  if (r.rows < ok || r.rows - ok > r.writers) {
    console.log(`  WARNING: ${r.rows} rows, but ${ok} successful responses (${r.requests} requests - ${r.non2xx} non-2xx - ${r.hranaErrors} Hrana errors; up to ${r.writers} may be in flight when wrk stops)`);
  }
};

try {
  console.log(
    `Durable commits: single-row autocommit INSERTs, one Hrana pipeline (POST /v2/pipeline) per request, wrk --latency, ${SECONDS} s per row, a fresh primary per row (wrk shares the machine's cores with the server)`,
  );
  let fsync = null;
  for (const [i, writers] of WRITERS.entries()) {
    const order = i % 2 === 0 ? builds : [...builds].reverse();
    for (const b of order) {
      const r = await measure(b.label, b.bin, writers, fsync === null);
      if (r.fsync) {
        fsync = r.fsync;
        const line = (what, f) =>
          console.log(`fdatasync on this machine, ${what} (in the primary's temp dir, ${FSYNC_SECONDS} s): ${fmt(f.rate, 0)}/s, p50 ${fmt(f.p50, 3)} ms, p99 ${fmt(f.p99, 3)} ms`);
        line("4 KiB overwrite", fsync.overwrite);
        line("4120-byte append, as the frame log syncs", fsync.append);
        console.log("build  writers  commits/s   p50 ms   p90 ms   p99 ms     rows");
      }
      results.push(r);
      report(r);
    }
  }
  const get = (label, writers) => results.find((r) => r.label === label && r.writers === writers);
  const one = get("new", 1);
  const eight = get("new", 8);
  const met = (ok) => (ok ? "met" : "NOT met");
  const scaling = eight.rps / one.rps;
  const perSync = eight.rps / fsync.overwrite.rate;
  const perAppendSync = eight.rps / fsync.append.rate;
  console.log(`8 writers / 1 writer, commits/s: ${fmt(scaling, 2)}x (target >= 2: ${met(scaling >= 2)})`);
  console.log(`8-writer commits/s / fdatasync rate (overwrite): ${fmt(perSync, 2)}x (target > 1: ${met(perSync > 1)})`);
  console.log(`8-writer commits/s / fdatasync rate (append, the log's pattern): ${fmt(perAppendSync, 2)}x (target > 1: ${met(perAppendSync > 1)})`);
  console.log(`8-writer p99 latency: ${fmt(eight.p99, 3)} ms (target <= 5 ms: ${met(eight.p99 <= 5)})`);
  if (BEFORE_BIN) {
    const ratios = WRITERS.map((w) => `${w} writer${w > 1 ? "s" : ""} ${fmt(get("new", w).rps / get("before", w).rps, 2)}x`);
    console.log(`new / before (${BEFORE_BIN}), commits/s: ${ratios.join(", ")}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
