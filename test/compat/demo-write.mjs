// scripts/demo: one insert on the primary through the real @libsql/client.
import { createClient } from "@libsql/client";

const [url, body] = process.argv.slice(2);
const client = createClient({ url });
await client.execute({ sql: "INSERT INTO notes(body) VALUES (?)", args: [body] });
client.close();
