/* The replica state file: round trip, validation of every field, atomic
 * replacement, and the refusal of another primary's database. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "fixture.h"
#include "sync/state_file.h"
#include "sync/replica_state.h"

static void write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "wb");

	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fwrite(text, 1, strlen(text), fp), strlen(text));
	ck_assert_int_eq(fclose(fp), 0);
}

/* The state's JSON text, the newest version in the file (static buffer). */
static const char *read_text(const char *path)
{
	static char buf[STATE_FILE_MAX_TEXT + 1];
	char *text;
	size_t len;

	ck_assert_int_eq(state_file_read(path, &text, &len), 0);
	memcpy(buf, text, len + 1);
	free(text);
	return buf;
}

static struct replica_state sample(void)
{
	struct replica_state st = {
	    .database_id = "db-0123",
	    .sync_url = "http://127.0.0.1:8080",
	    .generation = 3,
	    .frame_no = 41,
	    .frame_hwm = 57,
	    .page_size = 4096,
	};
	return st;
}

START_TEST(test_path)
{
	char *p = replica_state_path("/data/app.db");

	ck_assert_str_eq(p, "/data/app.db-replite");
	free(p);
	p = replica_state_path("app.db");
	ck_assert_str_eq(p, "app.db-replite");
	free(p);
}
END_TEST

