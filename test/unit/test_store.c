/* The primary's storage: capture of SQL transactions into the frame log,
 * start-up recovery, rollover replay, and pushes. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/dbsum.h"
#include "fixture.h"
#include "store_fixture.h"
#include "server/frame_log.h"
#include "server/push_log.h"
#include "server/store.h"
#include "wal/walfmt.h"

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf;
	long n;

	ck_assert_ptr_nonnull(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	ck_assert_int_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

static void copy_file(const char *src, const char *dst)
{
	size_t n;
	uint8_t *buf = read_file(src, &n);
	FILE *fp = fopen(dst, "wb");

	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fwrite(buf, 1, n, fp), n);
	fclose(fp);
	free(buf);
}

/* base(gen) + frames [1, head] of gen, replayed into a scratch file, must be
 * byte-equal to the live database once it is fully checkpointed. */
static void assert_log_matches_live(struct fx *f, uint32_t gen)
{
	char *gen_dir, *base, *log_path, *scratch, *live;
	struct frame_log *log;
	char err[256];
	uint8_t *a, *b;
	size_t na, nb;
	int fd;

	ck_assert_int_eq(sqlite3_wal_checkpoint_v2(f->db, "main",
						   SQLITE_CHECKPOINT_TRUNCATE,
						   NULL, NULL),
			 SQLITE_OK);
	ck_assert(asprintf(&gen_dir, "%s/gen-%08u", f->data, gen) > 0);
	base = fixture_path(gen_dir, "base.db");
	log_path = fixture_path(gen_dir, "frames.log");
	scratch = fixture_path(f->dir, "replayed.db");
	live = fixture_path(f->data, "live.db");
	copy_file(base, scratch);
	ck_assert_int_eq(frame_log_open(log_path, 0, &log, err, sizeof err), 0);
	fd = open(scratch, O_RDWR);
	ck_assert_int_ge(fd, 0);
	if (frame_log_head(log) > 0)
		ck_assert_int_eq(frame_log_replay(log, frame_log_head(log), fd),
				 0);
	close(fd);
	frame_log_close(log);
	a = read_file(scratch, &na);
	b = read_file(live, &nb);
	ck_assert_uint_eq(na, nb);
	ck_assert_msg(memcmp(a, b, na) == 0,
		      "replayed log differs from the live database");
	free(a);
	free(b);
	free(gen_dir);
	free(base);
	free(log_path);
	free(scratch);
	free(live);
}

START_TEST(test_sql_commits_are_logged)
{
	struct fx f;
	uint32_t head0, head1;

	fx_init(&f, "data");
	fx_open(&f);
	ck_assert_uint_eq(store_generation(f.store), 1);
	head0 = store_head(f.store);
	fx_exec(&f, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
	head1 = store_head(f.store);
	ck_assert_uint_gt(head1, head0);
	fx_exec(&f, "INSERT INTO t(v) VALUES ('a'), ('b')");
	ck_assert_uint_gt(store_head(f.store), head1);
	/* A rolled-back transaction writes nothing to the log. */
	head1 = store_head(f.store);
	fx_exec(&f, "BEGIN; INSERT INTO t(v) VALUES ('c'); ROLLBACK");
	ck_assert_uint_eq(store_head(f.store), head1);
	assert_log_matches_live(&f, 1);
	fx_done(&f);
}
END_TEST

/* Big transactions spill pages to the WAL before commit, and overwrite
 * frames in place: the log must still hold each page's final image. */
START_TEST(test_spills_and_overwrites)
{
	struct fx f;
	int i;

	fx_init(&f, "data");
	fx_open(&f);
	fx_exec(&f, "PRAGMA cache_size=5");
	fx_exec(&f, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
	fx_exec(&f, "BEGIN");
	for (i = 0; i < 300; i++) {
		char sql[128];
		snprintf(sql, sizeof sql,
			 "INSERT INTO t(v) VALUES (randomblob(%d))",
			 100 + (i * 37) % 9000);
		fx_exec(&f, sql);
		if (i % 50 == 0)
			fx_exec(&f, "UPDATE t SET v = randomblob(200) "
				    "WHERE id % 7 = 0");
	}
	fx_exec(&f, "COMMIT");
	fx_exec(&f, "DELETE FROM t WHERE id % 2 = 0");
	fx_exec(&f, "VACUUM");
	assert_log_matches_live(&f, 1);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"),
			 150);
	fx_done(&f);
}
END_TEST

START_TEST(test_authorizer_guards_storage)
{
	struct fx f;
	const char *refused[] = {
	    "ATTACH 'other.db' AS o",
	    "VACUUM INTO 'copy.db'",
	    "PRAGMA journal_mode=DELETE",
	    "PRAGMA locking_mode=EXCLUSIVE",
	};
	size_t i;

	fx_init(&f, "data");
	fx_open(&f);
	fx_exec(&f, "CREATE TABLE t(x); INSERT INTO t VALUES (1)");
	for (i = 0; i < sizeof refused / sizeof refused[0]; i++)
		ck_assert_msg(sqlite3_exec(f.db, refused[i], NULL, NULL,
					   NULL) == SQLITE_AUTH,
			      "%s was allowed", refused[i]);
	/* Plain VACUUM attaches an unnamed temporary database: allowed. */
	fx_exec(&f, "VACUUM");
	fx_exec(&f, "PRAGMA journal_mode");
	assert_log_matches_live(&f, 1);
	fx_done(&f);
}
END_TEST

START_TEST(test_restart_keeps_everything)
{
	struct fx f;
	uint32_t head;

	fx_init(&f, "data");
	fx_open(&f);
	fx_exec(&f, "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3)");
	head = store_head(f.store);
	fx_close(&f);
	fx_open(&f);
	ck_assert_uint_eq(store_head(f.store), head);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT sum(x) FROM t"), 6);
	fx_done(&f);
}
END_TEST

/* A crash can leave the live database behind the log (its WAL lost, or an
 * old copy): start-up replays the log onto it. */
START_TEST(test_live_brought_up_to_log_head)
{
	struct fx f;
	char *live, *saved, *wal;

	fx_init(&f, "data");
	fx_open(&f);
	fx_exec(&f, "CREATE TABLE t(x); INSERT INTO t VALUES (1)");
	sqlite3_wal_checkpoint_v2(f.db, "main", SQLITE_CHECKPOINT_TRUNCATE,
				  NULL, NULL);
	live = fixture_path(f.data, "live.db");
	saved = fixture_path(f.dir, "saved.db");
	wal = fixture_path(f.data, "live.db-wal");
	copy_file(live, saved);
	fx_exec(&f, "INSERT INTO t VALUES (2); CREATE TABLE u(y);"
		    "INSERT INTO u VALUES (zeroblob(50000))");
	fx_close(&f);
	/* Roll the live database back to the older copy. */
	copy_file(saved, live);
	unlink(wal);
	fx_open(&f);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT sum(x) FROM t"), 3);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT length(y) FROM u"),
			 50000);
	fixture_assert_integrity(f.db);
	assert_log_matches_live(&f, 1);
	free(live);
	free(saved);
	free(wal);
	fx_done(&f);
}
END_TEST

