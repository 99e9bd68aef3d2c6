// Hrana throughput and latency: C concurrent clients against `replite serve`
// doing point reads and single-row inserts, next to the same statements on a
// local SQLite file (npm libsql) as the no-network reference.  Transports:
//   http, ws        @libsql/client over http:// and ws:// (Hrana 2, JSON)
//   http-pb, ws-pb  @libsql/hrana-client with protocol version 3, which
//                   chooses protobuf (/v3-protobuf/pipeline, hrana3-protobuf);
//                   each client keeps one stream open, as a connection
import { createClient } from "@libsql/client";
import * as hrana from "@libsql/hrana-client";
import Database from "libsql";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fmt, startPrimary, summarize } from "./common.mjs";

const DURATION_MS = Number(process.env.BENCH_SECONDS ?? 3) * 1000;
const CONCURRENCY = [1, 4, 16];

async function runFor(ms, clients, op) {
  const lat = [];
  const end = performance.now() + ms;
  await Promise.all(
    clients.map(async (c, i) => {
      let k = 0;
      while (performance.now() < end) {
        const t0 = performance.now();
        await op(c, i, k++);
        lat.push(performance.now() - t0);
      }
    }),
  );
  return { opsPerSec: lat.length / (ms / 1000), ...summarize(lat) };
}

function localReference() {
  const dir = mkdtempSync(join(tmpdir(), "replite-bench-local-"));
  const db = new Database(join(dir, "local.db"));
  db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  db.exec("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)");
  const ins = db.prepare("INSERT INTO kv(k, v) VALUES (?, ?)");
  for (let i = 0; i < 1000; i++) ins.run(i, "value-" + i);
  const sel = db.prepare("SELECT v FROM kv WHERE k = ?");
  const measure = (fn) => {
    const lat = [];
    const end = performance.now() + DURATION_MS;
    let k = 0;
    while (performance.now() < end) {
      const t0 = performance.now();
      fn(k++);
      lat.push(performance.now() - t0);
    }
    return { opsPerSec: lat.length / (DURATION_MS / 1000), ...summarize(lat) };
  };
  const read = measure((k) => sel.get(k % 1000));
  const write = measure((k) => ins.run(100000 + k, "x"));
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return { read, write };
}

// A hrana-client Client with one open stream, behind @libsql/client's
// execute/close, checked to have negotiated protocol version 3.
async function hranaClient(client) {
  if ((await client.getVersion()) !== 3) throw new Error("the server did not offer Hrana 3");
  const stream = client.openStream();
  return {
    execute: ({ sql, args }) => stream.query([sql, args.map((a) => (typeof a === "number" ? BigInt(a) : a))]),
    close: () => {
      stream.close();
      client.close();
    },
  };
}

const primary = await startPrimary(["--threads", "8"]);
try {
  const setup = createClient({ url: primary.url });
  await setup.execute("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)");
  await setup.batch(
    Array.from({ length: 1000 }, (_, i) => ({ sql: "INSERT INTO kv(k, v) VALUES (?, ?)", args: [i, "value-" + i] })),
    "write",
  );
  setup.close();
  const local = localReference();
  const wsUrl = primary.url.replace(/^http:/, "ws:");
  console.log(`Hrana over HTTP and WebSocket, JSON and protobuf (-> replite serve), ${DURATION_MS / 1000} s per row`);
  console.log("op      transport clients   ops/s    p50 ms   p99 ms   vs local SQLite ops/s   vs http ops/s");
  const transports = [
    ["http", () => createClient({ url: primary.url })],
    ["ws", () => createClient({ url: wsUrl })],
    ["http-pb", () => hranaClient(hrana.openHttp(primary.url, undefined, undefined, undefined, 3))],
    ["ws-pb", () => hranaClient(hrana.openWs(wsUrl, undefined, 3))],
  ];
  let next = 1000000;
  for (const c of CONCURRENCY) {
    const results = {};
    for (const [name, open] of transports) {
      const clients = await Promise.all(Array.from({ length: c }, open));
      const r = await runFor(DURATION_MS, clients, (cl, i, k) =>
        cl.execute({ sql: "SELECT v FROM kv WHERE k = ?", args: [(i * 7919 + k) % 1000] }),
      );
      const w = await runFor(DURATION_MS, clients, (cl) =>
        cl.execute({ sql: "INSERT INTO kv(k, v) VALUES (?, ?)", args: [next++, "w"] }),
      );
      clients.forEach((cl) => cl.close());
      results[name] = { r, w };
    }
    for (const [op, key, ref] of [["read", "r", local.read], ["insert", "w", local.write]]) {
      for (const [name] of transports) {
        const x = results[name][key];
        const ratio = name !== "http" ? `${fmt(x.opsPerSec / results.http[key].opsPerSec, 2)}x` : "";
        console.log(`${op.padEnd(7)} ${name.padEnd(9)} ${String(c).padStart(7)} ${fmt(x.opsPerSec, 0).padStart(8)} ${fmt(x.p50).padStart(8)} ${fmt(x.p99).padStart(8)}   ${fmt(x.opsPerSec / ref.opsPerSec, 4)}x`.padEnd(74) + ratio);
      }
    }
  }
  console.log(`local SQLite reference (npm libsql, same statements): read ${fmt(local.read.opsPerSec, 0)} ops/s p50 ${fmt(local.read.p50, 4)} ms; insert ${fmt(local.write.opsPerSec, 0)} ops/s p50 ${fmt(local.write.p50, 4)} ms`);
} finally {
  await primary.stop();
}
