/* The fault proxy's HTTP side (see fault_proxy.h and
 * fault_proxy_internal.h): each direction of a connection parsed as a
 * stream of HTTP messages, headers held until complete (so the answer's
 * status and length are known before any of it is forwarded), bodies
 * forwarded as they arrive, framed by Content-Length, chunked encoding or
 * (answers only) the end of the connection; what cannot be parsed is
 * forwarded untouched.  The one-shot faults aimed at a request's answer
 * (CUT_HEADER, LOSE_ANSWER) and at its body (the frame and byte faults)
 * fire here, and requests lose their Accept-Encoding here. */
#include "fault_proxy_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FRAME_SIZE 4120
#define FRAME_HEADER 24
#define PAGE_BYTES 4096
#define MAX_HEAD (64 * 1024) /* larger: not HTTP we follow */

static int buf_add(struct fpx_buf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *q;

		while (cap < b->len + n)
			cap *= 2;
		q = realloc(b->p, cap);
		if (q == NULL)
			return -1;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	return 0;
}

/* ---- fault state ---- */

static int match_locked(const struct fault_proxy *p, const char *line)
{
	return p->match_any || strncmp(line, p->match, strlen(p->match)) == 0;
}

/* Take the one-shot fault f if it is armed for the request line. */
static int claim(struct fault_proxy *p, enum fault_proxy_fault f,
		 const char *line)
{
	int ok;

	pthread_mutex_lock(&p->mu);
	ok = p->oneshot == f && match_locked(p, line);
	if (ok)
		p->oneshot = FAULT_PROXY_NONE;
	pthread_mutex_unlock(&p->mu);
	return ok;
}

static int is_frame_fault(enum fault_proxy_fault f)
{
	return f == FAULT_PROXY_CUT_FRAME || f == FAULT_PROXY_CUT_BOUNDARY ||
	       f == FAULT_PROXY_CORRUPT_PAGE || f == FAULT_PROXY_CORRUPT_HEADER;
}

static int is_byte_fault(enum fault_proxy_fault f)
{
	return f == FAULT_PROXY_CORRUPT_BYTE || f == FAULT_PROXY_CUT_BYTE;
}

/* Body bytes [s->body_off, s->body_off + n) of an answer are about to be
 * forwarded: the armed body fault fires if the byte it aims at is among
 * them (its index goes to *at) and the body is long enough to hold it
 * (its frame, for the frame faults). Checked (and claimed) this late, at the
 * bytes themselves, so a chunked body, whose length is unknown until its end,
 * is treated like one with a Content-Length. */
static enum fault_proxy_fault body_fault(struct fault_proxy *p,
					 const struct fpx_side *s, uint64_t n,
					 uint64_t *at)
{
	enum fault_proxy_fault f = FAULT_PROXY_NONE;
	uint64_t k, target = 0, need = 0;

	pthread_mutex_lock(&p->mu);
	if (!match_locked(p, s->req.line))
		goto out;
	if (!(is_frame_fault(p->oneshot) && s->frames) &&
	    !(is_byte_fault(p->oneshot) && s->ok))
		goto out;
	k = p->param > 0 ? (uint64_t)p->param : 0;
	need = (k + 1) * FRAME_SIZE;
	switch (p->oneshot) {
	case FAULT_PROXY_CORRUPT_BYTE:
	case FAULT_PROXY_CUT_BYTE:
		target = k;
		need = k + 1;
		break;
	case FAULT_PROXY_CUT_FRAME:
		target = k * FRAME_SIZE + FRAME_SIZE / 2;
		break;
	case FAULT_PROXY_CUT_BOUNDARY:
		/* The cut must fall inside the body: at its end, with a
		 * Content-Length, the client would have it all. */
		target = (k > 0 ? k : 1) * FRAME_SIZE;
		need = target + 1;
		break;
	case FAULT_PROXY_CORRUPT_PAGE:
		target = k * FRAME_SIZE + FRAME_HEADER + PAGE_BYTES / 2;
		break;
	default: /* CORRUPT_HEADER: the page number's lowest byte */
		target = k * FRAME_SIZE + 3;
		break;
	}
	if ((s->chunked || s->length >= need) && target >= s->body_off &&
	    target < s->body_off + n) {
		f = p->oneshot;
		p->oneshot = FAULT_PROXY_NONE;
		*at = target - s->body_off;
		atomic_fetch_add(&p->fired, 1);
	}
out:
	pthread_mutex_unlock(&p->mu);
	return f;
}

