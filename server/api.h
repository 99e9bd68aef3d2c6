/* The primary's HTTP API (DESIGN.md §5): routing, authentication, and the
 * handlers of the sync protocol; Hrana requests go to streams.h. */
#ifndef REPLITE_API_H
#define REPLITE_API_H

#include "databases.h"
#include "http.h"
#include "jwt.h"
#include "metrics.h"
#include "ws.h"

/* Every route is a database's: the default one at the root URL, database
 * NAME under /db/NAME/, or the one an x-namespace header, or the first
 * label of the Host header, names (as sqld's namespaces). */
struct api {
	struct databases *dbs;
	struct ws_server *ws;    /* Hrana over WebSocket; NULL: none */
	struct jwt_keys *keys;   /* NULL: open access */
	int max_wait_s;          /* longest accepted ?wait= */
	int log_requests;        /* one stderr line per answered request */
	int zstd_level;          /* of file answers to clients accepting zstd */
	struct metrics *metrics; /* GET /metrics (api_metrics.c) */
};

/* An http_handler_fn; arg is a struct api. */
void api_handle(void *arg, struct http_request *req, struct http_response *res);
/* An http_config.lane_of: SQL (Hrana) and pushes in the main lane,
 * everything else (health, info, pulls, exports) in the control lane. */
enum http_lane api_lane(void *arg, const char *method, const char *url);
/* GET /metrics (api_metrics.c). */
void api_metrics_page(struct api *api, struct http_response *res);

#endif
