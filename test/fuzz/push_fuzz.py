#!/usr/bin/env python3
"""Push fuzzer (issue 9): mutated pushes against real primaries.

A source primary, seeded with a database that has some structure (two
tables, a UNIQUE index and a COLLATE NOCASE index, overflow rows, two-level
b-trees, free pages), commits transactions that insert (splitting leaf and
interior pages), update and delete.  The frames of one of them are pushed
(`?strict=1`), each time with one mutation, to a fresh target primary holding
the state the transaction was built on.  Two scenarios: `plain` and
`autovac` (the same with PRAGMA auto_vacuum=FULL: pointer-map pages).

Mutations (each counted separately):

  none      no mutation: the control (a refusal is a FALSE-REFUSAL)
  byte      one bit of a pushed page flipped
  pgno      a frame's page number changed
  size      the commit frame's database size changed
  commit    a commit marker copied to an earlier frame
  zero      a pushed page zeroed
  swap      the page numbers of two frames exchanged
  dup       a frame pushed twice, the second copy under another page number
  drop      one frame omitted (a dropped commit frame moves the commit marker)
  record    a byte in the record of a table leaf cell (mostly the indexed
            column's value, else anywhere in the payload)
  header    a b-tree page header field: cell count, first freeblock,
            fragmented bytes, right-child pointer
  child     a child pointer of an interior page -> another page of the database
  overflow  an overflow pointer of a cell, or an overflow page's next pointer
  freelist  page 1's first trunk / free page count, or a trunk page's next
            pointer, leaf count or a leaf entry
  schema    page 1's sqlite_schema: a record's rootpage, or a byte of its SQL
            (sometimes with the schema cookie bumped)
  stale     a valid transaction built on another state: transaction 2 pushed
            to a primary that never got transaction 1, or got another
            transaction 1' instead

Targeted mutations (record .. schema) pick a page of the right role in the
database the transaction leads to; a page the transaction does not write is
added to the push as one more frame (before the commit frame), then mutated.

Verdicts: `refused` (4xx, and the database is sound), `sound` (accepted,
integrity_check ok on the primary and on a fresh connection to its file after
it stopped, every table readable and an INSERT succeeds through
/v2/pipeline), `CORRUPT` (anything else, also after a refusal), `CRASH` (the
primary died), `ERROR5xx` (a 5xx answer, the database sound),
`FALSE-REFUSAL` (the unmutated control refused).  Exit code 1 on any CORRUPT,
CRASH or FALSE-REFUSAL.

  REPLITE_BIN=build/replite python3 test/fuzz/push_fuzz.py [TRIALS] [SEED]

Environment: PUSH_FUZZ_KINDS=a,b,c runs only those kinds;
PUSH_FUZZ_SCENARIOS=plain,autovac only those scenarios; PUSH_FUZZ_VERBOSE=1
prints every trial.
"""
import json, os, random, shutil, sqlite3, struct, subprocess, sys, tempfile, time
import urllib.request, urllib.error

BIN = os.environ.get("REPLITE_BIN", "build/replite")
U = 4096
FRAME = 24 + U
KINDS = ["none", "byte", "pgno", "size", "commit", "zero", "swap", "dup", "drop",
         "record", "header", "child", "overflow", "freelist", "schema", "stale"]
FAILURES = ("CORRUPT", "CRASH", "FALSE-REFUSAL")


# ---------------------------------------------------------------- primaries

def start(data, seed=None):
    args = [BIN, "serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--threads", "2"]
    if seed:
        args += ["--import", seed]
    log = open(data + ".log", "w+")
    p = subprocess.Popen(args, stderr=log)
    for _ in range(1000):
        log.seek(0)
        for line in log:
            if "listening on " in line:
                return p, line.split("listening on ")[1].split()[0]
        if p.poll() is not None:
            break
        time.sleep(0.005)
    p.kill()
    raise RuntimeError("primary did not start: " + open(data + ".log").read())