/* ---- HTTP parsing ---- */

struct head_info {
	int status;
	int has_length;
	uint64_t length;
	int chunked;
	int encoded; /* a Content-Encoding other than identity */
	char line[FPX_LINE_BYTES];
	int head_method;
	long accept_encoding; /* offset of that header's name, or -1 */
};

static int name_is(const char *s, size_t n, const char *name)
{
	return n == strlen(name) && strncasecmp(s, name, n) == 0;
}

/* Parse a complete header (h, len); 0, or -1 when it is not HTTP. */
static int parse_head(const char *h, size_t len, int is_answer,
		      struct head_info *hi)
{
	const char *end = h + len, *eol, *sp;
	size_t n;

	memset(hi, 0, sizeof *hi);
	hi->accept_encoding = -1;
	eol = memchr(h, '\n', len);
	if (eol == NULL)
		return -1;
	n = (size_t)(eol - h);
	if (n > 0 && h[n - 1] == '\r')
		n--;
	if (is_answer) {
		if (n < 12 || strncmp(h, "HTTP/1.", 7) != 0 || h[8] != ' ')
			return -1;
		hi->status = atoi(h + 9);
	} else {
		/* "METHOD /target HTTP/1.1": keep "METHOD /target". */
		sp = memchr(h, ' ', n);
		if (sp == NULL)
			return -1;
		sp = memchr(sp + 1, ' ', (size_t)(h + n - sp - 1));
		if (sp != NULL)
			n = (size_t)(sp - h);
		if (n >= sizeof hi->line)
			n = sizeof hi->line - 1;
		memcpy(hi->line, h, n);
		hi->head_method = strncmp(h, "HEAD ", 5) == 0;
	}
	for (h = eol + 1; h < end; h = eol + 1) {
		const char *colon, *v, *ve;

		eol = memchr(h, '\n', (size_t)(end - h));
		if (eol == NULL)
			break;
		colon = memchr(h, ':', (size_t)(eol - h));
		if (colon == NULL)
			continue; /* the empty line that ends the header */
		for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
			;
		for (ve = eol; ve > v && (ve[-1] == '\r' || ve[-1] == ' ');
		     ve--)
			;
		if (name_is(h, (size_t)(colon - h), "content-length")) {
			hi->has_length = 1;
			hi->length = strtoull(v, NULL, 10);
		} else if (name_is(h, (size_t)(colon - h),
				   "transfer-encoding")) {
			/* chunked is the last coding when it is there */
			hi->chunked = ve - v >= 7 &&
				      strncasecmp(ve - 7, "chunked", 7) == 0;
		} else if (name_is(h, (size_t)(colon - h),
				   "content-encoding")) {
			hi->encoded = !(ve - v == 8 &&
					strncasecmp(v, "identity", 8) == 0);
		} else if (name_is(h, (size_t)(colon - h), "accept-encoding")) {
			hi->accept_encoding = h - (end - len);
		}
	}
	return 0;
}

static void go_opaque(struct fpx_conn *c)
{
	c->req.st = FPX_MS_OPAQUE;
	c->ans.st = FPX_MS_OPAQUE;
}

/* Start the body of a message whose header was just forwarded (or
 * dropped); 1 when it has none (the message is complete). */
static int start_body(struct fpx_side *s, const struct head_info *hi, int none)
{
	s->body_off = 0;
	s->chunked = 0;
	s->length = 0;
	if (none)
		return 1;
	if (hi->chunked) {
		s->chunked = 1;
		s->st = FPX_MS_CHUNK_SIZE;
		s->chunk_size = 0;
		s->size_done = 0;
		return 0;
	}
	if (hi->has_length) {
		s->length = hi->length;
		s->left = hi->length;
		s->st = FPX_MS_BODY_LEN;
		return hi->length == 0;
	}
	if (!s->is_answer)
		return 1; /* a request without either has no body */
	s->st = FPX_MS_UNTIL_CLOSE;
	return 0;
}

