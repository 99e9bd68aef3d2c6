/* A fault-injecting HTTP/1.1 proxy for tests (see fault_proxy.h).
 *
 * One accept thread owns the listening socket; every accepted connection
 * gets a thread of its own that polls both sockets and the connection's
 * eventfd (the wake-up for fault changes and stop), so both directions of a
 * connection are handled in one place: a fault that needs the request and
 * its answer (LOSE_ANSWER) or the answer's header and body (the body
 * faults) needs no coordination between threads.
 *
 * Each direction is parsed as a stream of HTTP messages: headers are held
 * until complete (so the answer's status and length are known before any
 * of it is forwarded), bodies are forwarded as they arrive, framed by
 * Content-Length, chunked encoding or (answers only) the end of the
 * connection. What cannot be parsed is forwarded untouched. */
#include "fault_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME_SIZE 4120
#define FRAME_HEADER 24
#define PAGE_BYTES 4096
#define MAX_HEAD (64 * 1024) /* larger: not HTTP we follow */
#define LINE_BYTES 256       /* "METHOD /target" kept for matching */
#define IO_CHUNK (64 * 1024)
#define MAX_PENDING 32 /* requests sent ahead of their answers */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

/* A request whose answer has not started yet. */
struct pending {
	char line[LINE_BYTES]; /* "METHOD /target" */
	int head;              /* HEAD: its answer has no body */
};

enum msg_state {
	MS_HEAD,        /* collecting a header */
	MS_BODY_LEN,    /* left bytes of a Content-Length body */
	MS_CHUNK_SIZE,  /* a chunk-size line */
	MS_CHUNK_DATA,  /* left bytes of chunk data */
	MS_CHUNK_CRLF,  /* the line end after chunk data */
	MS_TRAILER,     /* trailer lines up to an empty one */
	MS_UNTIL_CLOSE, /* an answer's body that ends with the connection */
	MS_OPAQUE,      /* not (or no longer) HTTP we follow: pass through */
};

/* One direction of a connection. */
struct side {
	int is_answer;
	enum msg_state st;
	struct buf head;
	uint64_t left;
	uint64_t chunk_size; /* while reading a chunk-size line */
	int size_done;       /* past the size's hex digits (extensions) */
	size_t line_len;     /* of the current trailer line */
	/* The answer being forwarded (answers only). */
	struct pending req; /* the request it answers */
	int drop;           /* LOSE_ANSWER: swallow it, then reset */
	int frames;         /* a plain 200 to GET /sync/: frames */
	int ok;             /* a 200 (the byte faults aim at these) */
	int chunked;
	uint64_t length; /* Content-Length, when not chunked */
	uint64_t body_off;
};

struct conn {
	struct fault_proxy *p;
	pthread_t thread;
	int cfd, ufd, wfd; /* client, upstream, wake-up eventfd */
	int swallow;       /* accepted during BLACKHOLE: fixed */
	int reset_req;     /* under p->mu: RESET was set meanwhile */
	int done;          /* under p->mu: the thread is about to return */
	struct side req, ans;
	struct pending q[MAX_PENDING];
	unsigned q_first, q_len;
	struct buf out;
	uint8_t in[IO_CHUNK];
	struct conn *next;
};

struct fault_proxy {
	int target_port;
	int port;
	char url[64];
	pthread_mutex_t mu;
	pthread_cond_t cond; /* listen_done changed */
	/* Under mu. */
	enum fault_proxy_fault persist;
	int latency_ms;
	enum fault_proxy_fault oneshot;
	char match[LINE_BYTES];
	int match_any;
	int param;
	int stopping;
	int pass_encoding;    /* forward Accept-Encoding untouched */
	int listen_want;      /* 0 during REFUSE */
	unsigned listen_seq;  /* bumped when listen_want changes */
	unsigned listen_done; /* the listen_seq the accept thread applied */
	int listen_ok;        /* listening as wanted after listen_done */
	struct conn *conns;   /* running and finished, not yet joined */
	/* Owned by the accept thread (and start/stop around it). */
	int lfd;
	int wfd;
	pthread_t thread;
	atomic_uint fired;
	atomic_uint requests;
};

