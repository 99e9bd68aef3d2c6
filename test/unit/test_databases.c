/* databases.h: named databases beside the default one, created and deleted
 * atomically on disk, isolated from each other, held by requests across a
 * delete, and found again (and cleaned up) at the next open. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "fixture.h"
#include "server/databases.h"

static char *tmp;

static void setup(void)
{
	tmp = fixture_tmpdir();
}

static void teardown(void)
{
	fixture_rmdir(tmp);
	tmp = NULL;
}

static struct databases *open_dbs(void)
{
	struct databases_config cfg = {0};
	struct databases *d = NULL;
	char err[512];

	cfg.data_dir = tmp;
	store_config_defaults(&cfg.store);
	cfg.streams.max_streams = 16;
	cfg.streams.idle_expiry_ms = 10000;
	cfg.replica_expiry_ms = 60000;
	ck_assert_msg(databases_open(&cfg, &d, err, sizeof err) == 0, "%s",
		      err);
	return d;
}

static int exists(const char *rel)
{
	char *p = fixture_path(tmp, rel);
	struct stat sb;
	int rc = stat(p, &sb) == 0;

	free(p);
	return rc;
}

/* SQL through a connection of db's store. */
static void exec_in(struct database *db, const char *sql)
{
	sqlite3 *c;

	ck_assert_int_eq(store_open_conn(db->store, &c), SQLITE_OK);
	fixture_exec(c, sql);
	sqlite3_close(c);
	ck_assert_int_eq(store_make_durable(db->store, NULL, 0), 0);
}

static int64_t query_in(struct database *db, const char *sql)
{
	sqlite3 *c;
	int64_t v;

	ck_assert_int_eq(store_open_conn(db->store, &c), SQLITE_OK);
	v = fixture_query_int(c, sql);
	sqlite3_close(c);
	return v;
}

START_TEST(test_names)
{
	const char *good[] = {
	    "a",
	    "db1",
	    "my-db",
	    "my_db",
	    "0",
	    "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij"
	    "abcdefghij123"};
	const char *bad[] = {
	    "",
	    "-a",
	    "a-",
	    "A",
	    "a.b",
	    "../x",
	    "a/b",
	    ".x",
	    "x y",
	    "é",
	    "_a",
	    "a_",
	    "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij"
	    "abcdefghij1234"};
	size_t i;

	for (i = 0; i < sizeof good / sizeof good[0]; i++)
		ck_assert_msg(databases_name_valid(good[i]), "%s", good[i]);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(!databases_name_valid(bad[i]), "%s", bad[i]);
}
END_TEST

START_TEST(test_create_isolated_and_reopened)
{
	struct databases *d = open_dbs();
	struct database *a, *b, *def;
	char err[512];
	int status;
	json_t *list;
	char id_a[64];

	ck_assert_int_eq(databases_create(d, "a", -1, &status, err, sizeof err),
			 0);
	ck_assert_int_eq(databases_create(d, "b", -1, &status, err, sizeof err),
			 0);
	ck_assert_int_eq(databases_create(d, "a", -1, &status, err, sizeof err),
			 -1);
	ck_assert_int_eq(status, 409);
	ck_assert_int_eq(
	    databases_create(d, "../etc", -1, &status, err, sizeof err), -1);
	ck_assert_int_eq(status, 400);
	ck_assert_int_eq(databases_create(d, DATABASES_DEFAULT, -1, &status,
					  err, sizeof err),
			 -1);
	ck_assert_int_eq(status, 400);
	def = databases_get(d, NULL);
	a = databases_get(d, "a");
	b = databases_get(d, "b");
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_null(databases_get(d, "c"));
	ck_assert_str_ne(store_database_id(a->store),
			 store_database_id(b->store));
	ck_assert_str_ne(store_database_id(a->store),
			 store_database_id(def->store));
	snprintf(id_a, sizeof id_a, "%s", store_database_id(a->store));
	exec_in(a, "CREATE TABLE t(v); INSERT INTO t VALUES (1), (2)");
	exec_in(b, "CREATE TABLE t(v); INSERT INTO t VALUES (3)");
	ck_assert_int_eq(query_in(a, "SELECT count(*) FROM t"), 2);
	ck_assert_int_eq(query_in(b, "SELECT count(*) FROM t"), 1);
	ck_assert_int_eq(query_in(def, "SELECT count(*) FROM sqlite_schema"),
			 0);
	list = databases_list(d);
	ck_assert_uint_eq(json_array_size(list), 3);
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_array_get(list, 0), "name")),
	    DATABASES_DEFAULT);
	json_decref(list);
	databases_put(a);
	databases_put(b);
	databases_put(def);
	databases_close(d);

	d = open_dbs();
	a = databases_get(d, "a");
	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(store_database_id(a->store), id_a);
	ck_assert_int_eq(query_in(a, "SELECT sum(v) FROM t"), 3);
	databases_put(a);
	databases_close(d);
}
END_TEST

