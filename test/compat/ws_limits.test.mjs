// The limits of Hrana over WebSocket (issue 14, "Limits"): sockets per
// client address (--max-ws-per-client) and in all (--max-ws-connections),
// streams counted against --max-streams with the HTTP ones, the idle expiry
// (--ws-idle-ms), the options' parsing, and a burst of 1,000 idle upgrades
// from one address that does not stop others from being served.
//
// Other client addresses: all of 127/8 is loopback on Linux, so a socket
// bound to 127.0.0.2 reaches the server on 127.0.0.1 as another client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { startServer, http, REPLITE_BIN, tempDir } from "./harness.mjs";
import { rawUpgrade, wsOpen, closeOf, waitFor } from "./ws_raw.mjs";

const wsUrlOf = (s) => s.url.replace(/^http:/, "ws:");
const OTHER = "127.0.0.2";

async function pipeline(server, body) {
  return http(server, "POST", "/v2/pipeline", { body: JSON.stringify(body), headers: { "content-type": "application/json" } });
}
const exec = (sql) => ({ type: "execute", stmt: { sql, want_rows: true } });

// Send a request on a `ws` socket (after its hello) and wait for its answer.
async function request(sock, id, req) {
  sock.ws.send(JSON.stringify({ type: "request", request_id: id, request: req }));
  return waitFor(() => sock.messages.find((m) => m.request_id === id));
}
async function hello(sock) {
  sock.ws.send(JSON.stringify({ type: "hello", jwt: null }));
  await waitFor(() => sock.messages.find((m) => m.type === "hello_ok"));
}

test("ws limits: a client address holds at most --max-ws-per-client sockets (429), the server --max-ws-connections (503)", async () => {
  const s = await startServer({ args: ["--max-ws-per-client", "3", "--max-ws-connections", "5"] });
  const url = wsUrlOf(s);
  const open = [];
  try {
    for (let i = 0; i < 3; i++) open.push(await wsOpen(url));
    // The fourth from the same address: refused before upgrading, with a
    // JSON error naming the limit and the option.
    const refused = await wsOpen(url).then(
      () => assert.fail("a fourth socket from one address was upgraded"),
      (e) => e,
    );
    assert.equal(refused.status, 429, refused.message);
    const body = JSON.parse(refused.body);
    assert.equal(body.code, "WS_TOO_MANY_CLIENT_CONNECTIONS");
    assert.match(body.message, /at most 3 per client address/);
    assert.match(body.message, /--max-ws-per-client/);
    assert.equal(refused.headers["retry-after"], "1");
    // Another address is another client: two more fill the server.
    for (let i = 0; i < 2; i++) open.push(await wsOpen(url, ["hrana3"], { localAddress: OTHER }));
    const full = await wsOpen(url, ["hrana3"], { localAddress: "127.0.0.3" }).then(
      () => assert.fail("a sixth socket was upgraded"),
      (e) => e,
    );
    assert.equal(full.status, 503, full.message);
    assert.equal(JSON.parse(full.body).code, "WS_TOO_MANY_CONNECTIONS");
    assert.match(JSON.parse(full.body).message, /at most 5, --max-ws-connections/);
    // The sockets work, and plain HTTP is not limited by them.
    await hello(open[0]);
    assert.equal((await request(open[0], 1, { type: "open_stream", stream_id: 1 })).type, "response_ok");
    assert.equal((await http(s, "GET", "/health")).status, 200);
    // A closed socket gives its slot back to its client.
    open.shift().ws.close();
    const again = await waitFor(() => wsOpen(url).catch(() => null));
    open.push(again);
  } finally {
    for (const o of open) o.ws.close();
    await s.stop();
  }
});

test("ws limits: WebSocket streams count against --max-streams with the HTTP ones", async () => {
  const s = await startServer({ args: ["--max-streams", "3"] });
  const sock = await wsOpen(wsUrlOf(s));
  try {
    await hello(sock);
    // Two HTTP streams, kept open by their batons.
    const batons = [];
    for (let i = 0; i < 2; i++) {
      const r = await pipeline(s, { requests: [exec("SELECT 1")] });
      assert.equal(r.status, 200, r.body.toString());
      batons.push(r.json.baton);
    }
    // One WebSocket stream fits; the next does not.
    assert.equal((await request(sock, 1, { type: "open_stream", stream_id: 1 })).type, "response_ok");
    const no = await request(sock, 2, { type: "open_stream", stream_id: 2 });
    assert.equal(no.type, "response_error", JSON.stringify(no));
    assert.equal(no.error.code, "STREAMS_EXHAUSTED");
    assert.match(no.error.message, /at most 3 on the server, --max-streams/);
    // Nor does a new HTTP stream.
    const http503 = await pipeline(s, { requests: [exec("SELECT 1")] });
    assert.equal(http503.status, 503);
    assert.equal(http503.json.code, "STREAMS_EXHAUSTED");
    // Closing the WebSocket stream frees its slot for HTTP...
    assert.equal((await request(sock, 3, { type: "close_stream", stream_id: 1 })).type, "response_ok");
    const r3 = await pipeline(s, { requests: [exec("SELECT 1")] });
    assert.equal(r3.status, 200, r3.body.toString());
    // ...and closing an HTTP stream frees one for the socket.
    assert.equal((await pipeline(s, { baton: batons[0], requests: [{ type: "close" }] })).status, 200);
    assert.equal((await request(sock, 4, { type: "open_stream", stream_id: 4 })).type, "response_ok");
    // A socket's streams are given back when it closes.
    assert.equal((await pipeline(s, { requests: [exec("SELECT 1")] })).status, 503);
    sock.ws.close();
    await waitFor(async () => (await pipeline(s, { requests: [exec("SELECT 1"), { type: "close" }] })).status === 200);
  } finally {
    sock.ws.close();
    await s.stop();
  }
});

