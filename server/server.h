/* `replite serve`: one primary process (store + HTTP API + Hrana streams),
 * run until SIGINT or SIGTERM. */
#ifndef REPLITE_SERVER_H
#define REPLITE_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct server_config {
	const char *data_dir;
	const char *listen; /* HOST:PORT, [V6]:PORT */
	const char *import_path;
	const char *jwt_key_file;
	/* Both or neither: serve HTTPS with this PEM certificate (chain) and
	 * key (server/tls.h). */
	const char *tls_cert_file;
	const char *tls_key_file;
	uint32_t generation_frames;
	int64_t retention_ms;
	unsigned threads;
	size_t max_body;
	int max_streams;
	int stream_idle_ms;
	int64_t statement_timeout_ms; /* Hrana statements; 0: no limit */
	int log_requests;
	/* zstd level of GET /export and /sync answers for clients that
	 * accept it; 0: never compress */
	int compression_level;
	/* /metrics forgets a replica that has not pulled for this long */
	int64_t replica_expiry_ms;
	/* Hrana over WebSocket: sockets at most, server-wide and per client
	 * address, and how long a silent one stays open */
	unsigned max_ws_connections;
	unsigned max_ws_per_client;
	int ws_idle_ms;
	/* The admin API (admin.h) on this HOST:PORT, NULL: none; its tokens
	 * are verified with these keys (NULL: open). */
	const char *admin_listen;
	const char *admin_key_file;
};

/* zstd's fastest regular level: on loopback a bootstrap is no slower
 * compressed than not, and a text-heavy image shrinks to about a third
 * (docs/architecture.md "Compression on the wire"). */
#define SERVER_DEFAULT_COMPRESSION_LEVEL 1

void server_config_defaults(struct server_config *cfg);

/* Returns the process exit code. */
int server_run(const struct server_config *cfg);

#endif