START_TEST(test_rollover_replays_pages)
{
	struct fx f;
	struct store_frames fr;
	uint32_t head1;
	int i;

	fx_init(&f, "data");
	f.cfg.generation_frames = 20;
	fx_open(&f);
	fx_exec(&f, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
	for (i = 0; i < 30; i++)
		fx_exec(&f, "INSERT INTO t(v) VALUES (randomblob(3000))");
	head1 = store_head(f.store);
	ck_assert_uint_ge(head1, 20);
	store_maintain(f.store);
	ck_assert_uint_eq(store_generation(f.store), 2);
	ck_assert_uint_eq(store_head(f.store), 0);
	/* Base of generation 2 == live database now. */
	assert_log_matches_live(&f, 2);
	/* Generation 1 is complete: past its end, go to generation 2. */
	ck_assert_int_eq(store_pull(f.store, 1, head1 + 1, head1 + 10, &fr),
			 STORE_PULL_NEXT_GEN);
	ck_assert_int_eq(store_pull(f.store, 2, 1, 10, &fr),
			 STORE_PULL_CAUGHT_UP);
	ck_assert_int_eq(store_pull(f.store, 7, 1, 10, &fr),
			 STORE_PULL_UNKNOWN_GEN);
	fx_exec(&f, "UPDATE t SET v = randomblob(10) WHERE id < 5");
	ck_assert_uint_gt(store_head(f.store), 0);
	assert_log_matches_live(&f, 2);
	/* And after a restart, generation 2 stays current. */
	fx_close(&f);
	fx_open(&f);
	ck_assert_uint_eq(store_generation(f.store), 2);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 30);
	fx_done(&f);
}
END_TEST

static json_t *push_mode(struct store *s, uint32_t gen, uint32_t start,
			 uint32_t end, const char *baton, unsigned flags,
			 const uint8_t *body, size_t len, int *status)
{
	struct http_reply r = {0};
	json_t *j;

	struct store_push_opts o = {.flags = flags};

	store_push(s, gen, start, end, baton, &o, body, len, &r);
	*status = r.status;
	j = json_loadb(r.body, r.len, 0, NULL);
	http_reply_free(&r);
	ck_assert_ptr_nonnull(j);
	return j;
}

static json_t *push(struct store *s, uint32_t gen, uint32_t start, uint32_t end,
		    const char *baton, const uint8_t *body, size_t len,
		    int *status)
{
	return push_mode(s, gen, start, end, baton, 0, body, len, status);
}

static uint8_t *pull_all(struct store *s, uint32_t gen, uint32_t *n)
{
	struct store_frames fr;
	uint8_t *buf;

	ck_assert_int_eq(store_pull(s, gen, 1, 100000, &fr), STORE_PULL_FRAMES);
	buf = malloc(fr.len);
	ck_assert_int_eq(pread(fr.fd, buf, fr.len, (off_t)fr.offset),
			 (ssize_t)fr.len);
	close(fr.fd);
	*n = fr.end - 1;
	return buf;
}

/* Two primaries seeded from the same file; frames of A pushed to B make B
 * equal to A. */
START_TEST(test_push_applies_frames)
{
	struct fx a, b;
	char *seed;
	sqlite3 *db;
	uint8_t *frames;
	uint32_t n, m;
	int status;
	json_t *j;

	fx_init(&a, "a");
	fx_init(&b, "b");
	seed = fixture_path(a.dir, "seed.db");
	ck_assert_int_eq(sqlite3_open(seed, &db), SQLITE_OK);
	fixture_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (42)");
	sqlite3_close(db);
	a.cfg.import_path = seed;
	b.cfg.import_path = seed;
	fx_open(&a);
	fx_open(&b);
	/* One transaction of several pages: only its last frame commits. */
	fx_exec(&a, "BEGIN; INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);"
		    "CREATE TABLE u(y); COMMIT");
	frames = pull_all(a.store, 1, &n);
	ck_assert_uint_ge(n, 2);

	/* Wrong body size, page 0, bad page 1: refused, nothing applied. */
	j = push(b.store, 1, 1, n + 1, NULL, frames, n * WALFMT_FRAME_SIZE - 1,
		 &status);
	ck_assert_int_eq(status, 400);
	json_decref(j);

	/* Push in two requests: the first has no commit frame, so a baton
	 * carries the sequence. */
	j = push(b.store, 1, 1, 2, NULL, frames, WALFMT_FRAME_SIZE, &status);
	ck_assert_int_eq(status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "max_frame_no")),
			 1);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 1);
	{
		char *baton =
		    strdup(json_string_value(json_object_get(j, "baton")));
		json_decref(j);
		j = push(b.store, 1, 2, n + 1, baton,
			 frames + WALFMT_FRAME_SIZE,
			 (n - 1) * WALFMT_FRAME_SIZE, &status);
		free(baton);
	}
	ck_assert_int_eq(status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "max_frame_no")),
			 n);
	json_decref(j);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 3);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT sum(x) FROM t"), 45);
	fixture_assert_integrity(b.db);
	assert_log_matches_live(&b, 1);

	/* The same push again (a lost reply) is acknowledged, not applied. */
	j = push(b.store, 1, 1, n + 1, NULL, frames, n * WALFMT_FRAME_SIZE,
		 &status);
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
	json_decref(j);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 3);
	/* A strict push (a replite replica) of the same frames is another
	 * writer's transaction that lost: conflict, never "ok". */
	j = push_mode(b.store, 1, 1, n + 1, NULL, 1, frames,
		      n * WALFMT_FRAME_SIZE, &status);
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")),
			 "conflict");
	json_decref(j);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 3);

	/* A push again that starts with the logged frames and goes on with
	 * new ones (a lost answer, then more local writes): the logged part
	 * is acknowledged and the rest applied; a strict one conflicts. */
	fx_exec(&a, "INSERT INTO t VALUES (7)");
	free(frames);
	frames = pull_all(a.store, 1, &m);
	ck_assert_uint_gt(m, n);
	j = push_mode(b.store, 1, 1, m + 1, NULL, 1, frames,
		      m * WALFMT_FRAME_SIZE, &status);
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")),
			 "conflict");
	json_decref(j);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 3);
	j = push(b.store, 1, 1, m + 1, NULL, frames, m * WALFMT_FRAME_SIZE,
		 &status);
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "max_frame_no")),
			 m);
	json_decref(j);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 4);
	fixture_assert_integrity(b.db);
	assert_log_matches_live(&b, 1);

	/* Frames that do not follow the head: conflict. */
	fx_exec(&a, "INSERT INTO t VALUES (3)");
	free(frames);
	frames = pull_all(a.store, 1, &n);
	fx_exec(&b, "INSERT INTO t VALUES (99)");
	j = push(b.store, 1, n, n + 1, NULL,
		 frames + (n - 1) * WALFMT_FRAME_SIZE, WALFMT_FRAME_SIZE,
		 &status);
	ck_assert_int_eq(status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")),
			 "conflict");
	json_decref(j);
	ck_assert_int_eq(
	    fixture_query_int(b.db, "SELECT count(*) FROM t WHERE x = 3"), 0);

	free(frames);
	free(seed);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

