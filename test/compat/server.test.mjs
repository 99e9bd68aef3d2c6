// The primary as a server: long-polls, concurrency with slow or stalled
// clients, Hrana stream expiry and bounds, clean shutdown, failed starts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { createClient } from "@libsql/client";
import { HEAVY_QUERY, REPLITE_BIN, startServer, http, sleep, tempDir } from "./harness.mjs";

async function info(server) {
  return (await http(server, "GET", "/info")).json;
}

test("a long-poll returns as soon as a commit lands", async () => {
  const server = await startServer();
  try {
    const c = createClient({ url: server.url });
    await c.execute("CREATE TABLE t(x)");
    const { max_frame_no: head, current_generation: gen } = await info(server);
    let answered = false;
    const poll = http(server, "GET", `/sync/${gen}/${head + 1}/${head + 129}?wait=20`).then((r) => {
      answered = true;
      return r;
    });
    await sleep(300);
    assert.equal(answered, false, "the long-poll must wait while there is nothing new");
    await c.execute("INSERT INTO t VALUES (1)");
    const r = await poll;
    assert.equal(r.status, 200);
    assert.ok(r.body.length > 0 && r.body.length % 4120 === 0);
    assert.ok(r.body.readUInt32BE(0) > 0, "page number of the first frame");
    assert.ok(r.body.readUInt32BE(r.body.length - 4120 + 4) > 0, "the last frame is a commit");
    // Without new commits the wait ends with the "caught up" reply.
    const { max_frame_no: head2 } = await info(server);
    const idle = await http(server, "GET", `/sync/${gen}/${head2 + 1}/${head2 + 129}?wait=0.3`);
    assert.equal(idle.status, 400);
    assert.equal(idle.json.generation, gen);
    c.close();
  } finally {
    await server.stop();
  }
});

test("a client that leaves during a long-poll is not logged as an error", async () => {
  const server = await startServer();
  try {
    // curl gives up on a parked long-poll (as a replica that closes
    // does); the first commit resumes it, and its answer finds no socket.
    spawnSync("curl", ["-s", "-m", "0.5", `${server.url}/sync/1/1/2?wait=2`]);
    await sleep(300);
    const c = createClient({ url: server.url });
    await c.execute("CREATE TABLE t(x)");
    await sleep(1000);
    c.close();
    await server.stop();
    assert.doesNotMatch(server.stderr, /replite: http:/);
  } finally {
    await server.stop();
  }
});

test("long-polls do not hold worker threads", async () => {
  const server = await startServer({ args: ["--threads", "2"] });
  try {
    const c = createClient({ url: server.url });
    await c.execute("CREATE TABLE t(x)");
    const { max_frame_no: head, current_generation: gen } = await info(server);
    let pollsDone = 0;
    const polls = Array.from({ length: 16 }, () =>
      http(server, "GET", `/sync/${gen}/${head + 1}/${head + 2}?wait=4`).then((r) => {
        pollsDone++;
        return r;
      }),
    );
    await sleep(200);
    // With 16 parked long-polls and 2 threads, SQL is still served at once.
    const rs = await c.execute("SELECT count(*) AS n FROM t");
    assert.equal(Number(rs.rows[0].n), 0);
    assert.equal(pollsDone, 0, "SQL was answered while every long-poll was still parked");
    await c.execute("INSERT INTO t VALUES (1)");
    const results = await Promise.all(polls);
    for (const r of results) assert.equal(r.status, 200);
    c.close();
  } finally {
    await server.stop();
  }
});

test("a stalled client does not stall the server", async () => {
  const server = await startServer({ args: ["--threads", "1"] });
  const sockets = [];
  try {
    const { port, hostname } = new URL(server.url);
    // Half a request line, a request with a body that never arrives, and a
    // client that never reads a large response.
    for (const payload of [
      "GET /he",
      "POST /v2/pipeline HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"req",
      "GET /export/1 HTTP/1.1\r\nHost: x\r\n\r\n",
    ]) {
      const s = connect(Number(port), hostname);
      await new Promise((r) => s.on("connect", r));
      s.write(payload);
      s.pause();
      sockets.push(s);
    }
    const c = createClient({ url: server.url });
    for (let i = 0; i < 5; i++) {
      const rs = await c.execute("SELECT 1 AS one");
      assert.equal(Number(rs.rows[0].one), 1);
    }
    c.close();
  } finally {
    sockets.forEach((s) => s.destroy());
    await server.stop();
  }
});

