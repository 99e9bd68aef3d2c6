#!/usr/bin/python3
"""The replite extension from Python's own sqlite3 module (Debian's
/usr/bin/python3, linked with the system libsqlite3), driven by
extension.test.mjs.  Prints one JSON object per line; the node test asserts
on them.

  extension_host.py replica EXTENSION DIR SYNC_URL
      Loads EXTENSION, opens replicas of SYNC_URL in DIR and reports each
      step.  When it needs a commit on the primary it prints
      {"step": "write", "value": V} and waits for a line on stdin: the test
      inserts a row with v = V into t on the primary, then answers with
      {"head": N}, the primary's frame number after that commit.  After a
      local write (and in the middle of a local transaction) it prints
      {"step": "check", "name": NAME, ...} and waits for a line on stdin: the
      test looks at the primary at that moment, then answers with {}.

  extension_host.py plain DB
      Opens DB with plain SQLite (no extension loaded) and reports its rows.
"""

import json
import sqlite3
import sys
import time

# The same queries as extension.test.mjs.
SNAPSHOT = (
    "SELECT id, v, length(b), CASE WHEN length(b) > 64"
    " THEN substr(hex(b), 1, 32) || '..' || substr(hex(b), -32) ELSE hex(b) END"
    " FROM t ORDER BY id"
)
BIG = "SELECT hex(b) FROM t WHERE v = 'big'"
LIVE_DEADLINE_S = 5.0