START_TEST(test_push_rejects_bad_frames)
{
	struct fx f;
	uint8_t frame[WALFMT_FRAME_SIZE];
	int status;
	json_t *j;

	fx_init(&f, "data");
	fx_open(&f);
	memset(frame, 0, sizeof frame);
	walfmt_put32(frame + 4, 1);
	j = push(f.store, 1, 1, 2, NULL, frame, sizeof frame, &status);
	ck_assert_int_eq(status, 400); /* page number 0 */
	json_decref(j);
	walfmt_put32(frame, 1);
	j = push(f.store, 1, 1, 2, NULL, frame, sizeof frame, &status);
	ck_assert_int_eq(status, 400); /* page 1 without a SQLite header */
	json_decref(j);
	j = push(f.store, 1, 1, 2, "no-such-baton", frame, sizeof frame,
		 &status);
	ck_assert_int_eq(status, 400);
	json_decref(j);
	j = push(f.store, 1, 3, 2, NULL, frame, sizeof frame, &status);
	ck_assert_int_eq(status, 400);
	json_decref(j);
	ck_assert_int_eq(
	    fixture_query_int(f.db, "SELECT count(*) FROM sqlite_schema"), 0);
	fx_done(&f);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* push validation */

/* Primaries a and b seeded from the same file; a's transactions (SQL, run
 * in order) are pulled into *frames (*n frames). */
static void push_pair(struct fx *a, struct fx *b, const char *const *txns,
		      size_t n_txns, uint8_t **frames, uint32_t *n)
{
	size_t i;

	fx_open_pair(a, b, "CREATE TABLE t(x); INSERT INTO t VALUES (42)");
	for (i = 0; i < n_txns; i++)
		fx_exec(a, txns[i]);
	*frames = pull_all(a->store, 1, n);
}

static uint8_t *frame_at(uint8_t *frames, uint32_t frame_no)
{
	return frames + (size_t)(frame_no - 1) * WALFMT_FRAME_SIZE;
}

/* Frame number (1-based) of the first frame of page pgno, or 0. */
static uint32_t find_page(uint8_t *frames, uint32_t n, uint32_t pgno)
{
	uint32_t i;

	for (i = 1; i <= n; i++) {
		if (walfmt_get32(frame_at(frames, i)) == pgno)
			return i;
	}
	return 0;
}

static const char *str_of(json_t *j, const char *key)
{
	const char *v = json_string_value(json_object_get(j, key));

	return v ? v : "(none)";
}

static json_int_t int_of(json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);

	ck_assert_msg(json_is_integer(v), "no integer %s", key);
	return json_integer_value(v);
}

/* A push that must be refused with HTTP status and error code. */
static void assert_push_refused(struct fx *f, uint32_t gen, uint32_t start,
				uint32_t end, const char *baton,
				const uint8_t *body, size_t len, int status,
				const char *code)
{
	int got;
	json_t *j = push(f->store, gen, start, end, baton, body, len, &got);

	ck_assert_msg(got == status, "push [%u, %u): status %d, want %d (%s)",
		      start, end, got, status, str_of(j, "message"));
	if (code != NULL)
		ck_assert_str_eq(str_of(j, "code"), code);
	ck_assert_msg(strlen(str_of(j, "message")) > 0, "no message");
	json_decref(j);
}

/* A push that must succeed: status "ok", max_frame_no == end - 1.  Returns
 * the baton (malloc'd) or NULL. */
static char *assert_push_ok(struct fx *f, uint32_t start, uint32_t end,
			    const char *baton, const uint8_t *body)
{
	int status;
	json_t *j = push(f->store, 1, start, end, baton, body,
			 (size_t)(end - start) * WALFMT_FRAME_SIZE, &status);
	json_t *b;
	char *out = NULL;

	ck_assert_msg(status == 200, "push [%u, %u): %d %s", start, end, status,
		      str_of(j, "message"));
	ck_assert_str_eq(str_of(j, "status"), "ok");
	ck_assert_int_eq(int_of(j, "generation"), 1);
	ck_assert_int_eq(int_of(j, "max_frame_no"), end - 1);
	b = json_object_get(j, "baton");
	ck_assert_msg(b != NULL, "the reply has no baton key");
	if (json_is_string(b))
		out = strdup(json_string_value(b));
	else
		ck_assert(json_is_null(b));
	json_decref(j);
	return out;
}

/* b still holds only the seed. */
static void assert_untouched(struct fx *b)
{
	struct store_frames fr;

	ck_assert_uint_eq(store_head(b->store), 0);
	ck_assert_int_eq(fixture_query_int(b->db, "SELECT count(*) FROM t"), 1);
	ck_assert_int_eq(
	    fixture_query_int(b->db, "SELECT count(*) FROM sqlite_schema"), 1);
	ck_assert_int_eq(store_pull(b->store, 1, 1, 10, &fr),
			 STORE_PULL_CAUGHT_UP);
	fixture_assert_integrity(b->db);
}

static const char *const three_page_txn[] = {
    "BEGIN; INSERT INTO t VALUES (1); CREATE TABLE u(y);"
    "INSERT INTO u VALUES (zeroblob(6000)); COMMIT",
};

START_TEST(test_push_refuses_malformed)
{
	struct fx a, b;
	uint8_t *frames, *copy;
	uint32_t n, p1;
	size_t len;

	push_pair(&a, &b, three_page_txn, 1, &frames, &n);
	ck_assert_uint_ge(n, 3);
	len = (size_t)n * WALFMT_FRAME_SIZE;
	copy = malloc(len + WALFMT_FRAME_SIZE);

	/* The body disagrees with the range: one frame more or less, a
	 * partial frame, nothing. */
	assert_push_refused(&b, 1, 1, n, NULL, frames, len, 400,
			    "INVALID_FRAMES");
	assert_push_refused(&b, 1, 1, n + 2, NULL, frames, len, 400,
			    "INVALID_FRAMES");
	assert_push_refused(&b, 1, 1, n + 1, NULL, frames, len + 1, 400,
			    "INVALID_FRAMES");
	assert_push_refused(&b, 1, 1, n + 1, NULL, frames, len - 4096, 400,
			    "INVALID_FRAMES");
	assert_push_refused(&b, 1, 1, 2, NULL, frames, 0, 400,
			    "INVALID_FRAMES");
	/* Empty or reversed ranges. */
	assert_push_refused(&b, 1, 0, n, NULL, frames,
			    (size_t)n * WALFMT_FRAME_SIZE, 400, NULL);
	assert_push_refused(&b, 1, 2, 2, NULL, frames, 0, 400, NULL);

	/* Page number 0 anywhere (here: the commit frame). */
	memcpy(copy, frames, len);
	walfmt_put32(frame_at(copy, n), 0);
	assert_push_refused(&b, 1, 1, n + 1, NULL, copy, len, 400,
			    "INVALID_FRAMES");
	/* The pending-byte page, which SQLite never writes. */
	memcpy(copy, frames, len);
	walfmt_put32(frame_at(copy, 2), 0x40000000u / 4096 + 1);
	assert_push_refused(&b, 1, 1, n + 1, NULL, copy, len, 400,
			    "INVALID_FRAMES");
	/* A database size no SQLite file can have. */
	memcpy(copy, frames, len);
	walfmt_put32(frame_at(copy, n) + 4, 0xffffffffu);
	assert_push_refused(&b, 1, 1, n + 1, NULL, copy, len, 400,
			    "INVALID_FRAMES");
	/* Page 1 not a SQLite header, or for another page size. */
	p1 = find_page(frames, n, 1);
	ck_assert_uint_gt(p1, 0);
	memcpy(copy, frames, len);
	memcpy(frame_at(copy, p1) + WALFMT_FRAME_HDR_SIZE, "SQLite format 4",
	       15);
	assert_push_refused(&b, 1, 1, n + 1, NULL, copy, len, 400,
			    "INVALID_FRAMES");
	memcpy(copy, frames, len);
	frame_at(copy, p1)[WALFMT_FRAME_HDR_SIZE + 16] = 0x04; /* 1024 */
	frame_at(copy, p1)[WALFMT_FRAME_HDR_SIZE + 17] = 0x00;
	assert_push_refused(&b, 1, 1, n + 1, NULL, copy, len, 400,
			    "INVALID_FRAMES");
	assert_untouched(&b);

	/* A bad frame in a later request of a baton push: the frames
	 * buffered before it are not applied either. */
	{
		char *baton = assert_push_ok(&b, 1, 2, NULL, frames);
		ck_assert_ptr_nonnull(baton);
		memcpy(copy, frames, len);
		walfmt_put32(frame_at(copy, n), 0);
		assert_push_refused(&b, 1, 2, n + 1, baton, frame_at(copy, 2),
				    (size_t)(n - 1) * WALFMT_FRAME_SIZE, 400,
				    "INVALID_FRAMES");
		assert_untouched(&b);
		free(baton);
	}

	/* The unaltered frames are accepted: the refusals were about the
	 * alterations. */
	free(assert_push_ok(&b, 1, n + 1, NULL, frames));
	ck_assert_uint_eq(store_head(b.store), n);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 2);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT length(y) FROM u"),
			 6000);
	fixture_assert_integrity(b.db);
	assert_log_matches_live(&b, 1);
	free(copy);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

