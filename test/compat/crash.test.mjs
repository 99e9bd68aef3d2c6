// kill -9 of the primary, then a restart on the same data directory.
//
// 1. While clients commit in loops: every acknowledged commit survives (the
//    one each client had in flight may or may not), nothing else appears, the
//    database is intact, and a `libsql` replica that synced before the crash
//    continues incrementally (no /export).
// 2. While an offline `libsql` replica pushes (at random moments, and
//    deterministically between the requests of a multi-request push): after
//    the restart its next sync() completes the push, exactly once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { join } from "node:path";
import Database from "libsql";
import { createClient } from "@libsql/client";
import { copyDatabase, startServer, tempDir, serverInfo, settledRequestLog, sleep, waitForGeneration } from "./harness.mjs";

const ROUNDS = 6;
const WRITERS = 3;
// Small generations, so that rollovers happen between and around crashes.
const SERVER_ARGS = ["--log-requests", "--generation-frames", "40"];
const SNAPSHOT = "SELECT round, w, i, part, hex(b) FROM t ORDER BY round, w, i, part";

async function primaryRows(client, sql = SNAPSHOT) {
  const rs = await client.execute(sql);
  return rs.rows.map((row) => rs.columns.map((_, i) => row[i]));
}

function localRows(db, sql = SNAPSHOT) {
  return db.prepare(sql).raw().all();
}

function integrityOfCopy(path, dir) {
  const db = new Database(copyDatabase(path, dir));
  try {
    return { integrity: db.prepare("PRAGMA integrity_check").pluck().all(), rows: localRows(db) };
  } finally {
    db.close();
  }
}

// The commits (numbers i) of writer w in a round, from (round, w, i, part)
// rows; each commit writes parts 0 and 1 and bumps the counter.
function commitsOf(rows, round, w) {
  const parts = new Map();
  for (const [r, rw, i, part] of rows) {
    if (r !== round || rw !== w) continue;
    parts.set(i, [...(parts.get(i) ?? []), part]);
  }
  for (const [i, p] of parts) assert.deepEqual(p, [0, 1], `commit ${round}/${w}/${i} is whole`);
  return [...parts.keys()];
}

// Commits in a loop until the server dies; records what was acknowledged and
// the commit in flight when the connection failed.
function commitLoop(url, round, w) {
  const client = createClient({ url });
  const state = { acked: [], inflight: null, error: null };
  state.done = (async () => {
    for (let i = 0; ; i++) {
      state.inflight = i;
      // From a few bytes to several pages (overflow chains).
      const size = [10, 3000, 20000][(i + w) % 3];
      try {
        await client.batch(
          [
            { sql: "INSERT INTO t VALUES (?, ?, ?, 0, randomblob(?))", args: [round, w, i, size] },
            { sql: "INSERT INTO t VALUES (?, ?, ?, 1, randomblob(16))", args: [round, w, i] },
            "UPDATE counter SET n = n + 1",
          ],
          "write",
        );
      } catch (e) {
        state.error = e;
        client.close();
        return;
      }
      state.acked.push(i);
    }
  })();
  return state;
}

async function untilAcked(loops, count, server) {
  while (loops.some((s) => s.acked.length < count)) {
    const failed = loops.find((s) => s.error);
    if (failed) throw new Error(`commits failed before the crash: ${failed.error}\n${server.stderr}`);
    await sleep(5);
  }
}

