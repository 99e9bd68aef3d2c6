#include "http_client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

struct http_client {
	CURLM *multi; /* owns the connection cache: one connection reused */
	CURL *easy;
	char *base_url;
	char *ca_file; /* NULL: libcurl's default CAs */
	/* Sent with every request: Authorization (with a token), and
	 * X-Replite-Replica (with a client id); NULL when neither. */
	struct curl_slist *auth_header;
	long connect_timeout_ms;
	long stall_timeout_ms;
	size_t max_body;
	int zstd_decodes; /* this libcurl decodes zstd */
	int zstd;         /* ask the primary for it (http_client_accept_zstd) */
	atomic_int cancelled;
	uint64_t connections; /* opened so far */
};

/* The body being received; over_limit stops the transfer.  With fn, the
 * body of a 200 answer goes to fn as it arrives instead (len counts it);
 * any other answer is kept as usual, for its error message. */
struct sink {
	uint8_t *buf;
	size_t len;
	size_t cap;
	size_t max;
	int over_limit;
	http_client_body_fn fn;
	void *arg;
	CURL *easy;
	int fn_failed; /* fn refused the bytes: the transfer was stopped */
	/* fn's answer: its headers are copied in before fn first sees a
	 * byte, so that fn can check the body against them as it arrives */
	struct http_client_response *res;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

char *http_client_normalize_url(const char *url, char *err, size_t err_len)
{
	static const struct {
		const char *prefix;
		const char *as;
	} schemes[] = {
	    {"http://", "http://"},
	    {"https://", "https://"},
	    {"libsql://", "https://"},
	};
	const char *rest = NULL, *as = NULL;
	size_t i, len;
	char *out;

	for (i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
		size_t n = strlen(schemes[i].prefix);
		if (strncasecmp(url, schemes[i].prefix, n) == 0) {
			rest = url + n;
			as = schemes[i].as;
			break;
		}
	}
	if (rest == NULL) {
		snprintf(err, err_len,
			 "'%s' is not a primary's URL: it must start with "
			 "http://, https:// or libsql://",
			 url);
		return NULL;
	}
	len = strlen(rest);
	while (len > 0 && rest[len - 1] == '/')
		len--;
	if (len == 0 || rest[0] == '/') {
		snprintf(err, err_len, "'%s' names no host", url);
		return NULL;
	}
	if (memchr(rest, '?', len) != NULL || memchr(rest, '#', len) != NULL) {
		snprintf(err, err_len,
			 "'%s' has a query or fragment; give the primary's "
			 "base URL only",
			 url);
		return NULL;
	}
	out = malloc(strlen(as) + len + 1);
	if (out == NULL) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	memcpy(out, as, strlen(as));
	memcpy(out + strlen(as), rest, len);
	out[strlen(as) + len] = '\0';
	return out;
}

static int add_header(struct http_client *c, const char *name,
		      const char *value)
{
	struct curl_slist *l;
	char *h;

	if (asprintf(&h, "%s%s", name, value) < 0)
		return -1;
	l = curl_slist_append(c->auth_header, h);
	free(h);
	if (l == NULL)
		return -1;
	c->auth_header = l;
	return 0;
}

int http_client_new(const struct http_client_config *cfg,
		    struct http_client **out, char *err, size_t err_len)
{
	struct http_client *c;

	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		snprintf(err, err_len, "libcurl failed to initialise: %s",
			 curl_easy_strerror(global_rc));
		return -1;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL)
		goto oom;
	c->multi = curl_multi_init();
	c->easy = curl_easy_init();
	c->base_url = strdup(cfg->base_url);
	if (c->multi == NULL || c->easy == NULL || c->base_url == NULL)
		goto oom;
	if (cfg->ca_file != NULL && cfg->ca_file[0] != '\0' &&
	    (c->ca_file = strdup(cfg->ca_file)) == NULL)
		goto oom;
	if (cfg->auth_token != NULL && cfg->auth_token[0] != '\0' &&
	    add_header(c, "Authorization: Bearer ", cfg->auth_token) != 0)
		goto oom;
	if (cfg->client_id != NULL && cfg->client_id[0] != '\0' &&
	    add_header(c, "X-Replite-Replica: ", cfg->client_id) != 0)
		goto oom;
	c->connect_timeout_ms = cfg->connect_timeout_ms;
	c->stall_timeout_ms = cfg->stall_timeout_ms;
	c->max_body = cfg->max_body;
	/* Ask for what this libcurl can decode, and nothing else. */
	c->zstd_decodes = (curl_version_info(CURLVERSION_NOW)->features &
			   CURL_VERSION_ZSTD) != 0;
	c->zstd = c->zstd_decodes;
	atomic_init(&c->cancelled, 0);
	*out = c;
	return 0;

oom:
	http_client_free(c);
	snprintf(err, err_len, "out of memory creating the HTTP client");
	return -1;
}

