/* The primary's numbers, for GET /metrics in Prometheus' text format
 * (version 0.0.4): counters and histograms that the threads serving
 * requests update without a lock (atomics), and the page that renders
 * them.  Each part of the server owns the numbers of what it does: the
 * HTTP front (requests by route and status, their latencies) and the SQL
 * statements live here in struct metrics; the store keeps its own (commits,
 * fsyncs, sizes: store_stats) and api.c renders them all on one page.
 *
 * Histograms have fixed buckets in seconds, from 100 us to 30 s, which
 * span a point read on loopback and a statement at its timeout. */
#ifndef REPLITE_METRICS_H
#define REPLITE_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_N_BUCKETS 14

/* Cumulative as Prometheus wants them: bucket[i] counts observations <=
 * metrics_bucket_bounds[i]; +Inf is count. */
struct metrics_histogram {
	atomic_uint_fast64_t bucket[METRICS_N_BUCKETS];
	atomic_uint_fast64_t count;
	atomic_uint_fast64_t sum_us;
};

void metrics_histogram_observe(struct metrics_histogram *h, int64_t us);

/* What the SQL statements of Hrana streams did (hrana.c updates it;
 * SQLite does not count the rows a statement reads, so the closest
 * figures are given: rows returned, and the steps of full scans). */
struct metrics_sql {
	atomic_uint_fast64_t statements;    /* stepped to the end */
	atomic_uint_fast64_t errors;        /* failed, interrupted included */
	atomic_uint_fast64_t timeouts;      /* interrupted by the timeout */
	atomic_uint_fast64_t rows_returned; /* result rows */
	atomic_uint_fast64_t rows_written;  /* rows changed, by triggers too */
	atomic_uint_fast64_t
	    fullscan_steps;                /* SQLITE_STMTSTATUS_FULLSCAN_STEP */
	atomic_uint_fast64_t vm_steps;     /* SQLITE_STMTSTATUS_VM_STEP */
	struct metrics_histogram duration; /* prepare to last step */
};

/* Sync-protocol traffic (api.c). */
struct metrics_sync {
	atomic_uint_fast64_t frames_served; /* GET /sync answers' frames */
	atomic_uint_fast64_t
	    frame_bytes_served;               /* their bodies, uncompressed */
	atomic_uint_fast64_t exports;         /* GET /export answers */
	atomic_uint_fast64_t export_bytes;    /* images, uncompressed */
	atomic_uint_fast64_t pushes_ok;       /* POST /sync "ok" */
	atomic_uint_fast64_t pushes_conflict; /* POST /sync "conflict" */
	atomic_uint_fast64_t pushes_refused;  /* every other answer */
};

struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

struct metrics_sql *metrics_sql(struct metrics *m);
struct metrics_sync *metrics_sync(struct metrics *m);

/* An answered request: its route (access_log_route's placeholders; paths
 * of no known route count as "other", so that a scan of random paths does
 * not grow the table), its status and how long it took. */
void metrics_request(struct metrics *m, const char *method, const char *path,
		     int status, int64_t us);

/* A text page being built; NULL p after an allocation failed. */
struct metrics_text {
	char *p;
	size_t len, cap;
	int failed;
};

void metrics_text_printf(struct metrics_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "# HELP name help\n# TYPE name type\n". */
void metrics_text_family(struct metrics_text *t, const char *name,
			 const char *type, const char *help);
/* The lines of one histogram; labels is "" or "k=\"v\",...". */
void metrics_text_histogram(struct metrics_text *t, const char *name,
			    const char *labels,
			    const struct metrics_histogram *h);
/* Append the families this module owns (HTTP, SQL, sync traffic). */
void metrics_render(struct metrics *m, struct metrics_text *t);

#endif
