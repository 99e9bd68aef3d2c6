/* GET /metrics: the Prometheus text page (format 0.0.4), from the numbers
 * their owners keep: metrics.h (HTTP, SQL, sync traffic), the store
 * (commits, fdatasyncs, sizes) and the replicas table (lag). */
#include "api.h"

#include <inttypes.h>
#include <stdlib.h>

#include "base/clock.h"

static void gauge(struct metrics_text *t, const char *name, const char *help,
		  uint64_t v)
{
	metrics_text_family(t, name, "gauge", help);
	metrics_text_printf(t, "%s{database=\"main\"} %" PRIu64 "\n", name, v);
}

static void render_store(struct store *store, struct metrics_text *t)
{
	struct store_stats st;

	store_stats(store, &st);
	metrics_text_family(t, "replite_commits_total", "counter",
			    "Transactions logged, by source: sql (Hrana "
			    "clients) or push (replicas, libSQL clients)");
	metrics_text_printf(
	    t,
	    "replite_commits_total{database=\"main\",source=\"sql\"} "
	    "%" PRIu64 "\n"
	    "replite_commits_total{database=\"main\",source=\"push\"} "
	    "%" PRIu64 "\n",
	    st.commits_sql, st.commits_pushed);
	metrics_text_family(t, "replite_fsync_duration_seconds", "histogram",
			    "fdatasync of the frame log (one per group "
			    "commit, two per push)");
	metrics_text_histogram(t, "replite_fsync_duration_seconds",
			       "database=\"main\"", st.fsync);
	gauge(t, "replite_generation", "The current generation", st.generation);
	gauge(t, "replite_head_frame",
	      "The current generation's last durable commit frame", st.head);
	gauge(t, "replite_generations",
	      "Generations retained, the current "
	      "one included",
	      st.generations);
	gauge(t, "replite_database_bytes",
	      "Size of the live database file (live.db)", st.live_bytes);
	gauge(t, "replite_wal_bytes", "Size of the live database's WAL",
	      st.live_wal_bytes);
	gauge(t, "replite_log_bytes",
	      "Size of the frame and push logs of the retained generations",
	      st.log_bytes);
	gauge(t, "replite_base_bytes",
	      "Size of the retained generations' base images (compressed "
	      "copies included)",
	      st.base_bytes);
}

/* One replica's lag, from its last position. */
struct replica_lag {
	int64_t ms;
	uint64_t frames;
};

static void render_replicas(struct api *api, struct metrics_text *t)
{
	struct replicas_entry *e = NULL;
	size_t i, n = replicas_list(api->replicas, &e);
	int64_t now = clock_monotonic_ms(), unix_now = clock_unix_ms();
	struct replica_lag *lag = calloc(n > 0 ? n : 1, sizeof *lag);

	if (lag == NULL) {
		t->failed = 1;
		free(e);
		return;
	}
	/* Each family's samples must stand together: compute first. */
	for (i = 0; i < n; i++) {
		int64_t since = store_behind_since(api->store, e[i].gen,
						   e[i].frame, &lag[i].frames);
		lag[i].ms =
		    since > 0 && unix_now > since ? unix_now - since : 0;
	}
	metrics_text_family(t, "replite_replicas", "gauge",
			    "Replicas that pulled recently (they send "
			    "X-Replite-Replica)");
	metrics_text_printf(t, "replite_replicas{database=\"main\"} %zu\n", n);
	metrics_text_family(t, "replite_replica_lag_seconds", "gauge",
			    "Age of the oldest commit a replica had not pulled "
			    "at its last request (0: it was current)");
	for (i = 0; i < n; i++)
		metrics_text_printf(t,
				    "replite_replica_lag_seconds{database="
				    "\"main\",replica=\"%s\"} %.3f\n",
				    e[i].id, (double)lag[i].ms / 1000.0);
	metrics_text_family(t, "replite_replica_lag_frames", "gauge",
			    "Frames committed after a replica's position");
	for (i = 0; i < n; i++)
		metrics_text_printf(t,
				    "replite_replica_lag_frames{database="
				    "\"main\",replica=\"%s\"} %" PRIu64 "\n",
				    e[i].id, lag[i].frames);
	metrics_text_family(t, "replite_replica_last_seen_seconds", "gauge",
			    "Time since a replica's last pull");
	for (i = 0; i < n; i++)
		metrics_text_printf(t,
				    "replite_replica_last_seen_seconds{"
				    "database=\"main\",replica=\"%s\"} %.3f\n",
				    e[i].id,
				    (double)(now - e[i].seen_ms) / 1000.0);
	free(lag);
	free(e);
}

void api_metrics_page(struct api *api, struct http_response *res)
{
	struct metrics_text t = {0};

	replicas_expire(api->replicas, clock_monotonic_ms());
	metrics_render(api->metrics, &t);
	render_store(api->store, &t);
	render_replicas(api, &t);
	if (t.failed) {
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
