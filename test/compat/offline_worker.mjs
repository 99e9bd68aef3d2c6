// One offline replica in Node's better-sqlite3 (its own bundled SQLite),
// driven by offline.test.mjs; offline_host.py is the same in Python, and the
// protocol is described there.
//
//   node offline_worker.mjs EXTENSION URI
//
// Opens URI and prints {"ready": true} (or {"open_error": ERROR} and exits
// 1), then answers one JSON request per line on stdin: exec, query,
// insert_each, loop, watch, close.  Output goes through fs.writeSync, so a
// {"committed": V} line is in the pipe before the next commit begins (the
// loop and watch modes never return to the event loop).
import { writeSync } from "node:fs";
import { createInterface } from "node:readline";

process.env.SQLITE_USE_URI = "1"; // read when better-sqlite3 is loaded
const { default: Database } = await import("better-sqlite3");

const [extension, uri] = process.argv.slice(2);
const out = (x) => writeSync(1, `${JSON.stringify(x)}\n`);
const errorOf = (e) => ({ message: e.message, code: null, name: e.code ?? null });
const value = (v) => (Buffer.isBuffer(v) ? v.toString("hex").toUpperCase() : typeof v === "bigint" ? Number(v) : v);
const isBusy = (e) => /^SQLITE_BUSY/.test(e.code ?? "") || /database is locked/i.test(e.message ?? "");
const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

const loader = new Database(":memory:");
loader.loadExtension(extension);
let db;
try {
  db = new Database(uri);
  db.prepare("SELECT count(*) FROM sqlite_schema").get();
} catch (e) {
  out({ open_error: errorOf(e) });
  process.exit(1);
}
out({ ready: true, sqlite_version: db.prepare("SELECT sqlite_version()").pluck().get() });

function run(sql, args = []) {
  const stmt = db.prepare(sql);
  if (stmt.reader) return stmt.raw().all(...args).map((r) => r.map(value));
  stmt.run(...args);
  return [];
}

for await (const line of createInterface({ input: process.stdin })) {
  const req = JSON.parse(line);
  if (req.op === "exec") {
    try {
      for (const s of req.sql) run(s);
      out({ ok: true });
    } catch (e) {
      if (db.inTransaction) {
        try {
          db.exec("ROLLBACK");
        } catch {}
      }
      out({ error: errorOf(e) });
    }
  } else if (req.op === "query") {
    try {
      out({ rows: run(req.sql, req.args ?? []) });
    } catch (e) {
      out({ error: errorOf(e) });
    }
  } else if (req.op === "insert_each") {
    let retries = 0;
    let done = 0;
    try {
      const stmt = db.prepare(req.sql);
      for (const v of req.values) {
        for (;;) {
          try {
            stmt.run(v);
            break;
          } catch (e) {
            if (!isBusy(e) || retries > 100000) throw e;
            retries++;
            pause(1);
          }
        }
        done++;
      }
      out({ ok: true, retries });
    } catch (e) {
      out({ error: errorOf(e), done });
    }
  } else if (req.op === "loop") {
    const stmt = db.prepare(req.sql);
    for (let i = 0; ; i++) {
      const v = `${req.prefix}-${i}`;
      stmt.run(v);
      out({ committed: v });
    }
  } else if (req.op === "watch") {
    const stmt = db.prepare("SELECT replite_status()").pluck();
    for (;;) {
      out({ status: JSON.parse(stmt.get()) });
      pause(1);
    }
  } else if (req.op === "close") {
    db.close();
    loader.close();
    out({ ok: true });
    process.exit(0);
  } else {
    out({ error: { message: `unknown op ${req.op}` } });
  }
}