void http_client_accept_zstd(struct http_client *c, int on)
{
	c->zstd = on && c->zstd_decodes;
}

void http_client_free(struct http_client *c)
{
	if (c == NULL)
		return;
	if (c->easy != NULL)
		curl_easy_cleanup(c->easy);
	if (c->multi != NULL)
		curl_multi_cleanup(c->multi);
	curl_slist_free_all(c->auth_header);
	free(c->base_url);
	free(c->ca_file);
	free(c);
}

void http_client_cancel(struct http_client *c)
{
	atomic_store(&c->cancelled, 1);
	curl_multi_wakeup(c->multi);
}

void http_client_uncancel(struct http_client *c)
{
	atomic_store(&c->cancelled, 0);
}

void http_client_response_free(struct http_client_response *res)
{
	free(res->body);
	free(res->headers);
	res->body = NULL;
	res->headers = NULL;
	res->len = 0;
}

/* Keep the final response's headers (libcurl forgets them at the next
 * request): one "name: value\n" line each. */
static int copy_headers(CURL *easy, struct http_client_response *res)
{
	struct curl_header *h, *prev = NULL;
	size_t len = 0, cap = 0;
	char *buf = NULL;

	free(res->headers); /* taken once for a streamed body already */
	res->headers = NULL;

	while ((h = curl_easy_nextheader(easy, CURLH_HEADER, -1, prev)) !=
	       NULL) {
		size_t need = strlen(h->name) + strlen(h->value) + 4;
		if (len + need > cap) {
			char *grown;
			cap = (len + need) * 2;
			grown = realloc(buf, cap);
			if (grown == NULL) {
				free(buf);
				return -1;
			}
			buf = grown;
		}
		len +=
		    (size_t)sprintf(buf + len, "%s: %s\n", h->name, h->value);
		prev = h;
	}
	res->headers = buf;
	return 0;
}

const char *http_client_response_header(const struct http_client_response *res,
					const char *name, char *out,
					size_t out_len)
{
	size_t n = strlen(name);
	const char *line = res->headers;

	while (line != NULL && *line != '\0') {
		const char *eol = strchr(line, '\n');
		if (eol == NULL)
			break;
		if ((size_t)(eol - line) > n + 1 &&
		    strncasecmp(line, name, n) == 0 && line[n] == ':' &&
		    line[n + 1] == ' ') {
			const char *v = line + n + 2;
			snprintf(out, out_len, "%.*s", (int)(eol - v), v);
			return out;
		}
		line = eol + 1;
	}
	return NULL;
}

/* The most a body's announced length reserves at once: beyond it the
 * buffer grows as bytes arrive, so that a length a server merely claims
 * cannot make the replica reserve gigabytes. */
#define PRESIZE_MAX ((curl_off_t)256 << 20)

static size_t sink_write(char *data, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n;
	long status = 0;

	if (s->fn != NULL &&
	    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status) ==
		CURLE_OK &&
	    status == 200) {
		if (s->res->headers == NULL &&
		    copy_headers(s->easy, s->res) != 0) {
			s->fn_failed = 1;
			return 0;
		}
		if (s->fn(s->arg, (const uint8_t *)data, len) != 0) {
			s->fn_failed = 1;
			return 0; /* CURLE_WRITE_ERROR */
		}
		s->len += len;
		return len;
	}
	if (len > s->max - s->len) {
		s->over_limit = 1;
		return 0; /* makes libcurl fail with CURLE_WRITE_ERROR */
	}
	if (s->len + len + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 16384;
		curl_off_t announced = -1;
		uint8_t *buf;
		/* The first bytes: the whole body at once when its length is
		 * announced (plain bodies), instead of doubling up to it,
		 * copying it each time. */
		if (s->cap == 0 &&
		    curl_easy_getinfo(s->easy,
				      CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
				      &announced) == CURLE_OK &&
		    announced > 0 && (uint64_t)announced < s->max &&
		    announced <= PRESIZE_MAX && (size_t)announced + 1 > cap)
			cap = (size_t)announced + 1;
		while (cap < s->len + len + 1)
			cap *= 2;
		buf = realloc(s->buf, cap);
		if (buf == NULL)
			return 0;
		s->buf = buf;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	s->buf[s->len] = '\0';
	return len;
}