test("ws limits: --ws-idle-ms closes a silent socket (1001), not one that talks", async () => {
  const s = await startServer({ args: ["--ws-idle-ms", "400"] });
  let pinger, chatty;
  try {
    const silent = await rawUpgrade(s);
    assert.equal(silent.status, 101);
    chatty = await wsOpen(wsUrlOf(s));
    pinger = setInterval(() => chatty.ws.ping(), 100);
    const t0 = Date.now();
    // (the socket ends 2 s after the close frame: the raw client never
    // answers it)
    const c = await closeOf(silent, 8000);
    assert.equal(c?.code, 1001);
    assert.match(c.reason, /idle/);
    assert.ok(Date.now() - t0 >= 300, `closed after ${Date.now() - t0} ms`);
    // The one that pings is still open well past the idle time.
    assert.equal(chatty.ws.readyState, chatty.ws.OPEN);
    await hello(chatty);
  } finally {
    clearInterval(pinger);
    chatty?.ws.close();
    await s.stop();
  }
});

test("ws limits: the options are parsed strictly", () => {
  const dir = tempDir();
  for (const [opt, value] of [
    ["--ws-idle-ms", "0"],
    ["--ws-idle-ms", "10s"],
    ["--max-ws-connections", "0"],
    ["--max-ws-connections", "5000"],
    ["--max-ws-per-client", ""],
    ["--max-ws-per-client", "-1"],
  ]) {
    const r = spawnSync(REPLITE_BIN, ["serve", "--data-dir", dir.file("d"), "--listen", "127.0.0.1:0", opt, value], { encoding: "utf8", timeout: 10000 });
    assert.equal(r.status, 2, `${opt} ${value}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`invalid ${opt} '${value}': expected an integer between`));
  }
  const help = spawnSync(REPLITE_BIN, ["serve", "--help"], { encoding: "utf8" });
  for (const opt of ["--ws-idle-ms", "--max-ws-connections", "--max-ws-per-client"]) assert.match(help.stdout, new RegExp(opt));
  dir.remove();
});

test("ws limits: 1,000 idle upgrades from one address do not stop HTTP, /health or another client's WebSocket", { timeout: 120000 }, async () => {
  const s = await startServer();
  const held = [];
  try {
    await pipeline(s, { requests: [exec("CREATE TABLE t(x)"), exec("INSERT INTO t VALUES (42)"), { type: "close" }] });
    // The burst, in waves of 100 (the listen backlog is 512): every socket
    // is answered (101 or 429, counted below) and all stay open and silent.
    const t0 = Date.now();
    for (let i = 0; i < 1000; i += 100) held.push(...(await Promise.all(Array.from({ length: 100 }, () => rawUpgrade(s)))));
    const burstMs = Date.now() - t0;
    // While they are held: HTTP Hrana and /health from the same address...
    const within = async (what, p) => {
      const start = Date.now();
      const v = await p;
      assert.ok(Date.now() - start < 5000, `${what} took ${Date.now() - start} ms`);
      return v;
    };
    assert.equal((await within("/health", http(s, "GET", "/health"))).status, 200);
    const q = await within("a Hrana pipeline", pipeline(s, { requests: [exec("SELECT x FROM t"), { type: "close" }] }));
    assert.equal(q.status, 200);
    assert.equal(q.json.results[0].response.result.rows[0][0].value, "42");
    // ...and a WebSocket client from another address, several in fact.
    for (const addr of [OTHER, "127.0.0.3"]) {
      const sock = await within(`a WebSocket from ${addr}`, wsOpen(wsUrlOf(s), ["hrana3"], { localAddress: addr }));
      await within("its hello", hello(sock));
      await within("its open_stream", request(sock, 1, { type: "open_stream", stream_id: 1 }));
      const r = await within("its query", request(sock, 2, { type: "execute", stream_id: 1, stmt: { sql: "SELECT x FROM t", want_rows: true } }));
      assert.equal(r.type, "response_ok", JSON.stringify(r));
      assert.equal(r.response.result.rows[0][0].value, "42");
      sock.ws.close();
    }
    // 64 (the default --max-ws-per-client) of the burst were upgraded,
    // the rest refused with 429.
    const count = (st) => held.filter((h) => h.status === st).length;
    assert.equal(count(101), 64, `statuses: ${JSON.stringify(held.map((h) => h.status).slice(0, 80))}`);
    assert.equal(count(429), 936);
    // The upgraded sockets of the burst are live ones: each is closed by
    // the server when it stops (below); the refused ones are plain idle
    // HTTP connections.
    assert.ok(burstMs < 60000, `the burst took ${burstMs} ms`);
  } finally {
    await s.stop();
    for (const h of held) h.sock.destroy();
  }
});