def emit(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def rows(con, sql=SNAPSHOT, args=()):
    return [list(r) for r in con.execute(sql, args).fetchall()]


def error_of(fn):
    """Runs fn; returns how it failed (None if it did not)."""
    try:
        fn()
    except sqlite3.Error as e:
        return {
            "type": type(e).__name__,
            "message": str(e),
            "code": getattr(e, "sqlite_errorcode", None),
            "name": getattr(e, "sqlite_errorname", None),
        }
    return None


def primary_write(value):
    """Asks the test for a commit on the primary and waits until it is done;
    returns the primary's head frame after it."""
    emit("write", value=value)
    line = sys.stdin.readline()
    if line == "":
        raise SystemExit("stdin closed while waiting for a write on the primary")
    return json.loads(line)["head"]


def check(name, **fields):
    """Lets the test look at the primary now (while this process waits)."""
    emit("check", name=name, **fields)
    line = sys.stdin.readline()
    if line == "":
        raise SystemExit("stdin closed while waiting for a check")


def uri(directory, name, sync_url, extra=""):
    return f"file:{directory}/{name}?vfs=replite&sync_url={sync_url}{extra}"


def replica(extension, directory, sync_url):
    loader = sqlite3.connect(":memory:")
    loader.enable_load_extension(True)
    loader.load_extension(extension)
    loader.enable_load_extension(False)
    emit("loaded", sqlite_version=sqlite3.sqlite_version)

    # Explicit syncs only, so that what a sync brings is observable.
    db = sqlite3.connect(uri(directory, "py.db", sync_url, "&sync_interval=0"), uri=True)
    emit(
        "bootstrap",
        rows=rows(db),
        big=db.execute(BIG).fetchone()[0],
        integrity=[r[0] for r in db.execute("PRAGMA integrity_check")],
        journal_mode=db.execute("PRAGMA journal_mode").fetchone()[0],
        status_function=db.execute("SELECT replite_status()").fetchone()[0],
        status_pragma=db.execute("PRAGMA replite_status").fetchone()[0],
        sync_function=db.execute("SELECT replite_sync()").fetchone()[0],
    )

    # A local write (the module opens a transaction before the INSERT; the
    # commit() is the statement that pushes it), then an explicit
    # BEGIN..COMMIT of two statements, with the primary checked in between.
    def local_write():
        db.execute("INSERT INTO t(v, b) VALUES ('py-local', x'0102')")
        db.commit()

    insert_error = error_of(local_write)
    check(
        "py-local",
        error=insert_error,
        local=rows(db, "SELECT v, hex(b) FROM t WHERE v = 'py-local'"),
        rows=rows(db),
        status=db.execute("PRAGMA replite_status").fetchone()[0],
    )

    def local_transaction():
        db.isolation_level = None  # explicit BEGIN/COMMIT
        try:
            db.execute("BEGIN")
            db.execute("INSERT INTO t(v) VALUES ('py-tx-1')")
            db.execute("UPDATE t SET b = x'ff' WHERE v = 'py-local'")
            check("py-tx-open", in_transaction=db.in_transaction)
            db.execute("COMMIT")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")
            db.isolation_level = ""

    tx_error = error_of(local_transaction)
    check(
        "py-tx",
        error=tx_error,
        local=rows(db, "SELECT v, hex(b) FROM t WHERE v IN ('py-local', 'py-tx-1') ORDER BY id"),
        rows=rows(db),
        status=db.execute("PRAGMA replite_status").fetchone()[0],
        integrity=[r[0] for r in db.execute("PRAGMA integrity_check")],
    )

    emit(
        "refused",
        journal_mode_delete=error_of(lambda: db.execute("PRAGMA journal_mode=DELETE").fetchall()),
        locking_mode_exclusive=error_of(lambda: db.execute("PRAGMA locking_mode=EXCLUSIVE").fetchall()),
        rows=rows(db),
        journal_mode=db.execute("PRAGMA journal_mode").fetchone()[0],
    )

    primary_write("py-explicit")
    before = rows(db)
    frame = db.execute("PRAGMA replite_sync").fetchone()[0]
    emit(
        "explicit_sync",
        before=before,
        frame=frame,
        after=rows(db),
        status=db.execute("SELECT replite_status()").fetchone()[0],
    )

    # The default sync_interval: the replica long-polls the primary.
    live = sqlite3.connect(uri(directory, "py-live.db", sync_url), uri=True)
    emit("live_open", rows=rows(live))
    head = primary_write("py-live")
    start = time.monotonic()
    seen = False
    while time.monotonic() - start < LIVE_DEADLINE_S:
        if live.execute("SELECT count(*) FROM t WHERE v = 'py-live'").fetchone()[0] == 1:
            seen = True
            break
        time.sleep(0.005)
    ms = round((time.monotonic() - start) * 1000)
    # After a background sync the status follows the data by a moment
    # (frame_no is recorded after the frames are published, primary_frame_no
    # after that): poll until it has caught up with the primary's head.
    status = live.execute("SELECT replite_status()").fetchone()[0]
    first_status = status
    settle = time.monotonic()
    while time.monotonic() - settle < LIVE_DEADLINE_S:
        s = json.loads(status)
        if s["frame_no"] >= head and s["primary_frame_no"] >= head:
            break
        time.sleep(0.005)
        status = live.execute("SELECT replite_status()").fetchone()[0]
    emit(
        "live",
        seen=seen,
        ms=ms,
        rows=rows(live),
        first_status=first_status,
        status=status,
        status_settle_ms=round((time.monotonic() - settle) * 1000),
    )

    emit(
        "bad_parameter",
        sync_interval=error_of(
            lambda: sqlite3.connect(uri(directory, "bad1.db", sync_url, "&sync_interval=abc"), uri=True)
        ),
        sync_url=error_of(lambda: sqlite3.connect(uri(directory, "bad2.db", "ftp://nowhere"), uri=True)),
    )

    live.close()
    db.close()
    loader.close()
    emit("done")


def plain(path):
    db = sqlite3.connect(path)
    emit(
        "plain",
        rows=rows(db),
        big=db.execute(BIG).fetchone()[0],
        integrity=[r[0] for r in db.execute("PRAGMA integrity_check")],
        journal_mode=db.execute("PRAGMA journal_mode").fetchone()[0],
        replite_functions=db.execute(
            "SELECT count(*) FROM pragma_function_list WHERE name LIKE 'replite%'"
        ).fetchone()[0],
    )
    db.close()


def main(argv):
    if len(argv) == 5 and argv[1] == "replica":
        replica(argv[2], argv[3], argv[4])
    elif len(argv) == 3 and argv[1] == "plain":
        plain(argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
