/* Helpers shared by the tests of the primary's storage (test_store.c and
 * test_store_push*.c, one theme each): files read and copied, the frame log
 * replayed against the live database, the live database's checksum, and
 * pushes from one primary to another with their replies checked. */
#include "store_test_helpers.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "base/dbsum.h"
#include "fixture.h"
#include "server/frame_log.h"
#include "wal/walfmt.h"

/* ---------------------------------------------------------------------- */
/* files, the log and the checksum */

void sth_copy_file(const char *src, const char *dst)
{
	size_t n;
	uint8_t *buf = fixture_read_file(src, &n);
	FILE *fp = fopen(dst, "wb");

	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fwrite(buf, 1, n, fp), n);
	fclose(fp);
	free(buf);
}

void sth_assert_log_matches_live(struct fx *f, uint32_t gen)
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
	sth_copy_file(base, scratch);
	ck_assert_int_eq(frame_log_open(log_path, 0, &log, err, sizeof err), 0);
	fd = open(scratch, O_RDWR);
	ck_assert_int_ge(fd, 0);
	if (frame_log_head(log) > 0)
		ck_assert_int_eq(frame_log_replay(log, frame_log_head(log), fd),
				 0);
	close(fd);
	frame_log_close(log);
	a = fixture_read_file(scratch, &na);
	b = fixture_read_file(live, &nb);
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

void sth_assert_checksum_of_live(struct fx *f)
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
	image = fixture_read_file(live, &len);
	ck_assert_msg(dbsum_image(image, len, WALFMT_PAGE_SIZE) == reported,
		      "the checksum reported (%s) is not the live database's",
		      text);
	free(image);
	free(live);
	json_decref(info);
}

/* ---------------------------------------------------------------------- */
/* pushes */

json_t *sth_push_mode(struct store *s, uint32_t gen, uint32_t start,
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

json_t *sth_push(struct store *s, uint32_t gen, uint32_t start, uint32_t end,
		 const char *baton, const uint8_t *body, size_t len,
		 int *status)
{
	return sth_push_mode(s, gen, start, end, baton, 0, body, len, status);
}

uint8_t *sth_pull_all(struct store *s, uint32_t gen, uint32_t *n)
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

void sth_push_pair(struct fx *a, struct fx *b, const char *const *txns,
		   size_t n_txns, uint8_t **frames, uint32_t *n)
{
	size_t i;

	fx_open_pair(a, b, "CREATE TABLE t(x); INSERT INTO t VALUES (42)");
	for (i = 0; i < n_txns; i++)
		fx_exec(a, txns[i]);
	*frames = sth_pull_all(a->store, 1, n);
}

uint8_t *sth_frame_at(uint8_t *frames, uint32_t frame_no)
{
	return frames + (size_t)(frame_no - 1) * WALFMT_FRAME_SIZE;
}

const char *sth_str_of(json_t *j, const char *key)
{
	const char *v = json_string_value(json_object_get(j, key));

	return v ? v : "(none)";
}

json_int_t sth_int_of(json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);

	ck_assert_msg(json_is_integer(v), "no integer %s", key);
	return json_integer_value(v);
}

void sth_assert_push_refused(struct fx *f, uint32_t gen, uint32_t start,
			     uint32_t end, const char *baton,
			     const uint8_t *body, size_t len, int status,
			     const char *code)
{
	int got;
	json_t *j = sth_push(f->store, gen, start, end, baton, body, len, &got);

	ck_assert_msg(got == status, "push [%u, %u): status %d, want %d (%s)",
		      start, end, got, status, sth_str_of(j, "message"));
	if (code != NULL)
		ck_assert_str_eq(sth_str_of(j, "code"), code);
	ck_assert_msg(strlen(sth_str_of(j, "message")) > 0, "no message");
	json_decref(j);
}

char *sth_assert_push_ok(struct fx *f, uint32_t start, uint32_t end,
			 const char *baton, const uint8_t *body)
{
	int status;
	json_t *j =
	    sth_push(f->store, 1, start, end, baton, body,
		     (size_t)(end - start) * WALFMT_FRAME_SIZE, &status);
	json_t *b;
	char *out = NULL;

	ck_assert_msg(status == 200, "push [%u, %u): %d %s", start, end, status,
		      sth_str_of(j, "message"));
	ck_assert_str_eq(sth_str_of(j, "status"), "ok");
	ck_assert_int_eq(sth_int_of(j, "generation"), 1);
	ck_assert_int_eq(sth_int_of(j, "max_frame_no"), end - 1);
	b = json_object_get(j, "baton");
	ck_assert_msg(b != NULL, "the reply has no baton key");
	if (json_is_string(b))
		out = strdup(json_string_value(b));
	else
		ck_assert(json_is_null(b));
	json_decref(j);
	return out;
}

void sth_assert_untouched(struct fx *b)
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

const char *const sth_three_page_txn[] = {
    "BEGIN; INSERT INTO t VALUES (1); CREATE TABLE u(y);"
    "INSERT INTO u VALUES (zeroblob(6000)); COMMIT",
};
