#include "replica_internal.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "include/replite.h"
#include "base/clock.h"
#include "base/dbsum.h"
#include "base/errors.h"
#include "base/hex.h"
#include "sync/applier.h"
#include "base/base64.h"
#include "proto/frames.h"
#include "proto/messages.h"
#include "sync/http_client.h"
#include "sync/puller.h"
#include "sync/pusher.h"
#include "sync/rebase_plan.h"
#include "sync/replica_state.h"

/* How long one long-poll waits on the primary for new frames.  Short, so
 * that a dead connection is noticed quickly: the sync client gives up on a
 * request during which nothing arrived for STALL_TIMEOUT_MS. */
#define LIVE_WAIT_S 2
#define STALL_TIMEOUT_MS ((LIVE_WAIT_S + 1) * 1000L)
#define CONNECT_TIMEOUT_MS 5000L
/* The largest response: a full image of the database. */
#define MAX_BODY ((size_t)16 << 30)
/* Retry delays after a failed sync: doubling from the sync interval (at
 * least this), up to the maximum, which bounds how long a replica stays
 * behind once the primary is reachable again. */
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 1000
/* Checkpoint the local WAL once this many frames were applied since the
 * last checkpoint, and truncate it every so many checkpoints. */
#define CHECKPOINT_FRAMES 1000
#define TRUNCATE_EVERY 16

