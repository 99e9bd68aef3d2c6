/* GET /metrics: the Prometheus text page (format 0.0.4), from the numbers
 * their owners keep: metrics.h (HTTP, SQL, sync traffic), the store
 * (commits, fdatasyncs, sizes) and the replicas table (lag). */
#include "api.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"

/* What the page shows of one database, gathered first: the Prometheus
 * format wants each family's samples together, across databases. */
struct db_numbers {
	char name[DATABASES_NAME_MAX + 1];
	struct store_stats st;
	struct replicas_entry *replicas;
	size_t n_replicas;
	struct replica_lag {
		int64_t ms;
		uint64_t frames;
	} * lag;
	struct database *held; /* st.fsync points into its store */
};

struct gather {
	struct databases *registry;
	struct db_numbers *dbs;
	size_t n, cap;
	int failed;
};

static void gather_one(void *arg, struct database *db)
{
	struct gather *g = arg;
	struct db_numbers *d;
	int64_t unix_now = clock_unix_ms();
	size_t i;

	if (g->n == g->cap) {
		size_t cap = g->cap ? 2 * g->cap : 8;
		struct db_numbers *b = realloc(g->dbs, cap * sizeof *b);
		if (b == NULL) {
			g->failed = 1;
			return;
		}
		g->dbs = b;
		g->cap = cap;
	}
	d = &g->dbs[g->n];
	memset(d, 0, sizeof *d);
	d->held = databases_get(g->registry, db->name);
	if (d->held == NULL)
		return; /* deleted meanwhile */
	g->n++;
	snprintf(d->name, sizeof d->name, "%s", db->name);
	store_stats(db->store, &d->st);
	replicas_expire(db->replicas, clock_monotonic_ms());
	d->n_replicas = replicas_list(db->replicas, &d->replicas);
	d->lag = calloc(d->n_replicas ? d->n_replicas : 1, sizeof *d->lag);
	if (d->lag == NULL) {
		g->failed = 1;
		return;
	}
	for (i = 0; i < d->n_replicas; i++) {
		int64_t since =
		    store_behind_since(db->store, d->replicas[i].gen,
				       d->replicas[i].frame, &d->lag[i].frames);
		d->lag[i].ms =
		    since > 0 && unix_now > since ? unix_now - since : 0;
	}
}

/* A gauge family with one sample per database; field: offsetof into
 * struct store_stats of a uint32_t (is32) or uint64_t. */
static void gauge(struct metrics_text *t, const struct gather *g,
		  const char *name, const char *help, size_t field, int is32)
{
	size_t i;

	metrics_text_family(t, name, "gauge", help);
	for (i = 0; i < g->n; i++) {
		const char *p = (const char *)&g->dbs[i].st + field;
		uint64_t v = is32 ? *(const uint32_t *)(const void *)p
				  : *(const uint64_t *)(const void *)p;
		metrics_text_printf(t, "%s{database=\"%s\"} %" PRIu64 "\n",
				    name, g->dbs[i].name, v);
	}
}

#define GAUGE32(t, g, name, help, f)                                           \
	gauge(t, g, name, help, offsetof(struct store_stats, f), 1)
#define GAUGE64(t, g, name, help, f)                                           \
	gauge(t, g, name, help, offsetof(struct store_stats, f), 0)