/* Run the easy handle to completion on the multi handle, so that a cancel
 * from another thread can wake the wait at once (curl_multi_wakeup). */
static CURLcode perform(struct http_client *c, int *cancelled)
{
	CURLcode result = CURLE_FAILED_INIT;
	CURLMsg *msg;
	int running = 1, queued;

	*cancelled = 0;
	if (curl_multi_add_handle(c->multi, c->easy) != CURLM_OK)
		return CURLE_FAILED_INIT;
	for (;;) {
		if (atomic_load(&c->cancelled)) {
			*cancelled = 1;
			break;
		}
		if (curl_multi_perform(c->multi, &running) != CURLM_OK)
			break;
		if (running == 0)
			break;
		if (curl_multi_poll(c->multi, NULL, 0, 1000, NULL) != CURLM_OK)
			break;
	}
	while ((msg = curl_multi_info_read(c->multi, &queued)) != NULL) {
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == c->easy)
			result = msg->data.result;
	}
	curl_multi_remove_handle(c->multi, c->easy);
	return result;
}

/* A TLS failure (https primaries): what failed, curl's reason, and what to
 * do about it.  Returns 0 when rc is not one. */
/*
 * A plain HTTP server answers a ClientHello either with bytes that are not a
 * TLS record ("wrong version number") or, when it closes the connection
 * before its 400 reaches us, with an end of stream in the middle of the
 * handshake (SSL_ERROR_SYSCALL, "unexpected eof", a reset).  Which one the
 * replica sees is a race, so both name the likely cause.
 */
static int handshake_hit_plain_http(const char *detail)
{
	return strstr(detail, "wrong version number") != NULL ||
	       strstr(detail, "SSL_ERROR_SYSCALL") != NULL ||
	       strstr(detail, "unexpected eof") != NULL ||
	       strstr(detail, "Connection reset") != NULL;
}

static int describe_tls(const struct http_client *c, CURLcode rc,
			const char *detail, char *err, size_t err_len)
{
	const char *hint;

	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
		if (strstr(detail, "expired") != NULL)
			hint = "the primary must serve a certificate that is "
			       "still valid";
		else if (strstr(detail, "subject name") != NULL ||
			 strstr(detail, "host name") != NULL ||
			 strstr(detail, "hostname") != NULL)
			hint = "the certificate must name the host of sync_url "
			       "(a subjectAltName with its DNS name or IP "
			       "address)";
		else
			hint = c->ca_file != NULL
				   ? "the CA in tls_ca_file / REPLITE_CA_FILE "
				     "did not sign it; give the CA that did"
				   : "pass tls_ca_file= or REPLITE_CA_FILE to "
				     "trust its CA";
		snprintf(err, err_len,
			 "TLS: the primary's certificate at %s did not verify "
			 "(%s); %s",
			 c->base_url, detail, hint);
		return 1;
	case CURLE_SSL_CACERT_BADFILE:
		snprintf(err, err_len,
			 "TLS: the CA file %s could not be used (%s); "
			 "tls_ca_file / REPLITE_CA_FILE must name a PEM file "
			 "of CA certificates",
			 c->ca_file != NULL ? c->ca_file : "(default)", detail);
		return 1;
	case CURLE_SSL_CONNECT_ERROR:
		snprintf(err, err_len,
			 "TLS: the handshake with the primary at %s failed "
			 "(%s)%s",
			 c->base_url, detail,
			 handshake_hit_plain_http(detail)
			     ? "; does the primary serve plain HTTP? then "
			       "use an http:// sync_url"
			     : "");
		return 1;
	default:
		return 0;
	}
}

