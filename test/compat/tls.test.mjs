// TLS: `replite serve --tls-cert/--tls-key` serves HTTPS and WSS, replite
// replicas verify the primary's certificate (tls_ca_file= or REPLITE_CA_FILE
// to trust a test CA) and fail clearly when it does not verify, and the npm
// clients (@libsql/client over https:// and wss://, npm libsql's embedded
// replica) work against it.  The certificates are made here, with the
// openssl CLI, in a temporary directory: a CA, a good certificate for
// 127.0.0.1 and localhost, an expired one, a self-signed one and one for
// another host name.
//
// Trust comes from the environment when a process starts, so every client
// runs in a child process (tls_worker.mjs): NODE_EXTRA_CA_CERTS for node,
// SSL_CERT_FILE for npm libsql (rustls-native-certs reads it), and
// REPLITE_CA_FILE or tls_ca_file= for replite.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { resolve } from "node:path";
import { HEAVY_QUERY, REPLITE_BIN, startServer, tempDir, sleep } from "./harness.mjs";

const EXTENSION = process.env.REPLITE_EXTENSION ?? resolve(import.meta.dirname, "../../build/libreplite.so");
const WORKER = resolve(import.meta.dirname, "tls_worker.mjs");

// --- certificates ---------------------------------------------------------

function openssl(cwd, ...args) {
  const r = spawnSync("openssl", args, { cwd, encoding: "utf8", timeout: 60000 });
  assert.equal(r.status, 0, `openssl ${args.join(" ")}:\n${r.stderr}`);
}

