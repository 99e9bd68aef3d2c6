// The push fuzzer (test/fuzz/push_fuzz.py) in quick mode: 64 mutated pushes
// (4 of each kind, both scenarios) with a fixed seed against real primaries;
// no push may corrupt the primary, crash it, or (the unmutated control) be
// refused.
//   REPLITE_BIN=build/replite node --test test/compat/push_fuzz.test.mjs
// REPLITE_PUSH_FUZZ_TRIALS and REPLITE_PUSH_FUZZ_SEED change the run (the
// long mode: python3 test/fuzz/push_fuzz.py 2000 SEED).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { REPLITE_BIN } from "./harness.mjs";

test("mutated pushes never corrupt the primary (push_fuzz.py)", { timeout: 600_000 }, () => {
  const trials = process.env.REPLITE_PUSH_FUZZ_TRIALS ?? "64";
  const seed = process.env.REPLITE_PUSH_FUZZ_SEED ?? "7";
  const script = resolve(import.meta.dirname, "../fuzz/push_fuzz.py");
  const r = spawnSync("python3", [script, trials, seed], {
    // The primaries also check their page map against a fresh walk after
    // every change (abort on a difference: a CRASH).
    env: { REPLITE_VERIFY_MAP: "1", ...process.env, REPLITE_BIN },
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  const out = `${r.stdout}${r.stderr}`;
  const total = /^total\s+(.*)$/m.exec(r.stdout)?.[1] ?? "";
  assert.ok(total !== "", `the fuzzer printed no totals (exit ${r.status}):\n${out}`);
  for (const bad of ["CORRUPT", "CRASH", "FALSE-REFUSAL"])
    assert.doesNotMatch(total, new RegExp(`${bad} \\d`), `${bad} pushes (seed ${seed}):\n${out}`);
  assert.equal(r.status, 0, out);
});
