#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>
#include "base/clock.h"
#include "http_send.h"
#include "http_tls.h"

/* An upgrade answered (101) but not yet run, then its thread's state. */
struct upgrade {
	struct http_server *srv;
	http_upgrade_fn fn;
	void *arg;
	int started; /* on_upgrade ran: the thread owns this */
	struct MHD_UpgradeResponseHandle *urh;
	int fd;
	uint8_t *extra;
	size_t extra_len;
	uint64_t watch_id; /* TLS: the client's FIN is watched (http_tls.h) */
};

/* State of one request across the access-handler calls MHD makes. */
struct req_ctx {
	struct http_server *srv;
	struct MHD_Connection *conn;
	uint8_t *body;
	size_t len;
	size_t cap;
	int too_large;
	int64_t started_us;
	int64_t park_until_ms;
	struct req_ctx *next_parked;
	int parked;
	/* Handlers run on the worker threads, not on MHD's: a statement
	 * waiting for a lock would otherwise stall every connection of the
	 * MHD thread, including the one that is to release the lock. */
	const char *url;    /* valid for the whole request */
	const char *method; /* likewise */
	struct req_ctx *next_job;
	struct http_response res; /* the handler's answer, when have_res */
	int have_res;
	struct upgrade *upgrade; /* queued 101, until on_upgrade runs */
};

struct http_server {
	struct http_config cfg;
	struct MHD_Daemon *daemon;
	pthread_mutex_t mu; /* guards parked, wake_seq, the job queue */
	struct req_ctx *parked;
	uint64_t wake_seq;
	int stopping; /* parked requests are answered, not parked again */
	/* requests waiting for a worker of their lane (their connections are
	 * suspended) */
	struct lane {
		struct req_ctx *head, *tail;
		pthread_cond_t cond;
	} lanes[HTTP_N_LANES];
	int workers_exit; /* workers leave once their queue is empty */
	struct worker {
		struct http_server *srv;
		enum http_lane lane;
		pthread_t thread;
	} * workers;
	unsigned n_workers;
	/* upgraded connections, each on a thread of its own (detached) */
	int stop_fd;         /* eventfd, readable once the server stops */
	unsigned n_upgraded; /* threads running; guarded by mu */
	int upgrades_closed; /* no more threads start */
	pthread_cond_t upgraded_cond;
	struct http_tls_watch *tls_watch; /* with TLS */
};

int http_request_fd(struct http_request *req)
{
	const union MHD_ConnectionInfo *info = MHD_get_connection_info(
	    req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);

	return info != NULL ? info->connect_fd : -1;
}

int http_request_client(struct http_request *req, char *buf, size_t n)
{
	const union MHD_ConnectionInfo *info = MHD_get_connection_info(
	    req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = info != NULL ? info->client_addr : NULL;
	const struct sockaddr_in6 *sin6;

	if (n > 0)
		buf[0] = '\0';
	if (sa == NULL || n == 0)
		return -1;
	if (sa->sa_family == AF_INET)
		return inet_ntop(AF_INET,
				 &((const struct sockaddr_in *)sa)->sin_addr,
				 buf, (socklen_t)n) != NULL
			   ? 0
			   : -1;
	if (sa->sa_family != AF_INET6)
		return -1;
	sin6 = (const struct sockaddr_in6 *)sa;
	/* One client, one key, whichever socket family it came in on. */
	if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
		return inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], buf,
				 (socklen_t)n) != NULL
			   ? 0
			   : -1;
	return inet_ntop(AF_INET6, &sin6->sin6_addr, buf, (socklen_t)n) != NULL
		   ? 0
		   : -1;
}

const char *http_request_header(struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_request_arg(struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
					   name);
}