static void deadline_after(struct timespec *ts, int64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* ---------------------------------------------------------------------- */
/* the sync thread */

static int64_t backoff_ms(const struct replica *r, int failures)
{
	int64_t ms = r->params.sync_interval_ms;

	if (ms < BACKOFF_MIN_MS)
		ms = BACKOFF_MIN_MS;
	while (failures-- > 1 && ms < BACKOFF_MAX_MS)
		ms *= 2;
	return ms < BACKOFF_MAX_MS ? ms : BACKOFF_MAX_MS;
}

static void maybe_checkpoint(struct replica *r, uint64_t *since, int *count)
{
	struct puller_stats s;
	char err[512];

	puller_stats(r->puller, &s);
	if (s.frames_pulled - *since < CHECKPOINT_FRAMES)
		return;
	*since = s.frames_pulled;
	(*count)++;
	if (applier_checkpoint(r->applier, *count % TRUNCATE_EVERY == 0, NULL,
			       err, sizeof err) != 0)
		sqlite3_log(SQLITE_WARNING, "replite: %s", err);
}

/* Wait for a signal of cond, until the deadline (ms on the monotonic clock;
 * -1: none).  Returns 0 at the deadline.  Called with mu held. */
static int wait_locked(struct replica *r, int64_t until_ms)
{
	struct timespec ts;
	int64_t left = until_ms - clock_monotonic_ms();

	if (until_ms < 0) {
		pthread_cond_wait(&r->cond, &r->mu);
		return 1;
	}
	if (left <= 0)
		return 0;
	deadline_after(&ts, left);
	pthread_cond_timedwait(&r->cond, &r->mu, &ts);
	return 1;
}

/* Wait until the deadline, a sync request or close.  Called with mu
 * held. */
static void idle_locked(struct replica *r, int64_t until_ms)
{
	while (!r->closing && r->requested == r->served &&
	       !(r->push_wanted && r->last_rc == 0) && wait_locked(r, until_ms))
		;
}

/* Pulls a round tries when local commits keep arriving between its push
 * and its pull (the pull waits for them to be pushed). */
#define PUSH_PULL_TRIES 5

/* One round: push what the outbox holds (offline commits), then pull. */
static int sync_round(struct replica *r, int wait_s, uint64_t requested,
		      char *err, size_t err_len)
{
	int tries, rc = 0;

	for (tries = 0; tries < PUSH_PULL_TRIES; tries++) {
		/* Only a long-poll is interrupted by requests, not a push. */
		pthread_mutex_lock(&r->mu);
		r->push_wanted = 0;
		r->polling = 0;
		pthread_mutex_unlock(&r->mu);
		/* Transactions a conflict dropped first (conflict=rebase):
		 * nothing is pushed while they wait. */
		rc = replica_rebase_pending(r, err, err_len);
		if (rc == 0)
			rc = replica_push_pending(r, err, err_len);
		if (rc != 0)
			return rc;
		pthread_mutex_lock(&r->mu);
		if (r->push_wanted || r->requested != requested)
			wait_s = 0; /* asked for meanwhile: no long-poll */
		r->polling = wait_s > 0;
		pthread_mutex_unlock(&r->mu);
		rc = puller_sync(r->puller, wait_s, err, err_len);
		/* A pull that dropped local transactions to rebase them
		 * goes round again: re-apply, push, pull. */
		if (rebase_plan_exists(r->db_path)) {
			wait_s = 0;
			continue;
		}
		if (rc == 0 || !replica_has_pending(r))
			return rc;
		wait_s = 0;
	}
	return rc;
}

/* After a successful sync: start the next long-poll at once, unless the
 * primary answered a long-poll at once with no frames at all (it does not
 * support them: pull once per interval instead).  Frames that were already
 * applied (this process's own writes) count as an answer. */
static int long_poll_again(const struct replica *r, int wait_s, int64_t started,
			   uint64_t pulled_before)
{
	if (wait_s == 0 || r->stats.frames_pulled != pulled_before)
		return 1;
	return clock_monotonic_ms() - started >= (int64_t)wait_s * 1000 / 2;
}

static void *sync_main(void *arg)
{
	struct replica *r = arg;
	uint64_t ckpt_since = 0;
	int ckpt_count = 0, failures = 0;
	char err[1024];

	/* sync_interval=0: only explicit syncs, once the file has content. */
	if (r->params.sync_interval_ms == 0 && r->synced_at_open &&
	    !r->catching_up_at_open) {
		pthread_mutex_lock(&r->mu);
		idle_locked(r, -1);
		pthread_mutex_unlock(&r->mu);
	}
	for (;;) {
		uint64_t pending, pulled_before;
		int64_t started, next;
		int wait_s = 0, rc, interrupted;

		/* Requests cancel the HTTP client under mu, so a request
		 * either is seen here or interrupts the sync below. */
		pthread_mutex_lock(&r->mu);
		http_client_uncancel(r->http);
		if (r->closing) {
			pthread_mutex_unlock(&r->mu);
			break;
		}
		pending = r->requested;
		if (r->params.sync_interval_ms > 0 && pending == r->served &&
		    r->rounds > 0 && r->last_rc == 0)
			wait_s = LIVE_WAIT_S;
		r->polling = wait_s > 0;
		r->interrupted = 0;
		pthread_mutex_unlock(&r->mu);

		started = clock_monotonic_ms();
		pulled_before = r->stats.frames_pulled;
		err[0] = '\0';
		rc = sync_round(r, wait_s, pending, err, sizeof err);

		pthread_mutex_lock(&r->mu);
		interrupted = r->closing || r->interrupted;
		r->polling = 0;
		puller_stats(r->puller, &r->stats);
		if (rc == 0) {
			r->last_rc = 0;
			r->last_error[0] = '\0';
			r->last_sync_unix_ms = clock_unix_ms();
			failures = 0;
		} else if (!interrupted) {
			r->last_rc = -1;
			snprintf(r->last_error, sizeof r->last_error, "%s",
				 err);
			failures++;
		}
		if (rc == 0 || !interrupted) {
			r->served = pending;
			r->rounds++;
			pthread_cond_broadcast(&r->cond);
		}
		pthread_mutex_unlock(&r->mu);
		if (rc != 0 && !interrupted)
			sqlite3_log(SQLITE_WARNING, "replite: sync of %s: %s",
				    r->db_path, err);

		maybe_checkpoint(r, &ckpt_since, &ckpt_count);

		if (r->params.sync_interval_ms == 0)
			next = rc != 0 && interrupted ? 0 : -1;
		else if (rc != 0)
			next = interrupted ? 0
					   : clock_monotonic_ms() +
						 backoff_ms(r, failures);
		else if (long_poll_again(r, wait_s, started, pulled_before))
			next = 0;
		else /* without long-poll support, pull once per interval */
			next = started + r->params.sync_interval_ms;
		pthread_mutex_lock(&r->mu);
		if (next != 0)
			idle_locked(r, next);
		pthread_mutex_unlock(&r->mu);
	}
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* open / close */

static int copy_params(struct replica_options *dst,
		       const struct replica_options *src)
{
	*dst = *src;
	dst->sync_url = src->sync_url ? strdup(src->sync_url) : NULL;
	dst->auth_token = src->auth_token ? strdup(src->auth_token) : NULL;
	dst->encryption_key = NULL;
	dst->tls_ca_file = src->tls_ca_file ? strdup(src->tls_ca_file) : NULL;
	if ((src->sync_url && !dst->sync_url) ||
	    (src->auth_token && !dst->auth_token) ||
	    (src->tls_ca_file && !dst->tls_ca_file)) {
		replica_options_free(dst);
		return -1;
	}
	return 0;
}

/* A state file without its database (deleted, or replaced by an empty
 * file): what the state says was applied is gone. */
static int file_is_missing(const char *db_path)
{
	struct stat db, wal;
	char wal_path[4096];

	snprintf(wal_path, sizeof wal_path, "%s-wal", db_path);
	return (stat(db_path, &db) != 0 || db.st_size == 0) &&
	       (stat(wal_path, &wal) != 0 || wal.st_size <= 32);
}

/* Decide the sync URL from the URI (or environment) and the state file, and
 * whether the file may become a replica at all.  *synced: the file holds a
 * complete image (no bootstrap needed before reads). */
static int check_local_file(struct replica *r, const char *vfs_name,
			    int *synced, char *err, size_t err_len)
{
	struct replica_state st = {0};
	int loaded = replica_state_load(r->state_path, &st, err, err_len);

	*synced = 0;
	if (loaded < 0)
		return -1;
	if (loaded == 1) {
		int empty =
		    applier_file_is_empty(r->db_path, vfs_name, err, err_len);
		if (empty < 0)
			return -1;
		if (empty == 0) {
			errors_set(
			    err, err_len,
			    "%s holds data but has no replica state file "
			    "(%s): it is not a replica, and replite will "
			    "not overwrite it; open a new file name to "
			    "create a replica",
			    r->db_path, r->state_path);
			return -1;
		}
		if (r->params.sync_url == NULL) {
			errors_set(err, err_len,
				   "sync_url is required to create the replica "
				   "%s: add ?sync_url=http://host:port to the "
				   "file URI or set REPLITE_SYNC_URL",
				   r->db_path);
			return -1;
		}
		return 0;
	}
	/* Neither kind of replica ever becomes the other, nor an as-of
	 * replica one of another state: refused before anything touches the
	 * file. */
	if (replica_state_check_as_of(&st, &r->params.as_of, r->db_path, err,
				      err_len) != 0) {
		replica_state_free(&st);
		return -1;
	}
	/* Opened by the state's own time or frame: should it be downloaded
	 * again, it is the original request that names it. */
	if (st.has_as_of)
		r->params.as_of = st.as_of_request;
	if (st.page_size != REPLITE_PAGE_SIZE) {
		errors_set(err, err_len,
			   "the replica state file %s records %u-byte pages; "
			   "replite replicas use %d-byte pages",
			   r->state_path, st.page_size, REPLITE_PAGE_SIZE);
		replica_state_free(&st);
		return -1;
	}
	if (r->params.sync_url == NULL) {
		/* The remembered sync URL. */
		r->params.sync_url = strdup(st.sync_url);
		if (r->params.sync_url == NULL) {
			replica_state_free(&st);
			errors_set(err, err_len, "out of memory");
			return -1;
		}
	}
	*synced = !st.bootstrapping;
	/* A file still catching up after a full image may be far behind:
	 * a new connection waits for a sync too, but reads what the file
	 * has when the sync fails. */
	r->catching_up_at_open = st.catching_up;
	r->file_lost = !st.bootstrapping && file_is_missing(r->db_path);
	if (r->file_lost)
		*synced = 0;
	replica_state_free(&st);
	return 0;
}

/* Wait for the first sync to finish; a file that never synced has no
 * content to read, so its open fails when the sync does. */
static int wait_first_sync(struct replica *r, char *err, size_t err_len)
{
	int rc;

	pthread_mutex_lock(&r->mu);
	while (r->rounds == 0)
		pthread_cond_wait(&r->cond, &r->mu);
	rc = r->last_rc;
	if (rc != 0)
		errors_set(err, err_len,
			   "the replica %s has never synced and its first sync "
			   "failed: %s",
			   r->db_path, r->last_error);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

static void replica_free(struct replica *r)
{
	puller_free(r->puller);
	http_client_free(r->http);
	http_client_free(r->push_http);
	replica_rebase_close(r);
	applier_close(r->applier);
	replica_key_close(r);
	replica_options_free(&r->params);
	pthread_mutex_destroy(&r->mu);
	pthread_mutex_destroy(&r->push_mu);
	pthread_cond_destroy(&r->cond);
	free(r->db_path);
	free(r->state_path);
	free(r);
}

/* Does the token (a JWT) carry the claim "a": "ro"?  Only a hint, read
 * without verifying the signature (the primary verifies): it lets a write
 * be refused before it starts instead of at its commit. */
static int token_read_only(const char *token)
{
	const char *dot1, *dot2;
	uint8_t *raw;
	size_t len = 0;
	json_t *claims;
	int ro;

	if (token == NULL || (dot1 = strchr(token, '.')) == NULL ||
	    (dot2 = strchr(dot1 + 1, '.')) == NULL)
		return 0;
	raw = base64_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &len);
	if (raw == NULL)
		return 0;
	claims = json_loadb((const char *)raw, len, 0, NULL);
	free(raw);
	ro = json_is_string(json_object_get(claims, "a")) &&
	     strcmp(json_string_value(json_object_get(claims, "a")), "ro") == 0;
	json_decref(claims);
	return ro;
}

int replica_open(const char *db_path, const struct replica_options *p,
		 sqlite3_vfs *root_vfs, struct replica **out, char *err,
		 size_t err_len)
{
	struct http_client_config cfg = {0};
	pthread_condattr_t ca;
	struct replica *r = calloc(1, sizeof *r);
	uint8_t id[8];
	int synced = 0;

	if (r == NULL) {
		errors_set(err, err_len, "out of memory");
		return -1;
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_mutex_init(&r->push_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	r->db_path = strdup(db_path);
	r->state_path = replica_state_path(db_path);
	if (r->db_path == NULL || r->state_path == NULL ||
	    copy_params(&r->params, p) != 0) {
		errors_set(err, err_len, "out of memory");
		goto fail;
	}
	/* Before anything reads the files: an encrypted one reads only
	 * through the cipher VFS (root_vfs), once registered. */
	if (replica_key_open(r, p->encryption_key, root_vfs, err, err_len) !=
		0 ||
	    check_local_file(r, root_vfs->zName, &synced, err, err_len) != 0)
		goto fail;
	if (applier_open(db_path, root_vfs->zName, REPLITE_PAGE_SIZE,
			 &r->applier, err, err_len) != 0)
		goto fail;
	applier_set_cipher(r->applier, r->cipher);
	if (r->file_lost &&
	    applier_require_image(r->applier, err, err_len) != 0)
		goto fail;
	/* An online replica still pushes what an offline session left. */
	if (applier_open_outbox(r->applier, r->params.offline, err, err_len) !=
		0 ||
	    applier_recover_outbox(r->applier, err, err_len) != 0)
		goto fail;
	applier_set_rebase(r->applier,
			   r->params.conflict == REPLICA_CONFLICT_REBASE);
	/* A random id per replica per process: the primary's access log
	 * tells replicas apart by it. */
	sqlite3_randomness(sizeof id, id);
	hex_encode(id, sizeof id, r->replica_id);
	cfg.base_url = r->params.sync_url;
	cfg.auth_token = r->params.auth_token;
	cfg.ca_file = r->params.tls_ca_file;
	cfg.client_id = r->replica_id;
	cfg.connect_timeout_ms = CONNECT_TIMEOUT_MS;
	cfg.max_body = MAX_BODY;
	/* Writers are bounded by write_timeout instead. */
	if (http_client_new(&cfg, &r->push_http, err, err_len) != 0)
		goto fail;
	cfg.stall_timeout_ms = STALL_TIMEOUT_MS;
	if (http_client_new(&cfg, &r->http, err, err_len) != 0)
		goto fail;
	r->token_read_only = token_read_only(r->params.auth_token);
	r->puller = puller_new(r->http, r->applier, r->params.sync_url,
			       REPLITE_PAGE_SIZE);
	if (r->puller == NULL) {
		errors_set(err, err_len, "out of memory");
		goto fail;
	}
	r->synced_at_open = synced;
	if (r->params.as_of.kind != AS_OF_NONE) {
		if (replica_as_of_open(r, synced, err, err_len) != 0)
			goto fail;
		*out = r;
		return 0;
	}
	if (pthread_create(&r->thread, NULL, sync_main, r) != 0) {
		errors_set(err, err_len, "cannot start the sync thread");
		goto fail;
	}
	r->thread_started = 1;
	if (!synced && wait_first_sync(r, err, err_len) != 0) {
		replica_close(r);
		return -1;
	}
	if (synced && r->catching_up_at_open)
		wait_first_sync(r, err, err_len);
	*out = r;
	return 0;
fail:
	replica_free(r);
	return -1;
}

void replica_close(struct replica *r)
{
	if (r == NULL)
		return;
	if (r->thread_started) {
		pthread_mutex_lock(&r->mu);
		r->closing = 1;
		r->interrupted = 1;
		pthread_cond_broadcast(&r->cond);
		http_client_cancel(r->http);
		pthread_mutex_unlock(&r->mu);
		pthread_join(r->thread, NULL);
	}
	replica_free(r);
}

/* ---------------------------------------------------------------------- */
/* on demand, status */

/* Ask the sync thread for a sync and wait for it, at most timeout_ms (-1:
 * no limit). */
int replica_sync_timed(struct replica *r, int64_t timeout_ms,
		       uint32_t *frame_no, char *err, size_t err_len)
{
	int64_t until = timeout_ms < 0 ? -1 : clock_monotonic_ms() + timeout_ms;
	uint64_t ticket;
	int rc;

	if (r->as_of_state.has_as_of)
		return replica_as_of_sync(r, err, err_len);
	pthread_mutex_lock(&r->mu);
	ticket = ++r->requested;
	pthread_cond_broadcast(&r->cond);
	/* Interrupt a long-poll: the thread starts a sync covering us.  Any
	 * other sync runs to its end, and the next one covers us. */
	if (r->polling) {
		r->interrupted = 1;
		http_client_cancel(r->http);
	}
	while (r->served < ticket && !r->closing && wait_locked(r, until))
		;
	rc = r->served >= ticket ? r->last_rc : -1;
	if (rc != 0)
		errors_set(err, err_len, "replite: sync of %s failed: %s",
			   r->db_path,
			   r->closing            ? "the database is closing"
			   : r->served >= ticket ? r->last_error
						 : "it did not finish in time");
	else if (frame_no != NULL)
		*frame_no = r->stats.frame_no;
	pthread_mutex_unlock(&r->mu);
	return rc;
}

int replica_sync(struct replica *r, uint32_t *frame_no, char *err,
		 size_t err_len)
{
	return replica_sync_timed(r, -1, frame_no, err, err_len);
}

const char *replica_db_path(const struct replica *r)
{
	return r->db_path;
}

const char *replica_sync_url(const struct replica *r)
{
	return r->params.sync_url;
}

/* o (taken over) as compact JSON text, sqlite3_malloc'd; NULL when o is
 * NULL or memory runs out. */
static char *json_text(json_t *o)
{
	char *text, *out = NULL;

	if (o == NULL)
		return NULL;
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (text != NULL)
		out = sqlite3_mprintf("%s", text);
	free(text);
	return out;
}

char *replica_status_json(struct replica *r)
{
	struct replica_state st = {0};
	uint32_t generation, frame_no, primary;
	char err[512];
	json_t *o;

	/* The position in the file, which other processes also advance; the
	 * primary's head is at least what the file holds (the sync thread
	 * publishes its figures after the batch). */
	pthread_mutex_lock(&r->mu);
	generation = r->stats.generation;
	frame_no = r->stats.frame_no;
	primary = r->stats.primary_frame_no;
	pthread_mutex_unlock(&r->mu);
	if (replica_state_load(r->state_path, &st, err, sizeof err) == 0) {
		if (st.generation != generation)
			primary = st.frame_no;
		generation = st.generation;
		frame_no = st.frame_no;
	}
	if (primary < frame_no)
		primary = frame_no;
	pthread_mutex_lock(&r->mu);
	o = json_pack(
	    "{s:I, s:I, s:I, s:I, s:I, s:b, s:f, s:I, s:I}", "generation",
	    (json_int_t)generation, "frame_no", (json_int_t)frame_no,
	    "primary_frame_no", (json_int_t)primary, "last_sync_unix_ms",
	    (json_int_t)r->last_sync_unix_ms, "pending_frames", (json_int_t)0,
	    "offline", r->params.offline != 0, "sync_interval",
	    (double)r->params.sync_interval_ms / 1000.0, "frames_pulled",
	    (json_int_t)r->stats.frames_pulled, "bytes_pulled",
	    (json_int_t)r->stats.bytes_pulled);
	if (o != NULL)
		json_object_set_new(
		    o, "wire_bytes_pulled",
		    json_integer((json_int_t)r->stats.wire_bytes_pulled));
	if (o != NULL)
		json_object_set_new(
		    o, "rejected_transfers",
		    json_integer((json_int_t)r->stats.rejected_transfers));
	if (o != NULL)
		json_object_set_new(
		    o, "squashed_frames",
		    json_integer((json_int_t)r->stats.squashed_frames));
	if (o != NULL)
		json_object_set_new(o, "encrypted",
				    json_boolean(replica_encrypted(r)));
	if (o != NULL) {
		/* Of the content at frame_no, as the state file records it. */
		char sum[DBSUM_TEXT_SIZE];
		dbsum_format(st.checksum, sum);
		json_object_set_new(o, "checksum",
				    st.has_checksum ? json_string(sum)
						    : json_null());
	}
	if (o != NULL) {
		pthread_mutex_unlock(&r->mu);
		replica_offline_status(r, &st, o);
		pthread_mutex_lock(&r->mu);
	}
	if (o != NULL) {
		/* How stale reads are: the age of the oldest primary commit
		 * known and not applied (clocks of two machines: never
		 * negative). */
		int64_t since = r->stats.behind_since_unix_ms;
		int64_t lag = since > 0 ? clock_unix_ms() - since : 0;
		json_object_set_new(o, "lag_ms",
				    json_integer(lag > 0 ? lag : 0));
	}
	if (o != NULL) {
		/* An as-of replica's state: when it was committed. */
		char when[AS_OF_TEXT_SIZE];
		clock_format_rfc3339(st.as_of_unix_ms, when, sizeof when);
		json_object_set_new(
		    o, "as_of", st.has_as_of ? json_string(when) : json_null());
	}
	if (o != NULL && r->last_sync_unix_ms == 0) /* never synced */
		json_object_set_new(o, "last_sync_unix_ms", json_null());
	if (o != NULL)
		json_object_set_new(o, "last_error",
				    r->last_error[0]
					? json_string(r->last_error)
					: json_null());
	pthread_mutex_unlock(&r->mu);
	replica_state_free(&st);
	return json_text(o);
}

/* The primary's checksum after frame `frame` of generation gen. */
static int primary_checksum(struct replica *r, uint32_t gen, uint32_t frame,
			    uint64_t *out, char *err, size_t err_len)
{
	struct http_client_response res = {0};
	char path[64];
	int rv = -1;

	snprintf(path, sizeof path, "/checksum/%" PRIu32 "/%" PRIu32, gen,
		 frame);
	pthread_mutex_lock(&r->push_mu);
	if (http_client_request(r->push_http, "GET", path, NULL, 0,
				r->params.write_timeout_ms, &res, err,
				err_len) == 0) {
		if (res.status == 200)
			rv = messages_parse_checksum(res.body, res.len, out,
						     err, err_len);
		else
			http_client_status_error(path, &res, err, err_len);
	}
	pthread_mutex_unlock(&r->push_mu);
	http_client_response_free(&res);
	return rv;
}

char *replica_verify_json(struct replica *r, char *err, size_t err_len)
{
	char local_text[DBSUM_TEXT_SIZE], rec_text[DBSUM_TEXT_SIZE];
	char primary_text[DBSUM_TEXT_SIZE], why[512] = "";
	struct replica_state st = {0};
	uint64_t local, primary;
	int tries, has_primary = 0, match;
	json_t *o;
	char *out;

	if (r->as_of_state.has_as_of) {
		o = replica_as_of_verify(r, err, err_len);
		if (o == NULL)
			return NULL;
		out = json_text(o);
		if (out == NULL)
			errors_set(err, err_len, "out of memory");
		return out;
	}
	/* At the primary's head, so that it knows the checksum; again if a
	 * batch was interrupted (the file may hold more than frame_no). */
	for (tries = 0; tries < 3; tries++) {
		replica_state_free(&st);
		if (replica_sync(r, NULL, err, err_len) != 0 ||
		    applier_verify(r->applier, &st, &local, err, err_len) != 0)
			return NULL;
		if (st.frame_hwm == st.frame_no)
			break;
	}
	has_primary = primary_checksum(r, st.generation, st.frame_no, &primary,
				       why, sizeof why) == 0;
	match = has_primary && local == primary &&
		(!st.has_checksum || st.checksum == local);
	dbsum_format(local, local_text);
	dbsum_format(st.checksum, rec_text);
	dbsum_format(primary, primary_text);
	o = json_pack("{s:b, s:I, s:I, s:s, s:o, s:o}", "match", match,
		      "generation", (json_int_t)st.generation, "frame_no",
		      (json_int_t)st.frame_no, "local", local_text, "recorded",
		      st.has_checksum ? json_string(rec_text) : json_null(),
		      "primary",
		      has_primary ? json_string(primary_text) : json_null());
	if (o != NULL && !has_primary)
		json_object_set_new(o, "error", json_string(why));
	replica_state_free(&st);
	out = json_text(o);
	if (out == NULL)
		errors_set(err, err_len, "out of memory");
	return out;
}