/* Frames that do not start right after the head, or of another generation,
 * change nothing; the reply gives the head so that the client can resume. */
START_TEST(test_push_not_at_head)
{
	struct fx a, b;
	uint8_t *frames, *copy;
	uint32_t n;
	size_t len;
	int status;
	json_t *j;

	push_pair(&a, &b, three_page_txn, 1, &frames, &n);
	len = (size_t)n * WALFMT_FRAME_SIZE;

	/* A gap: frames 3.. when the head is 0. */
	j = push(b.store, 1, 3, n + 3, NULL, frames, len, &status);
	ck_assert_int_eq(status, 200);
	ck_assert_msg(strcmp(str_of(j, "status"), "conflict") == 0 ||
			  strcmp(str_of(j, "status"), "ok") == 0,
		      "status %s", str_of(j, "status"));
	ck_assert_int_eq(int_of(j, "max_frame_no"), 0);
	ck_assert_int_eq(int_of(j, "generation"), 1);
	json_decref(j);
	assert_untouched(&b);

	/* Another generation. */
	j = push(b.store, 2, 1, n + 1, NULL, frames, len, &status);
	ck_assert_int_eq(status, 200);
	ck_assert_str_eq(str_of(j, "status"), "conflict");
	ck_assert_int_eq(int_of(j, "generation"), 1);
	ck_assert_int_eq(int_of(j, "max_frame_no"), 0);
	json_decref(j);
	assert_untouched(&b);

	free(assert_push_ok(&b, 1, n + 1, NULL, frames));
	ck_assert_uint_eq(store_head(b.store), n);

	/* The same range again with other content: not a retry of what
	 * was applied, so a conflict, and nothing changes. */
	copy = malloc(len);
	memcpy(copy, frames, len);
	frame_at(copy, n)[WALFMT_FRAME_SIZE - 1] ^= 0x55;
	j = push(b.store, 1, 1, n + 1, NULL, copy, len, &status);
	ck_assert_int_eq(status, 200);
	ck_assert_str_eq(str_of(j, "status"), "conflict");
	ck_assert_int_eq(int_of(j, "max_frame_no"), n);
	json_decref(j);
	ck_assert_uint_eq(store_head(b.store), n);
	assert_log_matches_live(&b, 1);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 2);
	free(copy);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

static json_t *push_txn(struct store *s, uint32_t start, uint32_t end,
			const char *baton, const uint8_t *txn,
			const uint8_t *body, size_t len)
{
	struct http_reply r = {0};
	json_t *j;

	struct store_push_opts o = {.flags = STORE_PUSH_STRICT, .txn = txn};

	store_push(s, 1, start, end, baton, &o, body, len, &r);
	ck_assert_int_eq(r.status, 200);
	j = json_loadb(r.body, r.len, 0, NULL);
	http_reply_free(&r);
	ck_assert_ptr_nonnull(j);
	return j;
}

/* A transaction pushed with an id (?txn=, what replite replicas send) and
 * sent again, whole or its last request only, after a lost answer or with
 * the primary restarted in between: answered as committed, applied once.
 * Another id with the same bytes is another writer's: a conflict.  A
 * record whose frames never became durable does not count. */
