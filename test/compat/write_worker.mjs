// A writer process for write.test.mjs: one replica, writing concurrently
// with others.  Usage:
//
//   node write_worker.mjs replite URL PATH TAG N EXTENSION [URI_PARAMS]
//       a replite replica (better-sqlite3 with libreplite loaded)
//   node write_worker.mjs libsql URL PATH TAG N
//       an npm libsql embedded replica in default mode (writes over Hrana)
//
// Opens (bootstraps) the replica and prints {"ready": true}; on the line
// "go" runs N transactions, each `INSERT INTO t(v) VALUES ('TAG-i')` and
// `UPDATE counter SET n = n + 1`, retrying a transaction that fails with
// SQLITE_BUSY (any variant) until it commits; prints {"done": true, "ok",
// "retries", "errors", "ms"}.  On the line "sync" it syncs and prints
// {"rows": [[id, v]...], "counter": n}.  Exits when stdin closes.
import { createInterface } from "node:readline";

const [kind, url, path, tag, nText, extension, params = ""] = process.argv.slice(2);
const n = Number(nText);
const out = (x) => process.stdout.write(`${JSON.stringify(x)}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let db;
let sync;
if (kind === "replite") {
  process.env.SQLITE_USE_URI = "1"; // before better-sqlite3 is loaded
  const { default: Database } = await import("better-sqlite3");
  new Database(":memory:").loadExtension(extension);
  db = new Database(`file:${path}?vfs=replite&sync_url=${url}${params}`);
  sync = () => db.prepare("SELECT replite_sync()").pluck().get();
} else if (kind === "libsql") {
  const { default: Database } = await import("libsql");
  db = new Database(path, { syncUrl: url });
  db.sync();
  sync = () => db.sync();
} else {
  throw new Error(`unknown kind ${kind}`);
}

// BEGIN, the two statements, COMMIT; on an error, ROLLBACK (its own error
// ignored: libsql's transaction() replaces the first error with the one of
// its ROLLBACK when the primary has already ended the transaction).  The
// statements are prepared inside the transaction: in default mode, npm
// libsql 0.5 runs a statement prepared outside a transaction as if in
// autocommit mode, closing the Hrana stream after it, which rolls the
// transaction back on the primary.
const txn = (v) => {
  db.exec("BEGIN");
  try {
    db.prepare("INSERT INTO t(v) VALUES (?)").run(v);
    db.prepare("UPDATE counter SET n = n + 1 WHERE id = 1").run();
    db.exec("COMMIT");
  } catch (e) {
    try {
      db.exec("ROLLBACK");
    } catch {}
    throw e;
  }
};
const busy = (e) => /^SQLITE_BUSY/.test(e.code ?? "") || /database is locked|SQLITE_BUSY/i.test(e.message ?? "");

async function run() {
  let retries = 0;
  const errors = {};
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    for (;;) {
      try {
        txn(`${tag}-${i}`);
        break;
      } catch (e) {
        if (!busy(e) || retries > 100 * n) throw e;
        const key = e.code ?? "busy";
        errors[key] = (errors[key] ?? 0) + 1;
        retries++;
        await sleep(Math.random() * 2);
      }
    }
  }
  out({ done: true, ok: n, retries, errors, ms: performance.now() - t0 });
}

out({ ready: true });
for await (const line of createInterface({ input: process.stdin })) {
  if (line === "go") await run();
  else if (line === "sync") {
    sync();
    out({
      rows: db.prepare("SELECT id, v FROM t ORDER BY id").raw().all(),
      counter: db.prepare("SELECT n FROM counter WHERE id = 1").raw().get()[0],
    });
  }
}
db.close();
