#!/usr/bin/python3
"""A legitimate workload through replite replicas (push_legit.test.mjs):
no push of a real SQLite transaction may be refused by the primary.

  push_legit_host.py EXTENSION DIR SYNC_URL STEPS SEED

Opens two replicas of SYNC_URL (DIR/a.db, DIR/b.db) in this process
(Debian's /usr/bin/python3 and the system libsqlite3) and runs STEPS random
but seeded steps, each on one of them: CREATE TABLE (rowid, WITHOUT ROWID,
STRICT), CREATE INDEX (plain, UNIQUE, expression, partial, COLLATE NOCASE
DESC), INSERT/UPDATE/DELETE of small and large (10-50 KB, overflow) rows,
bulk inserts that split pages, deletes of many rows (freelist), DROP
TABLE/INDEX, ALTER TABLE ADD COLUMN / RENAME TO / RENAME COLUMN, VACUUM,
explicit multi-statement transactions, savepoints, rolled-back transactions.
Every statement must succeed.  Every CHECK_EVERY steps and at the end: PRAGMA
integrity_check on the primary (/v2/pipeline) and on both replicas,
replite_verify on both replicas (whole-database checksums), and every table's
content, and the schema, equal on the primary and the replicas.

Prints one JSON object per line: {"step": ...} progress, {"check": ...},
{"fail": ...} (then exits 1), {"done": ...} with the figures.
"""

import json
import re
import random
import sqlite3
import sys
import time
import urllib.error
import urllib.request


