#!/usr/bin/env python3
"""Push fuzzer (issue 9): mutated pushes against real primaries.

A source primary commits one transaction (rows in an indexed table, some
with overflow pages); its frames are pushed, each time with one mutation,
to a fresh target primary seeded with the same database:

  byte     one byte of a page (a b-tree header, a cell pointer, cell data)
  pgno     a frame's page number
  size     the commit frame's database size
  commit   a commit marker moved to an earlier frame
  zero     a page zeroed

Then PRAGMA integrity_check runs on the target.  Counts, per kind: refused
(4xx), taken and sound, taken and CORRUPT.  The goal is 0 corrupt.

  REPLITE_BIN=build/replite python3 test/fuzz/push_fuzz.py [TRIALS] [SEED]
"""
import json, os, random, shutil, sqlite3, subprocess, sys, tempfile, time
import urllib.request, urllib.error

BIN = os.environ.get("REPLITE_BIN", "build/replite")
FRAME = 24 + 4096


def start(data, seed=None):
    args = [BIN, "serve", "--data-dir", data, "--listen", "127.0.0.1:0"]
    if seed:
        args += ["--import", seed]
    log = open(data + ".log", "w+")
    p = subprocess.Popen(args, stderr=log)
    for _ in range(500):
        log.seek(0)
        for line in log:
            if "listening on " in line:
                return p, line.split("listening on ")[1].split()[0]
        time.sleep(0.01)
    p.kill()
    raise RuntimeError("primary did not start: " + open(data + ".log").read())


def http(url, path, body=None):
    req = urllib.request.Request(url + path, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def sql(url, text):
    body = json.dumps({"requests": [{"type": "execute", "stmt": {"sql": text}}, {"type": "close"}]}).encode()
    status, out = http(url, "/v2/pipeline", body)
    res = json.loads(out)["results"][0]
    if res["type"] != "ok":
        raise RuntimeError(res)
    return res["response"]["result"]["rows"]


def mutate(frames, kind, rng):
    f = bytearray(frames)
    n = len(f) // FRAME
    i = rng.randrange(n)
    base = i * FRAME
    if kind == "byte":
        off = base + 24 + rng.randrange(4096)
        f[off] ^= 1 << rng.randrange(8)
    elif kind == "pgno":
        f[base + 3] = (f[base + 3] + rng.randrange(1, 6)) & 0xFF
        if f[base:base + 4] == b"\0\0\0\0":
            f[base + 3] = 2
    elif kind == "size":
        last = (n - 1) * FRAME
        size = int.from_bytes(f[last + 4:last + 8], "big")
        size = max(1, size + rng.choice([-3, -2, -1, 1, 2, 5]))
        f[last + 4:last + 8] = size.to_bytes(4, "big")
    elif kind == "commit":
        if n > 1:
            last = (n - 1) * FRAME
            j = rng.randrange(n - 1) * FRAME
            f[j + 4:j + 8] = f[last + 4:last + 8]
    elif kind == "zero":
        f[base + 24:base + FRAME] = bytes(4096)
    return bytes(f)


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    work = tempfile.mkdtemp(prefix="replite-fuzz-")
    seed = os.path.join(work, "seed.db")
    db = sqlite3.connect(seed)
    db.executescript("PRAGMA page_size=4096; CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b BLOB);"
                     "CREATE INDEX t_a ON t(a);"
                     "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<400) "
                     "INSERT INTO t(a, b) SELECT printf('%05d', i), randomblob(i % 40) FROM n;")
    db.close()
    src, url = start(os.path.join(work, "src"), seed)
    sql(url, "INSERT INTO t(a, b) SELECT printf('x%05d', id), randomblob(CASE WHEN id % 50 = 0 THEN 6000 ELSE 30 END) FROM t WHERE id % 3 = 0")
    head = json.loads(http(url, "/info")[1])["max_frame_no"]
    frames = http(url, "/sync/1/1/%d" % (head + 1))[1]
    src.terminate(); src.wait()
    pristine = os.path.join(work, "pristine")
    p, _ = start(pristine, seed); p.terminate(); p.wait()
    counts = {}
    for t in range(trials):
        kind = ["byte", "pgno", "size", "commit", "zero"][t % 5]
        data = os.path.join(work, "t%d" % t)
        shutil.copytree(pristine, data)
        p, turl = start(data)
        body = mutate(frames, kind, rng)
        status, out = http(turl, "/sync/1/1/%d?strict=1" % (len(body) // FRAME + 1), body)
        try:
            ok = sql(turl, "PRAGMA integrity_check")[0][0]
            ok = ok.get("value") if isinstance(ok, dict) else ok
            sound = ok == "ok"
        except Exception:
            sound = False
        p.terminate(); p.wait()
        shutil.rmtree(data)
        verdict = "refused" if status >= 400 else ("sound" if sound else "CORRUPT")
        counts.setdefault(kind, {}).setdefault(verdict, 0)
        counts[kind][verdict] += 1
    shutil.rmtree(work)
    total = {}
    for kind, c in sorted(counts.items()):
        print("%-7s %s" % (kind, " ".join("%s %d" % kv for kv in sorted(c.items()))))
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    print("total   %s" % " ".join("%s %d" % kv for kv in sorted(total.items())))
    return 1 if total.get("CORRUPT") else 0


if __name__ == "__main__":
    sys.exit(main())
