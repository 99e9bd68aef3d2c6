// scripts/demo: the last notes on the primary, read through the real @libsql/client.
import { createClient } from "@libsql/client";

const [url, limit = "1"] = process.argv.slice(2);
const client = createClient({ url });
const rs = await client.execute({ sql: "SELECT id, body FROM notes ORDER BY id DESC LIMIT ?", args: [Number(limit)] });
for (const row of [...rs.rows].reverse()) console.log(`  note ${row.id}: ${row.body}`);
client.close();