enum action { ACT_NONE, ACT_CUT, ACT_LOST };

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void wake(int fd)
{
	uint64_t one = 1;
	ssize_t rc = write(fd, &one, sizeof one);

	/* Only fails when the counter is about to overflow: it is then
	 * readable already, which is all a wake-up needs. */
	(void)rc;
}

static void drain(int fd)
{
	uint64_t v;
	ssize_t rc = read(fd, &v, sizeof v);

	(void)rc; /* EAGAIN: nothing was pending */
}

static void wake_conns_locked(struct fault_proxy *p)
{
	struct conn *c;

	for (c = p->conns; c != NULL; c = c->next)
		wake(c->wfd);
}

/* Close with an RST instead of a FIN: SO_LINGER with a zero timeout makes
 * close() abort the connection, which is what a crashed or reset peer or
 * a middlebox dropping state looks like to the client. */
static void reset_close(int fd)
{
	struct linger l = {.l_onoff = 1, .l_linger = 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	close(fd);
}

static void set_nodelay(int fd)
{
	int one = 1;

	/* Small writes (headers) must not wait for Nagle: only LATENCY may
	 * delay anything. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int buf_add(struct buf *b, const void *d, size_t n)
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
					 const struct side *s, uint64_t n,
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
	char line[LINE_BYTES];
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

static void go_opaque(struct conn *c)
{
	c->req.st = MS_OPAQUE;
	c->ans.st = MS_OPAQUE;
}

/* Start the body of a message whose header was just forwarded (or
 * dropped); 1 when it has none (the message is complete). */
static int start_body(struct side *s, const struct head_info *hi, int none)
{
	s->body_off = 0;
	s->chunked = 0;
	s->length = 0;
	if (none)
		return 1;
	if (hi->chunked) {
		s->chunked = 1;
		s->st = MS_CHUNK_SIZE;
		s->chunk_size = 0;
		s->size_done = 0;
		return 0;
	}
	if (hi->has_length) {
		s->length = hi->length;
		s->left = hi->length;
		s->st = MS_BODY_LEN;
		return hi->length == 0;
	}
	if (!s->is_answer)
		return 1; /* a request without either has no body */
	s->st = MS_UNTIL_CLOSE;
	return 0;
}

/* A message ended: back to reading a header. */
static enum action message_done(struct side *s)
{
	int lost = s->drop;

	s->st = MS_HEAD;
	s->drop = 0;
	s->frames = 0;
	s->ok = 0;
	return lost ? ACT_LOST : ACT_NONE;
}

static int emit(struct side *s, struct buf *out, const void *d, size_t n)
{
	return s->drop ? 0 : buf_add(out, d, n);
}

/* A request's header is complete. */
static int request_head(struct conn *c, struct buf *out)
{
	struct side *s = &c->req;
	struct head_info hi;
	struct pending *q;

	if (parse_head((char *)s->head.p, s->head.len, 0, &hi) < 0 ||
	    c->q_len == MAX_PENDING) {
		go_opaque(c);
		return buf_add(out, s->head.p, s->head.len);
	}
	atomic_fetch_add(&c->p->requests, 1);
	q = &c->q[(c->q_first + c->q_len++) % MAX_PENDING];
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
static int answer_head(struct conn *c, struct buf *out, enum action *act)
{
	struct side *s = &c->ans;
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
		c->q_first = (c->q_first + 1) % MAX_PENDING;
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
		*act = ACT_CUT;
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
static int body_bytes(struct conn *c, struct side *s, const uint8_t *d,
		      uint64_t n, struct buf *out, enum action *act)
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
		*act = ACT_CUT;
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
static int feed(struct conn *c, struct side *s, const uint8_t *in, size_t n,
		struct buf *out, enum action *act)
{
	size_t i = 0, m;
	int rc = 0;

	*act = ACT_NONE;
	while (i < n && rc == 0 && *act == ACT_NONE) {
		uint8_t ch = in[i];

		switch (s->st) {
		case MS_HEAD:
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
		case MS_BODY_LEN:
		case MS_CHUNK_DATA:
			m = n - i < s->left ? n - i : (size_t)s->left;
			rc = body_bytes(c, s, in + i, m, out, act);
			i += m;
			s->left -= m;
			if (s->left == 0 && s->st == MS_CHUNK_DATA)
				s->st = MS_CHUNK_CRLF;
			else if (s->left == 0 && *act == ACT_NONE)
				*act = message_done(s);
			break;
		case MS_CHUNK_SIZE:
			rc = emit(s, out, &ch, 1);
			i++;
			if (ch == '\n') {
				s->left = s->chunk_size;
				s->st =
				    s->left > 0 ? MS_CHUNK_DATA : MS_TRAILER;
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
		case MS_CHUNK_CRLF:
			rc = emit(s, out, &ch, 1);
			i++;
			if (ch == '\n')
				s->st = MS_CHUNK_SIZE;
			break;
		case MS_TRAILER:
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
		case MS_UNTIL_CLOSE:
			rc = body_bytes(c, s, in + i, n - i, out, act);
			i = n;
			break;
		case MS_OPAQUE:
			rc = buf_add(out, in + i, n - i);
			i = n;
			break;
		}
	}
	return rc;
}

/* ---- a connection ---- */

/* Hold the connection while STALL or BLACKHOLE is set, and until until_ms
 * while LATENCY is (0: no delay). 0 to go on, -1 when the connection is
 * to end (stop, RESET). */
static int conn_gate(struct conn *c, int64_t until_ms)
{
	struct fault_proxy *p = c->p;

	for (;;) {
		struct pollfd pf = {.fd = c->wfd, .events = POLLIN};
		int held, delayed, timeout = -1;

		drain(c->wfd);
		pthread_mutex_lock(&p->mu);
		if (p->stopping || c->reset_req) {
			pthread_mutex_unlock(&p->mu);
			return -1;
		}
		held = p->persist == FAULT_PROXY_STALL ||
		       p->persist == FAULT_PROXY_BLACKHOLE;
		delayed = p->persist == FAULT_PROXY_LATENCY;
		pthread_mutex_unlock(&p->mu);
		if (!held) {
			int64_t left = until_ms - now_ms();

			/* Clearing LATENCY releases what it holds at once. */
			if (!delayed || until_ms == 0 || left <= 0)
				return 0;
			timeout = left > 1000 ? 1000 : (int)left;
		}
		if (poll(&pf, 1, timeout) < 0 && errno != EINTR)
			return -1;
	}
}

/* Send all of d to fd (non-blocking), through the gate. */
static int forward(struct conn *c, int fd, const uint8_t *d, size_t n)
{
	struct fault_proxy *p = c->p;
	int64_t until = 0;

	if (n == 0)
		return 0;
	pthread_mutex_lock(&p->mu);
	if (p->persist == FAULT_PROXY_LATENCY && p->latency_ms > 0)
		until = now_ms() + p->latency_ms;
	pthread_mutex_unlock(&p->mu);
	if (conn_gate(c, until) < 0)
		return -1;
	while (n > 0) {
		ssize_t w = send(fd, d, n, MSG_NOSIGNAL);

		if (w > 0) {
			d += w;
			n -= (size_t)w;
		} else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pf[2] = {
			    {.fd = fd, .events = POLLOUT},
			    {.fd = c->wfd, .events = POLLIN}};

			if (poll(pf, 2, -1) < 0 && errno != EINTR)
				return -1;
			if ((pf[1].revents & POLLIN) && conn_gate(c, 0) < 0)
				return -1;
		} else {
			return -1;
		}
	}
	return 0;
}

/* Before a reset after a cut: an RST discards whatever the kernel has not
 * sent yet, and the cut must fall exactly where it was aimed, so wait
 * (bounded) until the client's side acknowledged all of it. */
static void wait_sent(struct conn *c)
{
	int i, queued;

	for (i = 0; i < 2000; i++) {
		if (ioctl(c->cfd, SIOCOUTQ, &queued) < 0 || queued == 0)
			return;
		sleep_ms(1);
	}
}

static int connect_upstream(struct conn *c)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)c->p->target_port);
	/* Blocking: on loopback it is accepted or refused at once. */
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		close(fd);
		return -1;
	}
	set_nodelay(fd);
	c->ufd = fd;
	return 0;
}