/* A message ended: back to reading a header. */
static enum fpx_action message_done(struct fpx_side *s)
{
	int lost = s->drop;

	s->st = FPX_MS_HEAD;
	s->drop = 0;
	s->frames = 0;
	s->ok = 0;
	return lost ? FPX_ACT_LOST : FPX_ACT_NONE;
}

static int emit(struct fpx_side *s, struct fpx_buf *out, const void *d,
		size_t n)
{
	return s->drop ? 0 : buf_add(out, d, n);
}

/* A request's header is complete. */
static int request_head(struct fpx_conn *c, struct fpx_buf *out)
{
	struct fpx_side *s = &c->req;
	struct head_info hi;
	struct fpx_pending *q;

	if (parse_head((char *)s->head.p, s->head.len, 0, &hi) < 0 ||
	    c->q_len == FPX_MAX_PENDING) {
		go_opaque(c);
		return buf_add(out, s->head.p, s->head.len);
	}
	atomic_fetch_add(&c->p->requests, 1);
	q = &c->q[(c->q_first + c->q_len++) % FPX_MAX_PENDING];
	memcpy(q->line, hi.line, sizeof q->line);
	q->head = hi.head_method;
	pthread_mutex_lock(&c->p->mu);
	if (!c->p->pass_encoding && hi.accept_encoding >= 0)
		s->head.p[hi.accept_encoding + 1] = '-'; /* "A-cept-..." */
	pthread_mutex_unlock(&c->p->mu);
	if (buf_add(out, s->head.p, s->head.len) < 0)
		return -1;
	if (start_body(s, &hi, 0))
		message_done(s);
	return 0;
}

/* An answer's header is complete: decide its fate. */
static int answer_head(struct fpx_conn *c, struct fpx_buf *out,
		       enum fpx_action *act)
{
	struct fpx_side *s = &c->ans;
	struct head_info hi;
	size_t half;
	int none;

	if (parse_head((char *)s->head.p, s->head.len, 1, &hi) < 0) {
		go_opaque(c);
		return buf_add(out, s->head.p, s->head.len);
	}
	if (hi.status >= 100 && hi.status < 200) {
		/* Interim (100 Continue): the final answer is still to come;
		 * after 101 the connection is no longer HTTP. */
		if (hi.status == 101)
			go_opaque(c);
		return buf_add(out, s->head.p, s->head.len);
	}
	if (c->q_len > 0) {
		s->req = c->q[c->q_first];
		c->q_first = (c->q_first + 1) % FPX_MAX_PENDING;
		c->q_len--;
	} else {
		memset(&s->req, 0, sizeof s->req); /* an unasked answer */
	}
	none = s->req.head || hi.status == 204 || hi.status == 304;
	/* Claimed at the answer, not at the request: this way only an
	 * answer that came (the primary acted) is lost. */
	if (claim(c->p, FAULT_PROXY_LOSE_ANSWER, s->req.line)) {
		s->drop = 1;
	} else if (claim(c->p, FAULT_PROXY_CUT_HEADER, s->req.line)) {
		atomic_fetch_add(&c->p->fired, 1);
		half = s->head.len / 2;
		*act = FPX_ACT_CUT;
		return buf_add(out, s->head.p, half > 0 ? half : 1);
	} else if (buf_add(out, s->head.p, s->head.len) < 0) {
		return -1;
	}
	s->ok = !s->drop && hi.status == 200;
	s->frames =
	    s->ok && !hi.encoded && strncmp(s->req.line, "GET /sync/", 10) == 0;
	if (start_body(s, &hi, none))
		*act = message_done(s);
	return 0;
}

/* n body bytes (de-chunked) of the current message. */
static int body_bytes(struct fpx_conn *c, struct fpx_side *s, const uint8_t *d,
		      uint64_t n, struct fpx_buf *out, enum fpx_action *act)
{
	size_t start = out->len;
	enum fault_proxy_fault f = FAULT_PROXY_NONE;
	uint64_t at = 0;

	if (emit(s, out, d, n) < 0)
		return -1;
	if (s->ok)
		f = body_fault(c->p, s, n, &at);
	switch (f) {
	case FAULT_PROXY_CUT_FRAME:
	case FAULT_PROXY_CUT_BOUNDARY:
	case FAULT_PROXY_CUT_BYTE:
		out->len = start + at;
		*act = FPX_ACT_CUT;
		break;
	case FAULT_PROXY_CORRUPT_PAGE:
	case FAULT_PROXY_CORRUPT_BYTE:
		out->p[start + at] ^= 0xff;
		break;
	case FAULT_PROXY_CORRUPT_HEADER:
		out->p[start + at] ^= 0x80;
		break;
	default:
		break;
	}
	s->body_off += n;
	return 0;
}