START_TEST(test_delete_while_held)
{
	struct databases *d = open_dbs();
	struct database *a;
	sqlite3 *c;
	char err[512];
	int status;

	ck_assert_int_eq(databases_create(d, "a", -1, &status, err, sizeof err),
			 0);
	a = databases_get(d, "a");
	exec_in(a, "CREATE TABLE t(v); INSERT INTO t VALUES (7)");
	ck_assert_int_eq(store_open_conn(a->store, &c), SQLITE_OK);
	ck_assert_int_eq(databases_delete(d, "a", &status, err, sizeof err), 0);
	/* Gone from the registry and its name; a connection a holder had
	 * open still reads until it lets go (new ones cannot open). */
	ck_assert(!databases_exists(d, "a"));
	ck_assert(!exists("databases/a"));
	ck_assert_int_eq(fixture_query_int(c, "SELECT v FROM t"), 7);
	sqlite3_close(c);
	ck_assert_int_eq(databases_delete(d, "a", &status, err, sizeof err),
			 -1);
	ck_assert_int_eq(status, 404);
	databases_put(a);
	/* Its files went with the last holder. */
	{
		char *sub = fixture_path(tmp, "databases");
		DIR *dir = opendir(sub);
		struct dirent *de;
		int entries = 0;
		while ((de = readdir(dir)) != NULL)
			entries += de->d_name[0] != '.';
		closedir(dir);
		free(sub);
		ck_assert_int_eq(entries, 0);
	}
	ck_assert_int_eq(
	    databases_delete(d, DATABASES_DEFAULT, &status, err, sizeof err),
	    -1);
	ck_assert_int_eq(status, 400);
	/* The name can be used again: a new, empty database. */
	ck_assert_int_eq(databases_create(d, "a", -1, &status, err, sizeof err),
			 0);
	a = databases_get(d, "a");
	ck_assert_int_eq(query_in(a, "SELECT count(*) FROM sqlite_schema"), 0);
	databases_put(a);
	databases_close(d);
}
END_TEST

START_TEST(test_interrupted_leftovers_removed)
{
	struct databases *d = open_dbs();
	char err[512];
	int status;

	ck_assert_int_eq(
	    databases_create(d, "kept", -1, &status, err, sizeof err), 0);
	databases_close(d);
	/* What a crash in the middle of a create or delete leaves. */
	{
		char *c = fixture_path(tmp, "databases/.creating-x-abc");
		char *r = fixture_path(tmp, "databases/.deleting-y-def");
		char *odd = fixture_path(tmp, "databases/Not_A_Name");
		ck_assert_int_eq(fileio_mkdir_p(c), 0);
		ck_assert_int_eq(fileio_mkdir_p(r), 0);
		ck_assert_int_eq(fileio_mkdir_p(odd), 0);
		free(c);
		free(r);
		free(odd);
	}
	d = open_dbs();
	ck_assert(!exists("databases/.creating-x-abc"));
	ck_assert(!exists("databases/.deleting-y-def"));
	ck_assert(exists("databases/Not_A_Name")); /* not ours: left */
	ck_assert(databases_exists(d, "kept"));
	ck_assert(!databases_exists(d, "x"));
	ck_assert(!databases_exists(d, "Not_A_Name"));
	databases_close(d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("databases");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_create_isolated_and_reopened);
	tcase_add_test(tc, test_delete_while_held);
	tcase_add_test(tc, test_interrupted_leftovers_removed);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
