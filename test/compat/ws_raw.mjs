// Raw WebSocket helpers for the tests of Hrana over WebSocket: upgrades on a
// plain `net` socket (so that a test can hold a thousand of them, or send
// frames no client library would), frames built by hand, and the server's
// frames parsed back.
import net from "node:net";
import { randomBytes } from "node:crypto";
import WebSocket from "ws";

// Open a TCP connection to server (a startServer() result) and send a
// WebSocket upgrade request.  Resolves, once the answer's head has arrived,
// with {sock, status, headers, body (what followed the head so far), frames
// (a parser fed with every later byte), ended (a promise: the socket closed)}.
// localAddress: the client's address (any 127.x.y.z on Linux's loopback).
// The server's close frame is answered as a client would (echoing its code),
// so that the server closes the socket at once instead of waiting for it.
export function rawUpgrade(server, { protocol = "hrana3", localAddress, key, version = "13", method = "GET" } = {}) {
  const u = new URL(server.url);
  return new Promise((res, rej) => {
    const sock = net.connect({ host: u.hostname, port: Number(u.port), localAddress });
    let buf = Buffer.alloc(0);
    let head = null;
    const parser = frameParser((f) => {
      if (f.opcode !== 8 || sock.destroyed) return;
      sock.write(frame(8, f.payload.subarray(0, 2)));
      sock.end();
    });
    const ended = new Promise((r) => sock.on("close", r));
    const timer = setTimeout(() => rej(new Error("no answer to the upgrade within 10 s")), 10000);
    sock.on("error", (e) => {
      clearTimeout(timer);
      if (!head) rej(e);
    });
    sock.on("data", (d) => {
      if (head) return parser.push(d);
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      clearTimeout(timer);
      const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
      const status = Number(lines[0].split(" ")[1]);
      const headers = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(":");
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const rest = buf.subarray(end + 4);
      head = { sock, status, headers, body: rest, frames: parser, ended };
      if (status === 101 && rest.length > 0) parser.push(rest);
      res(head);
    });
    sock.on("connect", () => {
      sock.write(
        `${method} / HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key ?? randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: ${version}\r\n` +
          (protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : "") +
          "\r\n",
      );
    });
  });
}

// One frame as a client sends it: masked unless mask is false.  payload is
// a Buffer or a string; opcode 1 text, 2 binary, 0 continuation, 8 close, 9
// ping, 10 pong.  rsv: the three reserved bits (0-7).  length: the length to
// announce, when it should lie.
export function frame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, rsv = 0, length } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = length ?? data.length;
  let head;
  if (len < 126) {
    head = Buffer.from([0, len]);
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  head[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  if (!mask) return Buffer.concat([head, data]);
  head[1] |= 0x80;
  const key = randomBytes(4);
  const masked = Buffer.from(data);
  for (let i = 0; i < masked.length; i++) masked[i] ^= key[i & 3];
  return Buffer.concat([head, key, masked]);
}

export const text = (obj, opts) => frame(1, typeof obj === "string" ? obj : JSON.stringify(obj), opts);

// The server's frames (unmasked), as they arrive: {opcode, fin, payload};
// closeCode() resolves with the code of the server's close frame, or null
// when the socket ends without one.
function frameParser(onFrame) {
  let buf = Buffer.alloc(0);
  const frames = [];
  const waiters = [];
  const p = {
    frames,
    push(d) {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (buf.length < 2) break;
        let len = buf[1] & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) break;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) break;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        if (buf.length < off + len) break;
        frames.push({ opcode: buf[0] & 0x0f, fin: !!(buf[0] & 0x80), payload: buf.subarray(off, off + len) });
        onFrame(frames[frames.length - 1]);
        buf = buf.subarray(off + len);
      }
      for (const w of waiters.splice(0)) w();
    },
    // The JSON text messages received so far.
    messages: () => frames.filter((f) => f.opcode === 1).map((f) => JSON.parse(f.payload.toString("utf8"))),
    // Wait until pred(frames) is true (rejects after ms).
    async until(pred, ms = 5000) {
      const end = Date.now() + ms;
      while (!pred(frames)) {
        if (Date.now() > end) throw new Error(`timed out; frames: ${JSON.stringify(frames.map((f) => [f.opcode, f.payload.toString()]))}`);
        await new Promise((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
    },
  };
  return p;
}

// The server's close frame's code and reason, once the socket is closed
// (null: it closed without one).
export async function closeOf(up, ms = 10000) {
  let timer;
  const late = new Promise((_, rej) => (timer = setTimeout(() => rej(new Error(`the socket stayed open ${ms} ms`)), ms)));
  try {
    await Promise.race([up.ended, late]);
  } finally {
    clearTimeout(timer);
  }
  const c = up.frames.frames.find((f) => f.opcode === 8);
  if (!c) return null;
  return { code: c.payload.length >= 2 ? c.payload.readUInt16BE(0) : 1005, reason: c.payload.subarray(2).toString("utf8") };
}

// A `ws` client socket: resolves with {ws, messages} once open, rejects with
// the status of a refused upgrade (err.status, err.body).
export function wsOpen(url, protocols = ["hrana3"], opts = {}) {
  return new Promise((res, rej) => {
    const ws = new WebSocket(url, protocols, opts);
    const messages = [];
    ws.on("message", (d) => messages.push(JSON.parse(d.toString())));
    ws.on("open", () => res({ ws, messages }));
    ws.on("unexpected-response", (_req, r) => {
      let body = "";
      r.on("data", (d) => (body += d));
      r.on("end", () => rej(Object.assign(new Error(`HTTP ${r.statusCode}: ${body}`), { status: r.statusCode, body, headers: r.headers })));
    });
    ws.on("error", rej);
  });
}

export async function waitFor(fn, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}
