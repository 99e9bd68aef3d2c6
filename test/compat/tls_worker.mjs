// A client process for tls.test.mjs: TLS trust comes from the environment
// when a process starts (NODE_EXTRA_CA_CERTS for node, SSL_CERT_FILE for npm
// libsql's rustls, REPLITE_CA_FILE for a replite replica), so each client
// runs in a child process of its own.  Usage:
//
//   node tls_worker.mjs SPEC_JSON
//
// SPEC = {kind, url, path?, extension?, params?, steps: [STEP...]}, kind one
// of:
//   "replite"  a replite replica (better-sqlite3 with libreplite loaded),
//              opened as file:PATH?vfs=replite&sync_url=URL PARAMS
//   "libsql"   an npm libsql embedded replica of URL at PATH (default mode)
//   "client"   @libsql/client on URL (https:// = Hrana over HTTP, wss:// =
//              Hrana over WebSocket)
// STEP = {sql, args?} (rows as arrays) or {sync: true}.
//
// Writes "running" on stderr as each step starts.  Prints one JSON line: {open: null | ERROR, steps: [{rows} | {error}...]},
// ERROR = {message, code}.  A failed step does not stop the later ones.
const spec = JSON.parse(process.argv[2]);
const out = (x) => process.stdout.write(`${JSON.stringify(x)}\n`);
// The message with those of its causes (fetch's "fetch failed" hides the
// TLS reason in e.cause).
function errorOf(e) {
  const parts = [];
  for (let x = e, i = 0; x != null && i < 5; x = x.cause, i++) parts.push(`${x.code ? `[${x.code}] ` : ""}${x.message ?? x}`);
  return { message: parts.join(" <- "), code: e?.code ?? null };
}

const reads = (sql) => /^\s*(SELECT|WITH|PRAGMA)\b/i.test(sql);

let run;
let close = () => {};
try {
  if (spec.kind === "replite") {
    process.env.SQLITE_USE_URI = "1"; // before better-sqlite3 is loaded
    const { default: Database } = await import("better-sqlite3");
    new Database(":memory:").loadExtension(spec.extension);
    const db = new Database(`file:${spec.path}?vfs=replite&sync_url=${spec.url}${spec.params ?? ""}`);
    close = () => db.close();
    run = async (step) => {
      if (step.sync) return [[db.prepare("SELECT replite_sync()").pluck().get()]];
      const stmt = db.prepare(step.sql);
      if (reads(step.sql)) return stmt.raw().all(...(step.args ?? []));
      stmt.run(...(step.args ?? []));
      return [];
    };
  } else if (spec.kind === "libsql") {
    const { default: Database } = await import("libsql");
    const db = new Database(spec.path, { syncUrl: spec.url });
    close = () => db.close();
    run = async (step) => {
      if (step.sync) {
        db.sync();
        return [];
      }
      const stmt = db.prepare(step.sql);
      if (reads(step.sql)) return stmt.raw().all(...(step.args ?? []));
      stmt.run(...(step.args ?? []));
      return [];
    };
  } else if (spec.kind === "client") {
    const { createClient } = await import("@libsql/client");
    const client = createClient({ url: spec.url });
    close = () => client.close();
    run = async (step) => {
      const rs = await client.execute({ sql: step.sql, args: step.args ?? [] });
      return rs.rows.map((row) => rs.columns.map((_, i) => row[i]));
    };
  } else {
    throw new Error(`unknown kind ${spec.kind}`);
  }
} catch (e) {
  out({ open: errorOf(e), steps: [] });
  process.exit(0);
}

const steps = [];
for (const step of spec.steps ?? []) {
  process.stderr.write("running\n"); // for a test that kills us mid-step
  try {
    steps.push({ rows: await run(step) });
  } catch (e) {
    steps.push({ error: errorOf(e) });
  }
}
try {
  close();
} catch {}
out({ open: null, steps });