START_TEST(test_roundtrip)
{
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db-replite");
	struct replica_state in = sample(), out;
	char err[512] = "";
	json_t *j;

	ck_assert_msg(replica_state_save(path, &in, err, sizeof err) == 0, "%s",
		      err);
	ck_assert_msg(replica_state_load(path, &out, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_str_eq(out.database_id, "db-0123");
	ck_assert_str_eq(out.sync_url, "http://127.0.0.1:8080");
	ck_assert_uint_eq(out.generation, 3);
	ck_assert_uint_eq(out.frame_no, 41);
	ck_assert_uint_eq(out.frame_hwm, 57);
	ck_assert_uint_eq(out.page_size, 4096);
	/* The strings are owned copies. */
	ck_assert_ptr_ne(out.database_id, in.database_id);
	replica_state_free(&out);
	ck_assert_ptr_null(out.sync_url);
	ck_assert_uint_eq(out.generation, 0);

	/* The document is the one of DESIGN.md §2, with "format": 1, in
	 * the container of sync/state_file.h. */
	{
		char *text;
		size_t len;
		ck_assert_int_eq(state_file_read(path, &text, &len), 0);
		j = json_loadb(text, len, 0, NULL);
		free(text);
	}
	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "format")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "sync_url")),
			 "http://127.0.0.1:8080");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "frame_hwm")),
			 57);
	json_decref(j);

	/* Extremes: no database id, the largest values, 512 and 65536. */
	in.database_id = NULL;
	in.generation = UINT32_MAX;
	in.frame_no = UINT32_MAX;
	in.frame_hwm = UINT32_MAX;
	in.page_size = 65536;
	ck_assert_msg(replica_state_save(path, &in, err, sizeof err) == 0, "%s",
		      err);
	ck_assert_msg(replica_state_load(path, &out, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_ptr_null(out.database_id);
	ck_assert_uint_eq(out.generation, UINT32_MAX);
	ck_assert_uint_eq(out.frame_no, UINT32_MAX);
	ck_assert_uint_eq(out.frame_hwm, UINT32_MAX);
	ck_assert_uint_eq(out.page_size, 65536);
	replica_state_free(&out);
	in.page_size = 512;
	in.frame_no = 0;
	in.frame_hwm = 0;
	ck_assert_int_eq(replica_state_save(path, &in, err, sizeof err), 0);
	ck_assert_int_eq(replica_state_load(path, &out, err, sizeof err), 0);
	ck_assert_uint_eq(out.page_size, 512);
	ck_assert_uint_eq(out.frame_no, 0);
	replica_state_free(&out);

	/* The bootstrapping flag is written only when set. */
	ck_assert_int_eq(out.bootstrapping, 0);
	ck_assert_ptr_null(strstr(read_text(path), "bootstrapping"));
	in.bootstrapping = 1;
	ck_assert_int_eq(replica_state_save(path, &in, err, sizeof err), 0);
	ck_assert_ptr_nonnull(
	    strstr(read_text(path), "\"bootstrapping\":true"));
	ck_assert_int_eq(replica_state_load(path, &out, err, sizeof err), 0);
	ck_assert_int_eq(out.bootstrapping, 1);
	replica_state_free(&out);
	in.bootstrapping = 0;
	in.catching_up = 1;
	ck_assert_int_eq(replica_state_save(path, &in, err, sizeof err), 0);
	ck_assert_ptr_nonnull(strstr(read_text(path), "\"catching_up\":true"));
	ck_assert_int_eq(replica_state_load(path, &out, err, sizeof err), 0);
	ck_assert_int_eq(out.catching_up, 1);
	replica_state_free(&out);
	in.catching_up = 0;

	/* The WAL position, when known. */
	in.wal_known = 1;
	in.wal_frames = 77;
	in.wal_salt[0] = UINT32_MAX;
	in.wal_salt[1] = 5;
	ck_assert_int_eq(replica_state_save(path, &in, err, sizeof err), 0);
	ck_assert_int_eq(replica_state_load(path, &out, err, sizeof err), 0);
	ck_assert_int_eq(out.wal_known, 1);
	ck_assert_uint_eq(out.wal_frames, 77);
	ck_assert_uint_eq(out.wal_salt[0], UINT32_MAX);
	ck_assert_uint_eq(out.wal_salt[1], 5);
	replica_state_free(&out);
	in.wal_known = 0;
	ck_assert_int_eq(replica_state_save(path, &in, err, sizeof err), 0);
	ck_assert_int_eq(replica_state_load(path, &out, err, sizeof err), 0);
	ck_assert_int_eq(out.wal_known, 0);
	replica_state_free(&out);

	/* Unknown keys (a later minor addition) are ignored. */
	write_text(path, "{\"format\":1,\"database_id\":\"x\",\"sync_url\":"
			 "\"https://h\",\"generation\":1,\"frame_no\":2,"
			 "\"frame_hwm\":2,\"page_size\":1024,\"extra\":[1]}");
	ck_assert_msg(replica_state_load(path, &out, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_str_eq(out.database_id, "x");
	ck_assert_uint_eq(out.page_size, 1024);
	replica_state_free(&out);

	free(path);
	fixture_rmdir(dir);
}
END_TEST

START_TEST(test_missing_file)
{
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db-replite");
	struct replica_state out = sample();
	char err[512] = "";

	ck_assert_int_eq(replica_state_load(path, &out, err, sizeof err), 1);
	/* Untouched. */
	ck_assert_uint_eq(out.generation, 3);
	ck_assert_str_eq(err, "");
	free(path);
	fixture_rmdir(dir);
}
END_TEST

/* Each malformed document is refused with a message naming the file and,
 * through `expect`, the cause. */
static const struct {
	const char *text;
	const char *expect;
} bad_cases[] = {
    {"", "not valid JSON"},
    {"{\"format\":1,", "not valid JSON"},
    {"garbage", "not valid JSON"},
    {"[1,2]", "an array, not a JSON object"},
    {"{\"format\":1,\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\","
     "\"generation\":1,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096}",
     "not valid JSON"},
    /* format */
    {"{\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":1,"
     "\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096}",
     "no \"format\" field"},
    {"{\"format\":2,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":1,"
     "\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096}",
     "has format 2, but this replite reads format 1"},
    {"{\"format\":0,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":1,"
     "\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096}",
     "has format 0"},
    {"{\"format\":\"1\",\"database_id\":\"x\",\"sync_url\":\"u\","
     "\"generation\":1,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096}",
     "field \"format\" of the replica state file"},
    /* database_id */
    {"{\"format\":1,\"sync_url\":\"u\",\"generation\":1,"
     "\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096}",
     "no \"database_id\" field"},
    {"{\"format\":1,\"database_id\":7,\"sync_url\":\"u\",\"generation\":1,"
     "\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096}",
     "field \"database_id\" of the replica state file"},
    {"{\"format\":1,\"database_id\":\"\",\"sync_url\":\"u\",\"generation\":1,"
     "\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096}",
     "is empty, not a non-empty string"},
    /* sync_url */
    {"{\"format\":1,\"database_id\":\"x\",\"generation\":1,"
     "\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096}",
     "no \"sync_url\" field"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":null,\"generation\":1,"
     "\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096}",
     "field \"sync_url\" of the replica state file"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"a\\u0000b\","
     "\"generation\":1,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096}",
     "not valid JSON"}, /* jansson refuses \u0000 */
    /* generation */
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\","
     "\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096}",
     "no \"generation\" field"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "\"1\",\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096}",
     "field \"generation\" of the replica state file"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1.5,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096}",
     "is a real number, not an integer"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "0,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096}",
     "has generation 0"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "-1,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096}",
     "is -1, out of range"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "4294967296,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096}",
     "is 4294967296, out of range"},
    /* frame_no, frame_hwm */
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_hwm\":0,\"page_size\":4096}",
     "no \"frame_no\" field"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_no\":true,\"frame_hwm\":0,\"page_size\":4096}",
     "is a boolean, not an integer"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_no\":0,\"page_size\":4096}",
     "no \"frame_hwm\" field"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_no\":5,\"frame_hwm\":4,\"page_size\":4096}",
     "frame_hwm 4 below frame_no 5"},
    /* page_size */
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_no\":0,\"frame_hwm\":0}",
     "no \"page_size\" field"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4000}",
     "page size 4000, not a power of two in 512..65536"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":256}",
     "page size 256"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":131072}",
     "page size 131072"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":0}",
     "page size 0"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096,"
     "\"bootstrapping\":1}",
     "\"bootstrapping\" of type an integer"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096,"
     "\"wal\":{\"frames\":1,\"salt\":[1]}}",
     "has a \"wal\" field that is not"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096,"
     "\"wal\":{\"frames\":-1,\"salt\":[1,2]}}",
     "has a \"wal\" field that is not"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096,"
     "\"catching_up\":\"yes\"}",
     "\"catching_up\" of type a string"},
    /* as_of and as_of_request: both, a time and a request. */
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096,"
     "\"as_of\":\"2026-12-03T17:00:00.000Z\"}",
     "has \"as_of\" and \"as_of_request\" fields that are not"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096,"
     "\"as_of_request\":\"1:0\"}",
     "has \"as_of\" and \"as_of_request\" fields that are not"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096,"
     "\"as_of\":\"yesterday\",\"as_of_request\":\"1:0\"}",
     "has \"as_of\" and \"as_of_request\" fields that are not"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096,"
     "\"as_of\":\"2026-12-03T17:00:00.000Z\",\"as_of_request\":\"0:1\"}",
     "has \"as_of\" and \"as_of_request\" fields that are not"},
    {"{\"format\":1,\"database_id\":\"x\",\"sync_url\":\"u\",\"generation\":"
     "1,\"frame_no\":0,\"frame_hwm\":0,\"page_size\":4096,"
     "\"as_of\":1796317200000,\"as_of_request\":\"1:0\"}",
     "has \"as_of\" and \"as_of_request\" fields that are not"},
};