def stop(p):
    if p.poll() is None:
        p.terminate()
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def http(url, path, body=None):
    req = urllib.request.Request(url + path, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def value(v):
    if isinstance(v, dict):
        if v.get("type") == "integer":
            return int(v["value"])
        return v.get("value")
    return v


def pipeline(url, stmts):
    """Runs stmts on one stream; returns the rows of each; raises on the
    first failed statement."""
    reqs = [{"type": "execute", "stmt": {"sql": s}} for s in stmts] + [{"type": "close"}]
    status, out = http(url, "/v2/pipeline", json.dumps({"requests": reqs}).encode())
    if status != 200:
        raise RuntimeError("pipeline: HTTP %d %s" % (status, out[:300]))
    res = json.loads(out)["results"]
    rows = []
    for s, r in zip(stmts, res):
        if r["type"] != "ok":
            raise RuntimeError("%s: %s" % (s[:80], json.dumps(r.get("error"))[:300]))
        rows.append([[value(v) for v in row] for row in r["response"]["result"]["rows"]])
    return rows


def sql(url, text):
    return pipeline(url, [text])[0]


# ---------------------------------------------------------------- frames

class Frame:
    __slots__ = ("pgno", "commit", "tail", "page")

    def __init__(self, pgno, commit, tail, page):
        self.pgno, self.commit, self.tail, self.page = pgno, commit, tail, bytearray(page)

    def copy(self):
        return Frame(self.pgno, self.commit, self.tail, self.page)


def parse_frames(body):
    out = []
    for i in range(len(body) // FRAME):
        b = body[i * FRAME:(i + 1) * FRAME]
        pgno, commit = struct.unpack(">II", b[:8])
        out.append(Frame(pgno, commit, b[8:24], b[24:]))
    return out


def encode(frames):
    return b"".join(struct.pack(">II", f.pgno & 0xFFFFFFFF, f.commit & 0xFFFFFFFF) + f.tail + bytes(f.page)
                    for f in frames)


def split_txns(frames):
    txns, cur = [], []
    for f in frames:
        cur.append(f)
        if f.commit:
            txns.append(cur)
            cur = []
    return txns


def apply(img, frames):
    img = list(img)
    for f in frames:
        while len(img) < f.pgno:
            img.append(bytes(U))
        img[f.pgno - 1] = bytes(f.page)
        if f.commit:
            del img[f.commit:]
            while len(img) < f.commit:
                img.append(bytes(U))
    return img


# ---------------------------------------------------------------- pages

def u16(b, o):
    return (b[o] << 8) | b[o + 1]


def u32(b, o):
    return struct.unpack(">I", bytes(b[o:o + 4]))[0]


def put32(b, o, v):
    b[o:o + 4] = struct.pack(">I", v & 0xFFFFFFFF)


def varint(b, o):
    v = 0
    for i in range(8):
        c = b[o + i]
        v = (v << 7) | (c & 0x7F)
        if c < 0x80:
            return v, o + i + 1
    return (v << 8) | b[o + 8], o + 9


def hdr(pgno):
    return 100 if pgno == 1 else 0


def local_size(P, table_leaf):
    X = U - 35 if table_leaf else ((U - 12) * 64 // 255) - 23
    if P <= X:
        return P
    M = ((U - 12) * 32 // 255) - 23
    K = M + ((P - M) % (U - 4))
    return K if K <= X else M


def cells(page, pgno):
    """The cells of a b-tree page: dicts with off, payload (offset), P,
    local, ovfl (offset of the overflow pointer or None), child (offset of
    the child pointer or None)."""
    h = hdr(pgno)
    t = page[h]
    n = u16(page, h + 3)
    hl = 12 if t in (2, 5) else 8
    out = []
    for i in range(n):
        p = u16(page, h + hl + 2 * i)
        c = {"off": p, "ptr": h + hl + 2 * i, "child": None, "ovfl": None, "payload": None, "P": 0, "local": 0}
        o = p
        if t in (2, 5):
            c["child"] = o
            o += 4
        if t == 5:
            c["rowid"], o = varint(page, o)
        else:
            P, o = varint(page, o)
            if t == 13:
                c["rowid"], o = varint(page, o)
            L = local_size(P, t == 13)
            c.update(payload=o, P=P, local=L)
            if L < P:
                c["ovfl"] = o + L
        out.append(c)
    return out


def record(buf):
    """Serial types and body offsets of a record's columns."""
    hlen, o = varint(buf, 0)
    types = []
    while o < hlen:
        st, o = varint(buf, o)
        types.append(st)
    cols, off = [], hlen
    for st in types:
        n = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8, 7: 8, 8: 0, 9: 0}.get(st, (st - 12) // 2 if st >= 12 else 0)
        cols.append((st, off, n))
        off += n
    return cols


def decode(buf, st, off, n):
    if 1 <= st <= 6:
        return int.from_bytes(buf[off:off + n], "big", signed=True)
    if st in (8, 9):
        return st - 8
    if st >= 13 and st % 2:
        return bytes(buf[off:off + n]).decode("utf-8", "replace")
    return bytes(buf[off:off + n])


class Layout:
    """Roles of the pages of a database image."""

    def __init__(self, img):
        self.img = img
        self.size = len(img)
        self.role = {}      # pgno -> ("btree", type, tree) | ("overflow", tree) | ("trunk",) | ("free",) | ("ptrmap",)
        self.schema = []    # (name, type, tbl, rootpage, sql)
        p1 = img[0]
        self.autovac = u32(p1, 52) != 0
        if self.autovac:
            p = 2
            while p <= self.size:
                self.role[p] = ("ptrmap",)
                p += U // 5 + 1
        self.walk(1, "sqlite_schema")
        for row in self.schema:
            if row[3] and row[3] > 1:
                self.walk(row[3], row[1])
        t = u32(p1, 32)
        seen = 0
        while t and t <= self.size and seen < 1000:
            self.role[t] = ("trunk",)
            pg = img[t - 1]
            for i in range(min(u32(pg, 4), (U - 8) // 4)):
                self.role[u32(pg, 8 + 4 * i)] = ("free",)
            t = u32(pg, 0)
            seen += 1

    def walk(self, root, tree):
        stack = [root]
        while stack:
            pg = stack.pop()
            page = self.img[pg - 1]
            t = page[hdr(pg)]
            self.role[pg] = ("btree", t, tree)
            for c in cells(page, pg):
                if c["child"] is not None:
                    stack.append(u32(page, c["child"]))
                if c["ovfl"] is not None:
                    n = (c["P"] - c["local"] + U - 5) // (U - 4)
                    o = u32(page, c["ovfl"])
                    for _ in range(n):
                        if not o:
                            break
                        self.role[o] = ("overflow", tree)
                        o = u32(self.img[o - 1], 0)
                if tree == "sqlite_schema" and t == 13 and c["ovfl"] is None:
                    buf = page[c["payload"]:c["payload"] + c["P"]]
                    cols = record(buf)
                    v = [decode(buf, *col) for col in cols]
                    if len(v) == 5:
                        self.schema.append((v[0], v[1], v[2], v[3], v[4]))
            if t in (2, 5):
                stack.append(u32(page, hdr(pg) + 8))

    def pages(self, pred):
        return sorted(p for p, r in self.role.items() if pred(r))


# ---------------------------------------------------------------- mutations

class Push:
    """A transaction's frames being mutated, with the layout it leads to."""

    def __init__(self, frames, lay, rng):
        self.frames = [f.copy() for f in frames]
        self.lay = lay
        self.rng = rng
        self.note = ""

    def frame(self, pgno):
        """The pushed frame of pgno; adds one (the page's image) before the
        commit frame when the transaction does not write it."""
        for f in reversed(self.frames):
            if f.pgno == pgno:
                return f
        f = Frame(pgno, 0, self.frames[-1].tail, self.lay.img[pgno - 1])
        self.frames.insert(self.rng.randrange(len(self.frames)), f)
        self.note += " (page %d added)" % pgno
        return f

    def pick(self, candidates):
        """A page among candidates, preferring one the transaction writes."""
        pushed = {f.pgno for f in self.frames}
        mine = [p for p in candidates if p in pushed]
        if mine and self.rng.random() < 0.7:
            return self.rng.choice(mine)
        return self.rng.choice(candidates) if candidates else None

    def other_page(self, avoid=()):
        """Another page number: mostly a page of the database with some role,
        sometimes 0 or past the end."""
        r = self.rng.random()
        if r < 0.08:
            return 0
        if r < 0.16:
            return self.lay.size + self.rng.randrange(1, 4)
        while True:
            p = self.rng.randrange(1, self.lay.size + 1)
            if p not in avoid:
                return p


def m_byte(m):
    f = m.rng.choice(m.frames)
    off = m.rng.randrange(U)
    f.page[off] ^= 1 << m.rng.randrange(8)
    m.note = "page %d offset %d" % (f.pgno, off)


def m_pgno(m):
    f = m.rng.choice(m.frames)
    old = f.pgno
    f.pgno = m.other_page(avoid=(old,)) if m.rng.random() < 0.6 else max(1, old + m.rng.choice([-2, -1, 1, 2, 5]))
    m.note = "frame of page %d -> page %d" % (old, f.pgno)


def m_size(m):
    f = m.frames[-1]
    old = f.commit
    f.commit = max(1, old + m.rng.choice([-3, -2, -1, 1, 2, 5]))
    m.note = "size %d -> %d" % (old, f.commit)


def m_commit(m):
    if len(m.frames) < 2:
        return m_size(m)
    j = m.rng.randrange(len(m.frames) - 1)
    m.frames[j].commit = m.frames[-1].commit
    m.note = "commit marker on frame %d of %d" % (j + 1, len(m.frames))


def m_zero(m):
    f = m.rng.choice(m.frames)
    f.page[:] = bytes(U)
    m.note = "page %d zeroed" % f.pgno


def m_swap(m):
    if len(m.frames) < 2:
        return m_pgno(m)
    i, j = m.rng.sample(range(len(m.frames)), 2)
    a, b = m.frames[i], m.frames[j]
    a.pgno, b.pgno = b.pgno, a.pgno
    m.note = "pages %d and %d swapped" % (a.pgno, b.pgno)


def m_dup(m):
    f = m.rng.choice(m.frames)
    g = f.copy()
    g.commit = 0
    g.pgno = m.other_page(avoid=(f.pgno, 0)) or 2
    m.frames.insert(m.rng.randrange(len(m.frames)), g)
    m.note = "page %d also pushed as page %d" % (f.pgno, g.pgno)


def m_drop(m):
    if len(m.frames) < 2:
        return m_zero(m)
    j = m.rng.randrange(len(m.frames))
    f = m.frames.pop(j)
    if f.commit:
        m.frames[-1].commit = f.commit
    m.note = "frame of page %d dropped (%d of %d)" % (f.pgno, j + 1, len(m.frames) + 1)


def indexed_tables(lay):
    """table name -> column numbers of its record that an index covers."""
    out = {}
    for typ, name, tbl, root, text in lay.schema:
        if typ == "index" and text:
            out.setdefault(tbl, set())
    # The seed's indexes are on the second column of each table.
    return {t: {1} for t in out}


def m_record(m):
    lay = m.lay
    tabs = indexed_tables(lay)
    leaves = lay.pages(lambda r: r[0] == "btree" and r[1] == 13 and r[2] in tabs)
    for _ in range(20):
        p = m.pick(leaves)
        f = m.frame(p)
        cs = [c for c in cells(f.page, p) if c["ovfl"] is None and c["P"] > 0]
        if not cs:
            continue
        c = m.rng.choice(cs)
        buf = f.page[c["payload"]:c["payload"] + c["P"]]
        cols = record(buf)
        if m.rng.random() < 0.75 and len(cols) > 1 and cols[1][2] > 0:
            st, off, n = cols[1]
            o = c["payload"] + off + m.rng.randrange(n)
            what = "indexed column"
        else:
            o = c["payload"] + m.rng.randrange(c["P"])
            what = "payload"
        old = f.page[o]
        if 0x30 <= old <= 0x7A and m.rng.random() < 0.7:
            f.page[o] = old + 1 if old < 0x7A else old - 1  # stays valid text
        else:
            f.page[o] ^= 1 << m.rng.randrange(8)
        m.note = "page %d (%s) rowid %d: %s byte at %d 0x%02x -> 0x%02x%s" % (
            p, lay.role[p][2], c.get("rowid", -1), what, o, old, f.page[o], m.note)
        return
    m_byte(m)


def m_header(m):
    lay = m.lay
    p = m.pick(lay.pages(lambda r: r[0] == "btree"))
    f = m.frame(p)
    h = hdr(p)
    t = f.page[h]
    fields = ["ncells", "freeblock", "frag"] + (["right"] if t in (2, 5) else [])
    fld = m.rng.choice(fields)
    if fld == "ncells":
        old = u16(f.page, h + 3)
        new = max(0, old + m.rng.choice([-2, -1, 1, 1, 2, 10])) if m.rng.random() < 0.8 else m.rng.randrange(0x10000)
        f.page[h + 3:h + 5] = struct.pack(">H", new & 0xFFFF)
    elif fld == "freeblock":
        old = u16(f.page, h + 1)
        content = u16(f.page, h + 5)
        r = m.rng.random()
        new = 0 if (old and r < 0.3) else (m.rng.randrange(content, U - 4) if r < 0.8 and content < U - 4 else m.rng.randrange(0x10000))
        f.page[h + 1:h + 3] = struct.pack(">H", new)
    elif fld == "frag":
        old = f.page[h + 7]
        new = (old + m.rng.choice([1, 2, 3, -1])) & 0xFF if m.rng.random() < 0.7 else m.rng.randrange(256)
        f.page[h + 7] = new
    else:
        old = u32(f.page, h + 8)
        new = m.other_page(avoid=(old,))
        put32(f.page, h + 8, new)
    m.note = "page %d (%s type %d) %s %d -> %d%s" % (p, lay.role[p][2], t, fld, old, new, m.note)


def m_child(m):
    lay = m.lay
    inner = lay.pages(lambda r: r[0] == "btree" and r[1] in (2, 5))
    if not inner:
        return m_header(m)
    p = m.pick(inner)
    f = m.frame(p)
    cs = cells(f.page, p)
    offs = [c["child"] for c in cs] + [hdr(p) + 8]
    o = m.rng.choice(offs)
    old = u32(f.page, o)
    r = m.rng.random()
    tree = lay.role[p][2]
    if r < 0.4:   # another page of the same tree
        cand = [q for q in lay.pages(lambda r: r[0] == "btree" and r[2] == tree) if q != old]
    elif r < 0.6:  # a page of another tree
        cand = lay.pages(lambda r: r[0] == "btree" and r[2] != tree)
    elif r < 0.8:  # an overflow, free or pointer-map page
        cand = lay.pages(lambda r: r[0] != "btree")
    else:
        cand = []
    new = m.rng.choice(cand) if cand else m.other_page(avoid=(old,))
    put32(f.page, o, new)
    m.note = "page %d (%s) child at %d: %d (%s) -> %d (%s)%s" % (
        p, tree, o, old, lay.role.get(old, ("?",))[0], new, lay.role.get(new, ("?",))[0:3:2], m.note)


def m_overflow(m):
    lay = m.lay
    ovfl = lay.pages(lambda r: r[0] == "overflow")
    owners = []
    for p in lay.pages(lambda r: r[0] == "btree"):
        if any(c["ovfl"] is not None for c in cells(lay.img[p - 1], p)):
            owners.append(p)
    if not owners:
        return m_byte(m)
    if ovfl and m.rng.random() < 0.35:
        p = m.pick(ovfl)
        f = m.frame(p)
        o = 0
        what = "next pointer"
    else:
        p = m.pick(owners)
        f = m.frame(p)
        c = m.rng.choice([c for c in cells(f.page, p) if c["ovfl"] is not None])
        o = c["ovfl"]
        what = "cell overflow pointer"
    old = u32(f.page, o)
    r = m.rng.random()
    if r < 0.35:
        cand = [q for q in ovfl if q != old]
    elif r < 0.55:
        cand = lay.pages(lambda r: r[0] in ("free", "trunk"))
    elif r < 0.75:
        cand = lay.pages(lambda r: r[0] == "btree")
    else:
        cand = []
    new = m.rng.choice(cand) if cand else (0 if r < 0.85 else m.other_page(avoid=(old,)))
    put32(f.page, o, new)
    m.note = "page %d %s: %d -> %d (%s)%s" % (p, what, old, new, lay.role.get(new, ("?",))[0], m.note)


def m_freelist(m):
    lay = m.lay
    trunks = lay.pages(lambda r: r[0] == "trunk")
    if trunks and m.rng.random() < 0.5:
        p = m.pick(trunks)
        f = m.frame(p)
        n = u32(f.page, 4)
        what = m.rng.choice(["next", "count", "leaf"] if n else ["next", "count"])
        if what == "next":
            o = 0
        elif what == "count":
            o = 4
        else:
            o = 8 + 4 * m.rng.randrange(n)
        old = u32(f.page, o)
        if what == "count":
            new = max(0, old + m.rng.choice([-1, 1, 2, 100])) if m.rng.random() < 0.8 else m.rng.randrange(1 << 32)
        else:
            inuse = lay.pages(lambda r: r[0] in ("btree", "overflow"))
            new = m.rng.choice(inuse) if m.rng.random() < 0.7 and inuse else m.other_page(avoid=(old,))
        put32(f.page, o, new)
        m.note = "trunk page %d %s: %d -> %d%s" % (p, what, old, new, m.note)
        return
    f = m.frame(1)
    what = m.rng.choice(["first trunk", "free count"])
    o = 32 if what == "first trunk" else 36
    old = u32(f.page, o)
    if what == "free count":
        new = max(0, old + m.rng.choice([-1, 1, 2, 50]))
    else:
        inuse = lay.pages(lambda r: r[0] in ("btree", "overflow"))
        new = m.rng.choice(inuse) if m.rng.random() < 0.6 and inuse else m.other_page(avoid=(old,))
    put32(f.page, o, new)
    m.note = "page 1 %s: %d -> %d%s" % (what, old, new, m.note)


def m_schema(m):
    lay = m.lay
    f = m.frame(1)
    rows = []
    if f.page[100] == 13:
        for c in cells(f.page, 1):
            if c["ovfl"] is None:
                buf = f.page[c["payload"]:c["payload"] + c["P"]]
                cols = record(buf)
                if len(cols) == 5:
                    rows.append((c, cols, decode(buf, *cols[1])))
    if not rows:
        return m_byte(m)
    c, cols, name = m.rng.choice(rows)
    if m.rng.random() < 0.6:
        st, off, n = cols[3]
        o = c["payload"] + off
        old = int.from_bytes(f.page[o:o + n], "big", signed=True) if n else (st - 8 if st in (8, 9) else 0)
        roots = [r[3] for r in lay.schema if r[3] and r[3] != old]
        cand = roots if m.rng.random() < 0.5 else [p for p in lay.pages(lambda r: r[0] != "btree" or True) if p != old]
        lim = (1 << (8 * n - 1)) - 1 if n else 0
        cand = [p for p in cand if p <= lim]
        if not n or not cand:
            return m_byte(m)
        new = m.rng.choice(cand)
        f.page[o:o + n] = new.to_bytes(n, "big", signed=True)
        m.note = "schema row %s rootpage %d -> %d (%s)" % (name, old, new, lay.role.get(new, ("?",))[0])
    else:
        st, off, n = cols[4]
        if n == 0:
            return m_byte(m)
        o = c["payload"] + off + m.rng.randrange(n)
        old = f.page[o]
        f.page[o] = old + 1 if 0x41 <= old < 0x7A else old ^ 0x01
        m.note = "schema row %s SQL byte %r -> %r" % (name, chr(old), chr(f.page[o]))
    if m.rng.random() < 0.5:
        put32(f.page, 40, u32(f.page, 40) + 1)
        m.note += ", schema cookie bumped"


MUTATORS = {"byte": m_byte, "pgno": m_pgno, "size": m_size, "commit": m_commit, "zero": m_zero,
            "swap": m_swap, "dup": m_dup, "drop": m_drop, "record": m_record, "header": m_header,
            "child": m_child, "overflow": m_overflow, "freelist": m_freelist, "schema": m_schema}


# ---------------------------------------------------------------- scenarios

def seed_db(path, autovac, rng):
    db = sqlite3.connect(path)
    db.execute("PRAGMA page_size=4096")
    if autovac:
        db.execute("PRAGMA auto_vacuum=FULL")
    db.executescript("""
        CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT NOT NULL, b BLOB, c TEXT);
        CREATE UNIQUE INDEX t_a ON t(a);
        CREATE TABLE u(id INTEGER PRIMARY KEY, name TEXT, note TEXT, big BLOB);
        CREATE INDEX u_name ON u(name COLLATE NOCASE);
    """)
    rows = []
    for i in range(1, 3001):
        b = rng.randbytes(5000 if i % 97 == 0 else i % 60)
        # Long keys: the UNIQUE index t_a gets three levels.
        rows.append((i, "k%07d-" % (i * 37 % 100000) + "y" * 90, b, "c%d-" % i + "x" * (i % 50)))
    db.executemany("INSERT INTO t VALUES (?,?,?,?)", rows)
    rows = []
    for i in range(1, 801):
        name = "".join(rng.choice("abcDEFghiJKL") for _ in range(8))
        rows.append((i, name, "note %d " % i * 3, rng.randbytes(9000) if i % 50 == 0 else None))
    db.executemany("INSERT INTO u VALUES (?,?,?,?)", rows)
    db.execute("CREATE TABLE junk(x)")
    db.executemany("INSERT INTO junk VALUES (?)", [(rng.randbytes(3000),) for i in range(250)])
    db.commit()
    # Free pages: a dropped table, a run of rows and every overflow row of u,
    # then some back.
    db.execute("DROP TABLE junk")
    db.execute("DELETE FROM t WHERE id BETWEEN 1000 AND 1600")
    db.execute("DELETE FROM u WHERE big IS NOT NULL")
    db.commit()
    db.executemany("INSERT INTO t(a, b, c) VALUES (?,?,?)",
                   [("r%06d" % i, rng.randbytes(40), "refill") for i in range(100)])
    db.commit()
    db.close()


def txn_sql(rng, tag):
    """One multi-statement transaction: inserts spread over the indexes
    (leaf and interior splits), overflow rows, updates and deletes."""
    s = ["BEGIN"]
    vals = []
    for i in range(400):
        big = i % 40 == 0
        blob = rng.randbytes(7000 if big else 30).hex()
        vals.append("('%s%07d-%s', X'%s', 'ins %s %d')" % (tag, rng.randrange(10 ** 7), "y" * rng.randrange(80, 100),
                                                        blob, tag, i))
    s.append("INSERT OR IGNORE INTO t(a, b, c) VALUES " + ",".join(vals))
    names = ",".join("('%s', 'n %s', %s)" % (
        "".join(rng.choice("abcDEFghiJKL") for _ in range(8)), tag,
        ("X'%s'" % rng.randbytes(6000).hex()) if i % 10 == 0 else "NULL") for i in range(150))
    s.append("INSERT INTO u(name, note, big) VALUES " + names)
    lo = rng.randrange(1, 2500)
    s.append("DELETE FROM t WHERE id BETWEEN %d AND %d" % (lo, lo + 120))
    s.append("UPDATE u SET note = note || ' upd %s' WHERE id %% 7 = %d" % (tag, rng.randrange(7)))
    s.append("UPDATE t SET c = upper(c) || '%s' WHERE id %% 11 = %d" % (tag, rng.randrange(11)))
    s.append("COMMIT")
    return s


class Scenario:
    def __init__(self, name, autovac, work, rng):
        self.name = name
        d = os.path.join(work, name)
        os.makedirs(d)
        self.dir = d
        seed = os.path.join(d, "seed.db")
        seed_db(seed, autovac, rng)
        t1, t2, t1b = txn_sql(rng, "A"), txn_sql(rng, "B"), txn_sql(rng, "Z")
        # The source: T1 then T2.
        src, url = start(os.path.join(d, "src"), seed)
        base = http(url, "/export/1")[1]
        pipeline(url, t1)
        pipeline(url, t2)
        head = json.loads(http(url, "/info")[1])["max_frame_no"]
        frames = parse_frames(http(url, "/sync/1/1/%d" % (head + 1))[1])
        stop(src)
        self.t1, self.t2 = split_txns(frames)
        img0 = [base[i:i + U] for i in range(0, len(base), U)]
        img1 = apply(img0, self.t1)
        self.after1 = apply(img0, self.t1)
        self.after2 = apply(img1, self.t2)
        # Pristine data directories: S0 (the seed), S1 (+ T1, pushed as is),
        # S1' (+ another transaction T1', through SQL).
        self.s0 = os.path.join(d, "s0")
        p, _ = start(self.s0, seed)
        stop(p)
        self.s1 = os.path.join(d, "s1")
        p, u = start(self.s1, seed)
        st, out = http(u, "/sync/1/1/%d?strict=1" % (len(self.t1) + 1), encode(self.t1))
        if st != 200 or json.loads(out).get("status") != "ok":
            raise RuntimeError("%s: the primary refuses the unmutated T1: %d %s" % (name, st, out[:300]))
        stop(p)
        self.s1b = os.path.join(d, "s1b")
        p, u = start(self.s1b, seed)
        pipeline(u, t1b)
        self.s1b_head = json.loads(http(u, "/info")[1])["max_frame_no"]
        stop(p)
        self.lay1, self.lay2 = Layout(self.after1), Layout(self.after2)
        desc = []
        for tag, lay, txn in (("T1", self.lay1, self.t1), ("T2", self.lay2, self.t2)):
            kinds = {}
            for r in lay.role.values():
                k = "interior" if r[0] == "btree" and r[1] in (2, 5) else r[0]
                kinds[k] = kinds.get(k, 0) + 1
            pushed = {f.pgno for f in txn}
            inner = [p for p in pushed if lay.role.get(p, ("",))[0] == "btree" and lay.role[p][1] in (2, 5)]
            desc.append("%s: %d frames (%d interior) -> %d pages (%s)" % (
                tag, len(txn), len(inner), lay.size, " ".join("%s %d" % kv for kv in sorted(kinds.items()))))
        print("scenario %s: %s" % (name, "; ".join(desc)))

    def case(self, kind, rng):
        """(pristine dir, first frame number, frames, note) for one trial."""
        if kind == "stale":
            if rng.random() < 0.5:
                return self.s0, 1, [f.copy() for f in self.t2], "T2 on the seed (no T1)"
            return self.s1b, self.s1b_head + 1, [f.copy() for f in self.t2], "T2 on seed + T1'"
        if rng.random() < 0.5:
            frames, lay, pristine, first = self.t1, self.lay1, self.s0, 1
        else:
            frames, lay, pristine, first = self.t2, self.lay2, self.s1, len(self.t1) + 1
        m = Push(frames, lay, rng)
        if kind != "none":
            MUTATORS[kind](m)
        return pristine, first, m.frames, m.note.strip()


# ---------------------------------------------------------------- verdicts

def lines(ic, n=8):
    """The first n lines of integrity_check's answer, each cut short."""
    out = []
    for x in ic:
        out += str(x).split("\n")
    more = " | ... (%d lines)" % len(out) if len(out) > n else ""
    return " | ".join(l[:160] for l in out[:n]) + more


def message(answer):
    try:
        j = json.loads(answer)
        return "%s: %s" % (j.get("code"), j.get("message") or j.get("error"))
    except Exception:
        return answer.strip()


def judge(url, data):
    """None when the database is sound and usable, else what is wrong."""
    try:
        ic = [r[0] for r in sql(url, "PRAGMA integrity_check")]
        if ic != ["ok"]:
            return "integrity_check: " + lines(ic)
        tables = [r[0] for r in sql(url, "SELECT name FROM sqlite_schema WHERE type = 'table'")]
        for t in tables:
            sql(url, 'SELECT * FROM "%s"' % t.replace('"', '""'))
        pipeline(url, ["INSERT INTO t(a, b, c) VALUES ('zz-probe', zeroblob(9000), 'probe')",
                       "INSERT INTO u(name, note) VALUES ('Probe', 'probe')"])
        ic = [r[0] for r in sql(url, "PRAGMA integrity_check")]
        if ic != ["ok"]:
            return "integrity_check after an INSERT: " + lines(ic)
    except Exception as e:
        return "not usable: %s" % str(e)[:400]
    return None


def judge_file(data):
    """integrity_check on a fresh connection to the stopped primary's file
    (a schema the primary's connections cached cannot hide anything)."""
    try:
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(data, "live.db"), uri=True)
        ic = [r[0] for r in db.execute("PRAGMA integrity_check")]
        db.close()
        if ic != ["ok"]:
            return "integrity_check (fresh connection): " + lines(ic)
    except Exception as e:
        return "fresh connection: %s" % str(e)[:300]
    return None


def judge_commits(url, first, frames, work):
    """A push with several commit frames publishes the states between them
    too (replicas pull them): integrity_check each one but the last, on an
    image rebuilt from the primary's base and log."""
    if sum(1 for f in frames if f.commit) < 2:
        return None
    head = json.loads(http(url, "/info")[1])["max_frame_no"]
    base = http(url, "/export/1")[1]
    log = parse_frames(http(url, "/sync/1/1/%d" % (head + 1))[1])
    img = [base[i:i + U] for i in range(0, len(base), U)]
    path = os.path.join(work, "state.db")
    for no, f in enumerate(log, 1):
        img = apply(img, [f])
        if f.commit and first <= no < head:
            with open(path, "wb") as out:
                out.write(b"".join(img))
            try:
                db = sqlite3.connect(path)
                ic = [r[0] for r in db.execute("PRAGMA integrity_check")]
                db.close()
            except sqlite3.Error as e:
                ic = [str(e)]
            os.unlink(path)
            if ic != ["ok"]:
                return "intermediate commit at frame %d: integrity_check: %s" % (no, lines(ic))
    return None


def trial(sc, kind, rng, work, n):
    pristine, first, frames, note = sc.case(kind, rng)
    data = os.path.join(work, "t%d" % n)
    shutil.copytree(pristine, data)
    p, url = start(data)
    try:
        return run_trial(p, url, data, kind, first, frames, note, work)
    finally:
        stop(p)
        shutil.rmtree(data, ignore_errors=True)
        try:
            os.unlink(data + ".log")
        except OSError:
            pass


def run_trial(p, url, data, kind, first, frames, note, work):
    body = encode(frames)
    status, out = http(url, "/sync/1/%d/%d?strict=1" % (first, first + len(frames)), body)
    answer = out.decode("utf-8", "replace")
    if p.poll() is not None:
        verdict, why = "CRASH", "the primary exited with %s" % p.returncode
    else:
        why = judge(url, data)
        if not why and status == 200:
            why = judge_commits(url, first, frames, work)
        if p.poll() is not None:
            verdict, why = "CRASH", "the primary exited with %s after the push (%s)" % (p.returncode, why)
        else:
            stop(p)
            fresh = judge_file(data)
            why = "%s; %s" % (why, fresh) if why and fresh else (why or fresh)
            if why:
                verdict = "CORRUPT"
            elif 400 <= status < 500:
                verdict = "FALSE-REFUSAL" if kind == "none" else "refused"
            elif status >= 500:
                verdict = "ERROR5xx"
            else:
                verdict = "sound"
    return verdict, status, answer, note, why


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    rng = random.Random(seed)
    kinds = [k for k in os.environ.get("PUSH_FUZZ_KINDS", ",".join(KINDS)).split(",") if k]
    for k in kinds:
        if k not in KINDS:
            sys.exit("unknown kind %s (kinds: %s)" % (k, " ".join(KINDS)))
    names = [s for s in os.environ.get("PUSH_FUZZ_SCENARIOS", "plain,autovac").split(",") if s]
    verbose = os.environ.get("PUSH_FUZZ_VERBOSE") == "1"
    work = tempfile.mkdtemp(prefix="replite-fuzz-")
    t0 = time.time()
    # The scenarios' databases come from a fixed seed: the same for every run.
    scenarios = [Scenario(n, n == "autovac", work, random.Random(1000 + i)) for i, n in enumerate(names)]
    counts, messages, failures = {}, {}, []
    for t in range(trials):
        kind = kinds[t % len(kinds)]
        sc = scenarios[(t // len(kinds)) % len(scenarios)]
        verdict, status, answer, note, why = trial(sc, kind, rng, work, t)
        counts.setdefault(kind, {}).setdefault(verdict, 0)
        counts[kind][verdict] += 1
        if verdict == "refused":
            msg = message(answer)
            key = "".join("#" if ch.isdigit() else ch for ch in msg)
            msgs = messages.setdefault(kind, {})
            if key not in msgs and len(msgs) < 3:
                msgs[key] = msg
        if verbose:
            print("trial %d %s/%s: %s (HTTP %d) %s" % (t, sc.name, kind, verdict, status, note))
        if verdict in FAILURES or verdict == "ERROR5xx":
            failures.append((t, sc.name, kind, verdict, status, answer, note, why))
    shutil.rmtree(work, ignore_errors=True)
    for t, scn, kind, verdict, status, answer, note, why in failures:
        print("\n%s trial %d, %s/%s: %s" % (verdict, t, scn, kind, note))
        print("  push answer: HTTP %d %s" % (status, answer[:300].strip()))
        print("  %s" % why)
    print("\nrefusal messages (first distinct ones per kind):")
    for kind in kinds:
        for m in messages.get(kind, {}).values():
            print("  %-8s %s" % (kind, m[:200]))
    print("\n%-9s %s" % ("kind", "verdicts"))
    total = {}
    for kind in kinds:
        c = counts.get(kind, {})
        print("%-9s %s" % (kind, " ".join("%s %d" % kv for kv in sorted(c.items()))))
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    print("%-9s %s" % ("total", " ".join("%s %d" % kv for kv in sorted(total.items()))))
    print("(%d trials in %.1f s)" % (trials, time.time() - t0))
    return 1 if any(total.get(f) for f in FAILURES) else 0


if __name__ == "__main__":
    sys.exit(main())
