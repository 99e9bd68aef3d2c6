/* POST /pull-updates (turso_sync.h).
 *
 * The answer is a stream of length-delimited protobuf messages (a varint
 * length before each): one PullUpdatesResp header (the state's revision,
 * its size in pages, raw encoding, a page stream to apply incrementally),
 * then one PageData per page, 0-based page id and 4096 bytes.  The client
 * writes the pages as one transaction whose commit frame carries db_size,
 * so "incremental" with every page is also how a full image is applied:
 * the reference server answers revision 0 the same way, and the clients'
 * regular pull refuses the "replace base" mode.
 *
 * The stream is produced as libmicrohttpd asks for it (http_response's
 * stream), a page at a time, from files store_pages holds open: a 1 GB
 * database costs a page of memory per answer, not a gigabyte. */
#include "turso_sync.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <roaring/roaring.h>

#include "base/clock.h"
#include "turso_sync.pb-c.h"

/* A PageData message at most: tags, a 10-byte varint, a 2-byte length and
 * the page, plus the 3-byte length prefix. */
#define MAX_MESSAGE (WALFMT_PAGE_SIZE + 32)

struct pull {
	struct store_pages *pages;
	roaring_bitmap_t *filter; /* NULL: every page */
	uint32_t next;            /* the next page index to consider */
	uint8_t msg[MAX_MESSAGE]; /* the message being sent */
	size_t msg_len, msg_pos;
	uint8_t page[WALFMT_PAGE_SIZE];
};

static void pull_free(void *arg)
{
	struct pull *p = arg;

	store_pages_close(p->pages);
	if (p->filter != NULL)
		roaring_bitmap_free(p->filter);
	free(p);
}

/* Pack m into p->msg after its length as a varint. */
static void stage(struct pull *p, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m), n = 0, x = len;

	assert(len + 10 <= sizeof p->msg);
	do {
		p->msg[n++] = (uint8_t)((x & 0x7f) | (x > 0x7f ? 0x80 : 0));
		x >>= 7;
	} while (x != 0);
	protobuf_c_message_pack(m, p->msg + n);
	p->msg_len = n + len;
	p->msg_pos = 0;
}

/* Stage the next page the filter lets through; 0 when there is none, -1
 * when it cannot be read. */
static int stage_next_page(struct pull *p)
{
	TursoSync__PageData d = TURSO_SYNC__PAGE_DATA__INIT;

	while (p->next < store_pages_count(p->pages)) {
		uint32_t i = p->next++;
		uint32_t id = store_pages_pgno(p->pages, i) - 1;
		if (p->filter != NULL &&
		    !roaring_bitmap_contains(p->filter, id))
			continue;
		if (store_pages_read(p->pages, i, p->page) != 0)
			return -1;
		d.has_page_id = id != 0;
		d.page_id = id;
		d.has_encoded_page = 1;
		d.encoded_page.data = p->page;
		d.encoded_page.len = WALFMT_PAGE_SIZE;
		stage(p, &d.base);
		return 1;
	}
	return 0;
}

static long pull_read(void *arg, uint64_t pos, uint8_t *buf, size_t max)
{
	struct pull *p = arg;
	size_t n = 0;

	(void)pos;
	while (n < max) {
		size_t k;
		if (p->msg_pos == p->msg_len) {
			int rc = stage_next_page(p);
			if (rc < 0)
				return -1; /* cut: the client sees no end */
			if (rc == 0)
				break;
		}
		k = p->msg_len - p->msg_pos;
		if (k > max - n)
			k = max - n;
		memcpy(buf + n, p->msg + p->msg_pos, k);
		p->msg_pos += k;
		n += k;
	}
	return (long)n;
}

/* ---------------------------------------------------------------------- */

static void bad_request(struct http_response *res, const char *code,
			const char *fmt, const char *detail)
{
	http_reply_error(&res->reply, 400, code, fmt, detail);
}

/* Parse "DATABASE_ID:GEN:FRAME".  Returns 0 (ours), 1 (well formed, but
 * another database's) or -1 (malformed). */
static int parse_revision(struct store *s, const char *text, uint32_t *gen,
			  uint32_t *frame)
{
	const char *id = store_database_id(s);
	const char *colon = strchr(text, ':'), *fstart;
	unsigned long long g, f;
	char *end;

	if (colon == NULL || colon == text)
		return -1;
	errno = 0;
	g = strtoull(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != ':' || g == 0 ||
	    g > UINT32_MAX)
		return -1;
	fstart = end + 1;
	f = strtoull(fstart, &end, 10);
	if (errno != 0 || end == fstart || *end != '\0' || f > UINT32_MAX)
		return -1;
	*gen = (uint32_t)g;
	*frame = (uint32_t)f;
	return strlen(id) == (size_t)(colon - text) &&
		       memcmp(id, text, (size_t)(colon - text)) == 0
		   ? 0
		   : 1;
}

void turso_sync_pull(struct store *s, int max_wait_s, struct http_request *req,
		     struct http_response *res)
{
	TursoSync__PullUpdatesReq *r = turso_sync__pull_updates_req__unpack(
	    NULL, req->body_len, req->body);
	TursoSync__PullUpdatesResp h = TURSO_SYNC__PULL_UPDATES_RESP__INIT;
	TursoSync__PageSetRawEncoding raw =
	    TURSO_SYNC__PAGE_SET_RAW_ENCODING__INIT;
	struct pull *p = NULL;
	uint32_t since_gen = 0, since = 0, pin_gen = 0, pin_frame = 0;
	char revision[128];
	int rc;

