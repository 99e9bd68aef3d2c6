/* One fdatasync per pushed transaction (push_log.h, store_push.c): a push
 * with an id is durable through its push-log entry, which carries its
 * frames; the frame log gets them unsynced and start-up copies them back.
 *
 * A power loss is simulated by crash images taken while the store is open
 * (after an answer, or from store_config.push_stage at each step of logging
 * a push): the data directory is copied without live.db-shm, and each file
 * is cut where its last fdatasync left it (store_synced_marks), or at a
 * length in between for a write that was under way.  Whatever the image,
 * a push that was answered is there, and a push sent again with its id is
 * answered "ok", applied once; the same bytes under another id are a
 * conflict once it is committed. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "fixture.h"
#include "store_fixture.h"
#include "server/frame_log.h"
#include "server/push_log.h"
#include "server/store.h"
#include "wal/walfmt.h"

#define N_TXNS 3

/* Primary a's transactions, each as the frames it logged. */
struct txns {
	uint8_t *frames; /* all of a's frames */
	uint32_t start[N_TXNS + 1];
	uint8_t id[N_TXNS][FRAMES_TXN_ID_SIZE];
};

static void run(const char *cmd)
{
	ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
}

/* Primaries a and b seeded from the same file; a runs N_TXNS transactions,
 * each of several pages, whose frames t holds. */
static void setup(struct fx *a, struct fx *b, struct txns *t)
{
	struct store_frames fr;
	char sql[256];
	int i;

	fx_open_pair(a, b, "CREATE TABLE t(x, pad)");
	t->start[0] = 1;
	for (i = 0; i < N_TXNS; i++) {
		snprintf(sql, sizeof sql,
			 "INSERT INTO t VALUES (%d, zeroblob(5000))", i + 1);
		fx_exec(a, sql);
		t->start[i + 1] = store_head(a->store) + 1;
		memset(t->id[i], 0, FRAMES_TXN_ID_SIZE);
		t->id[i][0] = (uint8_t)(i + 1);
		t->id[i][1] = 0xa5;
	}
	ck_assert_int_eq(store_pull(a->store, 1, 1, 100000, &fr),
			 STORE_PULL_FRAMES);
	t->frames = malloc(fr.len);
	ck_assert_int_eq(pread(fr.fd, t->frames, fr.len, (off_t)fr.offset),
			 (ssize_t)fr.len);
	close(fr.fd);
}

/* Push transaction i of t to s, under id (t's own when NULL); the answer's
 * status, and its max_frame_no in *head. */
static const char *push_txn(struct store *s, const struct txns *t, int i,
			    const uint8_t *id, uint32_t *head)
{
	struct store_push_opts o = {.flags = STORE_PUSH_STRICT,
				    .txn = id ? id : t->id[i]};
	uint32_t first = t->start[i], end = t->start[i + 1];
	struct http_reply r = {0};
	const char *status;
	json_t *j;

	store_push(s, 1, first, end, NULL, &o,
		   t->frames + (size_t)(first - 1) * WALFMT_FRAME_SIZE,
		   (size_t)(end - first) * WALFMT_FRAME_SIZE, &r);
	ck_assert_msg(r.status == 200, "push: %d %.*s", r.status, (int)r.len,
		      r.body);
	j = json_loadb(r.body, r.len, 0, NULL);
	http_reply_free(&r);
	ck_assert_ptr_nonnull(j);
	*head =
	    (uint32_t)json_integer_value(json_object_get(j, "max_frame_no"));
	status =
	    strcmp(json_string_value(json_object_get(j, "status")), "ok") == 0
		? "ok"
		: "conflict";
	json_decref(j);
	return status;
}

static int64_t rows(struct fx *f)
{
	return fixture_query_int(f->db, "SELECT count(*) FROM t");
}

/* A crash image of f's data directory at f->dir/image: the frame log cut
 * after frame log_keep (UINT32_MAX: as it is), the push log cut at
 * pushes_keep bytes (UINT64_MAX: as it is). */
static void crash_image(struct fx *f, uint32_t log_keep, uint64_t pushes_keep)
{
	char *image = fixture_path(f->dir, "image");
	char cmd[4096], *log, *pushes, *times;

	snprintf(cmd, sizeof cmd,
		 "rm -rf '%s' && cp -a '%s' '%s' && rm -f '%s/live.db-shm'",
		 image, f->data, image, image);
	run(cmd);
	log = fixture_path(image, "gen-00000001/frames.log");
	pushes = fixture_path(image, "gen-00000001/pushes.log");
	if (log_keep != UINT32_MAX)
		ck_assert_int_eq(
		    truncate(log, (off_t)frame_log_offset(log_keep + 1)), 0);
	if (pushes_keep != UINT64_MAX)
		ck_assert_int_eq(truncate(pushes, (off_t)pushes_keep), 0);
	/* The commit times as synced: a push's time survives in its entry. */
	times = fixture_path(image, "gen-00000001/times.log");
	ck_assert_int_eq(
	    truncate(times, (off_t)store_times_synced_size(f->store)), 0);
	free(times);
	free(log);
	free(pushes);
	free(image);
}

