// Test fixtures: a real `replite serve` on loopback (ephemeral port) in a
// temporary data directory, plus helpers for tokens and raw HTTP.
import { spawn } from "node:child_process";
import { generateKeyPairSync, sign } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const REPLITE_BIN =
  process.env.REPLITE_BIN ?? resolve(import.meta.dirname, "../../build/replite");

export function tempDir(prefix = "replite-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    path: dir,
    file: (name) => join(dir, name),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

// Start a primary.  Resolves once it listens; `server.url` is its base URL.
// Options: dataDir, args (extra CLI args), env.
export async function startServer(opts = {}) {
  const dataDir = opts.dataDir ?? tempDir("replite-data-").path;
  const args = ["serve", "--data-dir", dataDir, "--listen", opts.listen ?? "127.0.0.1:0", ...(opts.args ?? [])];
  const child = spawn(REPLITE_BIN, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...(opts.env ?? {}) },
  });
  const server = {
    child,
    dataDir,
    url: null,
    stderr: "",
    requests: [],
    exited: null,
  };
  child.stdout.on("data", (d) => (server.stderr += d));
  server.exited = new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
  await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`replite serve did not start:\n${server.stderr}`)), 20000);
    child.stderr.on("data", (d) => {
      server.stderr += d;
      const m = /listening on (http:\/\/\S+)/.exec(server.stderr);
      if (m && !server.url) {
        server.url = m[1];
        clearTimeout(timer);
        res();
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (!server.url) rej(new Error(`replite serve exited with ${code}:\n${server.stderr}`));
    });
  });
  // Lines the server logs for each request with --log-requests.
  server.requestLog = () =>
    server.stderr
      .split("\n")
      .map((l) => /^replite: request (\S+) (\S+) (\d+)/.exec(l))
      .filter(Boolean)
      .map((m) => ({ method: m[1], path: m[2], status: Number(m[3]) }));
  // Graceful stop; asserts a clean exit (AddressSanitizer reports make the
  // exit code non-zero).
  server.stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const { code, signal } = await server.exited;
    if (code !== 0) throw new Error(`replite serve exited with code ${code} signal ${signal}:\n${server.stderr}`);
  };
  server.kill9 = async () => {
    child.kill("SIGKILL");
    await server.exited;
  };
  return server;
}

// Ed25519 key pair and signed JWTs, as libSQL's server expects them.
export function makeAuth(dir) {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const keyFile = join(dir, "jwt-key.pem");
  writeFileSync(keyFile, publicKey.export({ type: "spki", format: "pem" }));
  const b64 = (x) => Buffer.from(x).toString("base64url");
  const token = (claims = {}, key = privateKey) => {
    const head = b64(JSON.stringify({ alg: "EdDSA", typ: "JWT" }));
    const body = b64(JSON.stringify(claims));
    const sig = sign(null, Buffer.from(`${head}.${body}`), key).toString("base64url");
    return `${head}.${body}.${sig}`;
  };
  return { keyFile, token, otherKey: generateKeyPairSync("ed25519").privateKey };
}

export async function http(server, method, path, { body, headers, token } = {}) {
  const h = { ...(headers ?? {}) };
  if (token) h.Authorization = `Bearer ${token}`;
  const res = await fetch(server.url + path, { method, body, headers: h });
  const buf = Buffer.from(await res.arrayBuffer());
  let json = null;
  try {
    json = JSON.parse(buf.toString("utf8"));
  } catch {}
  return { status: res.status, headers: res.headers, body: buf, json };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