START_TEST(test_malformed)
{
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db-replite");
	struct replica_state out = sample();
	char err[512];

	write_text(path, bad_cases[_i].text);
	err[0] = '\0';
	ck_assert_int_eq(replica_state_load(path, &out, err, sizeof err), -1);
	ck_assert_msg(strstr(err, path) != NULL, "case %d: no path in '%s'", _i,
		      err);
	ck_assert_msg(strstr(err, bad_cases[_i].expect) != NULL,
		      "case %d: expected '%s' in '%s'", _i,
		      bad_cases[_i].expect, err);
	/* *st untouched on error. */
	ck_assert_uint_eq(out.generation, 3);
	ck_assert_str_eq(out.sync_url, "http://127.0.0.1:8080");
	free(path);
	fixture_rmdir(dir);
}
END_TEST

/* Failures of the file system are reported with the file and errno. */
START_TEST(test_io_errors)
{
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db-replite");
	char *nodir = fixture_path(dir, "missing/app.db-replite");
	struct replica_state in = sample(), out;
	char err[512] = "";

	/* A directory where the file should be: unreadable, unreplaceable. */
	ck_assert_int_eq(mkdir(path, 0755), 0);
	ck_assert_int_eq(replica_state_load(path, &out, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "cannot read"));
	ck_assert_ptr_nonnull(strstr(err, path));
	ck_assert_ptr_nonnull(strstr(err, strerror(EISDIR)));
	ck_assert_int_eq(replica_state_save(path, &in, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "cannot write"));
	ck_assert_ptr_nonnull(strstr(err, path));

	ck_assert_int_eq(replica_state_save(nodir, &in, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, nodir));
	ck_assert_ptr_nonnull(strstr(err, strerror(ENOENT)));
	free(nodir);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

/* A file is created (or replaced, from the old format) through a temp file:
 * a crash after the temp file is written but before the rename leaves the
 * old state readable, and a stale temp file changes nothing. */
START_TEST(test_atomic_replace)
{
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db-replite");
	char *tmp = fixture_path(dir, "app.db-replite.tmp");
	struct replica_state in = sample(), out;
	char err[512] = "";

	ck_assert_int_eq(replica_state_save(path, &in, err, sizeof err), 0);
	/* The temp file is gone after a successful save. */
	ck_assert_int_eq(access(tmp, F_OK), -1);

	/* A torn temp file (crash while writing it). */
	write_text(tmp, "{\"format\":1,\"datab");
	ck_assert_msg(replica_state_load(path, &out, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_uint_eq(out.frame_no, 41);
	ck_assert_uint_eq(out.frame_hwm, 57);
	replica_state_free(&out);

	/* A complete, fsync'd temp file never renamed: still the old one. */
	write_text(tmp,
		   "{\"format\":1,\"database_id\":\"db-0123\",\"sync_url\":"
		   "\"http://127.0.0.1:8080\",\"generation\":3,"
		   "\"frame_no\":99,\"frame_hwm\":99,\"page_size\":4096}");
	ck_assert_int_eq(replica_state_load(path, &out, err, sizeof err), 0);
	ck_assert_uint_eq(out.frame_no, 41);
	replica_state_free(&out);

	/* The next save, in place, ignores it. */
	in.frame_no = 60;
	in.frame_hwm = 60;
	ck_assert_msg(replica_state_save(path, &in, err, sizeof err) == 0, "%s",
		      err);
	ck_assert_int_eq(replica_state_load(path, &out, err, sizeof err), 0);
	ck_assert_uint_eq(out.frame_no, 60);
	ck_assert_uint_eq(out.frame_hwm, 60);
	replica_state_free(&out);

	free(tmp);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

START_TEST(test_check_primary)
{
	struct replica_state st = sample();
	char err[512] = "";

	ck_assert_int_eq(replica_state_check_primary(
			     &st, "db-0123", "http://other:1", err, sizeof err),
			 0);
	ck_assert_int_eq(replica_state_check_primary(&st, "db-9999",
						     "http://127.0.0.1:8080",
						     err, sizeof err),
			 -1);
	ck_assert_ptr_nonnull(
	    strstr(err, "belongs to database db-0123, but the primary at "
			"http://127.0.0.1:8080 is database db-9999"));
	/* A primary reporting no id cannot be the recorded database. */
	err[0] = '\0';
	ck_assert_int_eq(replica_state_check_primary(&st, NULL, "http://h:1",
						     err, sizeof err),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "db-0123"));
	ck_assert_ptr_nonnull(strstr(err, "http://h:1"));
	ck_assert_ptr_nonnull(strstr(err, "reports no database id"));
	/* No id recorded yet: any primary is accepted. */
	st.database_id = NULL;
	ck_assert_int_eq(replica_state_check_primary(
			     &st, "db-9999", "http://h:1", err, sizeof err),
			 0);
	ck_assert_int_eq(replica_state_check_primary(&st, NULL, "http://h:1",
						     err, sizeof err),
			 0);
}
END_TEST

/* An as-of replica's fields: written only for one, read back exactly (a
 * time request and a frame request), and kept by a save of a loaded
 * state (every edit of the state loads, changes and saves it). */
START_TEST(test_as_of_roundtrip)
{
	static const int64_t t = 1796317200250; /* 2026-12-03T17:00:00.250Z */
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db-replite");
	struct replica_state in = sample(), out;
	char err[512] = "";

	ck_assert_int_eq(replica_state_save(path, &in, err, sizeof err), 0);
	ck_assert_ptr_null(strstr(read_text(path), "as_of"));
	ck_assert_int_eq(replica_state_load(path, &out, err, sizeof err), 0);
	ck_assert_int_eq(out.has_as_of, 0);
	replica_state_free(&out);

	in.has_as_of = 1;
	in.as_of_unix_ms = t - 250;
	ck_assert_int_eq(
	    as_of_parse("2026-12-03T18:00:00.25+01:00", &in.as_of_request), 0);
	ck_assert_int_eq(replica_state_save(path, &in, err, sizeof err), 0);
	ck_assert_ptr_nonnull(strstr(
	    read_text(path), "\"as_of\":\"2026-12-03T17:00:00.000Z\","
			     "\"as_of_request\":\"2026-12-03T17:00:00.250Z\""));
	ck_assert_msg(replica_state_load(path, &out, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_int_eq(out.has_as_of, 1);
	ck_assert_int_eq(out.as_of_unix_ms, t - 250);
	ck_assert_int_eq(out.as_of_request.kind, AS_OF_TIME);
	ck_assert_int_eq(out.as_of_request.unix_ms, t);

	/* Load, edit, save: still there. */
	out.frame_no = out.frame_hwm = 60;
	ck_assert_int_eq(replica_state_save(path, &out, err, sizeof err), 0);
	replica_state_free(&out);
	ck_assert_int_eq(replica_state_load(path, &out, err, sizeof err), 0);
	ck_assert_int_eq(out.has_as_of, 1);
	ck_assert_int_eq(out.as_of_request.unix_ms, t);
	ck_assert_uint_eq(out.frame_no, 60);
	replica_state_free(&out);

	ck_assert_int_eq(as_of_parse("3:41", &in.as_of_request), 0);
	ck_assert_int_eq(replica_state_save(path, &in, err, sizeof err), 0);
	ck_assert_ptr_nonnull(
	    strstr(read_text(path), "\"as_of_request\":\"3:41\""));
	ck_assert_int_eq(replica_state_load(path, &out, err, sizeof err), 0);
	ck_assert_int_eq(out.as_of_request.kind, AS_OF_FRAME);
	ck_assert_uint_eq(out.as_of_request.generation, 3);
	ck_assert_uint_eq(out.as_of_request.frame, 41);
	replica_state_free(&out);

	free(path);
	fixture_rmdir(dir);
}
END_TEST

/* Which as_of opens which file: a live replica only without as_of, an
 * as-of replica with its request or the state's own time or frame, never
 * with another; the refusals say what the file is and how to open it. */
START_TEST(test_check_as_of)
{
	struct replica_state st = sample(); /* generation 3, frame_no 41 */
	struct as_of live = {.kind = AS_OF_NONE}, want;
	char err[512] = "";

	ck_assert_int_eq(
	    replica_state_check_as_of(&st, &live, "/d/a.db", err, sizeof err),
	    0);
	ck_assert_int_eq(as_of_parse("3:41", &want), 0);
	ck_assert_int_eq(
	    replica_state_check_as_of(&st, &want, "/d/a.db", err, sizeof err),
	    -1);
	ck_assert_str_eq(err,
			 "/d/a.db is a live replica of http://127.0.0.1:8080; "
			 "as_of=3:41 needs a file of its own: open a new file "
			 "name with as_of (a live replica never becomes an "
			 "as-of one)");

	/* Asked for 17:00:00.250, resolved to a commit at 17:00:00.000,
	 * frame 41 of generation 3. */
	st.has_as_of = 1;
	st.as_of_unix_ms = 1796317200000;
	ck_assert_int_eq(
	    as_of_parse("2026-12-03T17:00:00.250Z", &st.as_of_request), 0);
	ck_assert_int_eq(
	    replica_state_check_as_of(&st, &live, "/d/a.db", err, sizeof err),
	    -1);
	ck_assert_str_eq(
	    err, "/d/a.db is an as-of replica: it holds the primary's state "
		 "as of 2026-12-03T17:00:00.000Z (opened with "
		 "as_of=2026-12-03T17:00:00.250Z), is read-only and never "
		 "syncs; open it with as_of=2026-12-03T17:00:00.250Z, or use "
		 "another file for a live replica");
	/* The same instant, spelt otherwise; the state's time; its frame. */
	ck_assert_int_eq(as_of_parse("2026-12-03T18:00:00.250+01:00", &want),
			 0);
	ck_assert_int_eq(
	    replica_state_check_as_of(&st, &want, "/d/a.db", err, sizeof err),
	    0);
	ck_assert_int_eq(as_of_parse("2026-12-03T17:00:00Z", &want), 0);
	ck_assert_int_eq(
	    replica_state_check_as_of(&st, &want, "/d/a.db", err, sizeof err),
	    0);
	ck_assert_int_eq(as_of_parse("3:41", &want), 0);
	ck_assert_int_eq(
	    replica_state_check_as_of(&st, &want, "/d/a.db", err, sizeof err),
	    0);
	/* Anything else, even a time between the state and the request
	 * (it may name the same state, but only the primary could say). */
	ck_assert_int_eq(as_of_parse("2026-12-03T17:00:00.100Z", &want), 0);
	ck_assert_int_eq(
	    replica_state_check_as_of(&st, &want, "/d/a.db", err, sizeof err),
	    -1);
	ck_assert_str_eq(
	    err, "/d/a.db is an as-of replica of another state: as of "
		 "2026-12-03T17:00:00.000Z (opened with "
		 "as_of=2026-12-03T17:00:00.250Z), not "
		 "as_of=2026-12-03T17:00:00.100Z; open it with "
		 "as_of=2026-12-03T17:00:00.250Z, or use another file for "
		 "that state");
	ck_assert_int_eq(as_of_parse("3:40", &want), 0);
	ck_assert_int_eq(
	    replica_state_check_as_of(&st, &want, "/d/a.db", err, sizeof err),
	    -1);
	/* While bootstrapping, the position is not the state's yet: the
	 * request only. */
	st.bootstrapping = 1;
	ck_assert_int_eq(as_of_parse("3:41", &want), 0);
	ck_assert_int_eq(
	    replica_state_check_as_of(&st, &want, "/d/a.db", err, sizeof err),
	    -1);
	ck_assert_int_eq(as_of_parse("2026-12-03T17:00:00.250Z", &want), 0);
	ck_assert_int_eq(
	    replica_state_check_as_of(&st, &want, "/d/a.db", err, sizeof err),
	    0);

	/* Found by frame: the commit's time may be shared by a later
	 * commit, so it does not name the state. */
	st.bootstrapping = 0;
	ck_assert_int_eq(as_of_parse("3:41", &st.as_of_request), 0);
	ck_assert_int_eq(as_of_parse("2026-12-03T17:00:00Z", &want), 0);
	ck_assert_int_eq(
	    replica_state_check_as_of(&st, &want, "/d/a.db", err, sizeof err),
	    -1);
	ck_assert_int_eq(as_of_parse("3:41", &want), 0);
	ck_assert_int_eq(
	    replica_state_check_as_of(&st, &want, "/d/a.db", err, sizeof err),
	    0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("replica_state");
	TCase *tc = tcase_create("replica_state");

	tcase_add_test(tc, test_path);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_missing_file);
	tcase_add_loop_test(tc, test_malformed, 0,
			    (int)(sizeof bad_cases / sizeof bad_cases[0]));
	tcase_add_test(tc, test_io_errors);
	tcase_add_test(tc, test_atomic_replace);
	tcase_add_test(tc, test_check_primary);
	tcase_add_test(tc, test_as_of_roundtrip);
	tcase_add_test(tc, test_check_as_of);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
