#include "server.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "admin.h"
#include "api.h"
#include "hrana.h"
#include "tls.h"
#include "base/clock.h"
#include "base/fileio.h"

void server_config_defaults(struct server_config *cfg)
{
	struct store_config sc;

	store_config_defaults(&sc);
	memset(cfg, 0, sizeof *cfg);
	cfg->data_dir = sc.data_dir;
	cfg->listen = "127.0.0.1:8080";
	cfg->generation_frames = sc.generation_frames;
	cfg->retention_ms = sc.retention_ms;
	cfg->threads = 16;
	cfg->max_body = 32u << 20;
	cfg->max_streams = 1024;
	cfg->stream_idle_ms = 10000;
	cfg->statement_timeout_ms = HRANA_DEFAULT_STATEMENT_TIMEOUT_MS;
	cfg->compression_level = SERVER_DEFAULT_COMPRESSION_LEVEL;
	cfg->replica_expiry_ms = 300000;
	cfg->max_ws_connections = 256;
	/* A quarter of the default cap: a single client (a burst of idle
	 * sockets, a leaking pool) cannot lock the others out, and a client
	 * behind NAT still gets plenty. */
	cfg->max_ws_per_client = 64;
	cfg->ws_idle_ms = 120000;
}

/* Split HOST:PORT (or [V6]:PORT); host is written into buf. */
static int parse_listen(const char *listen, char *host, size_t n,
			uint16_t *port)
{
	const char *colon = strrchr(listen, ':');
	const char *h = listen;
	size_t hlen;
	char *end;
	unsigned long p;

	if (colon == NULL)
		return -1;
	hlen = (size_t)(colon - listen);
	if (hlen >= 2 && listen[0] == '[' && listen[hlen - 1] == ']') {
		h = listen + 1;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= n)
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (strcmp(host, "localhost") == 0)
		snprintf(host, n, "127.0.0.1");
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || end == colon + 1 || p > 65535)
		return -1;
	*port = (uint16_t)p;
	return 0;
}

/* Every store's commit listener: wakes parked long-polls.  arg is where
 * the HTTP server will be (the stores open first), NULL before it starts
 * and once it stops. */
static void wake_http(void *arg)
{
	_Atomic(struct http_server *) *slot = arg;
	struct http_server *http = atomic_load(slot);

	if (http != NULL)
		http_server_wake(http);
}

/* The main thread owns the signals and the periodic work; every other
 * thread is created with SIGINT/SIGTERM blocked. */
/* A ws_config.before_send: group commit (store_durable.c). */
static int make_durable(void *arg, char *err, size_t n)
{
	return store_make_durable(arg, err, n);
}

static void run_until_signal(struct http_server *http, struct databases *dbs)
{
	struct timespec tick = {0, 50 * 1000 * 1000};
	int64_t last_maintain = 0;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	for (;;) {
		int sig = sigtimedwait(&set, NULL, &tick);
		int64_t now = clock_monotonic_ms();

		if (sig == SIGINT || sig == SIGTERM) {
			fprintf(stderr, "replite: signal %d, shutting down\n",
				sig);
			return;
		}
		http_server_tick(http);
		if (now - last_maintain >= 250) {
			databases_maintain(dbs, now);
			last_maintain = now;
		}
	}
}

/* The highest directory of path that does not exist yet (what mkdir -p
 * would create first), malloc'd, or NULL when path exists (or on no
 * memory: then nothing is removed). */
static char *missing_root(const char *path)
{
	struct stat sb;
	char *root, *copy, *parent;

	if (stat(path, &sb) == 0 || errno != ENOENT)
		return NULL;
	root = strdup(path);
	while (root != NULL) {
		copy = strdup(root);
		if (copy == NULL)
			break;
		parent = dirname(copy);
		if (strcmp(parent, root) == 0 || stat(parent, &sb) == 0 ||
		    errno != ENOENT) {
			free(copy);
			return root;
		}
		free(root);
		root = strdup(parent);
		free(copy);
	}
	free(root);
	return NULL;
}