/* Read once from fd and pass it on; 1 at the end of the connection (EOF,
 * error, a fault ending it), 0 to go on. *reset: end it with an RST. */
static int pump(struct conn *c, int from_client, int *reset)
{
	struct side *s = from_client ? &c->req : &c->ans;
	int from = from_client ? c->cfd : c->ufd;
	int to = from_client ? c->ufd : c->cfd;
	enum action act = ACT_NONE;
	ssize_t n;

	n = recv(from, c->in, sizeof c->in, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n < 0)
		return 1; /* the peer reset: the end */
	c->out.len = 0;
	if (n == 0) {
		/* The primary closed: an answer it ended that way was
		 * complete. The client closed: curl only ever closes a
		 * connection it is done with. */
		if (!from_client && s->st == MS_UNTIL_CLOSE && s->drop) {
			atomic_fetch_add(&c->p->fired, 1);
			*reset = 1;
		}
		return 1;
	}
	if (feed(c, s, c->in, (size_t)n, &c->out, &act) < 0)
		return 1;
	if (forward(c, to, c->out.p, c->out.len) < 0)
		return 1;
	if (act == ACT_CUT) {
		wait_sent(c);
		*reset = 1;
		return 1;
	}
	if (act == ACT_LOST) {
		atomic_fetch_add(&c->p->fired, 1);
		*reset = 1;
		return 1;
	}
	return 0;
}