// Makes, in a new temporary directory: ca.pem (+ ca.key), and a key and
// certificate per server identity: good (127.0.0.1 and localhost, signed by
// the CA), expired (likewise, valid for one day in 2020), wrongname (signed
// by the CA for wrong.example only), selfsigned (127.0.0.1 and localhost,
// signed by itself).  Returns {dir, ca, cert(name), key(name)}.
function makeCerts() {
  const dir = tempDir("replite-tls-");
  const cwd = dir.path;
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(cwd, "req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "3", "-subj", "/CN=replite test CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  // `openssl ca` (not `x509 -req`) for the start and end dates of the
  // expired certificate.
  writeFileSync(dir.file("index.txt"), "");
  writeFileSync(dir.file("serial"), "1000\n");
  const leaf = (san) =>
    `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`;
  writeFileSync(
    dir.file("ca.cnf"),
    [
      "[ca]", "default_ca = test", "[test]", "database = index.txt", "new_certs_dir = .", "serial = serial",
      "default_md = sha256", "policy = any", "copy_extensions = none", "unique_subject = no", "[any]",
      "commonName = supplied", "[good]", leaf("IP:127.0.0.1,DNS:localhost"), "[wrongname]", leaf("DNS:wrong.example"),
    ].join("\n"),
  );
  const signed = (name, cn, section, dates) => {
    openssl(cwd, "req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`);
    openssl(cwd, "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-in", `${name}.csr`,
      "-out", `${name}.pem`, "-extensions", section, "-notext", ...dates);
  };
  signed("good", "127.0.0.1", "good", ["-days", "2"]);
  signed("expired", "127.0.0.1", "good", ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"]);
  signed("wrongname", "wrong.example", "wrongname", ["-days", "2"]);
  openssl(cwd, "req", "-x509", ...ec, "-keyout", "selfsigned.key", "-out", "selfsigned.pem", "-days", "2",
    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost");
  return { dir, ca: dir.file("ca.pem"), cert: (n) => dir.file(`${n}.pem`), key: (n) => dir.file(`${n}.key`) };
}

const certs = makeCerts();

const tlsArgs = (name) => ["--tls-cert", certs.cert(name), "--tls-key", certs.key(name)];

async function withTlsServer(name, fn, extraArgs = []) {
  const server = await startServer({ args: [...tlsArgs(name), ...extraArgs] });
  try {
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/, "the start-up line says https://");
    await fn(server);
  } finally {
    await server.stop();
  }
}

// --- clients ---------------------------------------------------------------

// Runs tls_worker.mjs with spec and extra environment; its JSON answer.
async function worker(spec, env = {}) {
  const base = { ...process.env };
  for (const v of ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR", "REPLITE_CA_FILE"]) delete base[v];
  const child = spawn(process.execPath, [WORKER, JSON.stringify(spec)], {
    cwd: import.meta.dirname,
    env: { ...base, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), 60000);
  const { code, signal } = await new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
  clearTimeout(timer);
  assert.equal(signal, null, `worker killed by ${signal}:\n${stderr}`);
  assert.equal(code, 0, `worker exited with ${code}:\n${stderr}`);
  return JSON.parse(stdout.trim().split("\n").pop());
}

const replite = (server, path, params, steps, env) =>
  worker({ kind: "replite", url: server.url, path, extension: EXTENSION, params, steps }, env);

// One SQL statement on the primary over Hrana (HTTPS, trusting the CA):
// rows as arrays of values.
function primary(server, sql) {
  const body = JSON.stringify({ requests: [{ type: "execute", stmt: { sql } }, { type: "close" }] });
  return new Promise((res, rej) => {
    const req = request(`${server.url}/v2/pipeline`, { method: "POST", ca: readFileSync(certs.ca) }, (r) => {
      let data = "";
      r.on("data", (d) => (data += d));
      r.on("end", () => {
        const j = JSON.parse(data);
        const first = j.results?.[0];
        if (r.statusCode !== 200 || first?.type !== "ok") return rej(new Error(`${r.statusCode}: ${data}`));
        res(first.response.result.rows.map((row) => row.map((v) => v.value ?? null)));
      });
    });
    req.on("error", rej);
    req.end(body);
  });
}

const allOk = (r, what) => {
  assert.equal(r.open, null, `${what}: opens: ${JSON.stringify(r.open)}`);
  r.steps.forEach((s, i) => assert.ok(!s.error, `${what}: step ${i}: ${JSON.stringify(s.error)}`));
  return r.steps.map((s) => s.rows);
};

// --- the server ------------------------------------------------------------

test("serve: bad TLS options fail the start naming the file, and leave no data directory", async () => {
  const dir = tempDir("replite-tls-start-");
  const garbage = dir.file("garbage.pem");
  writeFileSync(garbage, "not a PEM file\n");
  const cases = [
    { args: ["--tls-cert", certs.cert("good")], code: 2, want: /--tls-cert and --tls-key go together/ },
    { args: ["--tls-key", certs.key("good")], code: 2, want: /--tls-cert and --tls-key go together/ },
    {
      args: ["--tls-cert", dir.file("missing.pem"), "--tls-key", certs.key("good")],
      code: 1,
      want: new RegExp(`cannot read --tls-cert ${dir.file("missing.pem")}: No such file or directory`),
    },
    {
      args: ["--tls-cert", certs.cert("good"), "--tls-key", dir.file("missing.key")],
      code: 1,
      want: new RegExp(`cannot read --tls-key ${dir.file("missing.key")}: No such file or directory`),
    },
    { args: ["--tls-cert", garbage, "--tls-key", certs.key("good")], code: 1, want: new RegExp(`--tls-cert ${garbage} holds no PEM certificate`) },
    // A key where the certificate belongs, and the reverse.
    { args: ["--tls-cert", certs.key("good"), "--tls-key", certs.key("good")], code: 1, want: /holds no PEM certificate/ },
    { args: ["--tls-cert", certs.cert("good"), "--tls-key", garbage], code: 1, want: new RegExp(`--tls-key ${garbage} holds no usable PEM private key`) },
    {
      args: ["--tls-cert", certs.cert("good"), "--tls-key", certs.key("wrongname")],
      code: 1,
      want: new RegExp(`the key in --tls-key ${certs.key("wrongname")} does not belong to the certificate in --tls-cert ${certs.cert("good")}`),
    },
    { args: ["--tls-cert", dir.path, "--tls-key", certs.key("good")], code: 1, want: /not a regular file/ },
  ];
  for (const [i, c] of cases.entries()) {
    const data = dir.file(`data-${i}`);
    const r = spawnSync(REPLITE_BIN, ["serve", "--data-dir", data, "--listen", "127.0.0.1:0", ...c.args], {
      encoding: "utf8",
      timeout: 20000,
    });
    assert.equal(r.status, c.code, `case ${i}: exit code:\n${r.stderr}`);
    assert.match(r.stderr, c.want, `case ${i}`);
    assert.doesNotMatch(r.stderr, /listening on/, `case ${i}`);
    assert.ok(!existsSync(data), `case ${i}: no data directory is left`);
  }
  dir.remove();
});

test("serve: an expired certificate is served with a warning", async () => {
  await withTlsServer("expired", async (server) => {
    assert.match(server.stderr, /WARNING: the certificate in --tls-cert \S+expired\.pem has expired/);
  });
});

// --- the replite replica ---------------------------------------------------

test("a replite replica reads and writes over https with tls_ca_file and with REPLITE_CA_FILE", async () => {
  const dir = tempDir("replite-tls-replica-");
  await withTlsServer("good", async (server) => {
    await primary(server, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    await primary(server, "INSERT INTO t(v) VALUES ('from the primary')");
    // tls_ca_file= in the URI: bootstrap, a local write pushed, a sync.
    const a = allOk(
      await replite(server, dir.file("a.db"), `&tls_ca_file=${certs.ca}`, [
        { sql: "SELECT v FROM t ORDER BY id" },
        { sql: "INSERT INTO t(v) VALUES ('from replica a')" },
        { sync: true },
        { sql: "SELECT json_extract(replite_status(), '$.last_error')" },
      ]),
      "tls_ca_file",
    );
    assert.deepEqual(a[0], [["from the primary"]]);
    assert.deepEqual(a[3], [[null]]);
    assert.deepEqual(await primary(server, "SELECT v FROM t ORDER BY id"), [["from the primary"], ["from replica a"]]);
    // REPLITE_CA_FILE: the same, from the environment; over localhost too.
    const b = allOk(
      await replite(server, dir.file("b.db"), "", [{ sql: "SELECT v FROM t ORDER BY id" }, { sql: "INSERT INTO t(v) VALUES ('from replica b')" }], {
        REPLITE_CA_FILE: certs.ca,
      }),
      "REPLITE_CA_FILE",
    );
    assert.deepEqual(b[0], [["from the primary"], ["from replica a"]]);
    const local = { ...server, url: server.url.replace("127.0.0.1", "localhost") };
    const c = allOk(await replite(local, dir.file("c.db"), `&tls_ca_file=${certs.ca}`, [{ sql: "SELECT count(*) FROM t" }]), "localhost");
    assert.deepEqual(c[0], [[3]]);
    // Replica a, reopened: pulls b's row over TLS.
    const again = allOk(await replite(server, dir.file("a.db"), `&tls_ca_file=${certs.ca}`, [{ sync: true }, { sql: "SELECT v FROM t ORDER BY id" }]), "reopen");
    assert.deepEqual(again[1], [["from the primary"], ["from replica a"], ["from replica b"]]);
  });
  dir.remove();
});

const NOT_VERIFIED = /TLS: the primary's certificate at https:\/\/127\.0\.0\.1:\d+ did not verify \(/;

test("a replite replica refuses a certificate that does not verify, saying why", async () => {
  const dir = tempDir("replite-tls-bad-");
  const cases = [
    // No CA given: the system's CAs do not know the test CA.
    { cert: "good", params: "", want: /unable to get local issuer certificate\); pass tls_ca_file= or REPLITE_CA_FILE to trust its CA/ },
    { cert: "selfsigned", params: `&tls_ca_file=${certs.ca}`, want: /self.signed certificate\); the CA in tls_ca_file \/ REPLITE_CA_FILE did not sign it/ },
    { cert: "expired", params: `&tls_ca_file=${certs.ca}`, want: /certificate has expired\); the primary must serve a certificate that is still valid/ },
    { cert: "wrongname", params: `&tls_ca_file=${certs.ca}`, want: /\); the certificate must name the host of sync_url/ },
  ];
  for (const c of cases) {
    await withTlsServer(c.cert, async (server) => {
      const r = await replite(server, dir.file(`${c.cert}.db`), c.params, [{ sql: "SELECT 1" }]);
      assert.ok(r.open, `${c.cert}: the open fails`);
      assert.match(r.open.message, NOT_VERIFIED, c.cert);
      assert.match(r.open.message, c.want, c.cert);
      assert.match(r.open.message, /has never synced and its first sync failed/, c.cert);
    });
  }
  // A CA file libcurl cannot use, and one that is not there.
  await withTlsServer("good", async (server) => {
    const r = await replite(server, dir.file("badca.db"), `&tls_ca_file=${certs.key("good")}`, [{ sql: "SELECT 1" }]);
    assert.match(r.open?.message ?? "", /TLS: the CA file \S+good\.key could not be used \(.*\); tls_ca_file \/ REPLITE_CA_FILE must name a PEM file/);
    const m = await replite(server, dir.file("noca.db"), "", [{ sql: "SELECT 1" }], { REPLITE_CA_FILE: dir.file("nope.pem") });
    assert.match(m.open?.message ?? "", /tls_ca_file \(from REPLITE_CA_FILE\) '\S+nope\.pem' cannot be read: No such file or directory/);
  });
  dir.remove();
});

test("a synced replica opened without the CA reads locally; syncs fail with the cause in the error and last_error", async () => {
  const dir = tempDir("replite-tls-synced-");
  await withTlsServer("good", async (server) => {
    await primary(server, "CREATE TABLE t(v)");
    await primary(server, "INSERT INTO t VALUES (1)");
    allOk(await replite(server, dir.file("r.db"), `&tls_ca_file=${certs.ca}`, [{ sync: true }]), "first open");
    await primary(server, "INSERT INTO t VALUES (2)");
    const r = await replite(server, dir.file("r.db"), "&sync_interval=0", [
      { sql: "SELECT v FROM t" },
      { sync: true },
      { sql: "SELECT json_extract(replite_status(), '$.last_error')" },
      { sql: "INSERT INTO t VALUES (3)" },
    ]);
    assert.equal(r.open, null, `opens on what it holds: ${JSON.stringify(r.open)}`);
    assert.deepEqual(r.steps[0].rows, [[1]]);
    assert.match(r.steps[1].error?.message ?? "", NOT_VERIFIED);
    assert.match(r.steps[2].rows?.[0]?.[0] ?? "", NOT_VERIFIED);
    assert.ok(r.steps[3].error, "a write fails: it cannot reach the primary");
    assert.deepEqual(await primary(server, "SELECT v FROM t"), [["1"], ["2"]]); // Hrana's integers are text
  });
  dir.remove();
});

test("a replite replica with the wrong scheme says so", async () => {
  const dir = tempDir("replite-tls-scheme-");
  await withTlsServer("good", async (server) => {
    const plain = { url: server.url.replace("https://", "http://") };
    const r = await replite(plain, dir.file("a.db"), "", [{ sql: "SELECT 1" }]);
    assert.match(r.open?.message ?? "", /Empty reply from server \(if the primary serves HTTPS, --tls-cert, use an https:\/\/ sync_url\)/);
  });
  const server = await startServer();
  try {
    const tls = { url: server.url.replace("http://", "https://") };
    const r = await replite(tls, dir.file("b.db"), `&tls_ca_file=${certs.ca}`, [{ sql: "SELECT 1" }]);
    assert.match(r.open?.message ?? "", /TLS: the handshake with the primary at https:\/\/127\.0\.0\.1:\d+ failed \((.*wrong version number|.*SSL_ERROR_SYSCALL|.*unexpected eof|.*Connection reset).*\); does the primary serve plain HTTP\? then use an http:\/\/ sync_url/);
  } finally {
    await server.stop();
  }
  dir.remove();
});

// --- the npm clients -------------------------------------------------------

test("@libsql/client over https:// and wss:// with NODE_EXTRA_CA_CERTS, and refused without it", async () => {
  await withTlsServer("good", async (server) => {
    const wss = server.url.replace("https://", "wss://");
    for (const url of [server.url, wss]) {
      const rows = allOk(
        await worker(
          {
            kind: "client",
            url,
            steps: [
              { sql: "CREATE TABLE IF NOT EXISTS c(url TEXT, big BLOB)" },
              // A value larger than any TLS record, both ways.
              { sql: "INSERT INTO c VALUES (?, zeroblob(200000))", args: [url] },
              { sql: "SELECT url, length(big) FROM c WHERE url = ?", args: [url] },
            ],
          },
          { NODE_EXTRA_CA_CERTS: certs.ca },
        ),
        url,
      );
      assert.deepEqual(rows[2], [[url, 200000]]);
      const refused = await worker({ kind: "client", url, steps: [{ sql: "SELECT 1" }] });
      const why = refused.open?.message ?? refused.steps[0]?.error?.message ?? "";
      assert.match(why, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify the first certificate/, `${url} without the CA: ${why}`);
    }
    assert.deepEqual(await primary(server, "SELECT url FROM c ORDER BY rowid"), [[server.url], [wss]]);
  });
});

test("npm libsql's embedded replica over https with SSL_CERT_FILE, and refused without it", async () => {
  const dir = tempDir("replite-tls-libsql-");
  await withTlsServer("good", async (server) => {
    await primary(server, "CREATE TABLE t(v TEXT)");
    await primary(server, "INSERT INTO t VALUES ('primary')");
    const rows = allOk(
      await worker(
        {
          kind: "libsql",
          url: server.url,
          path: dir.file("l.db"),
          steps: [{ sync: true }, { sql: "SELECT v FROM t" }, { sql: "INSERT INTO t VALUES ('libsql')" }, { sync: true }, { sql: "SELECT v FROM t ORDER BY rowid" }],
        },
        { SSL_CERT_FILE: certs.ca },
      ),
      "libsql with SSL_CERT_FILE",
    );
    assert.deepEqual(rows[1], [["primary"]]);
    assert.deepEqual(rows[4], [["primary"], ["libsql"]]);
    assert.deepEqual(await primary(server, "SELECT v FROM t ORDER BY rowid"), [["primary"], ["libsql"]]);
    const refused = await worker({ kind: "libsql", url: server.url, path: dir.file("m.db"), steps: [{ sync: true }] });
    const why = refused.open?.message ?? refused.steps[0]?.error?.message ?? "";
    assert.ok(why !== "", "the sync fails without the CA");
    assert.match(why, /invalid peer certificate: UnknownIssuer/, why);
  });
  dir.remove();
});

// --- what the primary does under TLS ----------------------------------------

test("over TLS, a client that disconnects cancels its running statement (HTTPS and WSS)", async () => {
  await withTlsServer(
    "good",
    async (server) => {
      await primary(server, "CREATE TABLE t(x)");
      const heavy = HEAVY_QUERY;
      for (const url of [server.url, server.url.replace("https://", "wss://")]) {
        // The worker is killed while its statement runs: its connection
        // closes (FIN) without a word.
        const child = spawn(process.execPath, [WORKER, JSON.stringify({ kind: "client", url, steps: [{ sql: `INSERT INTO t ${heavy}` }] })], {
          cwd: import.meta.dirname,
          env: { ...process.env, NODE_EXTRA_CA_CERTS: certs.ca },
          stdio: ["ignore", "ignore", "pipe"],
        });
        let running = false;
        child.stderr.on("data", (d) => (running ||= String(d).includes("running")));
        const exited = new Promise((res) => child.on("exit", res));
        const before = (server.stderr.match(/client of a running statement disconnected/g) ?? []).length;
        const deadline = Date.now() + 20000;
        while (!running) {
          assert.ok(Date.now() < deadline, `${url}: the worker did not start its statement`);
          await sleep(10);
        }
        // The statement reaches the primary and takes the write lock.
        await sleep(1500);
        child.kill("SIGKILL");
        await exited;
        // Waits for the write lock; without the cancel it would give up
        // with SQLITE_BUSY after the server's 5 s busy timeout.
        await primary(server, `INSERT INTO t VALUES ('after ${url.split(":")[0]}')`);
        while ((server.stderr.match(/client of a running statement disconnected/g) ?? []).length === before) {
          assert.ok(Date.now() < deadline, `${url}: the statement was not cancelled:\n${server.stderr}`);
          await sleep(20);
        }
      }
      assert.deepEqual(await primary(server, "SELECT x FROM t"), [["after https"], ["after wss"]]);
    },
    ["--statement-timeout", "0"],
  );
});

test.after(() => certs.dir.remove());
