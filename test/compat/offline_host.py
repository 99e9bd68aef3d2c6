#!/usr/bin/python3
"""One offline replica in Debian's /usr/bin/python3 and its sqlite3 module
(the system libsqlite3), driven by offline.test.mjs.  offline_worker.mjs is
the same in Node's better-sqlite3: the two speak the same protocol.

  offline_host.py EXTENSION URI

Loads EXTENSION, opens URI (autocommit mode: isolation_level=None, so a
statement outside BEGIN..COMMIT is its own transaction) and prints
{"ready": true}, or {"open_error": ERROR} and exits 1.  Then reads one JSON
request per line on stdin and answers each with one JSON line on stdout:

  {"op": "exec", "sql": [S, ...]}       runs the statements in order;
                                        {"ok": true} or {"error": ERROR} (an
                                        open transaction is rolled back then)
  {"op": "query", "sql": S, "args": []} {"rows": [[...], ...]} or {"error": ERROR}
  {"op": "insert_each", "sql": S, "values": [V, ...]}
                                        runs S with each value as its own
                                        transaction, retrying one that fails
                                        with SQLITE_BUSY; {"ok": true,
                                        "retries": N} or {"error": ERROR,
                                        "done": N}
  {"op": "loop", "sql": S, "prefix": P} runs S with P-0, P-1, ... each as its
                                        own transaction, forever, printing
                                        {"committed": V} once each commit has
                                        returned (the test kills the process)
  {"op": "watch"}                       prints {"status": replite_status()}
                                        every millisecond, forever
  {"op": "close"}                       closes the connections, {"ok": true},
                                        exits 0

ERROR is {"message", "code", "name"} (the SQLite result code and its name).
Blobs come back as upper-case hex.
"""

import json
import sqlite3
import sys
import time


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def error_of(e):
    return {
        "message": str(e),
        "code": getattr(e, "sqlite_errorcode", None),
        "name": getattr(e, "sqlite_errorname", None),
    }


def value(v):
    return v.hex().upper() if isinstance(v, (bytes, bytearray)) else v


def rows(db, sql, args=()):
    return [[value(x) for x in r] for r in db.execute(sql, args).fetchall()]


def is_busy(e):
    return (getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF == 5 or "locked" in str(e)


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    extension, uri = argv[1], argv[2]
    loader = sqlite3.connect(":memory:")
    loader.enable_load_extension(True)
    loader.load_extension(extension)
    loader.enable_load_extension(False)
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
        db.execute("SELECT count(*) FROM sqlite_schema").fetchall()
    except sqlite3.Error as e:
        out({"open_error": error_of(e)})
        sys.exit(1)
    out({"ready": True, "sqlite_version": sqlite3.sqlite_version})

    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "exec":
            try:
                for s in req["sql"]:
                    db.execute(s).fetchall()
                out({"ok": True})
            except sqlite3.Error as e:
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                out({"error": error_of(e)})
        elif op == "query":
            try:
                out({"rows": rows(db, req["sql"], req.get("args", []))})
            except sqlite3.Error as e:
                out({"error": error_of(e)})
        elif op == "insert_each":
            retries = 0
            done = 0
            try:
                for v in req["values"]:
                    while True:
                        try:
                            db.execute(req["sql"], (v,))
                            break
                        except sqlite3.Error as e:
                            if not is_busy(e) or retries > 100000:
                                raise
                            retries += 1
                            time.sleep(0.001)
                    done += 1
                out({"ok": True, "retries": retries})
            except sqlite3.Error as e:
                out({"error": error_of(e), "done": done})
        elif op == "loop":
            i = 0
            while True:
                v = "%s-%d" % (req["prefix"], i)
                db.execute(req["sql"], (v,))
                out({"committed": v})
                i += 1
        elif op == "watch":
            while True:
                out({"status": json.loads(db.execute("SELECT replite_status()").fetchone()[0])})
                time.sleep(0.001)
        elif op == "close":
            db.close()
            loader.close()
            out({"ok": True})
            return
        else:
            out({"error": {"message": "unknown op " + op}})


if __name__ == "__main__":
    main(sys.argv)