/* A BLACKHOLE connection: read and discard until the client gives up. */
static int swallow(struct conn *c)
{
	struct pollfd pf[2] = {{.fd = c->cfd, .events = POLLIN},
			       {.fd = c->wfd, .events = POLLIN}};
	ssize_t n;

	if (poll(pf, 2, -1) < 0 && errno != EINTR)
		return 1;
	if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
		return 0;
	n = recv(c->cfd, c->in, sizeof c->in, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	return n <= 0;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct fault_proxy *p = c->p;
	int reset = 0, end = 0;

	while (!end) {
		struct pollfd pf[3] = {{.fd = c->wfd, .events = POLLIN},
				       {.fd = c->cfd, .events = POLLIN},
				       {.fd = c->ufd, .events = POLLIN}};
		int held, resetting;

		drain(c->wfd);
		pthread_mutex_lock(&p->mu);
		end = p->stopping;
		reset = c->reset_req;
		held = p->persist == FAULT_PROXY_STALL ||
		       p->persist == FAULT_PROXY_BLACKHOLE;
		resetting = p->persist == FAULT_PROXY_RESET;
		pthread_mutex_unlock(&p->mu);
		if (end || reset)
			break;
		if (c->swallow) {
			end = swallow(c);
			continue;
		}
		if (resetting) {
			/* Accepted during RESET: reset at its first bytes.
			 * An RST right at accept races the client's check of
			 * its connect and often reads as a refused connect,
			 * which is REFUSE's job. */
			if (poll(pf, 2, -1) < 0 && errno != EINTR)
				break;
			reset =
			    (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
			end = reset;
			continue;
		}
		if (held) {
			/* Read nothing: what is sent piles up in the kernel,
			 * to be forwarded when the stall ends. */
			if (poll(pf, 1, -1) < 0 && errno != EINTR)
				break;
			continue;
		}
		if (c->ufd < 0 && connect_upstream(c) < 0) {
			reset = 1; /* as a primary that went away would */
			break;
		}
		pf[2].fd = c->ufd;
		if (poll(pf, 3, -1) < 0 && errno != EINTR)
			break;
		if (pf[0].revents & POLLIN)
			continue; /* look at the faults first */
		if (pf[1].revents & (POLLIN | POLLHUP | POLLERR))
			end = pump(c, 1, &reset);
		if (!end && (pf[2].revents & (POLLIN | POLLHUP | POLLERR)))
			end = pump(c, 0, &reset);
	}
	/* RESET may have interrupted a forward (a delay, a full socket). */
	pthread_mutex_lock(&p->mu);
	reset = reset || c->reset_req;
	pthread_mutex_unlock(&p->mu);
	if (reset)
		reset_close(c->cfd);
	else
		close(c->cfd);
	if (c->ufd >= 0)
		close(c->ufd);
	free(c->out.p);
	free(c->req.head.p);
	free(c->ans.head.p);
	pthread_mutex_lock(&p->mu);
	c->done = 1;
	pthread_mutex_unlock(&p->mu);
	wake(p->wfd); /* for the accept thread to join it */
	return NULL;
}

/* ---- accepting ---- */

static void conn_free(struct conn *c)
{
	close(c->wfd);
	free(c);
}

/* Join the connection threads that ended. */
static void reap(struct fault_proxy *p)
{
	struct conn **pp, *c, *done = NULL;

	pthread_mutex_lock(&p->mu);
	for (pp = &p->conns; (c = *pp) != NULL;) {
		if (c->done) {
			*pp = c->next;
			c->next = done;
			done = c;
		} else {
			pp = &c->next;
		}
	}
	pthread_mutex_unlock(&p->mu);
	while ((c = done) != NULL) {
		done = c->next;
		pthread_join(c->thread, NULL);
		conn_free(c);
	}
}

static void accept_one(struct fault_proxy *p)
{
	struct conn *c;
	int fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	set_nodelay(fd);
	pthread_mutex_lock(&p->mu);
	c = calloc(1, sizeof *c);
	if (c == NULL)
		goto fail;
	c->p = p;
	c->cfd = fd;
	c->ufd = -1;
	c->wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->wfd < 0)
		goto fail_free;
	c->swallow = p->persist == FAULT_PROXY_BLACKHOLE;
	c->ans.is_answer = 1;
	/* Under the lock, so that set and stop see every connection. */
	if (pthread_create(&c->thread, NULL, conn_main, c) != 0)
		goto fail_wfd;
	c->next = p->conns;
	p->conns = c;
	pthread_mutex_unlock(&p->mu);
	return;

fail_wfd:
	close(c->wfd);
fail_free:
	free(c);
fail:
	pthread_mutex_unlock(&p->mu);
	reset_close(fd);
}

static int listen_on(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	/* Listening again on the port after REFUSE needs SO_REUSEADDR: the
	 * connections accepted before still use it. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    listen(fd, 128) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Open or close the listening socket as asked (REFUSE); the caller of
 * fault_proxy_set waits for the result. */
static void apply_listen(struct fault_proxy *p)
{
	unsigned seq;
	int want, i;

	pthread_mutex_lock(&p->mu);
	seq = p->listen_seq;
	want = p->listen_want;
	pthread_mutex_unlock(&p->mu);
	if (seq == p->listen_done)
		return; /* only read here, written below by this thread */
	if (!want && p->lfd >= 0) {
		close(p->lfd);
		p->lfd = -1;
	}
	/* A connect racing the close can hold the port for a moment. */
	for (i = 0; want && p->lfd < 0 && i < 200; i++) {
		p->lfd = listen_on(p->port);
		if (p->lfd < 0)
			sleep_ms(10);
	}
	pthread_mutex_lock(&p->mu);
	p->listen_done = seq;
	p->listen_ok = want == (p->lfd >= 0);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->mu);
}

static void *accept_main(void *arg)
{
	struct fault_proxy *p = arg;

	for (;;) {
		struct pollfd pf[2] = {{.fd = p->wfd, .events = POLLIN},
				       {.fd = p->lfd, .events = POLLIN}};
		int stopping;

		drain(p->wfd);
		pthread_mutex_lock(&p->mu);
		stopping = p->stopping;
		pthread_mutex_unlock(&p->mu);
		if (stopping)
			break;
		reap(p);
		apply_listen(p);
		pf[1].fd = p->lfd; /* -1 (ignored by poll) during REFUSE */
		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			break;
		if (pf[1].revents & POLLIN)
			accept_one(p);
	}
	return NULL;
}

/* ---- the API ---- */

struct fault_proxy *fault_proxy_start(int target_port)
{
	struct fault_proxy *p = calloc(1, sizeof *p);
	struct sockaddr_in a;
	socklen_t len = sizeof a;

	if (p == NULL)
		return NULL;
	p->target_port = target_port;
	p->lfd = -1;
	p->listen_want = 1;
	p->listen_ok = 1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->wfd < 0)
		goto fail;
	p->lfd = listen_on(0);
	if (p->lfd < 0 || getsockname(p->lfd, (struct sockaddr *)&a, &len) < 0)
		goto fail;
	p->port = ntohs(a.sin_port);
	snprintf(p->url, sizeof p->url, "http://127.0.0.1:%d", p->port);
	if (pthread_create(&p->thread, NULL, accept_main, p) != 0)
		goto fail;
	return p;

fail:
	if (p->lfd >= 0)
		close(p->lfd);
	if (p->wfd >= 0)
		close(p->wfd);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->mu);
	free(p);
	return NULL;
}

