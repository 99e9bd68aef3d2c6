#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access_log.h"

/* In microseconds, for comparing; printed in seconds. */
static const int64_t bucket_us[METRICS_N_BUCKETS] = {
    100,   250,   500,    1000,   2500,    5000,    10000,
    25000, 50000, 100000, 250000, 1000000, 5000000, 30000000,
};

/* The routes requests are counted under: a fixed set, so that the table
 * stays small whatever paths clients send. */
static const char *const routes[] = {
    "/health",
    "/version",
    "/info",
    "/metrics",
    "/sync/{gen}/{start}/{end}",
    "/sync/{gen}/{start}/{end}/{baton}",
    "/export/{gen}",
    "/checksum/{gen}/{frame}",
    "/v1/execute",
    "/v1/batch",
    "/v2/pipeline",
    "/v3/pipeline",
    "/v3/cursor",
    "/v3-protobuf/pipeline",
    "/v3-protobuf/cursor",
    "/pull-updates",
    "/",
    "/v1",
    "/v2",
    "/v3",
    "/v3-protobuf",
    "other",
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

static const char *const methods[] = {"GET", "POST", "other"};
#define N_METHODS (sizeof methods / sizeof methods[0])

struct request_count {
	unsigned route, method;
	int status;
	uint64_t n;
};

struct metrics {
	struct metrics_sql sql;
	struct metrics_sync sync;
	struct metrics_histogram latency[N_ROUTES];
	/* Requests by (route, method, status): a few dozen rows in
	 * practice, at most N_ROUTES * N_METHODS * the statuses used. */
	pthread_mutex_t mu;
	struct request_count *counts;
	size_t n_counts, cap_counts;
};

void metrics_histogram_observe(struct metrics_histogram *h, int64_t us)
{
	int i;

	if (us < 0)
		us = 0;
	for (i = 0; i < METRICS_N_BUCKETS; i++) {
		if (us <= bucket_us[i])
			atomic_fetch_add_explicit(&h->bucket[i], 1,
						  memory_order_relaxed);
	}
	atomic_fetch_add_explicit(&h->sum_us, (uint64_t)us,
				  memory_order_relaxed);
	/* Last, so that a reader never sees a count below a bucket's (a
	 * scrape between the two shows the observation in neither, or in
	 * the buckets only, which promtool tolerates less). */
	atomic_fetch_add_explicit(&h->count, 1, memory_order_release);
}

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof *m);

	if (m == NULL)
		return NULL;
	pthread_mutex_init(&m->mu, NULL);
	return m;
}

void metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	pthread_mutex_destroy(&m->mu);
	free(m->counts);
	free(m);
}

struct metrics_sql *metrics_sql(struct metrics *m)
{
	return &m->sql;
}

struct metrics_sync *metrics_sync(struct metrics *m)
{
	return &m->sync;
}

static unsigned route_index(const char *path)
{
	char route[128];
	unsigned i;

	access_log_route(path, route, sizeof route);
	for (i = 0; i < N_ROUTES - 1; i++) {
		if (strcmp(route, routes[i]) == 0)
			return i;
	}
	return N_ROUTES - 1;
}

static unsigned method_index(const char *method)
{
	unsigned i;

	for (i = 0; i < N_METHODS - 1; i++) {
		if (strcmp(method, methods[i]) == 0)
			return i;
	}
	return N_METHODS - 1;
}

void metrics_request(struct metrics *m, const char *method, const char *path,
		     int status, int64_t us)
{
	unsigned route = route_index(path), meth = method_index(method);
	size_t i;

	if (status < 100 || status > 599)
		status = 0; /* never sent; counted apart */
	metrics_histogram_observe(&m->latency[route], us);
	pthread_mutex_lock(&m->mu);
	for (i = 0; i < m->n_counts; i++) {
		struct request_count *c = &m->counts[i];
		if (c->route == route && c->method == meth &&
		    c->status == status) {
			c->n++;
			goto out;
		}
	}
	if (m->n_counts == m->cap_counts) {
		size_t cap = m->cap_counts ? 2 * m->cap_counts : 32;
		void *p = realloc(m->counts, cap * sizeof *m->counts);
		if (p == NULL)
			goto out; /* lost: the next one tries again */
		m->counts = p;
		m->cap_counts = cap;
	}
	m->counts[m->n_counts++] =
	    (struct request_count){route, meth, status, 1};
out:
	pthread_mutex_unlock(&m->mu);
}

void metrics_text_printf(struct metrics_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->failed)
		return;
	for (;;) {
		size_t room = t->cap - t->len;
		va_start(ap, fmt);
		n = vsnprintf(t->p ? t->p + t->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = 1;
			return;
		}
		if ((size_t)n < room) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap ? t->cap : 4096;
		while (cap - t->len <= (size_t)n)
			cap *= 2;
		char *p = realloc(t->p, cap);
		if (p == NULL) {
			t->failed = 1;
			return;
		}
		t->p = p;
		t->cap = cap;
	}
}

void metrics_text_family(struct metrics_text *t, const char *name,
			 const char *type, const char *help)
{
	metrics_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
			    type);
}

