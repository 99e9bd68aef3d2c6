/* A fault-injecting HTTP/1.1 proxy for tests: it sits on loopback between a
 * replica (libcurl, kept-alive connections) and a real primary, follows the
 * requests and answers on each connection, and breaks them on command.
 *
 * Faults live in two slots: one persistent (LATENCY, RESET, STALL,
 * BLACKHOLE, REFUSE: until fault_proxy_clear or another persistent fault)
 * and one one-shot (the rest: it fires once, on the next request or answer
 * that matches, then disarms itself). Setting a fault replaces the one in
 * its slot only, so a latency and a pending cut can be combined.
 *
 * Requests lose their Accept-Encoding header on the way (it is renamed,
 * byte for byte, to A-cept-Encoding), so the primary answers in plain
 * frames, which the frame faults below aim at; fault_proxy_pass_encoding
 * lets it through, for tests of compressed answers. */
#ifndef REPLITE_TEST_FAULT_PROXY_H
#define REPLITE_TEST_FAULT_PROXY_H

struct fault_proxy;

enum fault_proxy_fault {
	FAULT_PROXY_NONE, /* as fault_proxy_clear */
	/* Persistent; match is ignored. */
	FAULT_PROXY_LATENCY,   /* hold every chunk read, either way, param ms */
	FAULT_PROXY_RESET,     /* reset (RST) every open connection now, and
				* every new one at the first bytes it sends
				* (curl: "Recv failure", never a refused
				* connect) */
	FAULT_PROXY_STALL,     /* forward nothing either way on any
				* connection (new ones too) until cleared;
				* nothing is lost, all resumes at clear */
	FAULT_PROXY_BLACKHOLE, /* accept new connections but swallow what
				* they send and never answer, even after
				* clear; open ones stall until clear */
	FAULT_PROXY_REFUSE,    /* stop listening (connects are refused; open
				* connections go on); clear listens again on
				* the same port */
	/* One-shot, on the next answer to a request whose "METHOD /target"
	 * starts with match (any request when match is NULL). */
	FAULT_PROXY_CUT_HEADER,  /* forward the first half of the answer's
				  * header, then reset */
	FAULT_PROXY_LOSE_ANSWER, /* the request went through whole and the
				  * primary answered: read the whole answer,
				  * forward none of it, reset the client */
	/* One-shot body faults, only on 200 answers of GET /sync/ (bodies of
	 * 4120-byte frames: 24-byte header, 4096-byte page), and only on one
	 * holding the frame aimed at (else they stay armed). param: the
	 * 0-based frame hit. */
	FAULT_PROXY_CUT_FRAME,      /* reset in the middle of frame param */
	FAULT_PROXY_CUT_BOUNDARY,   /* reset after exactly param whole frames
				     * (0 means 1), on a body that has more */
	FAULT_PROXY_CORRUPT_PAGE,   /* flip (xor 0xff) the middle byte of frame
				     * param's page */
	FAULT_PROXY_CORRUPT_HEADER, /* flip bit 0x80 of frame param's page
				     * number (its lowest byte): a plausible
				     * page number, caught by the checksum */
	/* One-shot body faults on the next 200 answer to a matching request,
	 * whatever its body (compressed or not), on a body longer than
	 * param: param is the 0-based offset in the body as sent (after
	 * any Content-Encoding, before chunking). */
	FAULT_PROXY_CORRUPT_BYTE, /* flip (xor 0xff) byte param */
	FAULT_PROXY_CUT_BYTE,     /* reset right before byte param */
};

/* Listen on 127.0.0.1 (ephemeral port) and forward every connection to
 * 127.0.0.1:target_port; NULL on failure. */
struct fault_proxy *fault_proxy_start(int target_port);
int fault_proxy_port(const struct fault_proxy *p);
/* "http://127.0.0.1:PORT", valid until fault_proxy_stop. */
const char *fault_proxy_url(const struct fault_proxy *p);
/* Close every connection, join every thread, free. NULL is a no-op. */
void fault_proxy_stop(struct fault_proxy *p);

/* Arm f (see above for param and match; match is copied). Returns once it
 * applies to every connection; -1 when the port could not be listened on
 * again (leaving REFUSE), else 0. */
int fault_proxy_set(struct fault_proxy *p, enum fault_proxy_fault f,
		    const char *match, int param);
/* Forward Accept-Encoding untouched (on != 0) or renamed (0, the
 * default), for requests whose header comes from now on. */
void fault_proxy_pass_encoding(struct fault_proxy *p, int on);

/* Disarm both slots; listen again after REFUSE (-1 if that failed). */
int fault_proxy_clear(struct fault_proxy *p);

/* One-shot faults fired so far; requests seen (request headers parsed,
 * whatever came of them): for tests to wait on. */
unsigned fault_proxy_fired(const struct fault_proxy *p);
unsigned fault_proxy_requests(const struct fault_proxy *p);

#endif
