#include "process_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "include/replite.h"

/* ---------------------------------------------------------------------- */
/* common helpers */

double pfx_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int pfx_env_int(const char *name, int def)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? atoi(v) : def;
}

uint64_t pfx_rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

uint64_t pfx_seed_from_env(void)
{
	const char *v = getenv("REPLITE_SAFETY_SEED");
	uint64_t s = v != NULL ? strtoull(v, NULL, 10) : 0;

	if (s == 0)
		s = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	return s;
}

int pfx_file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

void pfx_copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out;
	char buf[1 << 16];
	size_t n;

	unlink(to);
	if (in == NULL)
		return;
	out = fopen(to, "wb");
	ck_assert_ptr_nonnull(out);
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
	fclose(in);
	ck_assert_int_eq(fclose(out), 0);
}

void pfx_remove_db_files(const char *path)
{
	static const char *const suffixes[] = {"", "-wal", "-shm", "-replite"};
	char p[4096];
	size_t i;

	for (i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
		unlink(p);
	}
}

void pfx_crash_copy(const char *path, const char *copy_path)
{
	char from[4096], to[4096];

	snprintf(to, sizeof to, "%s-shm", copy_path);
	unlink(to);
	pfx_copy_file(path, copy_path);
	snprintf(from, sizeof from, "%s-wal", path);
	snprintf(to, sizeof to, "%s-wal", copy_path);
	pfx_copy_file(from, to);
	/* An encrypted replica's salt and key check go with it. */
	snprintf(from, sizeof from, "%s-replite-key", path);
	snprintf(to, sizeof to, "%s-replite-key", copy_path);
	if (access(from, F_OK) == 0)
		pfx_copy_file(from, to);
}

char *pfx_slurp(const char *path)
{
	char *text = rfx_slurp(path, NULL);

	return text != NULL ? text : strdup("");
}

int pfx_pattern_ok(const uint8_t *p, int64_t len, int64_t stamp)
{
	char digits[32];
	int64_t i;

	snprintf(digits, sizeof digits, "%08llx", (unsigned long long)stamp);
	if (strlen(digits) != 8)
		return 0;
	if (len > 0 && p == NULL)
		return 0;
	for (i = 0; i < len; i++) {
		if (p[i] != (uint8_t)digits[i % 8])
			return 0;
	}
	return 1;
}

char *pfx_local_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	char *out;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	rc = sqlite3_step(st);
	ck_assert_msg(rc == SQLITE_ROW, "%s: %s", sql, sqlite3_errmsg(db));
	out = strdup(sqlite3_column_text(st, 0)
			 ? (const char *)sqlite3_column_text(st, 0)
			 : "");
	sqlite3_finalize(st);
	return out;
}

sqlite3 *pfx_open_plain(const char *path, int checkpoint_on_close,
			const char *what)
{
	sqlite3 *db = NULL;
	char *ic;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE,
			     rfx_plain_vfs(path));
	ck_assert_msg(rc == SQLITE_OK, "%s: cannot open %s: %s", what, path,
		      sqlite3_errmsg(db));
	sqlite3_busy_timeout(db, 5000);
	if (!checkpoint_on_close)
		ck_assert_int_eq(
		    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1,
				      NULL),
		    SQLITE_OK);
	ic = pfx_local_text(db, "PRAGMA integrity_check");
	ck_assert_msg(strcmp(ic, "ok") == 0, "%s: integrity_check: %s", what,
		      ic);
	free(ic);
	return db;
}

/* ---------------------------------------------------------------------- */
/* the primary over Hrana */

struct http_client *pfx_primary_client(const char *url)
{
	struct http_client_config cfg = {
	    .base_url = url, .connect_timeout_ms = 5000, .max_body = 256 << 20};
	struct http_client *c = NULL;
	char err[512];

	ck_assert_msg(http_client_new(&cfg, &c, err, sizeof err) == 0, "%s",
		      err);
	return c;
}