static void describe_failure(struct http_client *c, CURLcode rc,
			     const struct sink *sink, const char *curl_err,
			     long timeout_ms, const char *url, char *err,
			     size_t err_len)
{
	const char *detail = curl_err[0] ? curl_err : curl_easy_strerror(rc);

	if (describe_tls(c, rc, detail, err, err_len))
		return;
	if (sink->over_limit) {
		snprintf(err, err_len,
			 "the response from %s is larger than %zu bytes", url,
			 c->max_body);
	} else if (rc == CURLE_OPERATION_TIMEDOUT && c->stall_timeout_ms > 0 &&
		   strstr(detail, "too slow") != NULL) {
		snprintf(err, err_len,
			 "the primary at %s is unreachable: nothing arrived "
			 "for %ld ms on the connection (%s)",
			 c->base_url, c->stall_timeout_ms, detail);
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		snprintf(err, err_len, "no response from %s within %ld ms (%s)",
			 url, timeout_ms, detail);
	} else if (rc == CURLE_BAD_CONTENT_ENCODING) {
		snprintf(err, err_len,
			 "the compressed answer from %s could not be decoded "
			 "(%s); nothing of it was used",
			 url, detail);
	} else if (rc == CURLE_COULDNT_CONNECT ||
		   rc == CURLE_COULDNT_RESOLVE_HOST) {
		snprintf(err, err_len, "cannot reach the primary at %s: %s",
			 c->base_url, detail);
	} else {
		snprintf(err, err_len, "request to %s failed: %s%s", url,
			 detail,
			 rc == CURLE_GOT_NOTHING &&
				 strncmp(c->base_url, "http://", 7) == 0
			     ? " (if the primary serves HTTPS, --tls-cert, "
			       "use an https:// sync_url)"
			     : "");
	}
}

static void count_connections(struct http_client *c)
{
	long n = 0;

	if (curl_easy_getinfo(c->easy, CURLINFO_NUM_CONNECTS, &n) == CURLE_OK &&
	    n > 0)
		c->connections += (uint64_t)n;
}

uint64_t http_client_connections(const struct http_client *c)
{
	return c->connections;
}

static int request(struct http_client *c, const char *method, const char *path,
		   const void *body, size_t body_len, long timeout_ms,
		   http_client_body_fn fn, void *fn_arg,
		   struct http_client_response *res, char *err, size_t err_len)
{
	struct sink sink = {.max = c->max_body,
			    .fn = fn,
			    .arg = fn_arg,
			    .easy = c->easy,
			    .res = res};
	struct curl_slist *headers = NULL, *h;
	char curl_err[CURL_ERROR_SIZE] = "";
	char *url = NULL, *ct = NULL;
	curl_off_t wire = 0;
	int cancelled, ret = -1;
	CURLcode rc;

