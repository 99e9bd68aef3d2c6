/* Pages of one state of the database, for Turso Sync's pull
 * (POST /pull-updates, turso_sync.c): the whole image, or the pages changed
 * since an earlier state.
 *
 * The state is the one after the current generation's durable head when
 * store_pages_open runs.  Every byte of it is immutable from then on: a
 * generation's base.db never changes, and neither do frames at or below a
 * log's durable head.  So the page list is computed once, under the store's
 * lock only long enough to dup the files, and the pages are read later, as
 * the answer streams, from those dup'd descriptors; a rollover or retention
 * meanwhile cannot change what the client gets (an unlinked file stays
 * readable).  Each answer is one consistent snapshot.
 *
 *   full image:  page p is the newest image of p among the current
 *                generation's frames 1..head, else page p of its base.db;
 *   increment:   pages written by frames after `since` of generation G,
 *                and every frame of the generations after G up to the
 *                current head, the newest image of each (base.db of G + 1
 *                is exactly the state after G's last frame, so the frames
 *                are the whole difference).
 *
 * Either way pages past the state's database size are left out, and only
 * frames up to durable heads are read, which are all committed (a head is
 * a commit frame). */
#include "store_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "util.h"

struct store_pages {
	uint32_t generation, frame, db_size;
	int *fds; /* dup'd: [0] base.db of the current generation (or -1),
		     then one frame log per generation read */
	size_t n_fds;
	uint32_t n;
	struct page_src {
		uint32_t pgno;
		uint32_t fd; /* index into fds */
		uint64_t offset;
	} * pages; /* ascending pgno once open */
};

void store_pages_close(struct store_pages *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->n_fds; i++)
		if (p->fds[i] >= 0)
			close(p->fds[i]);
	free(p->fds);
	free(p->pages);
	free(p);
}

uint32_t store_pages_generation(const struct store_pages *p)
{
	return p->generation;
}

uint32_t store_pages_frame(const struct store_pages *p)
{
	return p->frame;
}

uint32_t store_pages_db_size(const struct store_pages *p)
{
	return p->db_size;
}

uint32_t store_pages_count(const struct store_pages *p)
{
	return p->n;
}

uint32_t store_pages_pgno(const struct store_pages *p, uint32_t i)
{
	assert(i < p->n);
	return p->pages[i].pgno;
}

int store_pages_read(const struct store_pages *p, uint32_t i,
		     uint8_t page[WALFMT_PAGE_SIZE])
{
	assert(i < p->n);
	return fileio_read_all(p->fds[p->pages[i].fd], page, WALFMT_PAGE_SIZE,
			       p->pages[i].offset);
}

/* Where each page of 1..cap comes from: index by pgno - 1; fd == 0 with
 * offset 0 means "not written" (fds[0] is the base, whose page offsets
 * start at 0 only for page 1, which is set explicitly). */
struct page_map {
	struct page_src *by_pgno;
	uint32_t cap;
	uint8_t *set;
};

static int map_grow(struct page_map *m, uint32_t pgno)
{
	uint32_t cap = m->cap ? m->cap : 1024;
	struct page_src *b;
	uint8_t *s;

	if (pgno <= m->cap)
		return 0;
	while (cap < pgno)
		cap *= 2;
	b = realloc(m->by_pgno, (size_t)cap * sizeof *b);
	if (b == NULL)
		return -1;
	m->by_pgno = b;
	s = realloc(m->set, cap);
	if (s == NULL)
		return -1;
	m->set = s;
	memset(m->set + m->cap, 0, cap - m->cap);
	m->cap = cap;
	return 0;
}

static int map_put(struct page_map *m, uint32_t pgno, uint32_t fd,
		   uint64_t offset)
{
	if (pgno == 0 || map_grow(m, pgno) != 0)
		return -1;
	m->by_pgno[pgno - 1].pgno = pgno;
	m->by_pgno[pgno - 1].fd = fd;
	m->by_pgno[pgno - 1].offset = offset;
	m->set[pgno - 1] = 1;
	return 0;
}

/* Record frames [from, to] of the log at fds[fd]: later ones win.  Sets
 * *db_size to the database size of frame `to` when it reads it. */
static int map_frames(struct page_map *m, int log_fd, uint32_t fd,
		      uint32_t from, uint32_t to, uint32_t *db_size)
{
	uint8_t hdr[WALFMT_FRAME_HDR_SIZE];
	uint32_t f;

	for (f = from; f <= to && f != 0; f++) {
		struct walfmt_frame_header h;
		if (fileio_read_all(log_fd, hdr, sizeof hdr,
				    frame_log_offset(f)) != 0)
			return -EIO;
		walfmt_frame_header_decode(hdr, &h);
		if (map_put(m, h.pgno, fd,
			    frame_log_offset(f) + WALFMT_FRAME_HDR_SIZE) != 0)
			return -ENOMEM;
		if (f == to)
			*db_size = h.db_size;
	}
	return 0;
}

