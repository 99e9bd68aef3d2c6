// The client half of scripts/demo: the real @libsql/client (npm) against a primary.
import { createClient } from "@libsql/client";

const url = process.argv[2];
const client = createClient({ url, intMode: "bigint" });
await client.batch(
  [
    "CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT, created TEXT DEFAULT CURRENT_TIMESTAMP)",
    { sql: "INSERT INTO notes(body) VALUES (?)", args: ["hello from @libsql/client"] },
    { sql: "INSERT INTO notes(body) VALUES (:body)", args: { body: "a second note" } },
  ],
  "write",
);
const rs = await client.execute("SELECT id, body FROM notes ORDER BY id");
for (const row of rs.rows) console.log(`  note ${row.id}: ${row.body}`);
const tx = await client.transaction("write");
await tx.execute("INSERT INTO notes(body) VALUES ('inside a transaction')");
await tx.commit();
const n = await client.execute("SELECT count(*) AS n FROM notes");
console.log(`  ${n.rows[0].n} notes after an interactive transaction`);
client.close();

// The same data in a libSQL embedded replica (npm libsql) syncing from the
// primary over the HTTP sync protocol: a local file, read at local speed.
const { default: Database } = await import("libsql");
const { mkdtempSync, rmSync } = await import("node:fs");
const { join } = await import("node:path");
const { tmpdir } = await import("node:os");
const dir = mkdtempSync(join(tmpdir(), "replite-demo-replica-"));
try {
  const replica = new Database(join(dir, "replica.db"), { syncUrl: url });
  replica.sync();
  const rows = replica.prepare("SELECT id, body FROM notes ORDER BY id").all();
  console.log(`  embedded replica (npm libsql) after sync(): ${rows.length} notes, read from ${join(dir, "replica.db")}`);
  const writer = createClient({ url });
  await writer.execute("INSERT INTO notes(body) VALUES ('written on the primary after the first sync')");
  writer.close();
  replica.sync();
  const last = replica.prepare("SELECT body FROM notes ORDER BY id DESC LIMIT 1").get();
  console.log(`  after another sync(): "${last.body}"`);
  replica.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
