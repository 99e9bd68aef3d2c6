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
 * connection. What cannot be parsed is forwarded untouched.
 *
 * This file runs the connections (their threads and sockets, the
 * persistent faults), accepts them and holds the API; the parsing and the
 * faults aimed at requests and answers are in fault_proxy_http.c, what
 * both share in fault_proxy_internal.h. */
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
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fault_proxy_internal.h"

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
	struct fpx_conn *c;

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

/* ---- a connection ---- */

/* Hold the connection while STALL or BLACKHOLE is set, and until until_ms
 * while LATENCY is (0: no delay). 0 to go on, -1 when the connection is
 * to end (stop, RESET). */
static int conn_gate(struct fpx_conn *c, int64_t until_ms)
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
static int forward(struct fpx_conn *c, int fd, const uint8_t *d, size_t n)
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
static void wait_sent(struct fpx_conn *c)
{
	int i, queued;

	for (i = 0; i < 2000; i++) {
		if (ioctl(c->cfd, SIOCOUTQ, &queued) < 0 || queued == 0)
			return;
		sleep_ms(1);
	}
}

static int connect_upstream(struct fpx_conn *c)
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
static int pump(struct fpx_conn *c, int from_client, int *reset)
{
	struct fpx_side *s = from_client ? &c->req : &c->ans;
	int from = from_client ? c->cfd : c->ufd;
	int to = from_client ? c->ufd : c->cfd;
	enum fpx_action act = FPX_ACT_NONE;
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
		if (!from_client && s->st == FPX_MS_UNTIL_CLOSE && s->drop) {
			atomic_fetch_add(&c->p->fired, 1);
			*reset = 1;
		}
		return 1;
	}
	if (fpx_feed(c, s, c->in, (size_t)n, &c->out, &act) < 0)
		return 1;
	if (forward(c, to, c->out.p, c->out.len) < 0)
		return 1;
	if (act == FPX_ACT_CUT) {
		wait_sent(c);
		*reset = 1;
		return 1;
	}
	if (act == FPX_ACT_LOST) {
		atomic_fetch_add(&c->p->fired, 1);
		*reset = 1;
		return 1;
	}
	return 0;
}

/* A BLACKHOLE connection: read and discard until the client gives up. */
static int swallow(struct fpx_conn *c)
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
	struct fpx_conn *c = arg;
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

static void conn_free(struct fpx_conn *c)
{
	close(c->wfd);
	free(c);
}

/* Join the connection threads that ended. */
static void reap(struct fault_proxy *p)
{
	struct fpx_conn **pp, *c, *done = NULL;

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
	struct fpx_conn *c;
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
	struct fpx_conn *c;

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
	struct fpx_conn *c;
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