void metrics_text_histogram(struct metrics_text *t, const char *name,
			    const char *labels,
			    const struct metrics_histogram *h)
{
	/* The count first: observe() adds it last, so every bucket read
	 * after it is at least as large, and it is clamped to them. */
	uint64_t count = atomic_load_explicit(&h->count, memory_order_acquire);
	const char *sep = labels[0] != '\0' ? "," : "";
	uint64_t prev = 0;
	int i;

	for (i = 0; i < METRICS_N_BUCKETS; i++) {
		uint64_t b =
		    atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
		if (b > count)
			b = count; /* observations still under way */
		if (b < prev)
			b = prev;
		prev = b;
		metrics_text_printf(t, "%s_bucket{%s%sle=\"%g\"} %llu\n", name,
				    labels, sep, (double)bucket_us[i] / 1e6,
				    (unsigned long long)b);
	}
	metrics_text_printf(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name,
			    labels, sep, (unsigned long long)count);
	metrics_text_printf(
	    t, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels,
	    labels[0] ? "}" : "",
	    (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) /
		1e6);
	metrics_text_printf(t, "%s_count%s%s%s %llu\n", name,
			    labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
			    (unsigned long long)count);
}

static int by_route_method_status(const void *a, const void *b)
{
	const struct request_count *x = a, *y = b;

	if (x->route != y->route)
		return x->route < y->route ? -1 : 1;
	if (x->method != y->method)
		return x->method < y->method ? -1 : 1;
	return (x->status > y->status) - (x->status < y->status);
}

static void render_http(struct metrics *m, struct metrics_text *t)
{
	struct request_count *copy = NULL;
	size_t i, n;
	char labels[160];

	pthread_mutex_lock(&m->mu);
	n = m->n_counts;
	if (n > 0 && (copy = malloc(n * sizeof *copy)) != NULL)
		memcpy(copy, m->counts, n * sizeof *copy);
	pthread_mutex_unlock(&m->mu);
	if (copy == NULL)
		n = 0;
	qsort(copy, n, sizeof *copy, by_route_method_status);
	metrics_text_family(t, "replite_http_requests_total", "counter",
			    "HTTP requests answered, by route, method and "
			    "status (status 0: no answer was sent)");
	for (i = 0; i < n; i++)
		metrics_text_printf(t,
				    "replite_http_requests_total{route=\"%s\","
				    "method=\"%s\",status=\"%d\"} %llu\n",
				    routes[copy[i].route],
				    methods[copy[i].method], copy[i].status,
				    (unsigned long long)copy[i].n);
	free(copy);
	metrics_text_family(t, "replite_http_request_duration_seconds",
			    "histogram",
			    "Time from a request's arrival to its answer "
			    "(long-polls included), by route");
	for (i = 0; i < N_ROUTES; i++) {
		if (atomic_load(&m->latency[i].count) == 0)
			continue;
		snprintf(labels, sizeof labels, "route=\"%s\"", routes[i]);
		metrics_text_histogram(t,
				       "replite_http_request_duration_seconds",
				       labels, &m->latency[i]);
	}
}

static void counter(struct metrics_text *t, const char *name, const char *help,
		    atomic_uint_fast64_t *v)
{
	metrics_text_family(t, name, "counter", help);
	metrics_text_printf(t, "%s %llu\n", name,
			    (unsigned long long)atomic_load(v));
}

static void render_sql(struct metrics_sql *s, struct metrics_text *t)
{
	counter(t, "replite_sql_statements_total",
		"SQL statements run to completion for Hrana clients",
		&s->statements);
	counter(t, "replite_sql_statement_errors_total",
		"SQL statements that failed (timeouts and cancels included)",
		&s->errors);
	counter(t, "replite_sql_statement_timeouts_total",
		"SQL statements interrupted by --statement-timeout",
		&s->timeouts);
	counter(t, "replite_sql_rows_read_total",
		"Rows returned by SQL statements (SQLite does not count the "
		"rows a statement reads; see replite_sql_fullscan_steps_total)",
		&s->rows_returned);
	counter(t, "replite_sql_rows_written_total",
		"Rows inserted, updated or deleted by SQL statements, by "
		"their triggers too",
		&s->rows_written);
	counter(t, "replite_sql_fullscan_steps_total",
		"Steps of full table scans in SQL statements",
		&s->fullscan_steps);
	counter(t, "replite_sql_vm_steps_total",
		"Virtual machine operations run by SQL statements",
		&s->vm_steps);
	metrics_text_family(t, "replite_sql_statement_duration_seconds",
			    "histogram",
			    "Time to prepare and run an SQL statement");
	metrics_text_histogram(t, "replite_sql_statement_duration_seconds", "",
			       &s->duration);
}

static void render_sync(struct metrics_sync *s, struct metrics_text *t)
{
	counter(t, "replite_frames_served_total",
		"WAL frames sent to replicas and libSQL clients (GET /sync)",
		&s->frames_served);
	counter(t, "replite_frame_bytes_served_total",
		"Bytes of those frames, before compression",
		&s->frame_bytes_served);
	counter(t, "replite_exports_total",
		"Database images sent (GET /export): bootstraps", &s->exports);
	counter(t, "replite_export_bytes_total",
		"Bytes of those images, before compression", &s->export_bytes);
	metrics_text_family(t, "replite_pushes_total", "counter",
			    "Pushes of frames (POST /sync) by outcome: ok, "
			    "conflict (the pusher was behind), refused");
	metrics_text_printf(
	    t,
	    "replite_pushes_total{outcome=\"ok\"} %llu\n"
	    "replite_pushes_total{outcome=\"conflict\"} %llu\n"
	    "replite_pushes_total{outcome=\"refused\"} %llu\n",
	    (unsigned long long)atomic_load(&s->pushes_ok),
	    (unsigned long long)atomic_load(&s->pushes_conflict),
	    (unsigned long long)atomic_load(&s->pushes_refused));
}

void metrics_render(struct metrics *m, struct metrics_text *t)
{
	render_http(m, t);
	render_sql(&m->sql, t);
	render_sync(&m->sync, t);
}