	memset(res, 0, sizeof *res);
	if (asprintf(&url, "%s%s", c->base_url, path) < 0) {
		url = NULL;
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	/* Built per request: libcurl keeps the list pointer, not a copy. */
	for (h = c->auth_header; h != NULL; h = h->next)
		headers = curl_slist_append(headers, h->data);
	/* libcurl would wait for "100 Continue" before sending a large body. */
	headers = curl_slist_append(headers, "Expect:");
	if (headers == NULL) {
		snprintf(err, err_len, "out of memory");
		goto out;
	}

	curl_easy_reset(c->easy);
	curl_easy_setopt(c->easy, CURLOPT_URL, url);
	curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS,
			 c->connect_timeout_ms);
	curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c->easy, CURLOPT_TCP_NODELAY, 1L);
	if (c->stall_timeout_ms > 0) {
		/* libcurl's low-speed check: less than 1 byte/s over the
		 * window aborts with CURLE_OPERATION_TIMEDOUT. */
		curl_easy_setopt(c->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c->easy, CURLOPT_LOW_SPEED_TIME,
				 (c->stall_timeout_ms + 999) / 1000);
	}
	curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	/* libcurl verifies the peer and its name by default (the system's
	 * CAs); a CA file replaces the default bundle. */
	if (c->ca_file != NULL)
		curl_easy_setopt(c->easy, CURLOPT_CAINFO, c->ca_file);
	/* The primary compresses images and frames for clients that ask;
	 * libcurl decodes them, so the body limit (sink) and every checksum
	 * apply to the decoded bytes.  NULL: no Accept-Encoding. */
	curl_easy_setopt(c->easy, CURLOPT_ACCEPT_ENCODING,
			 c->zstd ? "zstd" : NULL);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c->easy, CURLOPT_POST, 1L);
		curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS,
				 body != NULL ? body : "");
		curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)body_len);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, method);
	}

	rc = perform(c, &cancelled);
	count_connections(c);
	if (cancelled) {
		snprintf(err, err_len, "request to %s cancelled", url);
		goto out;
	}
	if (rc != CURLE_OK && sink.fn_failed) {
		snprintf(err, err_len,
			 "the answer from %s was not taken by the replica",
			 url);
		goto out;
	}
	if (rc != CURLE_OK) {
		describe_failure(c, rc, &sink, curl_err, timeout_ms, url, err,
				 err_len);
		if (rc == CURLE_BAD_CONTENT_ENCODING)
			ret = 1;
		goto out;
	}
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &res->status);
	if (curl_easy_getinfo(c->easy, CURLINFO_SIZE_DOWNLOAD_T, &wire) ==
		CURLE_OK &&
	    wire >= 0)
		res->wire_len = (uint64_t)wire;
	if (curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ct) ==
		CURLE_OK &&
	    ct != NULL)
		snprintf(res->content_type, sizeof res->content_type, "%s", ct);
	if (copy_headers(c->easy, res) != 0) {
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	if (sink.buf == NULL) { /* an empty body is still a string */
		sink.buf = calloc(1, 1);
		if (sink.buf == NULL) {
			snprintf(err, err_len, "out of memory");
			goto out;
		}
	}
	res->body = sink.buf;
	res->len = sink.len;
	sink.buf = NULL;
	ret = 0;
out:
	if (ret != 0) {
		free(res->headers);
		res->headers = NULL;
	}
	free(sink.buf);
	curl_slist_free_all(headers);
	free(url);
	return ret;
}

int http_client_request(struct http_client *c, const char *method,
			const char *path, const void *body, size_t body_len,
			long timeout_ms, struct http_client_response *res,
			char *err, size_t err_len)
{
	return request(c, method, path, body, body_len, timeout_ms, NULL, NULL,
		       res, err, err_len);
}

int http_client_get_to(struct http_client *c, const char *path, long timeout_ms,
		       http_client_body_fn fn, void *arg,
		       struct http_client_response *res, char *err,
		       size_t err_len)
{
	return request(c, "GET", path, NULL, 0, timeout_ms, fn, arg, res, err,
		       err_len);
}

void http_client_error_detail(const struct http_client_response *res, char *out,
			      size_t out_len)
{
	json_t *root = json_loadb((const char *)res->body, res->len, 0, NULL);
	const json_t *msg = NULL;

	if (json_is_object(root)) {
		msg = json_object_get(root, "message");
		if (!json_is_string(msg))
			msg = json_object_get(root, "error");
	}
	if (json_is_string(msg))
		snprintf(out, out_len, "%s", json_string_value(msg));
	else if (res->len > 0)
		snprintf(out, out_len, "%.*s",
			 (int)(res->len < 200 ? res->len : 200),
			 (const char *)res->body);
	else
		snprintf(out, out_len, "no details");
	json_decref(root);
}

void http_client_status_error(const char *what,
			      const struct http_client_response *res, char *err,
			      size_t err_len)
{
	char detail[256];

	http_client_error_detail(res, detail, sizeof detail);
	if (res->status == 401)
		snprintf(err, err_len,
			 "the primary refused the auth token (HTTP 401) for "
			 "%s: %s; check auth_token / REPLITE_AUTH_TOKEN",
			 what, detail);
	else if (res->status == 403)
		snprintf(err, err_len, "the primary denied %s (HTTP 403): %s",
			 what, detail);
	else
		snprintf(err, err_len,
			 "the primary answered %s with HTTP %ld: %s", what,
			 res->status, detail);
}