static void *upgrade_main(void *arg)
{
	struct upgrade *u = arg;
	struct http_server *s = u->srv;

	u->fn(u->arg, u->fd, u->extra, u->extra_len, s->stop_fd);
	http_tls_watch_remove(s->tls_watch, u->watch_id);
	MHD_upgrade_action(u->urh, MHD_UPGRADE_ACTION_CLOSE);
	free(u->extra);
	free(u);
	pthread_mutex_lock(&s->mu);
	s->n_upgraded--;
	pthread_cond_broadcast(&s->upgraded_cond);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* MHD's thread, once the 101 is sent: the connection is ours. */
static void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls,
		       const char *extra_in, size_t extra_in_size,
		       MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct upgrade *u = cls;
	struct http_server *s = u->srv;
	struct req_ctx *ctx = con_cls;
	pthread_attr_t attr;
	pthread_t t;
	int ok = 0;

	if (ctx != NULL && ctx->upgrade == u)
		ctx->upgrade = NULL;
	u->started = 1;
	u->urh = urh;
	u->fd = sock;
	if (extra_in_size > 0) {
		u->extra = malloc(extra_in_size);
		if (u->extra != NULL) {
			memcpy(u->extra, extra_in, extra_in_size);
			u->extra_len = extra_in_size;
		}
	}
	if (s->tls_watch != NULL) {
		const union MHD_ConnectionInfo *info = MHD_get_connection_info(
		    conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (info != NULL)
			u->watch_id = http_tls_watch_add(
			    s->tls_watch, info->connect_fd, sock);
	}
	pthread_mutex_lock(&s->mu);
	if (!s->upgrades_closed && (extra_in_size == 0 || u->extra != NULL)) {
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 256u << 10);
		ok = pthread_create(&t, &attr, upgrade_main, u) == 0;
		pthread_attr_destroy(&attr);
		if (ok)
			s->n_upgraded++;
	}
	pthread_mutex_unlock(&s->mu);
	if (!ok) {
		u->fn(u->arg, -1, NULL, 0, s->stop_fd);
		http_tls_watch_remove(s->tls_watch, u->watch_id);
		MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
		free(u->extra);
		free(u);
	}
}

static enum MHD_Result queue_upgrade(struct req_ctx *ctx,
				     struct http_response *res)
{
	struct MHD_Response *resp;
	struct upgrade *u = calloc(1, sizeof *u);
	enum MHD_Result ret;

