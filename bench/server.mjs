// The server's own capacity, measured with wrk (a C load generator) instead
// of a Node.js client, whose event loop saturates long before the server
// does: Hrana point reads and single-row inserts (POST /v2/pipeline, as
// @libsql/client sends them) and frame serving (GET /sync, 128 frames per
// request, as the libSQL replica asks), at 1, 4 and 16 connections.  The
// reference is the same statements on a local SQLite file (npm libsql).
import { createClient } from "@libsql/client";
import Database from "libsql";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fmt, startPrimary, summarize } from "./common.mjs";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const CONNECTIONS = [1, 4, 16];
const FRAME = 4120;

const work = mkdtempSync(join(tmpdir(), "replite-bench-wrk-"));

function script(name, body) {
  const path = join(work, name);
  writeFileSync(path, body);
  return path;
}

const pipeline = (stmt) =>
  JSON.stringify({ requests: [{ type: "execute", stmt }, { type: "close" }] });

const readLua = script(
  "read.lua",
  `wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local k = math.random(0, 999)
  return wrk.format(nil, "/v2/pipeline", nil,
    [[${pipeline({ sql: "SELECT v FROM kv WHERE k = ?", args: [{ type: "integer", value: "KEY" }] }).replace('"KEY"', '"]] .. k .. [["')}]])
end
`,
);
const insertLua = script(
  "insert.lua",
  `wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.path = "/v2/pipeline"
wrk.body = [[${pipeline({ sql: "INSERT INTO kv(v) VALUES ('w')" })}]]
`,
);

// wrk's summary: requests/s and the latency percentiles (--latency).
function wrk(url, connections, lua) {
  const args = ["-t", String(Math.min(2, connections)), "-c", String(connections), "-d", `${SECONDS}s`, "--latency"];
  if (lua) args.push("-s", lua);
  const out = execFileSync("wrk", [...args, url], { encoding: "utf8" });
  const ms = (label) => {
    const m = new RegExp(`^\\s+${label}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(out);
    if (!m) return NaN;
    return Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]];
  };
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1];
  if (errors) throw new Error(`wrk saw ${errors} error responses:\n${out}`);
  return { rps, p50: ms(50), p99: ms(99), mibs: Number(/Transfer\/sec:\s+([\d.]+)MB/.exec(out)?.[1] ?? NaN) };
}

function localReference() {
  const db = new Database(join(work, "local.db"));
  db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  db.exec("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)");
  const ins = db.prepare("INSERT INTO kv(k, v) VALUES (?, ?)");
  for (let i = 0; i < 1000; i++) ins.run(i, "value-" + i);
  const sel = db.prepare("SELECT v FROM kv WHERE k = ?");
  const insAuto = db.prepare("INSERT INTO kv(v) VALUES ('w')");
  const measure = (fn) => {
    const lat = [];
    const end = performance.now() + SECONDS * 1000;
    while (performance.now() < end) {
      const t0 = performance.now();
      fn();
      lat.push(performance.now() - t0);
    }
    return { rps: lat.length / SECONDS, ...summarize(lat) };
  };
  const read = measure(() => sel.get(Math.floor(Math.random() * 1000)));
  const write = measure(() => insAuto.run());
  db.close();
  return { read, write };
}

const row = (label, c, r, ref) =>
  console.log(
    `${label.padEnd(8)}${String(c).padStart(5)} ${fmt(r.rps, 0).padStart(9)} ${fmt(r.p50, 3).padStart(9)} ${fmt(r.p99, 3).padStart(9)}   ${fmt(r.rps / ref, 4)}x`,
  );

const primary = await startPrimary(["--threads", "8"]);
try {
  const setup = createClient({ url: primary.url });
  await setup.execute("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)");
  await setup.execute(
    "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < 999) INSERT INTO kv SELECT x, 'value-' || x FROM c",
  );
  const local = localReference();
  console.log(`Server capacity with wrk, ${SECONDS} s per row (wrk shares the machine's cores with the server)`);
  console.log("op      conns    req/s    p50 ms    p99 ms   vs local SQLite ops/s");
  for (const c of CONNECTIONS) row("read", c, wrk(primary.url, c, readLua), local.read.rps);
  for (const c of CONNECTIONS) row("insert", c, wrk(primary.url, c, insertLua), local.write.rps);
  console.log(
    `local SQLite reference (npm libsql, one thread): read ${fmt(local.read.rps, 0)} ops/s, insert ${fmt(local.write.rps, 0)} ops/s (synchronous=NORMAL: no fsync per commit; the server fsyncs its log on every commit)`,
  );

  // Frame serving: fill about 4000 frames, then pull 128-frame ranges.
  for (let i = 0; i < 20; i++) {
    await setup.batch(Array.from({ length: 200 }, () => "INSERT INTO kv(v) VALUES (randomblob(3900))"), "write");
  }
  const info = await (await fetch(primary.url + "/info")).json();
  const ranges = Math.floor(info.max_frame_no / 128);
  const syncLua = script(
    "sync.lua",
    `local n = 0
request = function()
  local start = 1 + (n % ${ranges}) * 128
  n = n + 1
  return wrk.format("GET", "/sync/${info.current_generation}/" .. start .. "/" .. (start + 128))
end
`,
  );
  console.log(`\nFrame serving with wrk: GET /sync of 128 frames (${fmt((128 * FRAME) / 2 ** 20, 2)} MiB) per request`);
  console.log("conns    req/s    MiB/s    p50 ms    p99 ms");
  for (const c of CONNECTIONS) {
    const r = wrk(primary.url, c, syncLua);
    console.log(`${String(c).padStart(5)} ${fmt(r.rps, 0).padStart(8)} ${fmt((r.rps * 128 * FRAME) / 2 ** 20, 0).padStart(8)} ${fmt(r.p50, 3).padStart(9)} ${fmt(r.p99, 3).padStart(9)}`);
  }
  setup.close();
} finally {
  await primary.stop();
  rmSync(work, { recursive: true, force: true });
}