/* The store on f's crash image. */
static void open_image(struct fx *f, struct fx *g)
{
	fx_init_in(g, f->dir, "image");
	fx_open(g);
}

static void close_image(struct fx *g)
{
	fx_close(g);
	free(g->data);
	free(g->dir);
}

/* On a store that holds t's transactions 0..i, each exactly once: sending
 * them again with their ids is answered "ok" at their positions, and
 * changes nothing; the same bytes under another id are a conflict. */
static void assert_committed_once(struct fx *g, const struct txns *t, int i)
{
	static const uint8_t other[FRAMES_TXN_ID_SIZE] = {0x42};
	uint32_t head;
	int k;

	ck_assert_uint_eq(store_head(g->store), t->start[i + 1] - 1);
	ck_assert_int_eq(rows(g), i + 1);
	for (k = 0; k <= i; k++) {
		ck_assert_str_eq(push_txn(g->store, t, k, NULL, &head), "ok");
		ck_assert_uint_eq(head, t->start[k + 1] - 1);
	}
	ck_assert_str_eq(push_txn(g->store, t, i, other, &head), "conflict");
	ck_assert_int_eq(rows(g), i + 1);
	ck_assert_uint_eq(store_head(g->store), t->start[i + 1] - 1);
	fixture_assert_integrity(g->db);
}

/* g (a crash image of b) dates t's transactions 0..i as b did: a push's
 * time is durable with its entry, not left to the time log's next sync
 * (start-up would date it at the restart). */
static void assert_same_times(struct fx *b, struct fx *g, const struct txns *t,
			      int i)
{
	struct store_point pb, pg;
	char err[256];
	int k;

	for (k = 0; k <= i; k++) {
		ck_assert_int_eq(store_locate_frame(b->store, 1,
						    t->start[k + 1] - 1, &pb,
						    err, sizeof err),
				 0);
		ck_assert_msg(store_locate_frame(g->store, 1,
						 t->start[k + 1] - 1, &pg, err,
						 sizeof err) == 0,
			      "%s", err);
		ck_assert_int_eq(pb.unix_ms, pg.unix_ms);
	}
}

/* An answered push survives a power loss that takes everything not synced:
 * the frame log then lacks it (it was never synced there), and start-up
 * copies it back from the push log.  Fails without that copy. */
START_TEST(test_answered_push_survives_power_loss)
{
	struct fx a, b, g;
	struct txns t;
	uint32_t head, log_synced;
	uint64_t pushes_synced;
	int i;

	setup(&a, &b, &t);
	for (i = 0; i < N_TXNS; i++) {
		ck_assert_str_eq(push_txn(b.store, &t, i, NULL, &head), "ok");
		ck_assert_uint_eq(head, t.start[i + 1] - 1);
		store_synced_marks(b.store, &log_synced, &pushes_synced);
		/* One fdatasync, of the push log: the frame log's is left
		 * to the next group commit or maintenance tick. */
		ck_assert_uint_lt(log_synced, head);
		crash_image(&b, log_synced, pushes_synced);
		open_image(&b, &g);
		assert_committed_once(&g, &t, i);
		assert_same_times(&b, &g, &t, i);
		close_image(&g);
	}
	/* The maintenance tick syncs the frame log and punches the push
	 * log's copies out (whole blocks only: small entries keep some). */
	store_maintain(b.store);
	store_synced_marks(b.store, &log_synced, &pushes_synced);
	ck_assert_uint_eq(log_synced, store_head(b.store));
	{
		char *pushes = fixture_path(b.data, "gen-00000001/pushes.log");
		struct stat st;
		ck_assert_int_eq(stat(pushes, &st), 0);
		ck_assert_uint_eq((uint64_t)st.st_size, pushes_synced);
		ck_assert_msg((uint64_t)st.st_blocks * 512 < pushes_synced,
			      "push log: %lld bytes allocated of %llu",
			      (long long)st.st_blocks * 512,
			      (unsigned long long)pushes_synced);
		free(pushes);
	}
	/* A clean restart after that: nothing to copy, all there. */
	fx_close(&b);
	fx_open(&b);
	assert_committed_once(&b, &t, N_TXNS - 1);
	fx_done(&a);
	free(t.frames);
	fx_done(&b);
}
END_TEST

/* Crash images taken at each step of logging transaction 1 (the second),
 * with what may have reached the disk there. */
enum variant {
	TORN_HEADER, /* RECORDED, the entry's header cut (write under way) */
	TORN_FRAMES, /* RECORDED, the entry's frames cut */
	/* RECORDED, the entry's header cut, and the frame log with all that
	 * was written to it: the push's frames must not be there yet (written
	 * before their record is durable, they could reach the disk alone:
	 * committed with no record, a push sent again would be a conflict) */
	TORN_LOG_KEPT,
	RECORD_SYNCED, /* RECORDED, as synced */
	WRITTEN_LOST,  /* WRITTEN, the frame log's unsynced frames lost */
	WRITTEN_KEPT,  /* WRITTEN, the frame log's unsynced frames kept */
	N_VARIANTS
};

struct crash_at {
	struct fx *f;
	enum variant v;
	uint64_t before; /* the push log's synced size before the entry */
	int taken;
};