	http_reply_free(&res->reply);
	if (u == NULL) {
		res->upgrade(res->upgrade_arg, -1, NULL, 0, -1);
		return MHD_NO;
	}
	u->srv = ctx->srv;
	u->fn = res->upgrade;
	u->arg = res->upgrade_arg;
	u->fd = -1;
	resp = MHD_create_response_for_upgrade(on_upgrade, u);
	if (resp == NULL) {
		u->fn(u->arg, -1, NULL, 0, -1);
		free(u);
		return MHD_NO;
	}
	http_send_headers(resp, res);
	ctx->upgrade = u;
	ret = MHD_queue_response(ctx->conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
	MHD_destroy_response(resp);
	if (ret != MHD_YES && ctx->upgrade == u) {
		ctx->upgrade = NULL;
		u->fn(u->arg, -1, NULL, 0, -1);
		free(u);
	}
	return ret;
}

static int body_append(struct req_ctx *ctx, const char *data, size_t n)
{
	if (ctx->len + n > ctx->srv->cfg.max_body) {
		ctx->too_large = 1;
		return 0;
	}
	if (ctx->len + n > ctx->cap) {
		size_t cap = ctx->cap ? ctx->cap : 4096;
		uint8_t *b;
		while (cap < ctx->len + n)
			cap *= 2;
		b = realloc(ctx->body, cap + 1);
		if (b == NULL)
			return -1;
		ctx->body = b;
		ctx->cap = cap;
	}
	memcpy(ctx->body + ctx->len, data, n);
	ctx->len += n;
	ctx->body[ctx->len] = '\0'; /* handlers may treat JSON as text */
	return 0;
}

/* Park the request (its connection is already suspended) unless a wake-up
 * happened since the handler looked at the data (seq), in which case the
 * caller runs the handler again. */
static int park(struct req_ctx *ctx, uint64_t seq)
{
	struct http_server *s = ctx->srv;
	int parked = 0;

	pthread_mutex_lock(&s->mu);
	if (s->wake_seq == seq && !s->stopping) {
		ctx->parked = 1;
		ctx->next_parked = s->parked;
		s->parked = ctx;
		parked = 1;
	}
	pthread_mutex_unlock(&s->mu);
	return parked;
}

/* Runs on a worker with the connection suspended: call the handler, then
 * either park the request (still suspended) or store the answer and resume
 * the connection, whose next access-handler call sends it. */
static void run_job(struct req_ctx *ctx)
{
	struct http_server *s = ctx->srv;
	struct http_request req = {.method = ctx->method,
				   .path = ctx->url,
				   .body = ctx->body,
				   .body_len = ctx->len,
				   .started_us = ctx->started_us,
				   .conn = ctx->conn};
	struct http_response res;

	for (;;) {
		uint64_t seq;

		memset(&res, 0, sizeof res);
		res.fd = -1;
		pthread_mutex_lock(&s->mu);
		seq = s->wake_seq;
		pthread_mutex_unlock(&s->mu);
		s->cfg.handler(s->cfg.arg, &req, &res);
		if (res.park_until_ms <= 0)
			break;
		http_reply_free(&res.reply);
		ctx->park_until_ms = res.park_until_ms;
		if (park(ctx, seq))
			return; /* resumed by a wake-up or the tick */
		if (s->stopping) {
			http_reply_error(&res.reply, 503, "SHUTTING_DOWN",
					 "the server is shutting down");
			break;
		}
	}
	pthread_mutex_lock(&s->mu);
	ctx->res = res;
	ctx->have_res = 1;
	MHD_resume_connection(ctx->conn);
	pthread_mutex_unlock(&s->mu);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct http_server *s = w->srv;
	struct lane *l = &s->lanes[w->lane];

	pthread_mutex_lock(&s->mu);
	for (;;) {
		struct req_ctx *ctx = l->head;
		if (ctx == NULL) {
			if (s->workers_exit)
				break;
			pthread_cond_wait(&l->cond, &s->mu);
			continue;
		}
		l->head = ctx->next_job;
		if (l->head == NULL)
			l->tail = NULL;
		pthread_mutex_unlock(&s->mu);
		run_job(ctx);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static enum MHD_Result handle(struct req_ctx *ctx, const char *url,
			      const char *method)
{
	struct http_server *s = ctx->srv;
	struct http_response res;
	struct lane *l;

	pthread_mutex_lock(&s->mu);
	if (ctx->have_res) {
		/* a worker answered; this is the call after its resume */
		res = ctx->res;
		ctx->have_res = 0;
		pthread_mutex_unlock(&s->mu);
		if (res.fd >= 0)
			return http_send_file(ctx->conn, &res);
		if (res.stream != NULL) {
			http_reply_free(&res.reply);
			return http_send_stream(ctx->conn, &res);
		}
		if (res.upgrade != NULL) {
			if (!s->stopping)
				return queue_upgrade(ctx, &res);
			res.upgrade(res.upgrade_arg, -1, NULL, 0, -1);
			res.upgrade = NULL;
			http_reply_free(&res.reply);
			http_reply_error(&res.reply, 503, "SHUTTING_DOWN",
					 "the server is shutting down");
		}
		return http_send_reply(ctx->conn, &res);
	}
	if (s->workers_exit) {
		pthread_mutex_unlock(&s->mu);
		memset(&res, 0, sizeof res);
		http_reply_error(&res.reply, 503, "SHUTTING_DOWN",
				 "the server is shutting down");
		return http_send_reply(ctx->conn, &res);
	}
	ctx->url = url;
	ctx->method = method;
	ctx->next_job = NULL;
	l = &s->lanes[s->cfg.lane_of != NULL
			  ? s->cfg.lane_of(s->cfg.arg, method, url)
			  : HTTP_LANE_MAIN];
	if (l->tail != NULL)
		l->tail->next_job = ctx;
	else
		l->head = ctx;
	l->tail = ctx;
	MHD_suspend_connection(ctx->conn);
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&s->mu);
	return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn,
				 const char *url, const char *method,
				 const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls)
{
	struct http_server *s = cls;
	struct req_ctx *ctx = *con_cls;

	(void)version;
	if (ctx == NULL) {
		ctx = calloc(1, sizeof *ctx);
		if (ctx == NULL)
			return MHD_NO;
		ctx->srv = s;
		ctx->conn = conn;
		ctx->started_us = clock_monotonic_us();
		*con_cls = ctx;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (!ctx->too_large &&
		    body_append(ctx, upload_data, *upload_data_size) != 0)
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (ctx->too_large) {
		struct http_response res = {.fd = -1};
		http_reply_error(&res.reply, 413, "BODY_TOO_LARGE",
				 "request body exceeds the limit of %zu bytes",
				 s->cfg.max_body);
		return http_send_reply(conn, &res);
	}
	return handle(ctx, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_server *s = cls;
	struct req_ctx *ctx = *con_cls;

	(void)conn;
	if (ctx == NULL)
		return;
	if (ctx->upgrade != NULL &&
	    toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
		/* the 101 was never sent: the upgrade will not happen */
		ctx->upgrade->fn(ctx->upgrade->arg, -1, NULL, 0, -1);
		free(ctx->upgrade);
	}
	/* else, if still set, on_upgrade has yet to run and owns it */
	ctx->upgrade = NULL;
	/* Only a parked request is in a list of ours, so only then is s->mu
	 * taken.  libmicrohttpd (0.9.75) calls this for an upgraded connection
	 * that closed while holding its cleanup mutex, which
	 * MHD_resume_connection and MHD_suspend_connection take; a worker
	 * resuming a connection under s->mu (run_job) and this call waited for
	 * each other forever, and every thread after them (the server hung
	 * with WebSockets closing while HTTP requests were answered).  An
	 * upgraded request is never parked, and a parked one is suspended, so
	 * nothing changes ctx->parked while its connection completes. */
	if (ctx->parked) {
		struct req_ctx **pp;
		pthread_mutex_lock(&s->mu);
		pp = &s->parked;
		while (*pp != NULL && *pp != ctx)
			pp = &(*pp)->next_parked;
		if (*pp == ctx)
			*pp = ctx->next_parked;
		pthread_mutex_unlock(&s->mu);
	}
	if (ctx->have_res) { /* answered but never sent */
		if (ctx->res.fd >= 0)
			close(ctx->res.fd);
		if (ctx->res.stream != NULL)
			ctx->res.stream_free(ctx->res.stream_arg);
		if (ctx->res.upgrade != NULL)
			ctx->res.upgrade(ctx->res.upgrade_arg, -1, NULL, 0, -1);
		http_reply_free(&ctx->res.reply);
	}
	free(ctx->body);
	free(ctx);
	*con_cls = NULL;
}

static void resume_locked(struct http_server *s, int64_t now, int all)
{
	struct req_ctx **pp = &s->parked;

	while (*pp != NULL) {
		struct req_ctx *ctx = *pp;
		if (all || ctx->park_until_ms <= now) {
			*pp = ctx->next_parked;
			ctx->parked = 0;
			MHD_resume_connection(ctx->conn);
		} else {
			pp = &ctx->next_parked;
		}
	}
}

void http_server_wake(struct http_server *s)
{
	pthread_mutex_lock(&s->mu);
	s->wake_seq++;
	resume_locked(s, 0, 1);
	pthread_mutex_unlock(&s->mu);
}

void http_server_tick(struct http_server *s)
{
	pthread_mutex_lock(&s->mu);
	resume_locked(s, clock_monotonic_ms(), 0);
	pthread_mutex_unlock(&s->mu);
}

static int parse_address(const char *host, uint16_t port,
			 struct sockaddr_storage *ss)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		return 0;
	}
	return -1;
}

/* Let the workers finish every queued request, then join them. */
static void stop_workers(struct http_server *s)
{
	unsigned i;

	pthread_mutex_lock(&s->mu);
	s->workers_exit = 1;
	for (i = 0; i < HTTP_N_LANES; i++)
		pthread_cond_broadcast(&s->lanes[i].cond);
	pthread_mutex_unlock(&s->mu);
	for (i = 0; i < s->n_workers; i++)
		pthread_join(s->workers[i].thread, NULL);
	s->n_workers = 0;
}

/* libmicrohttpd's errors, except those that only say a client left, as
 * clients do (a replica closing while its long-poll was parked, a
 * browser's aborted request): they are not the server's failures. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	static const char *const departures[] = {
	    "no longer available",   "reset by peer",
	    "Broken pipe",           "unexpectedly disconnected",
	    "has been disconnected", "closed by remote"};
	char msg[512];
	size_t i;

	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	for (i = 0; i < sizeof departures / sizeof departures[0]; i++) {
		if (strstr(msg, departures[i]) != NULL)
			return;
	}
	/* MHD's words for any failed TLS handshake: say whose failure. */
	if (strstr(msg, "handshake message out of context") != NULL)
		snprintf(msg, sizeof msg,
			 "a client's TLS handshake failed (a client that does "
			 "not trust the certificate, or plain HTTP sent to the "
			 "HTTPS port)");
	fprintf(stderr, "replite: http: %s%s", msg,
		msg[0] != '\0' && msg[strlen(msg) - 1] == '\n' ? "" : "\n");
}

int http_server_start(const struct http_config *cfg, struct http_server **out,
		      char *err, size_t err_len)
{
	struct http_server *s = calloc(1, sizeof *s);
	struct sockaddr_storage ss;
	unsigned flags, n_threads, i;
	int tls = cfg->tls_cert_pem != NULL && cfg->tls_key_pem != NULL;
	struct MHD_OptionItem tls_opts[] = {
	    {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)cfg->tls_key_pem},
	    {MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cfg->tls_cert_pem},
	    {MHD_OPTION_END, 0, NULL}};

