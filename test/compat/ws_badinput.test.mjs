// Bad input to Hrana over WebSocket (issue 14, "Tests": the bad-input suite
// extended to the new transport): hand-made frames on a raw socket after a
// real handshake (malformed, unmasked, bad opcodes, reserved bits, invalid
// UTF-8, oversized frames and messages, fragmentation errors, truncated
// frames, random bytes), bad handshakes, and JSON messages of the wrong
// shape; then a seeded fuzzer of mutated frame streams.  Every case: the
// server answers with the right close code (or HTTP error), closes the
// socket, does not crash or hang, and still serves another client; nothing
// reaches the database.
//   REPLITE_WS_FUZZ_TRIALS, REPLITE_WS_FUZZ_SEED change the fuzzer's run.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, http } from "./harness.mjs";
import { rawUpgrade, closeOf, frame, text, wsOpen, waitFor } from "./ws_raw.mjs";

const MAX_BODY = 1 << 16;
let server;
let witness; // a socket of another client, checked after every case
let nextId = 100;

async function request(sock, req) {
  const id = nextId++;
  sock.ws.send(JSON.stringify({ type: "request", request_id: id, request: req }));
  return waitFor(() => sock.messages.find((m) => m.request_id === id));
}

// Another client is still served: the witness socket, a new socket, HTTP.
async function stillServes() {
  const r = await request(witness, { type: "execute", stream_id: 1, stmt: { sql: "SELECT count(*) FROM t", want_rows: true } });
  assert.equal(r.type, "response_ok", JSON.stringify(r));
  assert.equal(r.response.result.rows[0][0].value, "2");
  const fresh = await wsOpen(server.url.replace(/^http:/, "ws:"));
  fresh.ws.send(JSON.stringify({ type: "hello" }));
  await waitFor(() => fresh.messages.some((m) => m.type === "hello_ok"));
  fresh.ws.close();
  assert.equal((await http(server, "GET", "/health")).status, 200);
}

before(async () => {
  // A short idle expiry: a truncated frame that is never completed is
  // closed within a second.
  server = await startServer({ args: ["--max-body", String(MAX_BODY), "--ws-idle-ms", "1000"] });
  const r = await http(server, "POST", "/v2/pipeline", {
    body: JSON.stringify({ requests: [{ type: "execute", stmt: { sql: "CREATE TABLE t(v)" } }, { type: "execute", stmt: { sql: "INSERT INTO t VALUES (1), (2)" } }, { type: "close" }] }),
  });
  assert.equal(r.status, 200);
  witness = await wsOpen(server.url.replace(/^http:/, "ws:"));
  witness.ws.send(JSON.stringify({ type: "hello" }));
  assert.equal((await request(witness, { type: "open_stream", stream_id: 1 })).type, "response_ok");
  // keep the witness past the idle expiry
  witness.pinger = setInterval(() => witness.ws.ping(), 300);
});
after(async () => {
  clearInterval(witness?.pinger);
  witness?.ws.close();
  await server.stop(); // asserts a clean exit (and, under ASan, no report)
});

// Send bytes on a fresh upgraded socket; resolve with the server's close
// frame ({code, reason}, null: none) once the socket has closed.
async function send(bytes, { protocol = "hrana3", end = false } = {}) {
  const up = await rawUpgrade(server, { protocol });
  assert.equal(up.status, 101);
  for (const b of bytes) up.sock.write(b);
  if (end) up.sock.end();
  try {
    return { close: await closeOf(up, 8000), messages: up.frames.messages() };
  } finally {
    up.sock.destroy();
  }
}

const HELLO = text({ type: "hello" });