int pfx_primary_run(struct http_client *c, const char *sql, int execute,
		    char **text, char *err, size_t err_len)
{
	struct http_client_response res = {0};
	json_t *doc = NULL, *first, *cell;
	const char *type, *v;
	char *body = rfx_pipeline_body(sql, execute);
	int rc = -1;

	if (http_client_request(c, "POST", "/v2/pipeline", body, strlen(body),
				120000, &res, err, err_len) != 0) {
		free(body);
		return -1;
	}
	free(body);
	if (res.status != 200) {
		snprintf(err, err_len, "HTTP %ld: %.200s", res.status,
			 (char *)res.body);
		goto out;
	}
	doc = json_loadb((const char *)res.body, res.len, 0, NULL);
	first = json_array_get(json_object_get(doc, "results"), 0);
	type = json_string_value(json_object_get(first, "type"));
	if (type == NULL || strcmp(type, "ok") != 0) {
		snprintf(err, err_len, "the primary refused: %.300s",
			 (char *)res.body);
		goto out;
	}
	if (execute) {
		cell = json_array_get(
		    json_array_get(
			json_object_get(
			    json_object_get(json_object_get(first, "response"),
					    "result"),
			    "rows"),
			0),
		    0);
		v = json_string_value(json_object_get(cell, "value"));
		*text = strdup(v != NULL ? v : "");
	}
	rc = 0;
out:
	json_decref(doc);
	http_client_response_free(&res);
	return rc;
}

char *pfx_primary_text(const char *url, const char *sql)
{
	struct http_client *c = pfx_primary_client(url);
	char err[512], *text = NULL;

	ck_assert_msg(pfx_primary_run(c, sql, 1, &text, err, sizeof err) == 0,
		      "%s: %s", sql, err);
	http_client_free(c);
	return text;
}

/* ---------------------------------------------------------------------- */
/* other processes */

pid_t pfx_spawn_self(const char *const *args, int in_fd, int out_fd,
		     const char *stderr_path)
{
	const char *argv[16];
	int n = 0, err_fd = -1;
	pid_t pid;

	argv[n++] = program_invocation_short_name;
	while (*args != NULL && n < 15)
		argv[n++] = *args++;
	argv[n] = NULL;
	if (stderr_path != NULL) {
		err_fd = open(stderr_path,
			      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		ck_assert_int_ge(err_fd, 0);
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Only async-signal-safe calls: the parent has threads. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (in_fd >= 0)
			dup2(in_fd, 0);
		if (out_fd >= 0)
			dup2(out_fd, 1);
		if (err_fd >= 0)
			dup2(err_fd, 2);
		execv("/proc/self/exe", (char *const *)argv);
		_exit(127);
	}
	if (err_fd >= 0)
		close(err_fd);
	return pid;
}

void pfx_proc_start(struct pfx_proc *p, const char *const *args,
		    const char *stderr_path)
{
	int in[2], out[2];

	memset(p, 0, sizeof *p);
	/* Close-on-exec: no other child inherits these ends, so EOF is
	 * seen when this child dies. */
	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	p->pid = pfx_spawn_self(args, in[0], out[1], stderr_path);
	close(in[0]);
	close(out[1]);
	p->to = in[1];
	p->from = out[0];
}

int pfx_proc_line(struct pfx_proc *p, char *out, size_t out_len, int timeout_ms)
{
	double until = pfx_now_s() + timeout_ms / 1000.0;

	for (;;) {
		char *nl = memchr(p->buf, '\n', p->len);
		struct pollfd pf = {.fd = p->from, .events = POLLIN};
		ssize_t n;
		int left = -1, rc;

		if (nl != NULL || p->len == sizeof p->buf) {
			size_t k = nl != NULL ? (size_t)(nl - p->buf) : p->len;

			snprintf(out, out_len, "%.*s", (int)k, p->buf);
			k = nl != NULL ? k + 1 : k;
			memmove(p->buf, p->buf + k, p->len - k);
			p->len -= k;
			return 1;
		}
		if (p->eof)
			return 0;
		if (timeout_ms >= 0) {
			left = (int)((until - pfx_now_s()) * 1000);
			left = left < 0 ? 0 : left;
		}
		rc = poll(&pf, 1, left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc == 0)
			return 0;
		n = read(p->from, p->buf + p->len, sizeof p->buf - p->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			p->eof = 1;
		else
			p->len += (size_t)n;
	}
}

void pfx_proc_send(struct pfx_proc *p, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	ck_assert_int_gt(n, 0);
	ck_assert_int_lt(n, (int)sizeof line);
	ck_assert_int_eq(write(p->to, line, (size_t)n), n);
}

int pfx_proc_finish(struct pfx_proc *p)
{
	int status = 0;

	if (p->to >= 0)
		close(p->to);
	p->to = -1;
	ck_assert_int_eq(waitpid(p->pid, &status, 0), p->pid);
	close(p->from);
	p->from = -1;
	return status;
}

void pfx_kill_after(const pid_t *pid, const long *delay, int n,
		    const char *what, const char *log_path)
{
	long slept = 0;
	int done[16] = {0};
	int i, k, status;

	ck_assert_int_le(n, 16);
	for (k = 0; k < n; k++) {
		int next = -1;

		for (i = 0; i < n; i++) {
			if (!done[i] && (next < 0 || delay[i] < delay[next]))
				next = i;
		}
		done[next] = 1;
		if (delay[next] > slept)
			rfx_sleep_ms(delay[next] - slept);
		slept = delay[next] > slept ? delay[next] : slept;
		kill(pid[next], SIGKILL);
	}
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(waitpid(pid[i], &status, 0), pid[i]);
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
			char *log = pfx_slurp(log_path);

			ck_assert_msg(0,
				      "%s ended before it was killed (status "
				      "%d): %s",
				      what, status, log);
			free(log);
		}
	}
}