test("kill -9 while committing: acknowledged commits survive, replicas continue incrementally", async () => {
  const dir = tempDir("replite-crash-");
  const dataDir = dir.file("data");
  let server = await startServer({ dataDir, args: SERVER_ARGS });
  // The server comes back on the same port, so the replica keeps its URL.
  const listen = `127.0.0.1:${new URL(server.url).port}`;
  let client = createClient({ url: server.url });
  let replica = null;
  try {
    await client.batch(
      [
        "CREATE TABLE t(round INTEGER, w INTEGER, i INTEGER, part INTEGER, b BLOB, PRIMARY KEY (round, w, i, part))",
        "CREATE TABLE counter(n INTEGER)",
        "INSERT INTO counter VALUES (0)",
      ],
      "write",
    );
    replica = new Database(dir.file("replica.db"), { syncUrl: server.url });
    replica.sync();
    let previous = []; // the rows after the last restart
    let inFlightKept = 0;

    for (let round = 0; round < ROUNDS; round++) {
      const loops = Array.from({ length: WRITERS }, (_, w) => commitLoop(server.url, round, w));
      await untilAcked(loops, 2, server);
      if (round % 2 === 1) {
        // The replica pulls in the middle of the round: it then holds frames
        // served by the instance about to be killed.
        replica.sync();
        await untilAcked(loops, Math.max(...loops.map((s) => s.acked.length)) + 1, server);
      }
      await sleep(Math.floor(Math.random() * 300));
      await server.kill9();
      await Promise.all(loops.map((s) => s.done));
      const acked = loops.map((s) => [...s.acked]);
      const inflight = loops.map((s) => s.inflight);
      for (const s of loops) assert.ok(s.error, "a loop ends only when the server dies");
      client.close();

      // live.db as the crash left it (before the restart replays the log) is
      // a valid database holding at least every acknowledged commit.
      const live = integrityOfCopy(join(dataDir, "live.db"), dir);
      assert.deepEqual(live.integrity, ["ok"]);
      for (let w = 0; w < WRITERS; w++) {
        const got = commitsOf(live.rows, round, w);
        for (const i of acked[w]) assert.ok(got.includes(i), `acknowledged commit ${round}/${w}/${i} is in live.db`);
      }

      server = await startServer({ dataDir, args: SERVER_ARGS, listen });
      client = createClient({ url: server.url });
      const rows = await primaryRows(client);
      for (let w = 0; w < WRITERS; w++) {
        const got = commitsOf(rows, round, w);
        for (const i of acked[w]) assert.ok(got.includes(i), `acknowledged commit ${round}/${w}/${i} survived`);
        for (const i of got)
          assert.ok(
            acked[w].includes(i) || i === inflight[w],
            `commit ${round}/${w}/${i} was neither acknowledged nor in flight`,
          );
        if (got.includes(inflight[w])) inFlightKept++;
      }
      assert.deepEqual(
        rows.filter(([r]) => r < round),
        previous,
        "earlier rounds are unchanged",
      );
      previous = rows;
      const [[n]] = await primaryRows(client, "SELECT n FROM counter");
      assert.equal(n, rows.length / 2, "the counter matches the committed rows (transactions are atomic)");
      assert.deepEqual(await primaryRows(client, "PRAGMA integrity_check"), [["ok"]]);

      // The replica continues from where it was: no bootstrap, all the rows.
      replica.sync();
      const log = await settledRequestLog(server);
      assert.deepEqual(
        log.filter((r) => r.path.startsWith("/export/")),
        [],
        "the replica did not download the database again",
      );
      assert.deepEqual(localRows(replica), rows);
      // PRAGMAs of a default-mode replica run on the primary: its own file
      // is checked through a copy.
      const copy = integrityOfCopy(dir.file("replica.db"), dir);
      assert.deepEqual(copy.integrity, ["ok"]);
      assert.deepEqual(copy.rows, rows);
    }
    // (Not an assertion: whether in-flight commits landed depends on timing.)
    if (process.env.REPLITE_TEST_VERBOSE) console.log(`in-flight commits kept: ${inFlightKept}`);

    // Still a working primary, and the commits filled more than one
    // generation: the rounds crossed rollovers, which the replica followed
    // without /export (checked above).
    await client.execute("INSERT INTO t VALUES (-1, 0, 0, 0, NULL), (-1, 0, 0, 1, NULL)");
    replica.sync();
    assert.deepEqual(localRows(replica), await primaryRows(client));
    await waitForGeneration(server, 2);
  } finally {
    if (replica?.open) replica.close();
    client.close();
    try {
      // (A server this test killed has nothing to stop; the failure that
      // left it dead is the one to report.)
      if (server.child.signalCode === null) await server.stop();
    } finally {
      dir.remove();
    }
  }
});