test("an idle Hrana stream expires and releases the write lock", async () => {
  const server = await startServer({ args: ["--stream-idle-ms", "500"] });
  try {
    const a = createClient({ url: server.url });
    const b = createClient({ url: server.url });
    await a.execute("CREATE TABLE t(x)");
    const tx = await a.transaction("write");
    await tx.execute("INSERT INTO t VALUES ('abandoned')");
    await sleep(1500);
    // The abandoned transaction was rolled back; another writer proceeds.
    await b.execute("INSERT INTO t VALUES ('other')");
    const rs = await b.execute("SELECT x FROM t");
    assert.deepEqual(rs.rows.map((r) => r.x), ["other"]);
    await assert.rejects(tx.commit());
    a.close();
    b.close();
  } finally {
    await server.stop();
  }
});

test("a statement that runs past --statement-timeout is interrupted, and a writer waiting behind it proceeds", async () => {
  const server = await startServer({ args: ["--statement-timeout", "300"] });
  const heavy = HEAVY_QUERY;
  try {
    const a = createClient({ url: server.url });
    const b = createClient({ url: server.url });
    await a.execute("CREATE TABLE t(x)");
    // A write that would hold the write lock for good.
    const stuck = a.execute(`INSERT INTO t ${heavy}`);
    await sleep(50);
    const other = b.execute("INSERT INTO t VALUES ('other')");
    await assert.rejects(stuck, (e) => {
      assert.equal(e.code, "SQLITE_INTERRUPT");
      assert.match(e.message, /statement timeout \(300 ms, replite serve --statement-timeout\)/);
      return true;
    });
    await other;
    await assert.rejects(a.execute(heavy), (e) => e.code === "SQLITE_INTERRUPT");
    const rs = await a.execute("SELECT x FROM t");
    assert.deepEqual(rs.rows.map((r) => r.x), ["other"]);
    a.close();
    b.close();
  } finally {
    await server.stop();
  }
});

test("/health, a point read and a replica's pull are answered while 10 heavy queries run", async () => {
  // The heavy queries end by the statement timeout: everything else must be
  // answered before the first of them ends (an order, not a time: the
  // latencies are measured by bench/health.mjs).
  const server = await startServer({ args: ["--statement-timeout", "4000"] });
  const heavy = HEAVY_QUERY;
  try {
    const setup = createClient({ url: server.url });
    await setup.execute("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)");
    await setup.execute("INSERT INTO kv VALUES (1, 'one')");
    const clients = Array.from({ length: 10 }, () => createClient({ url: server.url }));
    let firstEnded = null;
    const running = clients.map((c) =>
      c.execute(heavy).then(
        () => (firstEnded ??= "a heavy query completed"),
        (e) => (firstEnded ??= `a heavy query ended: ${e.code}`),
      ),
    );
    await sleep(300); // all ten running (each on a worker of its own)
    assert.equal(firstEnded, null, "the heavy queries are still running");
    const health = await fetch(`${server.url}/health`);
    assert.equal(health.status, 200);
    const read = await setup.execute("SELECT v FROM kv WHERE k = 1");
    assert.equal(read.rows[0].v, "one");
    const info = await (await fetch(`${server.url}/info`)).json();
    const pull = await fetch(`${server.url}/sync/${info.current_generation}/1/${info.max_frame_no + 1}`);
    assert.equal(pull.status, 200);
    await pull.arrayBuffer();
    assert.equal(firstEnded, null, "answered while every heavy query still ran");
    await Promise.all(running);
    for (const c of clients) c.close();
    setup.close();
  } finally {
    await server.stop();
  }
});