int pfx_left_state(const char *state_path, int trial, struct replica_state *st,
		   int *allow_empty)
{
	char err[512];
	int loaded = pfx_file_exists(state_path)
			 ? replica_state_load(state_path, st, err, sizeof err)
			 : 1;

	ck_assert_msg(loaded >= 0, "trial %d: %s", trial, err);
	*allow_empty = loaded == 1 || st->bootstrapping ||
		       (st->generation == 1 && st->frame_no == 0);
	return loaded;
}

int64_t pfx_check_crashed(const char *path, const char *copy_path, int trial,
			  int loaded, int allow_empty, int64_t before,
			  pfx_check_fn check, void *copy_arg, void *file_arg)
{
	int64_t v_copy, v_orig = -1;
	char what[128];

	if (!pfx_file_exists(path)) {
		ck_assert_msg(loaded == 1,
			      "trial %d: a state file but no database", trial);
	} else {
		/* (i) a copy without the -shm: WAL recovery. */
		pfx_crash_copy(path, copy_path);
		snprintf(what, sizeof what, "trial %d: crash copy (db + wal)",
			 trial);
		v_copy = check(copy_path, allow_empty, 1, what, copy_arg);
		/* (ii) the file itself, with plain SQLite; its close
		 * sometimes checkpoints and drops the WAL. */
		snprintf(what, sizeof what,
			 "trial %d: the file with plain SQLite", trial);
		v_orig =
		    check(path, allow_empty, trial % 3 == 0, what, file_arg);
		ck_assert_msg(v_copy == v_orig,
			      "trial %d: the crash copy recovered version "
			      "%lld, the file version %lld",
			      trial, (long long)v_copy, (long long)v_orig);
	}
	/* (iii) never older than before the trial. */
	ck_assert_msg(v_orig >= before,
		      "trial %d: the replica went back from version %lld to "
		      "%lld",
		      trial, (long long)before, (long long)v_orig);
	return v_orig;
}

sqlite3 *pfx_child_open(const char *path, const char *url, const char *extra)
{
	sqlite3 *db = NULL;
	char *uri;

	if (replite_register() != SQLITE_OK) {
		fprintf(stderr, "child: cannot register replite\n");
		_exit(2);
	}
	if (extra == NULL || strcmp(extra, "-") == 0)
		extra = "";
	uri = sqlite3_mprintf("file:%s?vfs=replite&sync_url=%s%s%s", path, url,
			      extra[0] ? "&" : "", extra);
	if (sqlite3_open_v2(uri, &db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				SQLITE_OPEN_URI,
			    NULL) != SQLITE_OK) {
		fprintf(stderr, "child %d: cannot open %s: %s\n", (int)getpid(),
			uri, db ? sqlite3_errmsg(db) : "?");
		_exit(3);
	}
	sqlite3_free(uri);
	sqlite3_extended_result_codes(db, 1);
	return db;
}

void pfx_child_say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}