/* Parse n bytes read on side s, appending what is to be forwarded to out.
 * Stops early on a cut or a lost answer (*act): the rest is never
 * forwarded. */
int fpx_feed(struct fpx_conn *c, struct fpx_side *s, const uint8_t *in,
	     size_t n, struct fpx_buf *out, enum fpx_action *act)
{
	size_t i = 0, m;
	int rc = 0;

	*act = FPX_ACT_NONE;
	while (i < n && rc == 0 && *act == FPX_ACT_NONE) {
		uint8_t ch = in[i];

		switch (s->st) {
		case FPX_MS_HEAD:
			if (s->head.len == 0 && (ch == '\r' || ch == '\n')) {
				/* empty lines between messages */
				rc = buf_add(out, &ch, 1);
				i++;
				break;
			}
			if (buf_add(&s->head, &ch, 1) < 0)
				return -1;
			i++;
			if (s->head.len > MAX_HEAD) {
				go_opaque(c);
				rc = buf_add(out, s->head.p, s->head.len);
				s->head.len = 0;
				break;
			}
			if (ch == '\n' && s->head.len >= 2 &&
			    (s->head.p[s->head.len - 2] == '\n' ||
			     (s->head.len >= 3 &&
			      s->head.p[s->head.len - 2] == '\r' &&
			      s->head.p[s->head.len - 3] == '\n'))) {
				rc = s->is_answer ? answer_head(c, out, act)
						  : request_head(c, out);
				s->head.len = 0;
			}
			break;
		case FPX_MS_BODY_LEN:
		case FPX_MS_CHUNK_DATA:
			m = n - i < s->left ? n - i : (size_t)s->left;
			rc = body_bytes(c, s, in + i, m, out, act);
			i += m;
			s->left -= m;
			if (s->left == 0 && s->st == FPX_MS_CHUNK_DATA)
				s->st = FPX_MS_CHUNK_CRLF;
			else if (s->left == 0 && *act == FPX_ACT_NONE)
				*act = message_done(s);
			break;
		case FPX_MS_CHUNK_SIZE:
			rc = emit(s, out, &ch, 1);
			i++;
			if (ch == '\n') {
				s->left = s->chunk_size;
				s->st = s->left > 0 ? FPX_MS_CHUNK_DATA
						    : FPX_MS_TRAILER;
				s->chunk_size = 0;
				s->size_done = 0;
				s->line_len = 0;
			} else if (!s->size_done && ch >= '0' && ch <= '9') {
				s->chunk_size = s->chunk_size * 16 + (ch - '0');
			} else if (!s->size_done &&
				   ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')) {
				s->chunk_size = s->chunk_size * 16 +
						((ch | 0x20) - 'a' + 10);
			} else {
				s->size_done = 1; /* ';' extensions, '\r' */
			}
			if (s->chunk_size > ((uint64_t)1 << 40))
				go_opaque(c);
			break;
		case FPX_MS_CHUNK_CRLF:
			rc = emit(s, out, &ch, 1);
			i++;
			if (ch == '\n')
				s->st = FPX_MS_CHUNK_SIZE;
			break;
		case FPX_MS_TRAILER:
			rc = emit(s, out, &ch, 1);
			i++;
			if (ch == '\n') {
				if (s->line_len == 0)
					*act = message_done(s);
				s->line_len = 0;
			} else if (ch != '\r') {
				s->line_len++;
			}
			break;
		case FPX_MS_UNTIL_CLOSE:
			rc = body_bytes(c, s, in + i, n - i, out, act);
			i = n;
			break;
		case FPX_MS_OPAQUE:
			rc = buf_add(out, in + i, n - i);
			i = n;
			break;
		}
	}
	return rc;
}