static int add_fd(struct store_pages *p, int fd)
{
	int *b = realloc(p->fds, (p->n_fds + 1) * sizeof *b);

	if (b == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	p->fds = b;
	p->fds[p->n_fds++] = fd;
	return 0;
}

/* The logs to read, dup'd under the lock: generations since_gen..current
 * (full image: the current one only), each with its durable head, and the
 * current generation's base.db for a full image. */
#define MAX_GENS 64 /* an increment across more generations: full image */

struct plan {
	uint32_t first_gen, n;
	uint32_t heads[MAX_GENS];
	int missing;         /* a generation of the range is not retained */
	uint32_t base_pages; /* of the current generation's base.db */
};

static int take_files(struct store *s, struct store_pages *p, int full,
		      uint32_t since_gen, uint32_t since,
		      const struct store_point *at, struct plan *plan)
{
	struct generation *cur, *g;
	char *base_path = NULL;
	uint32_t n;
	int rv = -1, base_fd = -1;
	uint64_t size;

	pthread_mutex_lock(&s->mu);
	cur = at != NULL ? store_find_gen_locked(s, at->generation)
			 : store_current_locked(s);
	if (cur == NULL || (at != NULL && at->frame > frame_log_head(cur->log)))
		goto out; /* retention removed it meanwhile */
	p->generation = cur->number;
	p->frame = at != NULL ? at->frame : frame_log_head(cur->log);
	if (!full && (since_gen > cur->number ||
		      (since_gen == cur->number && since > p->frame))) {
		rv = 1; /* from the future */
		goto out;
	}
	plan->first_gen = full ? cur->number : since_gen;
	plan->n = cur->number - plan->first_gen + 1;
	plan->missing = plan->n > MAX_GENS;
	for (n = 0; n < plan->n && !plan->missing; n++) {
		g = store_find_gen_locked(s, plan->first_gen + n);
		if (g == NULL ||
		    (n == 0 && !full && since > frame_log_head(g->log))) {
			plan->missing = 1;
			break;
		}
		plan->heads[n] = full ? p->frame : frame_log_head(g->log);
		if (add_fd(p, dup(frame_log_fd(g->log))) != 0 ||
		    p->fds[p->n_fds - 1] < 0)
			goto out;
	}
	base_path = util_strdupf("%s/base.db", cur->dir);
	if (base_path == NULL)
		goto out;
	/* An increment needs only the base's size (a long-poll asks again
	 * at every commit): no descriptor. */
	if (full && !plan->missing) {
		if (util_open_sized(base_path, &base_fd, &size) != 0)
			goto out;
	} else {
		struct stat sb;
		if (stat(base_path, &sb) != 0)
			goto out;
		size = (uint64_t)sb.st_size;
	}
	plan->base_pages = (uint32_t)(size / WALFMT_PAGE_SIZE);
	if (full && !plan->missing) {
		/* fds[0] is the base: put it first. */
		if (add_fd(p, base_fd) != 0) {
			base_fd = -1;
			goto out;
		}
		p->fds[p->n_fds - 1] = p->fds[0];
		p->fds[0] = base_fd;
		base_fd = -1;
	}
	rv = 0;
out:
	pthread_mutex_unlock(&s->mu);
	if (base_fd >= 0)
		close(base_fd);
	free(base_path);
	return rv;
}

static int open_pages(struct store *s, uint32_t since_gen, uint32_t since,
		      const struct store_point *at, struct store_pages **out)
{
	struct store_pages *p = calloc(1, sizeof *p);
	struct page_map m = {0};
	struct plan plan = {0};
	int full = since_gen == 0, rv = -1;
	uint32_t pgno, n, db_size;

	*out = NULL;
	if (p == NULL)
		return -1;
	rv = take_files(s, p, full, since_gen, since, at, &plan);
	if (rv != 0)
		goto fail;
	if (plan.missing) {
		rv = 2;
		goto fail;
	}
	/* The size after the newest frame read, else the current base's. */
	db_size = plan.base_pages;
	if (full) {
		/* fds: [0] base, [1] the current log. */
		for (pgno = 1; pgno <= plan.base_pages; pgno++)
			if (map_put(&m, pgno, 0,
				    (uint64_t)(pgno - 1) * WALFMT_PAGE_SIZE) !=
			    0)
				goto fail;
		if (plan.heads[0] > 0 &&
		    map_frames(&m, p->fds[1], 1, 1, plan.heads[0], &db_size) !=
			0)
			goto fail;
	} else {
		for (n = 0; n < plan.n; n++) {
			uint32_t from = n == 0 ? since + 1 : 1;
			if (from <= plan.heads[n] &&
			    map_frames(&m, p->fds[n], n, from, plan.heads[n],
				       &db_size) != 0)
				goto fail;
		}
		if (plan.heads[plan.n - 1] > 0 &&
		    (plan.n > 1 || since < plan.heads[0])) {
			/* map_frames read the current head last. */
		} else if (plan.heads[plan.n - 1] > 0) {
			/* Nothing new: the size at the current head. */
			uint8_t hdr[WALFMT_FRAME_HDR_SIZE];
			struct walfmt_frame_header h;
			if (fileio_read_all(
				p->fds[plan.n - 1], hdr, sizeof hdr,
				frame_log_offset(plan.heads[plan.n - 1])) != 0)
				goto fail;
			walfmt_frame_header_decode(hdr, &h);
			db_size = h.db_size;
		}
	}
	p->db_size = db_size;
	p->pages = malloc(((size_t)(m.cap < db_size ? m.cap : db_size) + 1) *
			  sizeof *p->pages);
	if (p->pages == NULL)
		goto fail;
	for (pgno = 1; pgno <= m.cap && pgno <= db_size; pgno++)
		if (m.set[pgno - 1])
			p->pages[p->n++] = m.by_pgno[pgno - 1];
	free(m.by_pgno);
	free(m.set);
	*out = p;
	return 0;
fail:
	free(m.by_pgno);
	free(m.set);
	store_pages_close(p);
	return rv == 0 ? -1 : rv;
}

int store_pages_open(struct store *s, uint32_t since_gen, uint32_t since,
		     struct store_pages **out)
{
	return open_pages(s, since_gen, since, NULL, out);
}

int store_pages_open_at(struct store *s, const struct store_point *at,
			struct store_pages **out)
{
	return open_pages(s, 0, 0, at, out);
}