// kill -9 of `pid` after `ms` milliseconds, from another process: a libsql
// replica's sync() blocks this one.
function killLater(pid, ms) {
  const killer = spawn("sh", ["-c", `sleep ${ms / 1000}; kill -9 ${pid} 2>/dev/null`], { stdio: "ignore" });
  return new Promise((res) => killer.on("exit", res));
}

test("kill -9 during an offline replica's push: the next sync() completes it exactly once", async () => {
  const dir = tempDir("replite-crash-push-");
  const dataDir = dir.file("data");
  const args = ["--log-requests"];
  let server = await startServer({ dataDir, args });
  const listen = `127.0.0.1:${new URL(server.url).port}`;
  let client = createClient({ url: server.url });
  const replica = new Database(dir.file("offline.db"), { syncUrl: server.url, offline: true });
  const SQL = "SELECT round, k, hex(b) FROM t ORDER BY round, k";
  let written = 0;
  // One local transaction of `rows` rows, then a second small one.  600
  // rows of 3500 bytes are ~600 frames: a push of several requests tied by
  // a baton.
  const writeLocally = (round, rows) => {
    replica.transaction(() => {
      const ins = replica.prepare("INSERT INTO t VALUES (?, ?, randomblob(3500))");
      for (let k = 0; k < rows; k++) ins.run(round, k);
    })();
    replica.exec(`INSERT INTO t VALUES (${round}, -1, NULL)`);
    written += rows + 1;
  };
  try {
    await client.execute("CREATE TABLE t(round INTEGER, k INTEGER, b BLOB, PRIMARY KEY (round, k))");
    replica.sync();
    // How long pushes take here, to aim the kills into them (the outcome of
    // each is checked whatever the timing turns out to be).
    const sizes = [3, 600];
    const pushMs = sizes.map((rows, i) => {
      writeLocally(-1 - i, rows);
      const t0 = performance.now();
      replica.sync();
      return performance.now() - t0;
    });
    const outcomes = [];
    for (let round = 0; round < 6; round++) {
      writeLocally(round, sizes[round % 2]);
      const delay = Math.random() * 1.5 * pushMs[round % 2];
      const killed = killLater(server.child.pid, delay);
      try {
        replica.sync();
        outcomes.push("sync returned"); // (the client hides connection errors)
      } catch (e) {
        outcomes.push(`sync threw: ${e.message}`);
      }
      await killed;
      await server.exited;
      client.close();

      server = await startServer({ dataDir, args, listen });
      client = createClient({ url: server.url });
      // The push is completed (or found complete), nothing is applied twice
      // or lost: the primary holds exactly the replica's rows.
      replica.sync();
      replica.sync();
      const local = localRows(replica, SQL);
      assert.equal(local.length, written);
      assert.deepEqual(await primaryRows(client, SQL), local);
      assert.deepEqual(await primaryRows(client, "PRAGMA integrity_check"), [["ok"]]);
      assert.deepEqual(replica.prepare("PRAGMA integrity_check").pluck().all(), ["ok"]);
      const log = await settledRequestLog(server);
      assert.deepEqual(log.filter((r) => r.path.startsWith("/export/")), []);
    }
    if (process.env.REPLITE_TEST_VERBOSE) console.log(pushMs, outcomes);
  } finally {
    replica.close();
    client.close();
    try {
      // (A server this test killed has nothing to stop; the failure that
      // left it dead is the one to report.)
      if (server.child.signalCode === null) await server.stop();
    } finally {
      dir.remove();
    }
  }
});

// A loopback HTTP proxy in a process of its own (a libsql replica's sync()
// blocks this thread; and node can spin forever tearing down a worker thread
// whose sockets were dropped, holding the test file's process at its exit)
// that forwards to the primary and, on the n-th push request it sees, kills
// the primary with SIGKILL and drops the connection.  It talks in JSON
// lines: {port} once it listens; {pid, killAt} arms it ("armed");
// {killedAt} when it has killed.
const PROXY_SOURCE = `
const http = require("node:http");
const { createInterface } = require("node:readline");
const target = process.argv[1];
let pid = 0, killAt = 0, pushes = 0;
const say = (m) => process.stdout.write(JSON.stringify(m) + "\\n");
createInterface({ input: process.stdin }).on("line", (l) => {
  ({ pid, killAt } = JSON.parse(l));
  pushes = 0;
  say("armed");
});
process.stdin.on("end", () => process.exit(0));
const proxy = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    if (req.method === "POST" && req.url.startsWith("/sync/") && ++pushes === killAt) {
      process.kill(pid, "SIGKILL");
      say({ killedAt: req.url });
      req.socket.destroy();
      return;
    }
    const fwd = http.request(target + req.url, { method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    });
    fwd.on("error", () => req.socket.destroy());
    fwd.end(Buffer.concat(chunks));
  });
});
proxy.listen(0, "127.0.0.1", () => say({ port: proxy.address().port }));
`;