	if (s == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	if (parse_address(cfg->host, cfg->port, &ss) != 0) {
		snprintf(err, err_len,
			 "invalid listen address '%s' (expected a numeric "
			 "IPv4 or IPv6 address)",
			 cfg->host);
		free(s);
		return -1;
	}
	if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		snprintf(err, err_len,
			 "this libmicrohttpd was built without "
			 "TLS: it cannot serve --tls-cert");
		free(s);
		return -1;
	}
	if (!tls)
		tls_opts[0].option = MHD_OPTION_END;
	else if (http_tls_watch_start(&s->tls_watch, err, err_len) != 0) {
		free(s);
		return -1;
	}
	s->cfg = *cfg;
	if (s->cfg.threads == 0)
		s->cfg.threads = 1;
	if (s->cfg.control_threads == 0)
		s->cfg.control_threads = 1;
	n_threads = s->cfg.threads + s->cfg.control_threads;
	pthread_mutex_init(&s->mu, NULL);
	for (i = 0; i < HTTP_N_LANES; i++)
		pthread_cond_init(&s->lanes[i].cond, NULL);
	pthread_cond_init(&s->upgraded_cond, NULL);
	s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->stop_fd < 0) {
		snprintf(err, err_len, "eventfd: %s", strerror(errno));
		goto fail;
	}
	s->workers = calloc(n_threads, sizeof *s->workers);
	if (s->workers == NULL) {
		snprintf(err, err_len, "out of memory");
		goto fail;
	}
	for (s->n_workers = 0; s->n_workers < n_threads; s->n_workers++) {
		struct worker *w = &s->workers[s->n_workers];
		w->srv = s;
		w->lane = s->n_workers < s->cfg.threads ? HTTP_LANE_MAIN
							: HTTP_LANE_CONTROL;
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			snprintf(err, err_len, "cannot start worker threads");
			goto fail;
		}
	}
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
		MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE |
		MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (tls) /* upgrades go through a socket pair MHD relays */
		flags |= MHD_USE_TLS;
	s->daemon = MHD_start_daemon(
	    flags, cfg->port, NULL, NULL, on_access, s,
	    /* first, so that MHD logs nothing through its own logger */
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
	    (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, cfg->threads,
	    MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
	    MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout_s,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
	    MHD_OPTION_LISTEN_BACKLOG_SIZE, 512, MHD_OPTION_ARRAY, tls_opts,
	    MHD_OPTION_END);
	if (s->daemon == NULL) {
		snprintf(err, err_len, "cannot listen on %s:%u%s: %s",
			 cfg->host, cfg->port, tls ? " with TLS" : "",
			 errno ? strerror(errno) : "libmicrohttpd failed");
		goto fail;
	}
	*out = s;
	return 0;
fail:
	stop_workers(s);
	http_tls_watch_stop(s->tls_watch);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	pthread_cond_destroy(&s->upgraded_cond);
	for (i = 0; i < HTTP_N_LANES; i++)
		pthread_cond_destroy(&s->lanes[i].cond);
	pthread_mutex_destroy(&s->mu);
	free(s->workers);
	free(s);
	return -1;
}