def make_seed(path, auto_vacuum):
    """A database for `replite serve --import`: page size 4096, the given
    auto_vacuum mode (pointer-map pages), a table with overflow rows, free
    pages (with auto_vacuum=INCREMENTAL)."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA page_size = 4096")
    db.execute("PRAGMA auto_vacuum = %s" % auto_vacuum)
    db.executescript("""
        CREATE TABLE seed(id INTEGER PRIMARY KEY, k TEXT NOT NULL, n INTEGER, r REAL, b BLOB, t TEXT);
        CREATE INDEX seed_t ON seed(t COLLATE NOCASE DESC);
        WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 3000)
        INSERT INTO seed(k, n, r, b, t) SELECT 'seed-' || i, i % 1000, i / 3.0,
            randomblob(CASE WHEN i % 100 = 0 THEN 20000 ELSE i % 50 END), 'Seed ' || i FROM s;
        DELETE FROM seed WHERE id % 3 = 0;
    """)
    db.commit()
    got = db.execute("PRAGMA auto_vacuum").fetchone()[0]
    db.close()
    print(json.dumps({"seed": path, "auto_vacuum": got}))


if sys.argv[1] == "seed":
    make_seed(sys.argv[2], sys.argv[3])
    sys.exit(0)

EXTENSION, DIR, URL, STEPS, SEED = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
CHECK_EVERY = 40
rng = random.Random(SEED)
counter = [0]
stats = {}
history = []  # the last statements, for the failure report


def emit(**fields):
    print(json.dumps(fields), flush=True)


class Failure(Exception):
    pass


def fail(what, **fields):
    emit(fail=what, history=history[-12:], **fields)
    sys.exit(1)


# ------------------------------------------------------------ the primary

def pipeline(stmts):
    reqs = [{"type": "execute", "stmt": {"sql": s}} for s in stmts] + [{"type": "close"}]
    req = urllib.request.Request(URL + "/v2/pipeline", data=json.dumps({"requests": reqs}).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            out = json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise Failure("primary: HTTP %d %s" % (e.code, e.read()[:300]))
    rows = []
    for s, r in zip(stmts, out["results"]):
        if r["type"] != "ok":
            raise Failure("primary: %s: %s" % (s[:100], r.get("error")))
        rows.append([[v.get("value") for v in row] for row in r["response"]["result"]["rows"]])
    return rows


def primary(sql):
    return pipeline([sql])[0]


# ------------------------------------------------------------ replicas

loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension(EXTENSION)
loader.enable_load_extension(False)


def open_replica(name):
    db = sqlite3.connect("file:%s/%s?vfs=replite&sync_url=%s" % (DIR, name, URL), uri=True,
                         isolation_level=None, timeout=10)
    return db


replicas = {"a": open_replica("a.db"), "b": open_replica("b.db")}


def status(db):
    try:
        return json.loads(db.execute("SELECT replite_status()").fetchone()[0])
    except sqlite3.Error as e:
        return {"error": str(e)}


def run(db, name, sql, params=()):
    history.append("%s: %s" % (name, sql if len(sql) < 300 else sql[:300] + "..."))
    try:
        return db.execute(sql, params).fetchall()
    except sqlite3.Error as e:
        # The statement was chosen from this replica's schema, which may not
        # have pulled the other replica's DROP or RENAME yet; the write
        # catches up first and then finds the table gone.  That is the
        # application's error, not replite's, if the table is really gone
        # once this replica has synced.
        m = re.match(r"no such table: (?:main\.)?(\w+)", str(e))
        if m and not db.in_transaction:
            db.execute("SELECT replite_sync()")
            if m.group(1) not in schema(db)[0]:
                count("stale_schema")
                history.append("%s: (%s: dropped by the other replica)" % (name, e))
                return []
        st = status(db)
        fail("statement failed", replica=name, sql=sql[:1000], error=str(e),
             code=getattr(e, "sqlite_errorcode", None), name=getattr(e, "sqlite_errorname", None),
             last_error=st.get("last_error"), status=st)


# ------------------------------------------------------------ the workload

def schema(db):
    tables = {}
    for name, sql in db.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'table' "
                                "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall():
        cols = [r[1] for r in db.execute('PRAGMA table_info("%s")' % name)]
        tables[name] = {"rowid": "WITHOUT ROWID" not in sql.upper(), "strict": sql.rstrip().upper().endswith("STRICT"),
                        "cols": cols}
    indexes = [r[0] for r in db.execute("SELECT name FROM sqlite_schema WHERE type = 'index' "
                                        "AND sql IS NOT NULL ORDER BY name")]
    return tables, indexes


def fresh(prefix):
    counter[0] += 1
    return "%s%d" % (prefix, counter[0])


def blob_expr(size):
    return "randomblob(%d)" % size


def row_values(tab, big=False):
    k = "'%s'" % fresh("k")
    n = rng.randrange(-1000, 1000)
    r = "%d.%d" % (rng.randrange(1000), rng.randrange(100))
    b = blob_expr(rng.randrange(10_000, 50_000) if big else rng.randrange(0, 200))
    t = "'%s'" % rng.choice(["alpha", "Beta", "GAMMA", "delta", "Epsilon", "zeta"]) + "|| ' %d'" % rng.randrange(10 ** 6)
    return "(%s, %d, %s, %s, %s)" % (k, n, r, b, t)


def op_create_table(db, tables, indexes):
    name = fresh("t")
    kind = rng.choice(["rowid", "rowid", "without", "strict"])
    if kind == "without":
        sql = "CREATE TABLE %s(k TEXT PRIMARY KEY, n INTEGER, r REAL, b BLOB, t TEXT) WITHOUT ROWID" % name
    elif kind == "strict":
        sql = "CREATE TABLE %s(id INTEGER PRIMARY KEY, k TEXT NOT NULL, n INTEGER, r REAL, b BLOB, t TEXT) STRICT" % name
    else:
        sql = "CREATE TABLE %s(id INTEGER PRIMARY KEY, k TEXT NOT NULL, n INTEGER, r REAL, b BLOB, t TEXT)" % name
    return [sql], "create_table_" + kind


def pick(tables):
    return rng.choice(sorted(tables)) if tables else None


def op_create_index(db, tables, indexes):
    tab = pick(tables)
    if tab is None:
        return op_create_table(db, tables, indexes)
    name = fresh("i")
    kind = rng.choice(["plain", "unique", "expr", "partial", "nocase", "multi"])
    on = {"plain": "(n)", "unique": "(k)", "expr": rng.choice(["(lower(t))", "(n * 2 + 1)", "(length(b))", "(substr(k, 2))"]),
          "partial": "(n) WHERE n % 2 = 0", "nocase": "(t COLLATE NOCASE DESC)", "multi": "(t, n DESC, r)"}[kind]
    return ["CREATE %sINDEX %s ON %s%s" % ("UNIQUE " if kind == "unique" else "", name, tab, on)], "create_index_" + kind


def op_insert(db, tables, indexes, big=False):
    tab = pick(tables)
    if tab is None:
        return op_create_table(db, tables, indexes)
    n = 1 if big else rng.randrange(1, 6)
    vals = ",".join(row_values(tab, big) for _ in range(n))
    return ["INSERT INTO %s(k, n, r, b, t) VALUES %s" % (tab, vals)], "insert_big" if big else "insert"


def op_bulk(db, tables, indexes):
    tab = pick(tables)
    if tab is None:
        return op_create_table(db, tables, indexes)
    n = rng.choice([200, 500, 1000, 2500])
    tag = fresh("bulk")
    big = rng.random() < 0.3
    blob = "randomblob(CASE WHEN i % 50 = 0 THEN 12000 ELSE i % 300 END)" if big else "randomblob(i % 120)"
    return ["WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %d) "
            "INSERT INTO %s(k, n, r, b, t) SELECT '%s-' || i, (i * 7919) %% 2003 - 1000, i / 7.0, %s, "
            "printf('%%s %%d', substr('AbCdEfGhIj', 1 + i %% 10, 3), i %% 97) FROM s" % (n, tab, tag, blob)], "bulk_insert"


def op_update(db, tables, indexes):
    tab = pick(tables)
    if tab is None:
        return op_create_table(db, tables, indexes)
    m = rng.randrange(2, 12)
    kind = rng.choice(["small", "small", "grow", "shrink"])
    if kind == "small":
        sets = "n = n + 1, t = upper(t), r = r * 1.5"
    elif kind == "grow":
        sets = "b = randomblob(%d)" % rng.randrange(10_000, 50_000)
        m = rng.randrange(30, 80)
    else:
        sets = "b = randomblob(3), t = 'short'"
    return ["UPDATE %s SET %s WHERE abs(n) %% %d = %d" % (tab, sets, m, rng.randrange(m))], "update_" + kind


def op_delete(db, tables, indexes, many=False):
    tab = pick(tables)
    if tab is None:
        return op_create_table(db, tables, indexes)
    if many:
        m = rng.randrange(2, 5)
        return ["DELETE FROM %s WHERE abs(n) %% %d != 0" % (tab, m)], "delete_many"
    return ["DELETE FROM %s WHERE abs(n) %% 97 = %d" % (tab, rng.randrange(97))], "delete"


def op_drop(db, tables, indexes):
    if indexes and (rng.random() < 0.6 or len(tables) < 3):
        return ["DROP INDEX %s" % rng.choice(indexes)], "drop_index"
    if len(tables) >= 3:
        return ["DROP TABLE %s" % pick(tables)], "drop_table"
    return op_create_table(db, tables, indexes)


def op_alter(db, tables, indexes):
    tab = pick(tables)
    if tab is None:
        return op_create_table(db, tables, indexes)
    kind = rng.choice(["add", "add", "rename", "rename_column"])
    extra = [c for c in tables[tab]["cols"] if c.startswith("x")]
    if kind == "rename_column" and extra:
        return ["ALTER TABLE %s RENAME COLUMN %s TO %s" % (tab, rng.choice(extra), fresh("xr"))], "rename_column"
    if kind == "rename":
        return ["ALTER TABLE %s RENAME TO %s" % (tab, fresh("t"))], "rename_table"
    return ["ALTER TABLE %s ADD COLUMN %s TEXT DEFAULT 'd%d'" % (tab, fresh("x"), rng.randrange(100))], "add_column"


def op_vacuum(db, tables, indexes):
    return ["VACUUM"], "vacuum"


SIMPLE = [(op_create_table, 4), (op_create_index, 6), (op_insert, 20),
          (lambda *a: op_insert(*a, big=True), 6), (op_bulk, 6), (op_update, 10),
          (op_delete, 6), (lambda *a: op_delete(*a, many=True), 3), (op_drop, 3), (op_alter, 4)]


def choose(ops):
    total = sum(w for _, w in ops)
    x = rng.uniform(0, total)
    for fn, w in ops:
        x -= w
        if x <= 0:
            return fn
    return ops[-1][0]


def count(kind):
    stats[kind] = stats.get(kind, 0) + 1


def step(i):
    name = rng.choice(sorted(replicas))
    db = replicas[name]
    tables, indexes = schema(db)
    r = rng.random()
    if r < 0.02 and i > 10:
        count("vacuum")
        run(db, name, "VACUUM")
        return
    if r < 0.05 and AUTO_VACUUM == 2:
        count("incremental_vacuum")
        run(db, name, "PRAGMA incremental_vacuum(%d)" % rng.choice([1, 5, 50, 1000]))
        return
    if r < 0.22:
        # An explicit transaction of several statements: caught up first, so
        # that its first write does not find it behind (SQLITE_BUSY_SNAPSHOT
        # inside BEGIN is the application's to retry).
        run(db, name, "SELECT replite_sync()")
        mode = rng.choice(["commit", "commit", "commit", "savepoint", "rollback"])
        count("txn_" + mode)
        run(db, name, rng.choice(["BEGIN", "BEGIN IMMEDIATE"]))
        for j in range(rng.randrange(2, 7)):
            tables, indexes = schema(db)
            stmts, kind = choose(SIMPLE)(db, tables, indexes)
            count(kind)
            if mode == "savepoint" and j == 1:
                run(db, name, "SAVEPOINT sp")
                for s in stmts:
                    run(db, name, s)
                run(db, name, rng.choice(["ROLLBACK TO sp", "RELEASE sp"]))
                continue
            for s in stmts:
                run(db, name, s)
        run(db, name, "ROLLBACK" if mode == "rollback" else "COMMIT")
        return
    stmts, kind = choose(SIMPLE)(db, tables, indexes)
    count(kind)
    for s in stmts:
        run(db, name, s)


# ------------------------------------------------------------ checks

def table_rows(rowsof, tables):
    out = {}
    for name, t in tables.items():
        cols = ", ".join('quote("%s")' % c for c in t["cols"])
        order = "rowid" if t["rowid"] else "k"
        sel = "SELECT %s%s FROM \"%s\" ORDER BY %s" % ("quote(rowid), " if t["rowid"] else "", cols, name, order)
        out[name] = rowsof(sel)
    return out


def check(label):
    t0 = time.monotonic()
    try:
        ic = primary("PRAGMA integrity_check")
    except Failure as e:
        fail("primary integrity_check failed", error=str(e), at=label)
    if [r[0] for r in ic] != ["ok"]:
        fail("primary integrity_check", result=[r[0] for r in ic][:20], at=label)
    head = json.loads(urllib.request.urlopen(URL + "/info", timeout=30).read())
    pschema = [list(r) for r in primary("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name")]
    for name, db in sorted(replicas.items()):
        run(db, name, "SELECT replite_sync()")
        ric = [r[0] for r in run(db, name, "PRAGMA integrity_check")]
        if ric != ["ok"]:
            fail("replica integrity_check", replica=name, result=ric[:20], at=label)
        ver = json.loads(run(db, name, "PRAGMA replite_verify")[0][0])
        if not ver.get("match"):
            fail("replite_verify does not match", replica=name, verify=ver, at=label)
        rschema = [list(r) for r in db.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name")]
        if rschema != pschema:
            fail("schemas differ", replica=name, replica_schema=rschema, primary_schema=pschema, at=label)
        tables, _ = schema(db)
        mine = table_rows(lambda s: [list(r) for r in db.execute(s)], tables)
        theirs = table_rows(lambda s: primary(s), tables)
        for tab in tables:
            if mine[tab] != theirs[tab]:
                diff = next((i for i, (x, y) in enumerate(zip(mine[tab], theirs[tab])) if x != y), None)
                fail("table content differs", replica=name, table=tab, replica_rows=len(mine[tab]),
                     primary_rows=len(theirs[tab]), first_difference=diff, at=label)
    nrows = sum(len(v) for v in theirs.values()) if replicas else 0
    emit(check=label, ms=round((time.monotonic() - t0) * 1000), head=head["max_frame_no"],
         tables=len(pschema), rows=nrows)


AUTO_VACUUM = replicas["a"].execute("PRAGMA auto_vacuum").fetchone()[0]


def main():
    t0 = time.monotonic()
    emit(start=True, sqlite_version=sqlite3.sqlite_version, auto_vacuum=AUTO_VACUUM)
    check("start")
    for i in range(STEPS):
        step(i)
        if (i + 1) % CHECK_EVERY == 0:
            check("step %d" % (i + 1))
    if STEPS % CHECK_EVERY:
        check("end")
    db = replicas["a"]
    emit(done=True, steps=STEPS, seconds=round(time.monotonic() - t0, 1),
         pages=db.execute("PRAGMA page_count").fetchone()[0],
         freelist=db.execute("PRAGMA freelist_count").fetchone()[0],
         auto_vacuum=db.execute("PRAGMA auto_vacuum").fetchone()[0], stats=stats)
    for db in replicas.values():
        db.close()


main()