static void take_image(void *arg, struct store *s, int stage)
{
	struct crash_at *c = arg;
	uint32_t log_synced;
	uint64_t pushes_synced;

	store_synced_marks(s, &log_synced, &pushes_synced);
	if (stage == STORE_PUSH_BEFORE_RECORD) {
		c->before = pushes_synced;
		return;
	}
	if (c->taken || store_head(s) == 0)
		return; /* only transaction 1 */
	if (stage == STORE_PUSH_RECORDED && c->v <= RECORD_SYNCED) {
		uint64_t keep = c->v == TORN_FRAMES     ? c->before + 64 + 5000
				: c->v == RECORD_SYNCED ? pushes_synced
							: c->before + 30;
		ck_assert_uint_gt(pushes_synced, c->before + 64 + 5000);
		crash_image(c->f,
			    c->v == TORN_LOG_KEPT ? UINT32_MAX : log_synced,
			    keep);
		c->taken = 1;
	} else if (stage == STORE_PUSH_WRITTEN && c->v > RECORD_SYNCED) {
		crash_image(c->f,
			    c->v == WRITTEN_LOST ? log_synced : UINT32_MAX,
			    pushes_synced);
		c->taken = 1;
	}
}

START_TEST(test_crash_at_each_step)
{
	struct crash_at c = {.v = (enum variant)_i};
	struct fx a, b, g;
	struct txns t;
	uint32_t head;

	setup(&a, &b, &t);
	fx_close(&b);
	c.f = &b;
	b.cfg.push_stage = take_image;
	b.cfg.push_stage_arg = &c;
	fx_open(&b);
	ck_assert_str_eq(push_txn(b.store, &t, 0, NULL, &head), "ok");
	ck_assert_str_eq(push_txn(b.store, &t, 1, NULL, &head), "ok");
	ck_assert(c.taken);
	b.cfg.push_stage = NULL;
	open_image(&b, &g);
	if (c.v <= TORN_LOG_KEPT) {
		/* Never answered and not durable: gone, and its push sent
		 * again is applied, once. */
		ck_assert_uint_eq(store_head(g.store), t.start[1] - 1);
		ck_assert_int_eq(rows(&g), 1);
		ck_assert_str_eq(push_txn(g.store, &t, 1, NULL, &head), "ok");
		ck_assert_uint_eq(head, t.start[2] - 1);
	}
	/* Durable from its entry on: there once, with its record. */
	assert_committed_once(&g, &t, 1);
	ck_assert_str_eq(push_txn(g.store, &t, 2, NULL, &head), "ok");
	assert_committed_once(&g, &t, 2);
	close_image(&g);
	fx_done(&a);
	free(t.frames);
	fx_done(&b);
}
END_TEST

/* A record an older version left past the log's head, without frames (it
 * wrote the record before the frames, and crashed in between): start-up
 * drops it.  Otherwise, once another writer's transaction with the very
 * same pages takes that range, the record's push sent again would be
 * answered "ok" though it was never applied (a lost update). */
START_TEST(test_record_past_head_dropped)
{
	static const uint8_t z[FRAMES_TXN_ID_SIZE] = {0x7a};
	static const uint8_t w[FRAMES_TXN_ID_SIZE] = {0x77};
	struct push_log_record rec = {.first = 0};
	struct fx a, b;
	struct txns t;
	struct push_log *pl;
	char *path, err[256];
	uint32_t head, n;

	setup(&a, &b, &t);
	ck_assert_str_eq(push_txn(b.store, &t, 0, NULL, &head), "ok");
	fx_close(&b);
	path = fixture_path(b.data, "gen-00000001/pushes.log");
	ck_assert_int_eq(push_log_open(path, &pl, err, sizeof err), 0);
	n = t.start[2] - t.start[1];
	memcpy(rec.id, z, sizeof z);
	rec.first = t.start[1];
	rec.last = t.start[2] - 1;
	rec.digest = push_log_digest(t.frames + (size_t)(t.start[1] - 1) *
						    WALFMT_FRAME_SIZE,
				     n, WALFMT_PAGE_SIZE);
	ck_assert_int_eq(push_log_append(pl, &rec), 0);
	push_log_close(pl);
	free(path);
	fx_open(&b);
	ck_assert_int_eq(rows(&b), 1);
	ck_assert_str_eq(push_txn(b.store, &t, 1, w, &head), "ok");
	ck_assert_int_eq(rows(&b), 2);
	ck_assert_str_eq(push_txn(b.store, &t, 1, z, &head), "conflict");
	ck_assert_int_eq(rows(&b), 2);
	fixture_assert_integrity(b.db);
	fx_done(&a);
	free(t.frames);
	fx_done(&b);
}
END_TEST

static Suite *push_durable_suite(void)
{
	Suite *s = suite_create("push_durable");
	TCase *tc = tcase_create("push_durable");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_answered_push_survives_power_loss);
	tcase_add_loop_test(tc, test_crash_at_each_step, 0, N_VARIANTS);
	tcase_add_test(tc, test_record_past_head_dropped);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(push_durable_suite());
}
