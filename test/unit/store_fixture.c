#include "store_fixture.h"

#include <stdlib.h>
#include <string.h>

#include "fixture.h"

void fx_init_in(struct fx *f, const char *dir, const char *name)
{
	memset(f, 0, sizeof *f);
	f->dir = dir != NULL ? strdup(dir) : fixture_tmpdir();
	f->data = fixture_path(f->dir, name);
	store_config_defaults(&f->cfg);
	f->cfg.data_dir = f->data;
}

void fx_init(struct fx *f, const char *name)
{
	fx_init_in(f, NULL, name);
}

void fx_open(struct fx *f)
{
	char err[512] = "";

	ck_assert_msg(store_open(&f->cfg, &f->store, err, sizeof err) == 0,
		      "store_open: %s", err);
	ck_assert_int_eq(store_open_conn(f->store, &f->db), SQLITE_OK);
}

void fx_close(struct fx *f)
{
	sqlite3_close(f->db);
	f->db = NULL;
	store_close(f->store);
	f->store = NULL;
}

void fx_done(struct fx *f)
{
	fx_close(f);
	free(f->data);
	fixture_rmdir(f->dir);
}

void fx_exec(struct fx *f, const char *sql)
{
	char err[512] = "";

	fixture_exec(f->db, sql);
	ck_assert_msg(store_make_durable(f->store, err, sizeof err) == 0,
		      "store_make_durable: %s", err);
}

void fx_open_pair(struct fx *a, struct fx *b, const char *seed_sql)
{
	char *seed;
	sqlite3 *db;

	fx_init(a, "a");
	fx_init(b, "b");
	seed = fixture_path(a->dir, "seed.db");
	ck_assert_int_eq(sqlite3_open(seed, &db), SQLITE_OK);
	fixture_exec(db, seed_sql);
	sqlite3_close(db);
	a->cfg.import_path = seed;
	b->cfg.import_path = seed;
	fx_open(a);
	fx_open(b);
	a->cfg.import_path = NULL;
	b->cfg.import_path = NULL;
	free(seed);
}
