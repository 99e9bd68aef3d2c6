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