int server_run(const struct server_config *cfg)
{
	struct store_config sc;
	struct streams_config stc = {0};
	struct http_config hc = {0};
	struct api api = {0};
	struct databases_config dc = {0};
	struct databases *dbs = NULL;
	struct database *def = NULL;
	struct ws_config wc = {0};
	struct ws_server *ws = NULL;
	struct http_server *http = NULL, *admin_http = NULL;
	struct admin admin = {0};
	struct http_config ac = {0};
	char admin_host[256];
	uint16_t admin_port = 0;
	_Atomic(struct http_server *) http_slot = NULL;
	char host[256], err[1024];
	uint16_t port;
	sigset_t set;
	char *fresh_root = NULL;
	struct tls_files tls = {NULL, NULL};
	int rv = 1;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if (parse_listen(cfg->listen, host, sizeof host, &port) != 0) {
		fprintf(stderr,
			"replite: invalid --listen '%s': expected HOST:PORT, "
			"e.g. 127.0.0.1:8080\n",
			cfg->listen);
		return 2;
	}
	if (cfg->admin_listen != NULL &&
	    parse_listen(cfg->admin_listen, admin_host, sizeof admin_host,
			 &admin_port) != 0) {
		fprintf(stderr,
			"replite: invalid --admin-listen '%s': expected "
			"HOST:PORT, e.g. 127.0.0.1:9090\n",
			cfg->admin_listen);
		return 2;
	}
	if (cfg->admin_key_file != NULL && cfg->admin_listen == NULL) {
		fprintf(stderr, "replite: --admin-auth-key-file needs "
				"--admin-listen\n");
		return 2;
	}
	if ((cfg->tls_cert_file == NULL) != (cfg->tls_key_file == NULL)) {
		fprintf(stderr,
			"replite: --tls-cert and --tls-key go together: "
			"give both, or neither for plain HTTP\n");
		return 2;
	}
	/* Before anything is created: a bad file leaves nothing behind. */
	if (cfg->tls_cert_file != NULL &&
	    tls_files_load(cfg->tls_cert_file, cfg->tls_key_file, &tls, err,
			   sizeof err) != 0) {
		fprintf(stderr, "replite: %s\n", err);
		return 1;
	}
	if (cfg->jwt_key_file != NULL) {
		if (jwt_keys_load_file(cfg->jwt_key_file, &api.keys, err,
				       sizeof err) != 0) {
			fprintf(stderr, "replite: %s\n", err);
			tls_files_free(&tls);
			return 1;
		}
	}
	if (cfg->admin_key_file != NULL &&
	    jwt_keys_load_file(cfg->admin_key_file, &admin.keys, err,
			       sizeof err) != 0) {
		fprintf(stderr, "replite: --admin-auth-key-file: %s\n", err);
		jwt_keys_free(api.keys);
		tls_files_free(&tls);
		return 1;
	}
	/* A data directory this start creates is removed again if the start
	 * fails (an address in use, a bad --import): a failed start leaves
	 * nothing behind. */
	fresh_root = missing_root(cfg->data_dir);
	store_config_defaults(&sc);
	sc.generation_frames = cfg->generation_frames;
	sc.compression_level = cfg->compression_level;
	sc.retention_ms = cfg->retention_ms;
	stc.max_streams = cfg->max_streams;
	stc.idle_expiry_ms = cfg->stream_idle_ms;
	stc.statement_timeout_ms = cfg->statement_timeout_ms;
	api.metrics = metrics_new();
	if (api.metrics == NULL) {
		fprintf(stderr, "replite: out of memory\n");
		goto out;
	}
	stc.sql_stats = metrics_sql(api.metrics);
	dc.data_dir = cfg->data_dir;
	dc.import_path = cfg->import_path;
	dc.store = sc;
	dc.streams = stc;
	dc.replica_expiry_ms = cfg->replica_expiry_ms;
	dc.listener = wake_http;
	dc.listener_arg = &http_slot;
	if (databases_open(&dc, &dbs, err, sizeof err) != 0) {
		fprintf(stderr, "replite: %s\n", err);
		goto out;
	}
	def = databases_get(dbs, NULL);
	wc.keys = api.keys;
	wc.max_connections = cfg->max_ws_connections;
	wc.max_per_client = cfg->max_ws_per_client;
	wc.max_message = cfg->max_body;
	wc.idle_ms = cfg->ws_idle_ms;
	wc.max_streams = 64;
	wc.log = cfg->log_requests;
	wc.before_send = make_durable;
	ws = ws_server_new(&wc);
	if (ws == NULL) {
		fprintf(stderr, "replite: out of memory\n");
		goto out;
	}
	api.dbs = dbs;
	api.ws = ws;
	api.max_wait_s = 60;
	api.log_requests = cfg->log_requests;
	api.zstd_level = cfg->compression_level;
	hc.host = host;
	hc.port = port;
	hc.threads = cfg->threads;
	hc.control_threads = 2;
	hc.lane_of = api_lane;
	hc.max_body = cfg->max_body;
	hc.max_connections = 4096;
	hc.idle_timeout_s = 120;
	hc.handler = api_handle;
	hc.arg = &api;
	hc.tls_cert_pem = tls.cert_pem;
	hc.tls_key_pem = tls.key_pem;
	if (http_server_start(&hc, &http, err, sizeof err) != 0) {
		fprintf(stderr, "replite: %s\n", err);
		goto out;
	}
	atomic_store(&http_slot, http);
	if (cfg->admin_listen != NULL) {
		admin.dbs = dbs;
		admin.api = &api;
		ac.host = admin_host;
		ac.port = admin_port;
		ac.threads = 2;
		ac.control_threads = 1;
		ac.max_body = 1 << 20;
		ac.max_connections = 64;
		ac.idle_timeout_s = 60;
		ac.handler = admin_handle;
		ac.arg = &admin;
		ac.tls_cert_pem = tls.cert_pem;
		ac.tls_key_pem = tls.key_pem;
		if (http_server_start(&ac, &admin_http, err, sizeof err) != 0) {
			fprintf(stderr, "replite: --admin-listen: %s\n", err);
			goto out;
		}
		if (admin.keys == NULL)
			fprintf(stderr,
				"replite: WARNING: no --admin-auth-key-file: "
				"anyone who can reach the admin listener can "
				"create and delete databases\n");
		fprintf(stderr, "replite: admin API on %s://%s%s%s:%u\n",
			tls.cert_pem != NULL ? "https" : "http",
			strchr(admin_host, ':') ? "[" : "", admin_host,
			strchr(admin_host, ':') ? "]" : "",
			http_server_port(admin_http));
	}
	/* Only now that the server really starts. */
	if (cfg->jwt_key_file == NULL)
		fprintf(stderr, "replite: WARNING: no --auth-jwt-key-file: "
				"anyone who can reach the server can read and "
				"write the database\n");
	fprintf(stderr,
		"replite: database %s, generation %" PRIu32 ", %" PRIu32
		" frames, data in %s\n",
		store_database_id(def->store), store_generation(def->store),
		store_head(def->store), cfg->data_dir);
	fprintf(stderr, "replite: listening on %s://%s%s%s:%u\n",
		tls.cert_pem != NULL ? "https" : "http",
		strchr(host, ':') ? "[" : "", host,
		strchr(host, ':') ? "]" : "", http_server_port(http));
	run_until_signal(http, dbs);
	rv = 0;
out:
	atomic_store(&http_slot, NULL);
	http_server_stop(admin_http);
	http_server_stop(http); /* joins the WebSocket threads */
	ws_server_free(ws);
	databases_put(def);
	databases_close(dbs);
	jwt_keys_free(api.keys);
	jwt_keys_free(admin.keys);
	metrics_free(api.metrics);
	tls_files_free(&tls);
	if (rv != 0 && fresh_root != NULL)
		fileio_remove_tree(fresh_root);
	free(fresh_root);
	return rv;
}
