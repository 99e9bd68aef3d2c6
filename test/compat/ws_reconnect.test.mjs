// Hrana over WebSocket through @libsql/client/ws (issue 14, "Tests"): a
// `libsql://HOST:PORT?tls=0` URL (which that client maps to ws://), clients
// whose socket the server closes (idle expiry, a restart) reconnecting and
// going on, and the server restarting under an open socket: in-flight work
// fails with a clear error, and the same client works again once the server
// is back on the same port.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@libsql/client/ws";
import { startServer, HEAVY_QUERY, sleep } from "./harness.mjs";

// The server's stderr says "websocket open" per socket with --log-requests.
const opens = (s) => (s.stderr.match(/websocket open/g) ?? []).length;
const portOf = (s) => new URL(s.url).port;

async function waitFor(fn, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    if (fn()) return;
    if (Date.now() > end) throw new Error("timed out");
    await sleep(20);
  }
}

test("ws clients: @libsql/client/ws with libsql://127.0.0.1:PORT?tls=0 speaks WebSocket", async () => {
  const s = await startServer({ args: ["--log-requests"] });
  const c = createClient({ url: `libsql://127.0.0.1:${portOf(s)}?tls=0`, intMode: "number" });
  try {
    await c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    await c.batch([{ sql: "INSERT INTO t(v) VALUES (?)", args: ["a"] }, "INSERT INTO t(v) VALUES ('b')"], "write");
    const tx = await c.transaction("write");
    await tx.execute("INSERT INTO t(v) VALUES ('c')");
    await tx.commit();
    assert.deepEqual((await c.execute("SELECT v FROM t ORDER BY id")).rows.map((r) => r.v), ["a", "b", "c"]);
    await assert.rejects(c.execute("SELECT * FROM nope"), (e) => e.code === "SQLITE_ERROR");
    // Over a WebSocket, not HTTP: the server saw an upgrade and no
    // /v2 or /v3 pipeline request.
    assert.ok(opens(s) >= 1, s.stderr);
    assert.ok(!s.requestLog().some((r) => /pipeline|cursor/.test(r.path)), JSON.stringify(s.requestLog()));
    // Without ?tls=0 a libsql:// URL means wss://: refused by this plain server.
    const tls = createClient({ url: `libsql://127.0.0.1:${portOf(s)}` });
    await assert.rejects(tls.execute("SELECT 1"));
    tls.close();
  } finally {
    c.close();
    await s.stop();
  }
});

test("ws clients: a socket closed by the idle expiry is reopened by the client, which goes on", async () => {
  const s = await startServer({ args: ["--log-requests", "--ws-idle-ms", "300"] });
  const c = createClient({ url: s.url.replace(/^http:/, "ws:"), intMode: "number" });
  try {
    await c.execute("CREATE TABLE t(x)");
    await c.execute("INSERT INTO t VALUES (1)");
    assert.equal(opens(s), 1);
    // The server closes the idle socket...
    await waitFor(() => /websocket closed/.test(s.stderr));
    // ...and the next statements run on a new one.
    await c.execute("INSERT INTO t VALUES (2)");
    assert.equal((await c.execute("SELECT sum(x) AS n FROM t")).rows[0].n, 3);
    assert.equal(opens(s), 2, s.stderr);
  } finally {
    c.close();
    await s.stop();
  }
});

test("ws clients: the server restarting under an open socket: in-flight work fails clearly, then the client works again", { timeout: 120000 }, async () => {
  let s = await startServer({ args: ["--statement-timeout", "60000"] });
  const port = portOf(s);
  const restart = async () => {
    s = await startServer({ dataDir: s.dataDir, listen: `127.0.0.1:${port}`, args: ["--statement-timeout", "60000"] });
  };
  const c = createClient({ url: `ws://127.0.0.1:${port}`, intMode: "number" });
  try {
    await c.execute("CREATE TABLE t(x)");
    await c.execute("INSERT INTO t VALUES (1)");

    // A crash (kill -9) with a statement running: its promise rejects
    // (the socket is gone) instead of hanging.
    const inflight = c.execute(HEAVY_QUERY).then(
      () => new Error("the in-flight statement succeeded"),
      (e) => e,
    );
    await sleep(300);
    await s.kill9();
    const err = await inflight;
    assert.equal(err.code, "HRANA_WEBSOCKET_ERROR", `${err.code} ${err.message}`);
    assert.match(`${err.code} ${err.message}`, /WEBSOCKET|closed|socket/i, `${err.code} ${err.message}`);
    // While the server is down, statements fail (no hang).
    await assert.rejects(c.execute("SELECT 1"));
    // Back on the same port: the same client reconnects, and what was
    // committed before the crash is there.
    await restart();
    assert.equal((await c.execute("SELECT count(*) AS n FROM t")).rows[0].n, 1);
    await c.execute("INSERT INTO t VALUES (2)");

    // A clean restart (SIGTERM) while the socket is open but idle: the
    // server closes it (1001), the client reconnects to the new server.
    await s.stop();
    await restart();
    assert.equal((await c.execute("SELECT sum(x) AS n FROM t")).rows[0].n, 3);

    // An interactive transaction open across a restart is gone: its next
    // statement fails, and nothing of it was committed.
    const tx = await c.transaction("write");
    await tx.execute("INSERT INTO t VALUES (100)");
    await s.stop();
    await restart();
    await assert.rejects(tx.execute("INSERT INTO t VALUES (200)"));
    tx.close();
    assert.equal((await c.execute("SELECT sum(x) AS n FROM t")).rows[0].n, 3);
  } finally {
    c.close();
    await s.stop();
  }
});