test("a client that disconnects cancels its running statement, and a writer waiting behind it proceeds", async () => {
  // No statement timeout to end it: only the client's departure can.
  const server = await startServer({ args: ["--statement-timeout", "0"] });
  const heavy = HEAVY_QUERY;
  try {
    const b = createClient({ url: server.url });
    await b.execute("CREATE TABLE t(x)");
    // A write that would hold the write lock for good, over HTTP and over
    // WebSocket, each abandoned by its client.
    for (const transport of ["http", "ws"]) {
      const abort = new AbortController();
      let stuck;
      if (transport === "http") {
        stuck = fetch(`${server.url}/v2/pipeline`, {
          method: "POST",
          body: JSON.stringify({ requests: [{ type: "execute", stmt: { sql: `INSERT INTO t ${heavy}` } }] }),
          signal: abort.signal,
        }).catch(() => "aborted");
      } else {
        const ws = createClient({ url: server.url.replace(/^http/, "ws") });
        stuck = ws.execute(`INSERT INTO t ${heavy}`).catch(() => "closed");
        abort.signal.addEventListener("abort", () => ws.close());
      }
      await sleep(300);
      abort.abort();
      // Waits for the write lock; without the cancel it would give up
      // with SQLITE_BUSY after the server's 5 s busy timeout.
      await b.execute(`INSERT INTO t VALUES ('after ${transport}')`);
      await stuck;
    }
    const rs = await b.execute("SELECT x FROM t");
    assert.deepEqual(rs.rows.map((r) => r.x), ["after http", "after ws"]);
    assert.equal(server.stderr.match(/client of a running statement disconnected/g)?.length, 2, server.stderr);
    b.close();
  } finally {
    await server.stop();
  }
});

test("the number of open streams is bounded", async () => {
  const server = await startServer({ args: ["--max-streams", "2"] });
  try {
    const c = createClient({ url: server.url });
    const t1 = await c.transaction("read");
    const t2 = await c.transaction("read");
    await t1.execute("SELECT 1");
    await t2.execute("SELECT 1");
    await assert.rejects(
      (async () => {
        const t3 = await c.transaction("read");
        await t3.execute("SELECT 1");
      })(),
      (e) => /too many open streams/.test(String(e.message ?? e)),
    );
    t1.close();
    t2.close();
    // Closed streams free their slots.
    await sleep(100);
    const rs = await c.execute("SELECT 2 AS two");
    assert.equal(Number(rs.rows[0].two), 2);
    c.close();
  } finally {
    await server.stop();
  }
});

test("SIGINT and SIGTERM stop the server cleanly", async () => {
  for (const sig of ["SIGINT", "SIGTERM"]) {
    const server = await startServer();
    const c = createClient({ url: server.url });
    await c.execute("CREATE TABLE t(x)");
    c.close();
    server.child.kill(sig);
    const { code } = await server.exited;
    assert.equal(code, 0, server.stderr);
    assert.match(server.stderr, /shutting down/);
  }
});

test("a failed start leaves nothing behind, and the auth warning comes only once the server starts", async () => {
  const dir = tempDir("replite-failstart-");
  try {
    // The address is taken: the data directory (and its missing parents)
    // it would have created are gone again.
    const taken = createServer();
    await new Promise((res) => taken.listen(0, "127.0.0.1", res));
    const port = taken.address().port;
    try {
      const r = spawnSync(REPLITE_BIN, ["serve", "--data-dir", dir.file("a/b/data"), "--listen", `127.0.0.1:${port}`], {
        encoding: "utf8",
        timeout: 30000,
      });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /Address already in use/);
      assert.doesNotMatch(r.stderr, /WARNING/);
      assert.equal(existsSync(dir.file("a")), false, "a/ was left behind");
    } finally {
      taken.close();
    }
    // An import that is not a database: no data directory, no gen-*.tmp.
    writeFileSync(dir.file("bad.db"), "not a database at all".repeat(300));
    const r = spawnSync(
      REPLITE_BIN,
      ["serve", "--data-dir", dir.file("data"), "--listen", "127.0.0.1:0", "--import", dir.file("bad.db")],
      { encoding: "utf8", timeout: 30000 },
    );
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /bad\.db/);
    assert.doesNotMatch(r.stderr, /WARNING/);
    assert.equal(existsSync(dir.file("data")), false, "data/ was left behind");
    // An existing data directory stays, whatever happens to the start.
    const again = spawnSync(
      REPLITE_BIN,
      ["serve", "--data-dir", dir.path, "--listen", "127.0.0.1:0", "--import", dir.file("bad.db")],
      { encoding: "utf8", timeout: 30000 },
    );
    assert.notEqual(again.status, 0);
    assert.equal(existsSync(dir.file("bad.db")), true);
    // A start that works still warns when there is no key.
    const server = await startServer();
    assert.match(server.stderr, /WARNING: no --auth-jwt-key-file/);
    await server.stop();
  } finally {
    dir.remove();
  }
});