uint16_t http_server_port(struct http_server *s)
{
	const union MHD_DaemonInfo *info =
	    MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);

	return info ? info->port : 0;
}

void http_server_stop(struct http_server *s)
{
	unsigned i;

	if (s == NULL)
		return;
	/* Parked requests must be resumed before MHD can close them. */
	pthread_mutex_lock(&s->mu);
	s->stopping = 1;
	pthread_mutex_unlock(&s->mu);
	http_server_wake(s);
	/* Queued and running requests are answered (parking is refused now)
	 * and their connections resumed before MHD closes them. */
	stop_workers(s);
	/* Upgraded connections (WebSocket) close themselves on stop_fd; MHD
	 * must not be stopped under them. */
	{
		uint64_t one = 1;
		if (write(s->stop_fd, &one, sizeof one) < 0)
			perror("replite: eventfd");
	}
	pthread_mutex_lock(&s->mu);
	s->upgrades_closed = 1;
	while (s->n_upgraded > 0)
		pthread_cond_wait(&s->upgraded_cond, &s->mu);
	pthread_mutex_unlock(&s->mu);
	http_tls_watch_stop(s->tls_watch);
	MHD_stop_daemon(s->daemon);
	close(s->stop_fd);
	pthread_cond_destroy(&s->upgraded_cond);
	for (i = 0; i < HTTP_N_LANES; i++)
		pthread_cond_destroy(&s->lanes[i].cond);
	pthread_mutex_destroy(&s->mu);
	free(s->workers);
	free(s);
}