static void render_stores(struct metrics_text *t, const struct gather *g)
{
	char label[DATABASES_NAME_MAX + 16];
	size_t i;

	metrics_text_family(t, "replite_commits_total", "counter",
			    "Transactions logged, by source: sql (Hrana "
			    "clients) or push (replicas, libSQL clients)");
	for (i = 0; i < g->n; i++)
		metrics_text_printf(
		    t,
		    "replite_commits_total{database=\"%s\",source=\"sql\"} "
		    "%" PRIu64 "\n"
		    "replite_commits_total{database=\"%s\",source=\"push\"} "
		    "%" PRIu64 "\n",
		    g->dbs[i].name, g->dbs[i].st.commits_sql, g->dbs[i].name,
		    g->dbs[i].st.commits_pushed);
	metrics_text_family(t, "replite_fsync_duration_seconds", "histogram",
			    "fdatasync of the frame log (one per group "
			    "commit, two per push)");
	for (i = 0; i < g->n; i++) {
		snprintf(label, sizeof label, "database=\"%s\"",
			 g->dbs[i].name);
		metrics_text_histogram(t, "replite_fsync_duration_seconds",
				       label, g->dbs[i].st.fsync);
	}
	GAUGE32(t, g, "replite_generation", "The current generation",
		generation);
	GAUGE32(t, g, "replite_head_frame",
		"The current generation's last durable commit frame", head);
	GAUGE32(t, g, "replite_generations",
		"Generations retained, the current one included", generations);
	GAUGE64(t, g, "replite_database_bytes",
		"Size of the live database file (live.db)", live_bytes);
	GAUGE64(t, g, "replite_wal_bytes", "Size of the live database's WAL",
		live_wal_bytes);
	GAUGE64(t, g, "replite_log_bytes",
		"Size of the frame and push logs of the retained generations",
		log_bytes);
	GAUGE64(t, g, "replite_base_bytes",
		"Size of the retained generations' base images (compressed "
		"copies included)",
		base_bytes);
}

static void render_replicas(struct metrics_text *t, const struct gather *g)
{
	int64_t now = clock_monotonic_ms();
	size_t i, j;

	metrics_text_family(t, "replite_replicas", "gauge",
			    "Replicas that pulled recently (they send "
			    "X-Replite-Replica)");
	for (i = 0; i < g->n; i++)
		metrics_text_printf(t,
				    "replite_replicas{database=\"%s\"} %zu\n",
				    g->dbs[i].name, g->dbs[i].n_replicas);
	metrics_text_family(t, "replite_replica_lag_seconds", "gauge",
			    "Age of the oldest commit a replica had not pulled "
			    "at its last request (0: it was current)");
	for (i = 0; i < g->n; i++)
		for (j = 0; j < g->dbs[i].n_replicas; j++)
			metrics_text_printf(
			    t,
			    "replite_replica_lag_seconds{database=\"%s\","
			    "replica=\"%s\"} %.3f\n",
			    g->dbs[i].name, g->dbs[i].replicas[j].id,
			    (double)g->dbs[i].lag[j].ms / 1000.0);
	metrics_text_family(t, "replite_replica_lag_frames", "gauge",
			    "Frames committed after a replica's position");
	for (i = 0; i < g->n; i++)
		for (j = 0; j < g->dbs[i].n_replicas; j++)
			metrics_text_printf(
			    t,
			    "replite_replica_lag_frames{database=\"%s\","
			    "replica=\"%s\"} %" PRIu64 "\n",
			    g->dbs[i].name, g->dbs[i].replicas[j].id,
			    g->dbs[i].lag[j].frames);
	metrics_text_family(t, "replite_replica_last_seen_seconds", "gauge",
			    "Time since a replica's last pull");
	for (i = 0; i < g->n; i++)
		for (j = 0; j < g->dbs[i].n_replicas; j++)
			metrics_text_printf(
			    t,
			    "replite_replica_last_seen_seconds{database=\"%s\","
			    "replica=\"%s\"} %.3f\n",
			    g->dbs[i].name, g->dbs[i].replicas[j].id,
			    (double)(now - g->dbs[i].replicas[j].seen_ms) /
				1000.0);
}

void api_metrics_page(struct api *api, struct http_response *res)
{
	struct metrics_text t = {0};
	struct gather g = {0};
	size_t i;

	g.registry = api->dbs;
	databases_each(api->dbs, gather_one, &g);
	metrics_render(api->metrics, &t);
	if (!g.failed) {
		render_stores(&t, &g);
		render_replicas(&t, &g);
	}
	for (i = 0; i < g.n; i++) {
		free(g.dbs[i].replicas);
		free(g.dbs[i].lag);
		databases_put(g.dbs[i].held);
	}
	free(g.dbs);
	if (t.failed || g.failed) {
		free(t.p);
		http_reply_error(&res->reply, 500, "OUT_OF_MEMORY",
				 "out of memory building /metrics");
		return;
	}
	res->reply.status = 200;
	res->reply.content_type = "text/plain; version=0.0.4; charset=utf-8";
	res->reply.body = t.p;
	res->reply.len = t.len;
}