int fault_proxy_port(const struct fault_proxy *p)
{
	return p->port;
}

const char *fault_proxy_url(const struct fault_proxy *p)
{
	return p->url;
}

void fault_proxy_stop(struct fault_proxy *p)
{
	struct conn *c;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	wake_conns_locked(p);
	pthread_mutex_unlock(&p->mu);
	wake(p->wfd);
	/* The accept thread first: then no connection is added any more. */
	pthread_join(p->thread, NULL);
	while ((c = p->conns) != NULL) {
		p->conns = c->next;
		pthread_join(c->thread, NULL);
		conn_free(c);
	}
	if (p->lfd >= 0)
		close(p->lfd);
	close(p->wfd);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* Listen or not (under mu), and wait until the accept thread did it. */
static int set_listen_locked(struct fault_proxy *p, int want)
{
	unsigned seq;

	if (want != p->listen_want) {
		p->listen_want = want;
		seq = ++p->listen_seq;
		wake(p->wfd);
		while (p->listen_done != seq && !p->stopping)
			pthread_cond_wait(&p->cond, &p->mu);
	}
	return p->listen_ok ? 0 : -1;
}

int fault_proxy_set(struct fault_proxy *p, enum fault_proxy_fault f,
		    const char *match, int param)
{
	struct conn *c;
	int rc;

	if (f == FAULT_PROXY_NONE)
		return fault_proxy_clear(p);
	pthread_mutex_lock(&p->mu);
	switch (f) {
	case FAULT_PROXY_LATENCY:
	case FAULT_PROXY_RESET:
	case FAULT_PROXY_STALL:
	case FAULT_PROXY_BLACKHOLE:
	case FAULT_PROXY_REFUSE:
		p->persist = f;
		p->latency_ms = f == FAULT_PROXY_LATENCY ? param : 0;
		if (f == FAULT_PROXY_RESET)
			for (c = p->conns; c != NULL; c = c->next)
				c->reset_req = 1;
		wake_conns_locked(p);
		rc = set_listen_locked(p, f != FAULT_PROXY_REFUSE);
		break;
	default:
		p->oneshot = f;
		p->param = param;
		p->match_any = match == NULL;
		snprintf(p->match, sizeof p->match, "%s", match ? match : "");
		rc = p->listen_ok ? 0 : -1;
		break;
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int fault_proxy_clear(struct fault_proxy *p)
{
	int rc;

	pthread_mutex_lock(&p->mu);
	p->persist = FAULT_PROXY_NONE;
	p->latency_ms = 0;
	p->oneshot = FAULT_PROXY_NONE;
	wake_conns_locked(p);
	rc = set_listen_locked(p, 1);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

unsigned fault_proxy_fired(const struct fault_proxy *p)
{
	return atomic_load(&p->fired);
}

unsigned fault_proxy_requests(const struct fault_proxy *p)
{
	return atomic_load(&p->requests);
}

void fault_proxy_pass_encoding(struct fault_proxy *p, int on)
{
	pthread_mutex_lock(&p->mu);
	p->pass_encoding = on != 0;
	pthread_mutex_unlock(&p->mu);
}
