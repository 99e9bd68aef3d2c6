// No false refusals: a random but seeded legitimate SQL workload through two
// replite replicas (push_legit_host.py in Debian's python3, the system
// libsqlite3) against a real primary.  Every statement must succeed (a push
// the primary refuses surfaces as SQLITE_IOERR_WRITE, and the failure prints
// the statement, the primary's answer and the last statements); then
// integrity_check on the primary and the replicas, replite_verify, and equal
// schema and table contents on the primary and the replicas.
//
// Three databases: a new one (empty primary), and imported seeds with
// auto_vacuum=FULL and auto_vacuum=INCREMENTAL (pointer-map pages,
// relocations, incremental_vacuum).
//
//   REPLITE_BIN=build/replite REPLITE_EXTENSION=build/libreplite.so \
//     node --test test/compat/push_legit.test.mjs
// REPLITE_LEGIT_STEPS=N steps per database (default 100),
// REPLITE_LEGIT_SEED=S the workload's seed (default 1).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { startServer, tempDir } from "./harness.mjs";

const EXTENSION = process.env.REPLITE_EXTENSION ?? resolve(import.meta.dirname, "../../build/libreplite.so");
const PYTHON = "/usr/bin/python3"; // not pyenv's: it lacks enable_load_extension
const HOST = join(import.meta.dirname, "push_legit_host.py");
const STEPS = process.env.REPLITE_LEGIT_STEPS ?? "100";
const SEED = process.env.REPLITE_LEGIT_SEED ?? "1";
// The primaries started here compare their page map with a fresh walk of
// the database after every change, and abort on a difference.
process.env.REPLITE_VERIFY_MAP ??= "1";

function runHost(args) {
  return new Promise((res) => {
    const child = spawn(PYTHON, [HOST, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code) => res({ code, out, err }));
  });
}

async function workload(autoVacuum) {
  const dir = tempDir("replite-legit-");
  let server;
  try {
    const args = [];
    if (autoVacuum) {
      const seed = dir.file("seed.db");
      const r = spawnSync(PYTHON, [HOST, "seed", seed, autoVacuum], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      args.push("--import", seed);
    }
    server = await startServer({ dataDir: dir.file("data"), args });
    const seed = String(Number(SEED) + (autoVacuum === "FULL" ? 100 : autoVacuum ? 200 : 0));
    const { code, out, err } = await runHost([EXTENSION, dir.path, server.url, STEPS, seed]);
    const lines = out.split("\n").filter(Boolean).map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return { text: l };
      }
    });
    const failure = lines.find((l) => l.fail);
    const repro =
      `reproduce: REPLITE_LEGIT_SEED=${SEED} REPLITE_LEGIT_STEPS=${STEPS}` +
      ` (workload seed ${seed}, auto_vacuum ${autoVacuum ?? "NONE"})`;
    if (failure) assert.fail(`${JSON.stringify(failure, null, 1)}\n${repro}\n${err.slice(-2000)}`);
    assert.equal(code, 0, `host exited with ${code}\n${out.slice(-3000)}\n${err.slice(-3000)}\n${repro}`);
    const done = lines.find((l) => l.done);
    assert.ok(done, out);
    console.log(`# ${JSON.stringify(done)}`);
  } finally {
    if (server) await server.stop();
    dir.remove();
  }
}

test("a legitimate workload on a new database: no push refused, replicas equal the primary", { timeout: 300_000 }, () =>
  workload(null));

test("a legitimate workload on an auto_vacuum=FULL database", { timeout: 300_000 }, () => workload("FULL"));
test("a legitimate workload on an auto_vacuum=INCREMENTAL database", { timeout: 300_000 }, () =>
  workload("INCREMENTAL"));