test("ws bad input: malformed frames are closed with 1002/1007/1009 and the server goes on", async () => {
  const big = Buffer.alloc(MAX_BODY + 1, 0x20);
  const cases = [
    // [name, frames, expected close code(s)]
    ["an unmasked client frame", [text({ type: "hello" }, { mask: false })], [1002]],
    ["opcode 3 (reserved data)", [frame(3, "x")], [1002]],
    ["opcode 0xB (reserved control)", [frame(0xb, "x")], [1002]],
    ["reserved bits set", [text({ type: "hello" }, { rsv: 4 })], [1002]],
    ["invalid UTF-8 in a text frame", [frame(1, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))], [1007]],
    ["invalid UTF-8 inside a JSON string", [frame(1, Buffer.concat([Buffer.from('{"type":"hello","jwt":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]))], [1007]],
    ["UTF-8 split across fragments, then invalid", [frame(1, Buffer.from([0x22, 0xe2, 0x82]), { fin: false }), frame(0, Buffer.from([0x28, 0x22]))], [1007]],
    // Frames wslay's parser cannot read at all: it closes with an empty
    // close frame (no code: 1005 on the client's side).
    ["a ping longer than 125 bytes", [frame(9, Buffer.alloc(126))], [1002, 1005]],
    ["a fragmented ping", [frame(9, "x", { fin: false })], [1002, 1005]],
    ["a continuation with no message begun", [frame(0, "x")], [1002]],
    ["a new text frame inside a fragmented message", [frame(1, '{"type":', { fin: false }), frame(1, '"hello"}')], [1002]],
    ["a frame announcing more than --max-body", [frame(1, Buffer.alloc(10), { length: MAX_BODY + 1 })], [1009]],
    ["a frame of more than --max-body", [frame(1, big)], [1009]],
    ["a 64-bit length with its top bit set", [frame(1, Buffer.alloc(10), { length: 2 ** 63 })], [1002, 1005]],
    ["fragments adding up to more than --max-body", [frame(1, big.subarray(0, MAX_BODY / 2), { fin: false }), frame(0, big.subarray(0, MAX_BODY / 2 + 1))], [1009]],
    ["a close frame with code 999", [frame(8, Buffer.from([0x03, 0xe7]))], [1002]],
    ["a close frame with code 1005 (never sent)", [frame(8, Buffer.from([0x03, 0xed]))], [1002]],
    ["a close frame with invalid UTF-8 in its reason", [frame(8, Buffer.from([0x03, 0xe8, 0xff]))], [1007]],
    // wslay answers a one-byte close payload as an empty close (1005).
    ["a close frame of one byte", [frame(8, Buffer.from([0x03]))], [1002, 1005]],
    ["an HTTP request after the handshake", [Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")], [1002]],
    ["a binary message on a JSON subprotocol", [frame(2, Buffer.from([1, 2, 3]))], [1003]],
  ];
  for (const [name, frames, codes] of cases) {
    const { close } = await send(frames);
    assert.ok(close && codes.includes(close.code), `${name}: closed with ${JSON.stringify(close)}, expected ${codes}`);
    await stillServes();
  }
});

test("ws bad input: fragmented messages, pings and a clean close are handled", async () => {
  // A message in three fragments with a ping between: one hello_ok, a pong.
  const up = await rawUpgrade(server);
  up.sock.write(frame(1, '{"ty', { fin: false }));
  up.sock.write(frame(9, "are you there"));
  up.sock.write(frame(0, 'pe":"hel', { fin: false }));
  up.sock.write(frame(0, 'lo"}'));
  await up.frames.until((f) => f.some((x) => x.opcode === 1) && f.some((x) => x.opcode === 10));
  assert.deepEqual(up.frames.messages(), [{ type: "hello_ok" }]);
  assert.equal(up.frames.frames.find((x) => x.opcode === 10).payload.toString(), "are you there");
  // Our close: echoed with our code, then the server closes the socket.
  up.sock.write(frame(8, Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from("bye")])));
  assert.equal((await closeOf(up)).code, 1000);
  up.sock.destroy();
  await stillServes();
});

test("ws bad input: truncated frames and random bytes never hang a socket", async () => {
  // Truncated, then the client's FIN: closed at once.
  const t0 = Date.now();
  const half = HELLO.subarray(0, HELLO.length - 3);
  await send([half], { end: true });
  await send([Buffer.from([0x81])], { end: true }); // one header byte
  assert.ok(Date.now() - t0 < 5000);
  // Truncated and silent: the idle expiry closes it (1001).
  const { close } = await send([frame(1, Buffer.alloc(10), { length: 1000 })]);
  assert.equal(close?.code, 1001);
  // Random bytes.
  for (let i = 0; i < 5; i++) {
    const bytes = Buffer.from(Array.from({ length: 64 + i * 100 }, (_, j) => (j * 7919 + i * 104729) & 0xff));
    await send([bytes], { end: true });
  }
  await stillServes();
});

test("ws bad input: bad handshakes are refused with an HTTP error before upgrading", async () => {
  for (const [opts, status] of [
    [{ version: "8" }, 426],
    [{ version: "" }, 426],
    [{ key: "short" }, 400],
    [{ protocol: "nope, also-nope" }, 400],
  ]) {
    const up = await rawUpgrade(server, opts);
    assert.equal(up.status, status, JSON.stringify(opts));
    up.sock.destroy();
  }
  const post = await rawUpgrade(server, { method: "POST" });
  assert.equal(post.status, 400);
  post.sock.destroy();
  await stillServes();
});

test("ws bad input: JSON messages of the wrong shape close with 1002, request errors are answered", async () => {
  const open = { type: "request", request_id: 1, request: { type: "open_stream", stream_id: 1 } };
  const shapes = [
    "[]",
    "5",
    '"hello"',
    "null",
    "{}",
    '{"type":5}',
    '{"type":"nope"}',
    '{"type":"hello"} trailing',
    "[".repeat(60000), // deeper than jansson's limit, within --max-body
    '{"type":"request","request_id":1,"request":{"type":"open_stream","stream_id":1}}', // before the hello
  ];
  for (const s of shapes) {
    const { close } = await send([text(s)]);
    assert.equal(close?.code, 1002, `${s.slice(0, 40)}: ${JSON.stringify(close)}`);
  }
  const afterHello = [
    { type: "request" },
    { type: "request", request_id: "1", request: { type: "open_stream", stream_id: 1 } },
    { type: "request", request_id: 1, request: "open_stream" },
    { type: "request", request_id: 1, request: { stream_id: 1 } },
    { type: "request", request_id: 1, request: { type: "no_such_request" } },
    { type: "request", request_id: 1, request: { type: "open_stream", stream_id: "1" } },
    [open, { ...open, request_id: 2 }], // a stream id in use
    [open, { type: "request", request_id: 2, request: { type: "execute", stream_id: 1 } }],
    [open, { type: "request", request_id: 2, request: { type: "execute", stream_id: 1, stmt: { sql: 5 } } }],
    [open, { type: "request", request_id: 2, request: { type: "batch", stream_id: 1, batch: { steps: [{ stmt: { sql: "INSERT INTO t VALUES (3)" } }, { stmt: { sql: "SELECT 1" }, condition: { type: "ok", step: 9 } }] } } }],
    { type: "request", request_id: 1, request: { type: "fetch_cursor", cursor_id: 1, max_count: -1 } },
    [{ type: "request", request_id: 1, request: { type: "store_sql", sql_id: 1, sql: "SELECT 1" } }, { type: "request", request_id: 2, request: { type: "store_sql", sql_id: 1, sql: "SELECT 2" } }],
  ];
  for (const msgs of afterHello) {
    const list = Array.isArray(msgs) ? msgs : [msgs];
    const { close, messages } = await send([HELLO, ...list.map((m) => text(m))]);
    assert.equal(close?.code, 1002, `${JSON.stringify(msgs)}: ${JSON.stringify(close)} ${JSON.stringify(messages)}`);
    assert.ok(close.reason.length > 0, "the close reason says why");
  }
  // Errors of a well-formed request are answers; the socket stays open.
  const up = await rawUpgrade(server);
  up.sock.write(HELLO);
  up.sock.write(text({ type: "request", request_id: 7, request: { type: "execute", stream_id: 42, stmt: { sql: "SELECT 1" } } }));
  up.sock.write(text(open));
  up.sock.write(text({ type: "request", request_id: 8, request: { type: "execute", stream_id: 1, stmt: { sql: "SELECT * FROM nope" } } }));
  await up.frames.until(() => up.frames.messages().length >= 4);
  const [, e1, , e2] = up.frames.messages();
  assert.equal(e1.type, "response_error");
  assert.equal(e1.error.code, "STREAM_NOT_FOUND");
  assert.equal(e2.type, "response_error");
  assert.equal(e2.request_id, 8);
  up.sock.destroy();
  await stillServes();
});

// A small seeded PRNG (mulberry32): the same seed, the same trials.
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("ws bad input: mutated frame streams (seeded fuzzer) never crash or hang the server", { timeout: 300000 }, async () => {
  const trials = Number(process.env.REPLITE_WS_FUZZ_TRIALS ?? 300);
  const seed = Number(process.env.REPLITE_WS_FUZZ_SEED ?? 14);
  const rnd = prng(seed);
  const int = (n) => Math.floor(rnd() * n);
  const valid = () => [
    HELLO,
    text({ type: "request", request_id: 1, request: { type: "open_stream", stream_id: 1 } }),
    frame(1, '{"type":"request","request_id":2,', { fin: false }),
    frame(9, "p"),
    frame(0, '"request":{"type":"execute","stream_id":1,"stmt":{"sql":"SELECT count(*) FROM t","want_rows":true}}}'),
    text({ type: "request", request_id: 3, request: { type: "store_sql", sql_id: 1, sql: "SELECT ?" } }),
    text({ type: "request", request_id: 4, request: { type: "close_stream", stream_id: 1 } }),
    frame(8, Buffer.from([0x03, 0xe8])),
  ];
  const mutate = (b) => {
    const kind = int(6);
    b = Buffer.from(b);
    if (kind === 0) for (let i = 0, n = 1 + int(8); i < n; i++) b[int(b.length)] ^= 1 << int(8); // bit flips
    else if (kind === 1) b = b.subarray(0, int(b.length)); // truncated
    else if (kind === 2) { const at = int(b.length); b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + int(16) }, () => int(256))), b.subarray(at)]); } // bytes inserted
    else if (kind === 3) { const at = int(b.length); b = Buffer.concat([b.subarray(0, at), b.subarray(int(b.length))]); } // a slice dropped or repeated
    else if (kind === 4) { b[int(Math.min(b.length, 2))] = int(256); } // a header byte replaced
    else b = Buffer.from(Array.from({ length: int(512) }, () => int(256))); // random
    return b;
  };
  const failures = [];
  const statuses = new Map();
  const one = async (i) => {
    const frames = valid();
    const k = int(frames.length);
    const bytes = Buffer.concat([...frames.slice(0, k), mutate(frames[k]), ...frames.slice(k + 1)]);
    const up = await rawUpgrade(server);
    up.sock.write(bytes);
    up.sock.end(); // then the server must close: by a close frame or at our FIN
    try {
      const c = await closeOf(up, 10000);
      const key = c ? String(c.code) : "no close frame";
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
    } catch (e) {
      failures.push(`trial ${i}: ${e.message}: ${bytes.toString("hex").slice(0, 200)}`);
    } finally {
      up.sock.destroy();
    }
  };
  for (let i = 0; i < trials; i += 20) await Promise.all(Array.from({ length: Math.min(20, trials - i) }, (_, j) => one(i + j)));
  assert.deepEqual(failures, [], `seed ${seed}`);
  // Some trials got through (the control) and some were refused: the
  // mutations reached the parser.
  assert.ok(statuses.size >= 2, JSON.stringify([...statuses]));
  await stillServes();
  // The witness's count is unchanged: no mutated stream wrote anything.
});