	if (strcmp(req->method, "POST") != 0) {
		http_reply_error(&res->reply, 405, "METHOD_NOT_ALLOWED",
				 "/pull-updates requires POST");
		goto out;
	}
	if (r == NULL) {
		bad_request(
		    res, "PULL_BAD_REQUEST", "%s",
		    "the body is not a protobuf PullUpdatesReqProtoBody");
		goto out;
	}
	if (r->stream_kind != 0) {
		bad_request(res, "PULL_UNSUPPORTED", "%s",
			    "this server sends page streams only, not MVCC "
			    "logical logs (stream_kind 1)");
		goto out;
	}
	if (r->server_query_selector != NULL &&
	    r->server_query_selector[0] != '\0') {
		bad_request(res, "PULL_UNSUPPORTED", "%s",
			    "partial sync by query (server_query_selector) is "
			    "not supported by this server");
		goto out;
	}
	if (r->server_revision != NULL && r->server_revision[0] != '\0' &&
	    parse_revision(s, r->server_revision, &pin_gen, &pin_frame) != 0) {
		bad_request(res, "PULL_BAD_REVISION",
			    "server_revision \"%.64s\" is not a revision of "
			    "this database",
			    r->server_revision);
		goto out;
	}
	if (r->client_revision != NULL && r->client_revision[0] != '\0') {
		rc = parse_revision(s, r->client_revision, &since_gen, &since);
		if (rc < 0) {
			bad_request(res, "PULL_BAD_REVISION",
				    "client_revision \"%.64s\" is malformed "
				    "(this server's revisions are "
				    "DATABASE_ID:GENERATION:FRAME)",
				    r->client_revision);
			goto out;
		}
		if (rc == 1)
			since_gen = 0; /* another database's: every page */
	}
	p = calloc(1, sizeof *p);
	if (p == NULL)
		goto oom;
	if (r->has_server_pages_selector && r->server_pages_selector.len > 0) {
		p->filter = roaring_bitmap_portable_deserialize_safe(
		    (const char *)r->server_pages_selector.data,
		    r->server_pages_selector.len);
		if (p->filter == NULL) {
			bad_request(res, "PULL_BAD_SELECTOR", "%s",
				    "server_pages_selector is not a roaring "
				    "bitmap in the portable format");
			goto out;
		}
	}
	rc = store_pages_open(s, since_gen, since, &p->pages);
	if (rc == 2) /* cannot be resolved incrementally: every page */
		rc = store_pages_open(s, 0, 0, &p->pages);
	if (rc == 1) {
		bad_request(res, "PULL_REVISION_FROM_THE_FUTURE",
			    "client_revision \"%.64s\" is past this "
			    "database's head: it is not from this primary's "
			    "history",
			    r->client_revision);
		goto out;
	}
	if (rc != 0) {
		http_reply_error(&res->reply, 500, "INTERNAL_ERROR",
				 "cannot read the database's pages");
		goto out;
	}
	if (pin_gen != 0 && (store_pages_generation(p->pages) != pin_gen ||
			     store_pages_frame(p->pages) != pin_frame)) {
		/* A pinned state (a chunked bootstrap pins every chunk to
		 * the first one's revision) is served while it is the head:
		 * chunks of different states would not make one database. */
		http_reply_error(&res->reply, 409, "PULL_REVISION_GONE",
				 "server_revision \"%.64s\" is no longer the "
				 "current state; pull again from the start",
				 r->server_revision);
		goto out;
	}
	if (since_gen != 0 && store_pages_count(p->pages) == 0 &&
	    r->long_poll_timeout_ms > 0) {
		/* Nothing new: wait for a commit (the store's listener wakes
		 * parked requests), up to the client's timeout. */
		int64_t wait_ms = r->long_poll_timeout_ms;
		int64_t deadline;
		if (wait_ms > (int64_t)max_wait_s * 1000)
			wait_ms = (int64_t)max_wait_s * 1000;
		deadline = req->started_us / 1000 + wait_ms;
		if (deadline > clock_monotonic_ms()) {
			res->park_until_ms = deadline;
			goto out;
		}
	}
	snprintf(revision, sizeof revision, "%s:%" PRIu32 ":%" PRIu32,
		 store_database_id(s), store_pages_generation(p->pages),
		 store_pages_frame(p->pages));
	h.server_revision = revision;
	h.has_db_size = 1;
	h.db_size = store_pages_db_size(p->pages);
	h.raw_encoding = &raw;
	h.has_protocol = 1;
	h.protocol = 1; /* pages */
	stage(p, &h.base);
	res->reply.status = 200;
	res->reply.content_type = "application/protobuf";
	res->stream = pull_read;
	res->stream_free = pull_free;
	res->stream_arg = p;
	p = NULL;
	goto out;
oom:
	http_reply_error(&res->reply, 500, "INTERNAL_ERROR", "out of memory");
out:
	if (p != NULL)
		pull_free(p);
	if (r != NULL)
		turso_sync__pull_updates_req__free_unpacked(r, NULL);
}
