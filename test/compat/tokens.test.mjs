// Keys and tokens made by the real binary, end to end: `replite keygen`,
// `replite serve --auth-jwt-key-file <public key>`, `replite token` (rw and
// --read-only), then @libsql/client and a replite replica (the extension in
// better-sqlite3) with those tokens.  The README's four-command recipe.

// better-sqlite3 reads SQLITE_USE_URI once, when its addon is loaded.
process.env.SQLITE_USE_URI = "1";

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { createClient } from "@libsql/client";
import { REPLITE_BIN, http, startServer, tempDir } from "./harness.mjs";

const { default: Database } = await import("better-sqlite3");
const EXTENSION = process.env.REPLITE_EXTENSION ?? join(dirname(REPLITE_BIN), "libreplite.so");

function replite(...args) {
  const r = spawnSync(REPLITE_BIN, args, { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function token(...args) {
  const r = replite("token", ...args);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  return r.stdout.trim();
}

const claimsOf = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString("utf8"));

test("keygen, serve, token: clients and replicas with rw and read-only tokens", async () => {
  const dir = tempDir("replite-tokens-");
  const keys = dir.file("keys");
  const gen = replite("keygen", "--out", keys);
  assert.equal(gen.code, 0, gen.stderr);
  const priv = join(keys, "jwt_private.pem");
  const pub = join(keys, "jwt_public.pem");
  assert.match(gen.stdout, new RegExp(`replite serve --auth-jwt-key-file ${pub}`));
  assert.match(gen.stdout, new RegExp(`replite token --key ${priv}`));
  assert.equal(statSync(priv).mode & 0o777, 0o600);
  assert.equal(statSync(keys).mode & 0o777, 0o700);
  assert.match(readFileSync(pub, "utf8"), /^-----BEGIN PUBLIC KEY-----\n/);
  // A second keygen into the same directory changes nothing.
  const before = readFileSync(priv, "utf8");
  const again = replite("keygen", "--out", keys);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already exists: refusing to overwrite/);
  assert.equal(readFileSync(priv, "utf8"), before);

  const rw = token("--key", priv);
  const ro = token("--key", priv, "--read-only", "--expires", "1h");
  const now = Math.floor(Date.now() / 1000);
  const rwClaims = claimsOf(rw);
  assert.equal(rwClaims.a, "rw");
  assert.equal(rwClaims.exp, undefined); // default: never expires
  assert.ok(Math.abs(rwClaims.iat - now) < 60);
  const roClaims = claimsOf(ro);
  assert.equal(roClaims.a, "ro");
  assert.equal(roClaims.exp, roClaims.iat + 3600);
  assert.equal(claimsOf(token("--key", priv, "--db", "main")).id, "main");
  assert.deepEqual(JSON.parse(Buffer.from(rw.split(".")[0], "base64url")), { alg: "EdDSA", typ: "JWT" });
  // Errors name the cause.
  const badKey = replite("token", "--key", pub);
  assert.equal(badKey.code, 1);
  assert.match(badKey.stderr, /jwt_public\.pem: this is a public key/);
  const badExp = replite("token", "--key", priv, "--expires", "30");
  assert.equal(badExp.code, 2);
  assert.match(badExp.stderr, /invalid --expires: '30' is not a duration/);

  const s = await startServer({ args: ["--auth-jwt-key-file", pub] });
  const clients = [];
  const dbs = [];
  try {
    // No token, or another key pair's token: 401.
    assert.equal((await http(s, "GET", "/info")).status, 401);
    const other = dir.file("other");
    assert.equal(replite("keygen", "--out", other).code, 0);
    const foreign = token("--key", join(other, "jwt_private.pem"));
    assert.equal((await http(s, "GET", "/info", { token: foreign })).status, 401);
    const none = createClient({ url: s.url });
    clients.push(none);
    await assert.rejects(none.execute("SELECT 1"), (e) => /401|nauthori|AUTH/i.test(`${e.code} ${e.message}`));

    // The rw token writes.
    const writer = createClient({ url: s.url, authToken: rw });
    clients.push(writer);
    await writer.batch(["CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)", "INSERT INTO notes(body) VALUES ('hello')"], "write");

    // The ro token reads; its writes are refused as read-only.
    const reader = createClient({ url: s.url, authToken: ro });
    clients.push(reader);
    assert.deepEqual((await reader.execute("SELECT body FROM notes")).rows.map((r) => r.body), ["hello"]);
    await assert.rejects(reader.execute("INSERT INTO notes(body) VALUES ('no')"), (e) => /SQLITE_READONLY|read.?only/i.test(`${e.code} ${e.message}`));

    // A replica with the rw token syncs and writes through to the primary.
    new Database(":memory:").loadExtension(EXTENSION);
    const uri = (name, t) => `file:${dir.file(name)}?vfs=replite&sync_url=${s.url}${t ? `&auth_token=${t}` : ""}`;
    const replica = new Database(uri("rw.db", rw));
    dbs.push(replica);
    assert.deepEqual(replica.prepare("SELECT body FROM notes").pluck().all(), ["hello"]);
    replica.prepare("INSERT INTO notes(body) VALUES ('from the replica')").run();
    assert.deepEqual((await writer.execute("SELECT body FROM notes ORDER BY id")).rows.map((r) => r.body), ["hello", "from the replica"]);

    // A replica with the ro token reads; a local write is SQLITE_READONLY.
    const roReplica = new Database(uri("ro.db", ro));
    dbs.push(roReplica);
    assert.deepEqual(roReplica.prepare("SELECT body FROM notes ORDER BY id").pluck().all(), ["hello", "from the replica"]);
    assert.throws(() => roReplica.prepare("INSERT INTO notes(body) VALUES ('no')").run(), (e) => e.code === "SQLITE_READONLY" || /read.?only/i.test(e.message));

    // A replica without a token cannot bootstrap.
    assert.throws(() => new Database(uri("none.db")), /refused the auth token \(HTTP 401\)/);
  } finally {
    for (const db of dbs) db.close();
    for (const c of clients) c.close();
    await s.stop();
    dir.remove();
  }
});

test("an expired token from replite token is refused by name, for a client and for a replica", async () => {
  const dir = tempDir("replite-tokens-");
  const keys = dir.file("keys");
  assert.equal(replite("keygen", "--out", keys).code, 0);
  const short = token("--key", join(keys, "jwt_private.pem"), "--expires", "1s");
  const s = await startServer({ args: ["--auth-jwt-key-file", join(keys, "jwt_public.pem")] });
  try {
    await new Promise((r) => setTimeout(r, 2100)); // past "exp"
    const res = await http(s, "GET", "/info", { token: short });
    assert.equal(res.status, 401);
    assert.match(JSON.stringify(res.json), /token expired at/);
    const c = createClient({ url: s.url, authToken: short });
    await assert.rejects(c.execute("SELECT 1"), (e) => /expired/.test(`${e.message}`));
    c.close();
    new Database(":memory:").loadExtension(EXTENSION);
    assert.throws(
      () => new Database(`file:${dir.file("r.db")}?vfs=replite&sync_url=${s.url}&auth_token=${short}`),
      /refused the auth token \(HTTP 401\).*expired|expired.*401/s,
    );
  } finally {
    await s.stop();
    dir.remove();
  }
});