START_TEST(test_push_txn_sent_again)
{
	static const uint8_t x[FRAMES_TXN_ID_SIZE] = {1, 2, 3};
	static const uint8_t y[FRAMES_TXN_ID_SIZE] = {9, 9, 9};
	static const uint8_t z[FRAMES_TXN_ID_SIZE] = {7};
	struct push_log_record rec = {.first = 0};
	struct fx a, b;
	uint8_t *frames;
	uint32_t n;
	size_t len;
	char *path, err[256];
	struct push_log *pl;
	json_t *j;
	int round;

	push_pair(&a, &b, three_page_txn, 1, &frames, &n);
	len = (size_t)n * WALFMT_FRAME_SIZE;
	ck_assert_uint_ge(n, 2);
	j = push_txn(b.store, 1, n + 1, NULL, x, frames, len);
	ck_assert_str_eq(str_of(j, "status"), "ok");
	ck_assert_int_eq(int_of(j, "max_frame_no"), n);
	json_decref(j);
	for (round = 0; round < 2; round++) {
		/* Whole, then its last request alone (a baton that is gone). */
		j = push_txn(b.store, 1, n + 1, NULL, x, frames, len);
		ck_assert_str_eq(str_of(j, "status"), "ok");
		ck_assert_int_eq(int_of(j, "max_frame_no"), n);
		ck_assert_int_eq(int_of(j, "generation"), 1);
		json_decref(j);
		j = push_txn(b.store, n, n + 1, "gone", x,
			     frames + (size_t)(n - 1) * WALFMT_FRAME_SIZE,
			     WALFMT_FRAME_SIZE);
		ck_assert_str_eq(str_of(j, "status"), "ok");
		ck_assert_int_eq(int_of(j, "max_frame_no"), n);
		json_decref(j);
		ck_assert_uint_eq(store_head(b.store), n);
		ck_assert_int_eq(
		    fixture_query_int(b.db, "SELECT count(*) FROM t"), 2);
		/* The same bytes under another id: another writer's. */
		j = push_txn(b.store, 1, n + 1, NULL, y, frames, len);
		ck_assert_str_eq(str_of(j, "status"), "conflict");
		json_decref(j);
		ck_assert_uint_eq(store_head(b.store), n);
		/* The record is durable: after a restart too. */
		fx_close(&b);
		fx_open(&b);
	}
	assert_log_matches_live(&b, 1);

	/* A record naming frames n+1.. that never reached the log (a crash
	 * between the record and the frames): z is not committed, so its
	 * push (frames n+1..) is applied, once. */
	fx_exec(&a, "INSERT INTO t VALUES (5)");
	free(frames);
	{
		struct store_frames fr;
		uint32_t m;
		ck_assert_int_eq(store_pull(a.store, 1, n + 1, 100000, &fr),
				 STORE_PULL_FRAMES);
		m = fr.end - (n + 1);
		frames = malloc(fr.len);
		ck_assert_int_eq(pread(fr.fd, frames, fr.len, (off_t)fr.offset),
				 (ssize_t)fr.len);
		close(fr.fd);
		fx_close(&b);
		path = fixture_path(b.data, "gen-00000001/pushes.log");
		ck_assert_int_eq(push_log_open(path, &pl, err, sizeof err), 0);
		memcpy(rec.id, z, sizeof z);
		rec.first = n + 1;
		rec.last = n + m;
		rec.digest = 12345;
		ck_assert_int_eq(push_log_append(pl, &rec), 0);
		push_log_close(pl);
		free(path);
		fx_open(&b);
		j = push_txn(b.store, n + 1, n + m + 1, NULL, z, frames,
			     (size_t)m * WALFMT_FRAME_SIZE);
		ck_assert_str_eq(str_of(j, "status"), "ok");
		json_decref(j);
		ck_assert_int_eq(
		    fixture_query_int(b.db, "SELECT count(*) FROM t"), 3);
		j = push_txn(b.store, n + 1, n + m + 1, NULL, z, frames,
			     (size_t)m * WALFMT_FRAME_SIZE);
		ck_assert_str_eq(str_of(j, "status"), "ok");
		json_decref(j);
		ck_assert_int_eq(
		    fixture_query_int(b.db, "SELECT count(*) FROM t"), 3);
	}
	fixture_assert_integrity(b.db);
	assert_log_matches_live(&b, 1);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

/* The checksum /info reports equals the whole-database checksum of the
 * live database, computed from scratch, after every kind of change. */
static void assert_checksum_of_live(struct fx *f)
{
	char *live = fixture_path(f->data, "live.db");
	json_t *info = store_info(f->store);
	const char *text = json_string_value(json_object_get(info, "checksum"));
	uint64_t reported;
	uint8_t *image;
	size_t len;

	ck_assert_ptr_nonnull(text);
	ck_assert_int_eq(dbsum_parse(text, &reported), 0);
	ck_assert_int_eq(sqlite3_wal_checkpoint_v2(f->db, "main",
						   SQLITE_CHECKPOINT_TRUNCATE,
						   NULL, NULL),
			 SQLITE_OK);
	image = read_file(live, &len);
	ck_assert_msg(dbsum_image(image, len, WALFMT_PAGE_SIZE) == reported,
		      "the checksum reported (%s) is not the live database's",
		      text);
	free(image);
	free(live);
	json_decref(info);
}

START_TEST(test_checksum_tracks_database)
{
	struct fx f;
	int i;

	fx_init(&f, "data");
	f.cfg.generation_frames = 40;
	fx_open(&f);
	assert_checksum_of_live(&f);
	fx_exec(&f, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
	assert_checksum_of_live(&f);
	/* Growth (overflow pages), in-place updates, shrinking (VACUUM). */
	for (i = 0; i < 10; i++)
		fx_exec(&f, "INSERT INTO t(v) VALUES (randomblob(9000))");
	assert_checksum_of_live(&f);
	fx_exec(&f, "UPDATE t SET v = randomblob(100) WHERE id % 2");
	assert_checksum_of_live(&f);
	fx_exec(&f, "DELETE FROM t WHERE id > 3; VACUUM");
	assert_checksum_of_live(&f);
	/* A rollover, then a restart (replayed from the log). */
	for (i = 0; i < 10; i++)
		fx_exec(&f, "INSERT INTO t(v) VALUES (randomblob(5000))");
	store_maintain(f.store);
	ck_assert_uint_eq(store_generation(f.store), 2);
	fx_exec(&f, "UPDATE t SET v = randomblob(10) WHERE id = 1");
	assert_checksum_of_live(&f);
	fx_close(&f);
	fx_open(&f);
	assert_checksum_of_live(&f);
	fx_done(&f);
}
END_TEST

/* Pushes that state the checksums they were built on and lead to: taken
 * when both match, refused (400, nothing applied) when either does not. */
START_TEST(test_push_checksums)
{
	struct fx a, b;
	struct store_push_opts o = {.flags = STORE_PUSH_STRICT};
	struct http_reply r = {0};
	uint8_t *frames;
	uint32_t n;
	size_t len;
	json_t *info;
	uint64_t base, result;

	push_pair(&a, &b, three_page_txn, 1, &frames, &n);
	len = (size_t)n * WALFMT_FRAME_SIZE;
	info = store_info(b.store);
	ck_assert_int_eq(
	    dbsum_parse(json_string_value(json_object_get(info, "checksum")),
			&base),
	    0);
	json_decref(info);
	info = store_info(a.store);
	ck_assert_int_eq(
	    dbsum_parse(json_string_value(json_object_get(info, "checksum")),
			&result),
	    0);
	json_decref(info);

	/* A wrong base, then a wrong result: refused, nothing applied. */
	o.has_base = 1;
	o.base = base ^ 1;
	o.has_result = 1;
	o.result = result;
	store_push(b.store, 1, 1, n + 1, NULL, &o, frames, len, &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert_ptr_nonnull(strstr(r.body, "differs from the primary"));
	http_reply_free(&r);
	o.base = base;
	o.result = result ^ 1;
	store_push(b.store, 1, 1, n + 1, NULL, &o, frames, len, &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert_ptr_nonnull(strstr(r.body, "foreign write"));
	http_reply_free(&r);
	assert_untouched(&b);
	assert_checksum_of_live(&b);

	/* Both right: applied, and b's checksum is a's. */
	o.result = result;
	store_push(b.store, 1, 1, n + 1, NULL, &o, frames, len, &r);
	ck_assert_int_eq(r.status, 200);
	http_reply_free(&r);
	ck_assert_uint_eq(store_head(b.store), n);
	assert_checksum_of_live(&b);
	info = store_info(b.store);
	ck_assert_int_eq(
	    dbsum_parse(json_string_value(json_object_get(info, "checksum")),
			&base),
	    0);
	json_decref(info);
	ck_assert(base == result);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

/* Page pgno of f's live database as it stands (checkpointed first). */
static void live_page(struct fx *f, uint32_t pgno, uint8_t *out)
{
	char *live = fixture_path(f->data, "live.db");
	uint8_t *img;
	size_t len;

	ck_assert_int_eq(sqlite3_wal_checkpoint_v2(f->db, "main",
						   SQLITE_CHECKPOINT_TRUNCATE,
						   NULL, NULL),
			 SQLITE_OK);
	img = read_file(live, &len);
	ck_assert_uint_ge(len, (size_t)pgno * WALFMT_PAGE_SIZE);
	memcpy(out, img + (size_t)(pgno - 1) * WALFMT_PAGE_SIZE,
	       WALFMT_PAGE_SIZE);
	free(img);
	free(live);
}

/* Pushes that would damage the primary are refused (400, naming the page)
 * and change nothing (issue 9, finding 3): a table's root page zeroed, an
 * index page with a cell pointer out of its page, a leaf whose header lies
 * about its cells.  A push that frees a page (DROP TABLE) is taken. */
START_TEST(test_push_refuses_damaging_pages)
{
	struct fx a, b;
	struct store_push_opts o = {.flags = STORE_PUSH_STRICT};
	struct http_reply r = {0};
	uint8_t frame[WALFMT_FRAME_SIZE], *frames;
	uint32_t n, head, db_size, i;
	static const struct {
		size_t off;
		uint8_t value;
		const char *needle;
	} damage[] = {
	    {0, 0, "page 2 is not a b-tree page"}, /* zeroed below */
	    {3, 0x40, "page 2"},                   /* 16k cells */
	    {7, 61, "fragmented"}, /* the header's fragment count */
	};

	static const char *const one_row[] = {"INSERT INTO t VALUES (1)"};

	push_pair(&a, &b, one_row, 1, &frames, &n);
	free(frames);
	head = store_head(b.store);
	db_size = (uint32_t)fixture_query_int(b.db, "PRAGMA page_count");
	for (i = 0; i < sizeof damage / sizeof damage[0]; i++) {
		uint8_t *page = frame + WALFMT_FRAME_HDR_SIZE;
		memset(frame, 0, sizeof frame);
		walfmt_put32(frame, 2); /* the root page of t */
		walfmt_put32(frame + 4, db_size);
		if (i > 0) {
			/* The real page 2, then one byte changed. */
			live_page(&b, 2, page);
			page[damage[i].off] = damage[i].value;
		}
		store_push(b.store, 1, head + 1, head + 2, NULL, &o, frame,
			   sizeof frame, &r);
		ck_assert_int_eq(r.status, 400);
		ck_assert_msg(strstr(r.body, damage[i].needle) != NULL,
			      "damage %u: %s", i, r.body);
		ck_assert_ptr_nonnull(strstr(r.body, "PUSH_CORRUPT"));
		http_reply_free(&r);
		ck_assert_uint_eq(store_head(b.store), head);
		fixture_assert_integrity(b.db);
	}
	/* A commit that changes the database size without page 1. */
	memset(frame, 0, sizeof frame);
	live_page(&b, 2, frame + WALFMT_FRAME_HDR_SIZE);
	walfmt_put32(frame, 2);
	walfmt_put32(frame + 4, db_size + 3);
	store_push(b.store, 1, head + 1, head + 2, NULL, &o, frame,
		   sizeof frame, &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert_ptr_nonnull(strstr(r.body, "without writing page 1"));
	http_reply_free(&r);
	ck_assert_uint_eq(store_head(b.store), head);
	/* A transaction that grows the table (new leaves under a new
	 * interior root, an overflow chain), with one of its new pages
	 * damaged: a new leaf zeroed, an overflow page ending the chain
	 * early.  Pages the live database never had are checked through the
	 * pushed pages that lead to them. */
	fx_exec(&a, "INSERT INTO t SELECT randomblob(700) FROM "
		    "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
		    "SELECT i + 1 FROM n WHERE i < 40) SELECT i FROM n);"
		    "INSERT INTO t VALUES (randomblob(14000))");
	frames = pull_all(a.store, 1, &n);
	for (i = 0; i < 2; i++) {
		uint8_t *copy = malloc((size_t)n * WALFMT_FRAME_SIZE);
		uint32_t f, target = 0;
		memcpy(copy, frames, (size_t)n * WALFMT_FRAME_SIZE);
		for (f = n; f > 1 && target == 0; f--) {
			uint8_t *pg = frame_at(copy, f) + WALFMT_FRAME_HDR_SIZE;
			uint32_t pgno = walfmt_get32(frame_at(copy, f));
			if (pgno > db_size &&
			    (i == 0 ? pg[0] == 13
				    : pg[0] == 0 && walfmt_get32(pg) != 0))
				target = f;
		}
		ck_assert_uint_ne(target, 0);
		if (i == 0)
			memset(frame_at(copy, target) + WALFMT_FRAME_HDR_SIZE,
			       0, WALFMT_PAGE_SIZE);
		else
			walfmt_put32(
			    frame_at(copy, target) + WALFMT_FRAME_HDR_SIZE, 0);
		store_push(b.store, 1, 1, n + 1, NULL, &o, copy,
			   (size_t)n * WALFMT_FRAME_SIZE, &r);
		ck_assert_msg(
		    r.status == 400 &&
			strstr(r.body, i == 0 ? "is not a b-tree page"
					      : "ends its chain") != NULL,
		    "damaged new page %u: %d %s", i, r.status, r.body);
		http_reply_free(&r);
		ck_assert_uint_eq(store_head(b.store), head);
		fixture_assert_integrity(b.db);
		free(copy);
	}
	free(frames);
	/* Still writable, and a real push that frees pages is taken. */
	fx_exec(&a, "CREATE TABLE big(x); INSERT INTO big VALUES "
		    "(randomblob(50000)); DROP TABLE big;"
		    "INSERT INTO t VALUES (7)");
	frames = pull_all(a.store, 1, &n);
	free(assert_push_ok(&b, 1, n + 1, NULL, frames));
	fixture_assert_integrity(b.db);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"),
			 fixture_query_int(a.db, "SELECT count(*) FROM t"));
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

/* A transaction pushed one frame per request: nothing is visible (live
 * database, log head, pulls) until its commit frame arrives, then all of
 * it at once. */
START_TEST(test_push_baton_atomic)
{
	struct fx a, b;
	uint8_t *frames;
	uint32_t n, i;
	char *baton = NULL;
	struct store_frames fr;

	push_pair(&a, &b, three_page_txn, 1, &frames, &n);
	ck_assert_uint_ge(n, 3);
	for (i = 1; i < n; i++) {
		char *next;
		ck_assert_uint_eq(walfmt_get32(frame_at(frames, i) + 4), 0);
		next = assert_push_ok(&b, i, i + 1, baton, frame_at(frames, i));
		ck_assert_msg(next != NULL, "no baton after frame %u", i);
		free(baton);
		baton = next;
		assert_untouched(&b);
		if (i == 1) {
			/* Out of order continuations are refused and do
			 * not spoil the pending push. */
			assert_push_refused(
			    &b, 1, 3, 4, baton, frame_at(frames, 3),
			    WALFMT_FRAME_SIZE, 400, "PUSH_OUT_OF_ORDER");
			assert_push_refused(
			    &b, 2, 2, 3, baton, frame_at(frames, 2),
			    WALFMT_FRAME_SIZE, 400, "PUSH_OUT_OF_ORDER");
			assert_untouched(&b);
		}
	}
	ck_assert_uint_ne(walfmt_get32(frame_at(frames, n) + 4), 0);
	{
		char *last =
		    assert_push_ok(&b, n, n + 1, baton, frame_at(frames, n));
		ck_assert_ptr_null(last);
	}
	ck_assert_uint_eq(store_head(b.store), n);
	ck_assert_int_eq(store_pull(b.store, 1, 1, 100, &fr),
			 STORE_PULL_FRAMES);
	close(fr.fd);
	ck_assert_uint_eq(fr.end, n + 1);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 2);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT length(y) FROM u"),
			 6000);
	fixture_assert_integrity(b.db);
	assert_log_matches_live(&b, 1);
	free(baton);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

/* One request ending with the start of the next transaction: the first
 * transaction is applied at once, the rest waits for its commit. */
START_TEST(test_push_commit_mid_request)
{
	static const char *const txns[] = {
	    "INSERT INTO t VALUES (1)",
	    "BEGIN; CREATE TABLE u(y); INSERT INTO u VALUES (zeroblob(9000));"
	    "COMMIT",
	};
	struct fx a, b;
	uint8_t *frames;
	uint32_t n, k1;
	char *baton;

	push_pair(&a, &b, txns, 2, &frames, &n);
	for (k1 = 1; k1 <= n; k1++) {
		if (walfmt_get32(frame_at(frames, k1) + 4) != 0)
			break;
	}
	ck_assert_uint_lt(k1 + 1, n); /* the second has >= 2 frames */
	baton = assert_push_ok(&b, 1, k1 + 2, NULL, frames);
	ck_assert_ptr_nonnull(baton);
	ck_assert_uint_eq(store_head(b.store), k1);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 2);
	ck_assert_int_eq(
	    fixture_query_int(b.db, "SELECT count(*) FROM sqlite_schema"), 1);
	free(
	    assert_push_ok(&b, k1 + 2, n + 1, baton, frame_at(frames, k1 + 2)));
	ck_assert_uint_eq(store_head(b.store), n);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT length(y) FROM u"),
			 9000);
	fixture_assert_integrity(b.db);
	assert_log_matches_live(&b, 1);
	free(baton);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

/* A push started at head + 1 whose commit arrives after an SQL commit
 * moved the head: a conflict, and none of its frames are applied. */
START_TEST(test_push_pending_conflict_at_commit)
{
	struct fx a, b;
	uint8_t *frames;
	uint32_t n, head;
	char *baton;
	int status;
	json_t *j;

	push_pair(&a, &b, three_page_txn, 1, &frames, &n);
	baton = assert_push_ok(&b, 1, 2, NULL, frames);
	ck_assert_ptr_nonnull(baton);
	fx_exec(&b, "INSERT INTO t VALUES (7)");
	head = store_head(b.store);
	ck_assert_uint_gt(head, 0);
	j = push(b.store, 1, 2, n + 1, baton, frame_at(frames, 2),
		 (size_t)(n - 1) * WALFMT_FRAME_SIZE, &status);
	ck_assert_int_eq(status, 200);
	ck_assert_str_eq(str_of(j, "status"), "conflict");
	ck_assert_int_eq(int_of(j, "max_frame_no"), head);
	json_decref(j);
	ck_assert_uint_eq(store_head(b.store), head);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 2);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT sum(x) FROM t"), 49);
	ck_assert_int_eq(
	    fixture_query_int(b.db, "SELECT count(*) FROM sqlite_schema"), 1);
	fixture_assert_integrity(b.db);
	assert_log_matches_live(&b, 1);
	free(baton);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

/* A push of generation gen, frames [start, end) taken from A's frames
 * from A's frame number from on, with flags: the reply's status, generation
 * and max_frame_no must be the ones given. */
static void assert_push_reply(struct fx *b, uint32_t gen, uint32_t start,
			      uint32_t end, const char *baton, unsigned flags,
			      uint8_t *frames, uint32_t from,
			      const char *status, uint32_t want_gen,
			      uint32_t want_head)
{
	int http;
	json_t *j = push_mode(b->store, gen, start, end, baton, flags,
			      frame_at(frames, from),
			      (size_t)(end - start) * WALFMT_FRAME_SIZE, &http);

	ck_assert_int_eq(http, 200);
	ck_assert_msg(strcmp(str_of(j, "status"), status) == 0,
		      "push of generation %u [%u, %u): %s, expected %s", gen,
		      start, end, str_of(j, "status"), status);
	ck_assert_int_eq(int_of(j, "generation"), want_gen);
	ck_assert_int_eq(int_of(j, "max_frame_no"), want_head);
	json_decref(j);
}

/* The first frames of A's transactions: starts[i] is where transaction i
 * (0-based) begins, starts[n_txns] = n + 1. */
static void txn_starts(uint8_t *frames, uint32_t n, uint32_t *starts,
		       size_t n_txns)
{
	size_t k = 0;
	uint32_t i;

	starts[0] = 1;
	for (i = 1; i <= n; i++) {
		if (walfmt_get32(frame_at(frames, i) + 4) != 0) {
			ck_assert_uint_lt(k, n_txns);
			starts[++k] = i + 1;
		}
	}
	ck_assert_uint_eq(k, n_txns);
}

/* A push for a generation that ended right where the push starts, with
 * nothing logged since (the rollover came between the client's look at the
 * head and its push): with ?rollover=1 it becomes frames 1... of the next
 * generation, also when the rollover came between two requests of one
 * push, after a restart, and once the ended generation is past retention;
 * without the flag, not right after the end, after something else was
 * logged, or when more frames follow the commit, it is a conflict. */
START_TEST(test_push_after_rollover)
{
	static const char *const txns[] = {
	    "BEGIN; INSERT INTO t VALUES (1); CREATE TABLE u(y);"
	    "INSERT INTO u VALUES (zeroblob(6000)); COMMIT",
	    "BEGIN; INSERT INTO t VALUES (2); CREATE TABLE v(z);"
	    "INSERT INTO v VALUES (zeroblob(6000)); COMMIT",
	    "INSERT INTO t VALUES (3)",
	    "INSERT INTO t VALUES (4)",
	    "INSERT INTO u VALUES (zeroblob(9000))",
	};
	const unsigned both = STORE_PUSH_STRICT | STORE_PUSH_ROLLOVER;
	struct fx a, b;
	uint8_t *frames;
	uint32_t n, s[6], len2, len3, len4;
	struct store_frames fr;
	char *baton;
	int status;
	json_t *j;

	push_pair(&a, &b, txns, 5, &frames, &n);
	txn_starts(frames, n, s, 5);
	len2 = s[2] - s[1];
	len3 = s[3] - s[2];
	len4 = s[4] - s[3];
	ck_assert_uint_ge(len2, 2);
	fx_close(&b);
	b.cfg.generation_frames = 1;
	fx_open(&b);

	/* Generation 1: the first transaction, and the first request of the
	 * second; then the rollover; then the rest of the second, which
	 * becomes generation 2's frames 1..len2. */
	free(assert_push_ok(&b, 1, s[1], NULL, frames));
	j = push_mode(b.store, 1, s[1], s[1] + 1, NULL, both,
		      frame_at(frames, s[1]), WALFMT_FRAME_SIZE, &status);
	ck_assert_int_eq(status, 200);
	ck_assert_str_eq(str_of(j, "status"), "ok");
	ck_assert_int_eq(int_of(j, "max_frame_no"), s[1]);
	baton = strdup(str_of(j, "baton"));
	json_decref(j);
	store_maintain(b.store);
	ck_assert_uint_eq(store_generation(b.store), 2);
	ck_assert_uint_eq(store_head(b.store), 0);
	assert_push_reply(&b, 1, s[1] + 1, s[2], baton, both, frames, s[1] + 1,
			  "ok", 2, len2);
	free(baton);
	ck_assert_uint_eq(store_head(b.store), len2);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 3);
	fixture_assert_integrity(b.db);
	assert_log_matches_live(&b, 2);

	/* Generation 2 ends at frame len2; after a restart, and once
	 * retention dropped generations 1 and 2, that is still known. */
	store_maintain(b.store);
	ck_assert_uint_eq(store_generation(b.store), 3);
	fx_close(&b);
	b.cfg.retention_ms = 0;
	fx_open(&b);
	usleep(2000);
	store_maintain(b.store);
	ck_assert_uint_eq(store_generation(b.store), 3);
	ck_assert_int_eq(store_pull(b.store, 2, 1, 10, &fr),
			 STORE_PULL_UNKNOWN_GEN);
	/* Without the flag (a libSQL client), not right after the end, for
	 * an older generation, or with frames after the commit: conflicts,
	 * and nothing changes. */
	assert_push_reply(&b, 2, len2 + 1, len2 + 1 + len3, NULL,
			  STORE_PUSH_STRICT, frames, s[2], "conflict", 3, 0);
	assert_push_reply(&b, 2, len2 + 1, len2 + 1 + len3, NULL, 0, frames,
			  s[2], "conflict", 3, 0);
	assert_push_reply(&b, 2, len2 + 2, len2 + 2 + len3, NULL, both, frames,
			  s[2], "conflict", 3, 0);
	assert_push_reply(&b, 1, s[1], s[1] + len3, NULL, both, frames, s[2],
			  "conflict", 3, 0);
	assert_push_reply(&b, 2, len2 + 1, len2 + 2 + len3 + len4, NULL, both,
			  frames, s[2], "conflict", 3, 0);
	ck_assert_uint_eq(store_head(b.store), 0);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 3);

	/* The third transaction alone: generation 3's frames 1..len3.  The
	 * same push again (its answer lost) finds generation 3 no longer
	 * empty: a conflict, not a second copy. */
	assert_push_reply(&b, 2, len2 + 1, len2 + 1 + len3, NULL, both, frames,
			  s[2], "ok", 3, len3);
	assert_push_reply(&b, 2, len2 + 1, len2 + 1 + len3, NULL, both, frames,
			  s[2], "conflict", 3, len3);
	assert_push_reply(&b, 2, len2 + 1, len2 + 1 + len3, NULL,
			  STORE_PUSH_ROLLOVER, frames, s[2], "conflict", 3,
			  len3);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 4);
	fixture_assert_integrity(b.db);
	assert_log_matches_live(&b, 3);

	/* Generation 3 ended, and an SQL commit reached generation 4 first:
	 * the fourth transaction is built on a state that is gone. */
	store_maintain(b.store);
	ck_assert_uint_eq(store_generation(b.store), 4);
	fx_exec(&b, "INSERT INTO t VALUES (99)");
	assert_push_reply(&b, 3, len3 + 1, len3 + 1 + len4, NULL, both, frames,
			  s[3], "conflict", 4, store_head(b.store));
	ck_assert_int_eq(
	    fixture_query_int(b.db, "SELECT count(*) FROM t WHERE x = 4"), 0);
	fixture_assert_integrity(b.db);
	assert_log_matches_live(&b, 4);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

/* A push left without its commit frame expires; its frames never
 * appear, and a fresh push of the whole transaction works. */
START_TEST(test_push_baton_expires)
{
	struct fx a, b;
	uint8_t *frames;
	uint32_t n;
	char *baton;
	int status;
	json_t *j;

	push_pair(&a, &b, three_page_txn, 1, &frames, &n);
	b.cfg.push_expiry_ms = 10;
	fx_close(&b);
	fx_open(&b);
	baton = assert_push_ok(&b, 1, 2, NULL, frames);
	ck_assert_ptr_nonnull(baton);
	usleep(50 * 1000);
	store_maintain(b.store);
	j = push(b.store, 1, 2, n + 1, baton, frame_at(frames, 2),
		 (size_t)(n - 1) * WALFMT_FRAME_SIZE, &status);
	/* Refused (400), or "ok" with the head so the client restarts: but
	 * never applied, never acknowledged up to n. */
	ck_assert_msg(!(status == 200 &&
			strcmp(str_of(j, "status"), "ok") == 0 &&
			int_of(j, "max_frame_no") == n),
		      "the continuation of an expired push was acknowledged");
	json_decref(j);
	assert_untouched(&b);
	free(assert_push_ok(&b, 1, n + 1, NULL, frames));
	ck_assert_uint_eq(store_head(b.store), n);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 2);
	free(baton);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

START_TEST(test_push_too_large)
{
	struct fx a, b;
	uint8_t *frames;
	uint32_t n;
	char *baton;

	push_pair(&a, &b, three_page_txn, 1, &frames, &n);
	ck_assert_uint_ge(n, 3);
	b.cfg.max_push_bytes = 2 * WALFMT_FRAME_SIZE;
	fx_close(&b);
	fx_open(&b);
	assert_push_refused(&b, 1, 1, n + 1, NULL, frames,
			    (size_t)n * WALFMT_FRAME_SIZE, 413,
			    "PUSH_TOO_LARGE");
	assert_untouched(&b);
	/* Buffered across requests counts too. */
	baton = assert_push_ok(&b, 1, 3, NULL, frames);
	ck_assert_ptr_nonnull(baton);
	assert_push_refused(&b, 1, 3, n + 1, baton, frame_at(frames, 3),
			    (size_t)(n - 2) * WALFMT_FRAME_SIZE, 413,
			    "PUSH_TOO_LARGE");
	assert_untouched(&b);
	free(baton);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

/* Page 1 headers that SQLite refuses: once applied, every write to the
 * live database would fail (SQLITE_NOTADB / SQLITE_CORRUPT) and the store
 * might not reopen, so the push is refused with nothing applied. */
static void assert_page1_refused(int offset, uint8_t value)
{
	struct fx a, b;
	uint8_t *frames;
	uint32_t n, p1;
	int status;
	json_t *j;

	push_pair(&a, &b, three_page_txn, 1, &frames, &n);
	p1 = find_page(frames, n, 1);
	ck_assert_uint_gt(p1, 0);
	ck_assert_uint_ne(frame_at(frames, p1)[WALFMT_FRAME_HDR_SIZE + offset],
			  value);
	frame_at(frames, p1)[WALFMT_FRAME_HDR_SIZE + offset] = value;
	j = push(b.store, 1, 1, n + 1, NULL, frames,
		 (size_t)n * WALFMT_FRAME_SIZE, &status);
	json_decref(j);
	ck_assert_msg(status == 400,
		      "page 1 with byte %d = %u was accepted (status %d)",
		      offset, value, status);
	assert_untouched(&b);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}

START_TEST(test_push_page1_bad_payload_fraction)
{
	assert_page1_refused(21, 0); /* must be 64 */
}
END_TEST

START_TEST(test_push_page1_reserved_bytes)
{
	assert_page1_refused(20, 32); /* reserved bytes per page */
}
END_TEST

START_TEST(test_push_page1_bad_versions)
{
	assert_page1_refused(18, 3); /* 1 = rollback journal, 2 = WAL */
}
END_TEST

START_TEST(test_import_converts_page_size)
{
	struct fx f;
	char *seed;
	sqlite3 *db;

	fx_init(&f, "data");
	seed = fixture_path(f.dir, "seed.db");
	ck_assert_int_eq(sqlite3_open(seed, &db), SQLITE_OK);
	fixture_exec(db, "PRAGMA page_size=1024; CREATE TABLE t(x);"
			 "INSERT INTO t VALUES ('imported')");
	sqlite3_close(db);
	f.cfg.import_path = seed;
	fx_open(&f);
	ck_assert_int_eq(fixture_query_int(f.db, "PRAGMA page_size"), 4096);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 1);
	fx_close(&f);
	/* Importing into an existing data directory is refused. */
	{
		char err[512] = "";
		struct store *s = NULL;
		ck_assert_int_ne(store_open(&f.cfg, &s, err, sizeof err), 0);
		ck_assert_ptr_nonnull(strstr(err, "already holds a database"));
	}
	free(seed);
	fx_done(&f);
}
END_TEST

START_TEST(test_import_refuses_garbage)
{
	struct fx f;
	char *seed;
	char err[512] = "";
	FILE *fp;

	fx_init(&f, "data");
	seed = fixture_path(f.dir, "garbage.db");
	fp = fopen(seed, "wb");
	fputs(
	    "this is not a database, just some text that is long enough "
	    "to look like a header of a file.................................",
	    fp);
	fclose(fp);
	f.cfg.import_path = seed;
	ck_assert_int_ne(store_open(&f.cfg, &f.store, err, sizeof err), 0);
	ck_assert_ptr_nonnull(strstr(err, "garbage.db"));
	free(seed);
	fx_done(&f);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_sql_commits_are_logged);
	tcase_add_test(tc, test_spills_and_overwrites);
	tcase_add_test(tc, test_authorizer_guards_storage);
	tcase_add_test(tc, test_restart_keeps_everything);
	tcase_add_test(tc, test_live_brought_up_to_log_head);
	tcase_add_test(tc, test_rollover_replays_pages);
	tcase_add_test(tc, test_push_applies_frames);
	tcase_add_test(tc, test_push_rejects_bad_frames);
	tcase_add_test(tc, test_push_refuses_malformed);
	tcase_add_test(tc, test_push_not_at_head);
	tcase_add_test(tc, test_push_baton_atomic);
	tcase_add_test(tc, test_push_commit_mid_request);
	tcase_add_test(tc, test_push_pending_conflict_at_commit);
	tcase_add_test(tc, test_push_baton_expires);
	tcase_add_test(tc, test_push_after_rollover);
	tcase_add_test(tc, test_push_too_large);
	tcase_add_test(tc, test_import_converts_page_size);
	tcase_add_test(tc, test_import_refuses_garbage);
	tcase_add_test(tc, test_push_page1_bad_payload_fraction);
	tcase_add_test(tc, test_push_page1_reserved_bytes);
	tcase_add_test(tc, test_push_page1_bad_versions);
	tcase_add_test(tc, test_push_txn_sent_again);
	tcase_add_test(tc, test_checksum_tracks_database);
	tcase_add_test(tc, test_push_checksums);
	tcase_add_test(tc, test_push_refuses_damaging_pages);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(store_suite());
}
