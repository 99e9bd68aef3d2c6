// `meson install` into a temporary destination, then a small C program built
// against what it installed, as the README's "C, linking directly" says:
// `cc prog.c $(pkg-config --cflags --libs replite)` with the installed
// replite.pc, include/replite.h and libreplite_client.a.  The program opens a
// replica of a real `replite serve`, writes through it and reads back.
//
// The build directory is the plain build's (the one of $REPLITE_EXTENSION,
// else of $REPLITE_BIN): an ASan-instrumented archive would need the
// sanitizer runtime in the program too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createClient } from "@libsql/client";
import { REPLITE_BIN, startServer, tempDir } from "./harness.mjs";

const BUILD_DIR = dirname(process.env.REPLITE_EXTENSION ?? REPLITE_BIN);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", ...opts });
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

function find(dir, name) {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (entry === name) return path;
    if (statSync(path).isDirectory()) {
      const found = find(path, name);
      if (found) return found;
    }
  }
  return null;
}

const PROGRAM = `
#include <stdio.h>
#include <sqlite3.h>
#include <replite.h>

static int print_row(void *arg, int n, char **values, char **names)
{
	(void)arg;
	(void)names;
	for (int i = 0; i < n; i++)
		printf("%s%s", i ? "|" : "", values[i] ? values[i] : "NULL");
	printf("\\n");
	return 0;
}

int main(int argc, char **argv)
{
	sqlite3 *db;
	char *err = NULL;

	if (argc != 2 || replite_register() != SQLITE_OK)
		return 2;
	if (sqlite3_open_v2(argv[1], &db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				SQLITE_OPEN_URI,
			    NULL) != SQLITE_OK) {
		fprintf(stderr, "open: %s\\n", sqlite3_errmsg(db));
		return 1;
	}
	if (sqlite3_exec(db,
			 "INSERT INTO t(v) VALUES ('from C');"
			 "SELECT group_concat(v, ',') FROM t;"
			 "SELECT json_extract(replite_status(), '$.frame_no') > 0",
			 print_row, NULL, &err) != SQLITE_OK) {
		fprintf(stderr, "exec: %s\\n", err);
		return 1;
	}
	return sqlite3_close(db) == SQLITE_OK ? 0 : 1;
}
`;

test("meson install, then a C program built with pkg-config replicates", async () => {
  const dir = tempDir("replite-install-");
  const dest = dir.file("dest");
  run("meson", ["install", "-C", BUILD_DIR, "--no-rebuild", "--quiet", "--destdir", dest]);
  const pc = find(dest, "replite.pc");
  assert.ok(pc, "replite.pc was installed");
  for (const name of ["replite.h", "libreplite_client.a", "libreplite.so", "replite"]) {
    assert.ok(find(dest, name), `${name} was installed`);
  }
  // The installed tree as if it were at its prefix: pkg-config puts the
  // destination in front of the paths it prints.
  const env = { ...process.env, PKG_CONFIG_PATH: dirname(pc), PKG_CONFIG_SYSROOT_DIR: dest };
  const flags = run("pkg-config", ["--cflags", "--libs", "replite"], { env }).trim().split(/\s+/);
  assert.ok(flags.includes("-lreplite_client"), `pkg-config names the library: ${flags.join(" ")}`);
  const src = dir.file("prog.c");
  const prog = dir.file("prog");
  writeFileSync(src, PROGRAM);
  run("cc", ["-std=c99", "-Wall", "-Werror", "-o", prog, src, ...flags], { env });

  const server = await startServer();
  try {
    const client = createClient({ url: server.url });
    await client.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    await client.execute("INSERT INTO t(v) VALUES ('from the primary')");
    const uri = `file:${dir.file("app.db")}?vfs=replite&sync_url=${server.url}`;
    const out = run(prog, [uri]);
    assert.equal(out, "from the primary,from C\n1\n");
    const rows = await client.execute("SELECT v FROM t ORDER BY id");
    assert.deepEqual(
      rows.rows.map((r) => r.v),
      ["from the primary", "from C"],
    );
    client.close();
  } finally {
    await server.stop();
    dir.remove();
  }
});
