#include "http_tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

struct watched {
	uint64_t id;
	int tcp_fd;
	int app_fd;
	struct watched *next;
};

struct http_tls_watch {
	int epfd;
	int stop_fd; /* eventfd: readable when the thread is to end */
	pthread_t thread;
	pthread_mutex_t mu; /* guards list, next_id and the epoll set */
	struct watched *list;
	uint64_t next_id;
};

/* Unlink and free the entry of id, taking its socket out of the epoll set
 * first; with mu held.  Returns the entry's app_fd, or -1. */
static int unwatch_locked(struct http_tls_watch *w, uint64_t id)
{
	struct watched **pp = &w->list;
	int app_fd;

	while (*pp != NULL && (*pp)->id != id)
		pp = &(*pp)->next;
	if (*pp == NULL)
		return -1;
	{
		struct watched *e = *pp;
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, e->tcp_fd, NULL);
		app_fd = e->app_fd;
		*pp = e->next;
		free(e);
	}
	return app_fd;
}

static void *watch_main(void *arg)
{
	struct http_tls_watch *w = arg;
	struct epoll_event ev[32];

	for (;;) {
		int n = epoll_wait(w->epfd, ev, 32, -1), i;

		if (n < 0 && errno != EINTR)
			break;
		for (i = 0; i < n; i++) {
			int app_fd;

			if (ev[i].data.u64 == 0)
				return NULL; /* the stop eventfd */
			pthread_mutex_lock(&w->mu);
			app_fd = unwatch_locked(w, ev[i].data.u64);
			/* Still open: closed only after _remove. */
			if (app_fd >= 0)
				shutdown(app_fd, SHUT_RD);
			pthread_mutex_unlock(&w->mu);
		}
	}
	return NULL;
}

int http_tls_watch_start(struct http_tls_watch **out, char *err, size_t err_len)
{
	struct http_tls_watch *w = calloc(1, sizeof *w);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};

	if (w == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	w->next_id = 1;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&w->mu, NULL);
	if (w->epfd < 0 || w->stop_fd < 0 ||
	    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->stop_fd, &ev) != 0 ||
	    pthread_create(&w->thread, NULL, watch_main, w) != 0) {
		snprintf(err, err_len,
			 "cannot watch upgraded TLS connections: %s",
			 strerror(errno));
		if (w->epfd >= 0)
			close(w->epfd);
		if (w->stop_fd >= 0)
			close(w->stop_fd);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return -1;
	}
	*out = w;
	return 0;
}

uint64_t http_tls_watch_add(struct http_tls_watch *w, int tcp_fd, int app_fd)
{
	struct watched *e = calloc(1, sizeof *e);
	struct epoll_event ev = {.events = EPOLLRDHUP};
	uint64_t id = 0;

	if (e == NULL || tcp_fd < 0)
		goto out;
	pthread_mutex_lock(&w->mu);
	e->id = w->next_id++;
	e->tcp_fd = tcp_fd;
	e->app_fd = app_fd;
	ev.data.u64 = e->id;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, tcp_fd, &ev) == 0) {
		e->next = w->list;
		w->list = e;
		id = e->id;
		e = NULL;
	}
	pthread_mutex_unlock(&w->mu);
out:
	free(e);
	return id;
}

void http_tls_watch_remove(struct http_tls_watch *w, uint64_t id)
{
	if (w == NULL || id == 0)
		return;
	pthread_mutex_lock(&w->mu);
	unwatch_locked(w, id);
	pthread_mutex_unlock(&w->mu);
}

void http_tls_watch_stop(struct http_tls_watch *w)
{
	uint64_t one = 1;

	if (w == NULL)
		return;
	if (write(w->stop_fd, &one, sizeof one) < 0)
		perror("replite: eventfd");
	pthread_join(w->thread, NULL);
	while (w->list != NULL)
		unwatch_locked(w, w->list->id);
	close(w->epfd);
	close(w->stop_fd);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
