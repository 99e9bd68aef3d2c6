/* What the two halves of the fault proxy share (see fault_proxy.h): its
 * state, a connection and its two directions, parsed as streams of HTTP
 * messages.  fault_proxy.c runs the connections (threads, sockets, the
 * persistent faults) and the API; fault_proxy_http.c parses what they
 * carry and fires the faults aimed at requests and answers.  For those two
 * files only. */
#ifndef REPLITE_TEST_FAULT_PROXY_INTERNAL_H
#define REPLITE_TEST_FAULT_PROXY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "fault_proxy.h"

#define FPX_LINE_BYTES 256 /* "METHOD /target" kept for matching */
#define FPX_IO_CHUNK (64 * 1024)
#define FPX_MAX_PENDING 32 /* requests sent ahead of their answers */

struct fpx_buf {
	uint8_t *p;
	size_t len, cap;
};

/* A request whose answer has not started yet. */
struct fpx_pending {
	char line[FPX_LINE_BYTES]; /* "METHOD /target" */
	int head;                  /* HEAD: its answer has no body */
};

enum fpx_msg_state {
	FPX_MS_HEAD,        /* collecting a header */
	FPX_MS_BODY_LEN,    /* left bytes of a Content-Length body */
	FPX_MS_CHUNK_SIZE,  /* a chunk-size line */
	FPX_MS_CHUNK_DATA,  /* left bytes of chunk data */
	FPX_MS_CHUNK_CRLF,  /* the line end after chunk data */
	FPX_MS_TRAILER,     /* trailer lines up to an empty one */
	FPX_MS_UNTIL_CLOSE, /* an answer's body that ends with the connection */
	FPX_MS_OPAQUE, /* not (or no longer) HTTP we follow: pass through */
};

/* One direction of a connection. */
struct fpx_side {
	int is_answer;
	enum fpx_msg_state st;
	struct fpx_buf head;
	uint64_t left;
	uint64_t chunk_size; /* while reading a chunk-size line */
	int size_done;       /* past the size's hex digits (extensions) */
	size_t line_len;     /* of the current trailer line */
	/* The answer being forwarded (answers only). */
	struct fpx_pending req; /* the request it answers */
	int drop;               /* LOSE_ANSWER: swallow it, then reset */
	int frames;             /* a plain 200 to GET /sync/: frames */
	int ok;                 /* a 200 (the byte faults aim at these) */
	int chunked;
	uint64_t length; /* Content-Length, when not chunked */
	uint64_t body_off;
};

struct fpx_conn {
	struct fault_proxy *p;
	pthread_t thread;
	int cfd, ufd, wfd; /* client, upstream, wake-up eventfd */
	int swallow;       /* accepted during BLACKHOLE: fixed */
	int reset_req;     /* under p->mu: RESET was set meanwhile */
	int done;          /* under p->mu: the thread is about to return */
	struct fpx_side req, ans;
	struct fpx_pending q[FPX_MAX_PENDING];
	unsigned q_first, q_len;
	struct fpx_buf out;
	uint8_t in[FPX_IO_CHUNK];
	struct fpx_conn *next;
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
	char match[FPX_LINE_BYTES];
	int match_any;
	int param;
	int stopping;
	int pass_encoding;      /* forward Accept-Encoding untouched */
	int listen_want;        /* 0 during REFUSE */
	unsigned listen_seq;    /* bumped when listen_want changes */
	unsigned listen_done;   /* the listen_seq the accept thread applied */
	int listen_ok;          /* listening as wanted after listen_done */
	struct fpx_conn *conns; /* running and finished, not yet joined */
	/* Owned by the accept thread (and start/stop around it). */
	int lfd;
	int wfd;
	pthread_t thread;
	atomic_uint fired;
	atomic_uint requests;
};

enum fpx_action { FPX_ACT_NONE, FPX_ACT_CUT, FPX_ACT_LOST };

/* Parse n bytes read on side s, appending what is to be forwarded to out.
 * Stops early on a cut or a lost answer (*act): the rest is never
 * forwarded. */
int fpx_feed(struct fpx_conn *c, struct fpx_side *s, const uint8_t *in,
	     size_t n, struct fpx_buf *out, enum fpx_action *act);

#endif