test("kill -9 between the requests of a replica's push: its next sync() pushes again and succeeds", async () => {
  const dir = tempDir("replite-crash-proxy-");
  const dataDir = dir.file("data");
  const args = ["--log-requests"];
  let server = await startServer({ dataDir, args });
  const listen = `127.0.0.1:${new URL(server.url).port}`;
  const proxy = spawn(process.execPath, ["-e", PROXY_SOURCE, server.url], { stdio: ["pipe", "pipe", "inherit"] });
  const proxyExited = new Promise((res) => proxy.on("exit", res));
  const lines = createInterface({ input: proxy.stdout });
  const messages = [];
  const next = () => new Promise((res) => lines.once("line", (l) => res(JSON.parse(l))));
  let client = createClient({ url: server.url });
  let replica = null;
  try {
    const { port } = await next();
    lines.on("line", (l) => messages.push(JSON.parse(l)));
    await client.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, b BLOB)");
    replica = new Database(dir.file("offline.db"), { syncUrl: `http://127.0.0.1:${port}`, offline: true });
    replica.sync();
    const { max_frame_no: head } = await serverInfo(server);

    // ~600 frames: five push requests of at most 128 frames, the last one
    // with the commit.  The primary dies when the third arrives: it had
    // answered "ok" to two requests whose frames it only buffered.
    replica.transaction(() => {
      const ins = replica.prepare("INSERT INTO t VALUES (?, randomblob(3500))");
      for (let k = 0; k < 600; k++) ins.run(k);
    })();
    const armed = next();
    proxy.stdin.write(`${JSON.stringify({ pid: server.child.pid, killAt: 3 })}\n`);
    await armed;
    try {
      replica.sync();
    } catch {
      // (Whether the dropped connection is reported depends on the client.)
    }
    await server.exited;
    const log = server.requestLog().filter((r) => r.method === "POST" && r.path.startsWith("/sync/"));
    assert.equal(log.length, 2, `two push requests were answered before the crash: ${JSON.stringify(log)}`);
    assert.ok(messages.some((m) => m.killedAt), "the proxy killed the primary");
    client.close();

    server = await startServer({ dataDir, args, listen });
    client = createClient({ url: server.url });
    assert.equal((await serverInfo(server)).max_frame_no, head, "nothing of the interrupted push was applied");
    replica.sync();
    const local = localRows(replica, "SELECT k, hex(b) FROM t ORDER BY k");
    assert.equal(local.length, 600);
    assert.deepEqual(await primaryRows(client, "SELECT k, hex(b) FROM t ORDER BY k"), local);
    assert.deepEqual(await primaryRows(client, "PRAGMA integrity_check"), [["ok"]]);
    // And the replica keeps working both ways.
    await client.execute("INSERT INTO t VALUES (-1, NULL)");
    replica.sync();
    replica.exec("INSERT INTO t VALUES (-2, NULL)");
    replica.sync();
    assert.deepEqual(
      await primaryRows(client, "SELECT k, hex(b) FROM t ORDER BY k"),
      localRows(replica, "SELECT k, hex(b) FROM t ORDER BY k"),
    );
    assert.equal(localRows(replica, "SELECT count(*) FROM t")[0][0], 602);
  } finally {
    replica?.close();
    client.close();
    proxy.kill("SIGKILL");
    await proxyExited;
    try {
      // (A server this test killed has nothing to stop; the failure that
      // left it dead is the one to report.)
      if (server.child.signalCode === null) await server.stop();
    } finally {
      dir.remove();
    }
  }
});
