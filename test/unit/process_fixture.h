/* Fixtures for tests that run other processes -- this same executable run
 * again with arguments its main recognises -- against a real primary
 * (replica_fixture.h): spawning them (optionally talking through pipes),
 * killing them at chosen moments, the primary over Hrana without Check
 * assertions (usable from threads), and checking with plain SQLite what a
 * killed process left behind. */
#ifndef REPLITE_TEST_PROCESS_FIXTURE_H
#define REPLITE_TEST_PROCESS_FIXTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <sqlite3.h>

#include "replica_fixture.h"
#include "sync/http_client.h"
#include "sync/replica_state.h"

/* ---------------------------------------------------------------------- */
/* common helpers */

/* Seconds on the monotonic clock. */
double pfx_now_s(void);
/* The integer in the environment variable name, or def when unset. */
int pfx_env_int(const char *name, int def);
/* xorshift64*: one generator per thread. */
uint64_t pfx_rnd(uint64_t *s);
/* REPLITE_SAFETY_SEED, or a seed from the time and pid when unset. */
uint64_t pfx_seed_from_env(void);

int pfx_file_exists(const char *path);
/* Copy a file (to is removed first; nothing more when from is missing). */
void pfx_copy_file(const char *from, const char *to);
/* Remove a database and its -wal, -shm and -replite. */
void pfx_remove_db_files(const char *path);
/* Copy the database path and its -wal to copy_path (and its -wal),
 * without any -shm: what a crash leaves, for WAL recovery. */
void pfx_crash_copy(const char *path, const char *copy_path);
/* rfx_slurp, but "" (malloc'd) for a missing file. */
char *pfx_slurp(const char *path);

/* A blob of len bytes repeating the 8 hex digits of stamp, as SQL (a
 * format for three %s: len, stamp, len). */
#define PFX_PATTERN_SQL                                                        \
	"CAST(substr(replace(hex(zeroblob((%s + 7) / 8)), '00', "              \
	"printf('%%08x', %s)), 1, %s) AS BLOB)"
/* Does the blob hold the pattern of stamp (PFX_PATTERN_SQL)? */
int pfx_pattern_ok(const uint8_t *p, int64_t len, int64_t stamp);

/* The text of the first column of the first row (malloc'd, "" for NULL). */
char *pfx_local_text(sqlite3 *db, const char *sql);
/* Open path with plain SQLite (no replite; through rfx_plain_vfs) and
 * check it is intact (PRAGMA integrity_check); what names it in
 * failures. */
sqlite3 *pfx_open_plain(const char *path, int checkpoint_on_close,
			const char *what);

/* ---------------------------------------------------------------------- */
/* the primary over Hrana, without Check assertions (usable from threads) */

/* A client of the primary at url (the test fails if it cannot be made). */
struct http_client *pfx_primary_client(const char *url);
/* Run sql on the primary: a sequence, or (execute) one statement whose
 * first column of the first row is returned as text in *text (malloc'd).
 * 0, or -1 with err. */
int pfx_primary_run(struct http_client *c, const char *sql, int execute,
		    char **text, char *err, size_t err_len);
/* That text of one statement on the primary at url (malloc'd); the test
 * fails if it cannot be run. */
char *pfx_primary_text(const char *url, const char *sql);

/* ---------------------------------------------------------------------- */
/* other processes: this executable run again */

/* Run this executable with args (NULL-terminated, at most 14), its stdin
 * and stdout from in_fd and out_fd unless -1, its stderr appended to
 * stderr_path unless NULL.  The child dies with the parent. */
pid_t pfx_spawn_self(const char *const *args, int in_fd, int out_fd,
		     const char *stderr_path);

/* A child talking through pipes (commands on its stdin, answers on its
 * stdout). */
struct pfx_proc {
	pid_t pid;
	int to;   /* the child's stdin */
	int from; /* the child's stdout */
	int eof;
	size_t len;
	char buf[1 << 14];
};
void pfx_proc_start(struct pfx_proc *p, const char *const *args,
		    const char *stderr_path);
/* The next line from the child, without its '\n': 1, or 0 at EOF or when
 * timeout_ms (-1: no limit) passed first. */
int pfx_proc_line(struct pfx_proc *p, char *out, size_t out_len,
		  int timeout_ms);
void pfx_proc_send(struct pfx_proc *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Close the child's stdin and wait for it; returns its wait status. */
int pfx_proc_finish(struct pfx_proc *p);

/* Kill the processes pid[0..n-1] with SIGKILL, each delay[i] ms from now
 * (in the order of their delays), and wait for them: the test fails
 * (quoting the log at log_path) if one ended before it was killed; what
 * names them in that message. */
void pfx_kill_after(const pid_t *pid, const long *delay, int n,
		    const char *what, const char *log_path);

/* ---------------------------------------------------------------------- */
/* what a killed replica process left */

/* The state file state_path after the kill: 1 when there is none, else 0
 * with it in *st (replica_state_free); the test (trial) fails when it
 * cannot be read.  *allow_empty: whether an empty database is a state of
 * the primary -- only before any image was applied, or at frame 0 of its
 * first generation (whose base image is the empty database). */
int pfx_left_state(const char *state_path, int trial, struct replica_state *st,
		   int *allow_empty);

/* Checks the database at path with plain SQLite (see pfx_check_crashed):
 * its version, or -1 for an empty one (allowed only with allow_empty). */
typedef int64_t (*pfx_check_fn)(const char *path, int allow_empty,
				int checkpoint_on_close, const char *what,
				void *arg);

/* Check the database path a killed process left (loaded: what
 * pfx_left_state returned): (i) a copy at copy_path without the -shm (WAL
 * recovery), with check(copy_arg), and (ii) the file itself, with
 * check(file_arg), its close checkpointing in one trial of three; both must
 * be the same version, never older than before.  Returns that version (-1:
 * no database, or empty). */
int64_t pfx_check_crashed(const char *path, const char *copy_path, int trial,
			  int loaded, int allow_empty, int64_t before,
			  pfx_check_fn check, void *copy_arg, void *file_arg);

/* In a child: open the replica (extra: more URI parameters, "-" or NULL
 * for none) with extended result codes; any failure ends the process. */
sqlite3 *pfx_child_open(const char *path, const char *url, const char *extra);
/* In a child: a line to the parent (stdout, flushed). */
void pfx_child_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
