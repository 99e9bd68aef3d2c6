/* Squashed catch-up: GET /sync/{G}/{start}/{end}?squash=1 (ext).
 *
 * A replica far behind asks for a range of many transactions; when they
 * rewrite the same pages again and again (2,000 updates of the same 100
 * rows), sending every frame sends the same pages thousands of times.  The
 * answer then holds each page once, with its image after the last commit of
 * the range, as one transaction:
 *
 *   - the range is cut at a commit frame C (the last one that keeps the
 *     number of distinct pages within STORE_SQUASH_MAX_PAGES), so the
 *     replica goes from the state after start - 1 to the state after C in
 *     one step, as readers see any batch: never a state in between;
 *   - pages beyond C's database size are left out (a shrinking database:
 *     they are not part of the state after C);
 *   - only the last frame is a commit frame, with C's database size;
 *   - the frames carry the log's salts and a checksum chain computed afresh
 *     from the chain before start (what X-Replite-Chain announces), so the
 *     replica verifies every byte exactly as it does plain frames; the
 *     whole-database checksum after C (X-Replite-Checksum-At) verifies the
 *     result;
 *   - X-Replite-Squashed: C - start + 1, the frames of the log the answer
 *     stands for.
 *
 * When squashing would save little (under a tenth of the frames), the
 * answer is the plain frames, at most STORE_SQUASH_PLAIN_FRAMES of them,
 * without the header.  The body is built in a memfd, so that it is sent
 * (and compressed) like a range of the log. */
#include "store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/fileio.h"

/* pgno -> its last image at or before the last commit frame read (open
 * addressing). */
struct page_slot {
	uint32_t pgno;  /* 0: empty */
	uint32_t frame; /* 0: written only by the transaction still open */
};

struct squash {
	struct page_slot *slots;
	uint32_t mask;
	uint32_t distinct;
	/* The open transaction's writes, in order: (slot, frame). */
	struct {
		struct page_slot *slot;
		uint32_t frame;
	} * open;
	uint32_t n_open;
};

static struct page_slot *slot_of(struct squash *q, uint32_t pgno)
{
	uint32_t i = (pgno * 2654435761u) & q->mask;

	while (q->slots[i].pgno != 0 && q->slots[i].pgno != pgno)
		i = (i + 1) & q->mask;
	return &q->slots[i];
}

/* Read the frame headers of [start, lim) (at most lim - start of them) and
 * find the commit frame to cut at: the last one before the distinct pages
 * would exceed STORE_SQUASH_MAX_PAGES; 0 when there is none.  *db_size is
 * its database size; the slots then hold every page's last image at or
 * before it. */
static uint32_t find_cut(int fd, uint32_t start, uint32_t lim, struct squash *q,
			 uint32_t *db_size, int *err)
{
	uint8_t hdr[WALFMT_FRAME_HDR_SIZE];
	uint32_t f, i, cut = 0;

	*err = 0;
	for (f = start; f < lim; f++) {
		struct walfmt_frame_header h;
		struct page_slot *s;
		if (fileio_read_all(fd, hdr, sizeof hdr, frame_log_offset(f)) !=
		    0) {
			*err = -EIO;
			return 0;
		}
		walfmt_frame_header_decode(hdr, &h);
		s = slot_of(q, h.pgno);
		if (s->pgno == 0) {
			if (q->distinct == STORE_SQUASH_MAX_PAGES)
				break; /* one page too many: cut before */
			s->pgno = h.pgno;
			s->frame = 0;
			q->distinct++;
		}
		q->open[q->n_open].slot = s;
		q->open[q->n_open].frame = f;
		q->n_open++;
		if (h.db_size != 0) {
			/* Committed: its writes are the pages' images now,
			 * the later ones of a page last. */
			for (i = 0; i < q->n_open; i++)
				q->open[i].slot->frame = q->open[i].frame;
			q->n_open = 0;
			cut = f;
			*db_size = h.db_size;
		}
	}
	return cut;
}

static int by_pgno(const void *a, const void *b)
{
	const struct page_slot *x = a, *y = b;

	return (x->pgno > y->pgno) - (x->pgno < y->pgno);
}

/* The pages to send, compacted at the front of the slots and sorted by
 * page number: those with an image at or before the cut, within its
 * database size.  Returns how many. */
static uint32_t pages_to_send(struct squash *q, uint32_t db_size)
{
	uint32_t i, n = 0;

	for (i = 0; i <= q->mask; i++) {
		struct page_slot s = q->slots[i];
		if (s.pgno != 0 && s.frame != 0 && s.pgno <= db_size)
			q->slots[n++] = s;
	}
	qsort(q->slots, n, sizeof *q->slots, by_pgno);
	return n;
}

/* Write the squashed transaction (n pages) into a new memfd. */
static int write_body(int log_fd, const struct squash *q, uint32_t n,
		      uint32_t db_size, const struct frames_chain *before,
		      int *out_fd, uint64_t *len)
{
	uint8_t *frame = malloc(WALFMT_FRAME_SIZE);
	uint32_t chain[2] = {before->cksum[0], before->cksum[1]};
	uint32_t i;
	int fd = memfd_create("replite-squash", MFD_CLOEXEC), rv = -EIO;

	if (frame == NULL || fd < 0 || n == 0)
		goto out;
	for (i = 0; i < n; i++) {
		const struct page_slot *s = &q->slots[i];
		uint8_t *page = frame + WALFMT_FRAME_HDR_SIZE;
		if (fileio_read_all(log_fd, page, WALFMT_PAGE_SIZE,
				    frame_log_offset(s->frame) +
					WALFMT_FRAME_HDR_SIZE) != 0)
			goto out;
		walfmt_frame_encode(before->big_endian, before->salt, chain,
				    s->pgno, i + 1 == n ? db_size : 0, page,
				    WALFMT_PAGE_SIZE, frame);
		if (fileio_write_all(fd, frame, WALFMT_FRAME_SIZE,
				     (uint64_t)i * WALFMT_FRAME_SIZE) != 0)
			goto out;
	}
	*out_fd = fd;
	*len = (uint64_t)n * WALFMT_FRAME_SIZE;
	fd = -1;
	rv = 0;
out:
	if (fd >= 0)
		close(fd);
	free(frame);
	return rv;
}

enum store_pull store_pull_squashed(struct store *s, uint32_t gen,
				    uint32_t start, uint32_t end,
				    struct store_frames *out, uint32_t *span)
{
	struct squash q = {0};
	struct frames_chain before;
	struct generation *g;
	uint32_t head, lim, cut, db_size = 0, n;
	int fd = -1, err, current;
	uint64_t len;

	*span = 0;
	if (start == 0 || end <= start)
		return STORE_PULL_BAD_RANGE;
	pthread_mutex_lock(&s->mu);
	g = store_find_gen_locked(s, gen);
	head = g != NULL ? frame_log_head(g->log) : 0;
	if (g == NULL || start > head ||
	    frame_log_chain(g->log, start, &before.big_endian, before.salt,
			    before.cksum) != 0 ||
	    (fd = dup(frame_log_fd(g->log))) < 0) {
		pthread_mutex_unlock(&s->mu);
		goto plain;
	}
	current = g == store_current_locked(s);
	pthread_mutex_unlock(&s->mu);
	/* Frames up to the durable head never change: read them unlocked
	 * (retention may close the log meanwhile; fd is ours). */
	lim = end - 1 < head ? end : head + 1;
	if (lim - start > STORE_SQUASH_MAX_FRAMES)
		lim = start + STORE_SQUASH_MAX_FRAMES;
	q.mask = 2 * STORE_SQUASH_MAX_PAGES - 1;
	q.slots = calloc(q.mask + 1, sizeof *q.slots);
	q.open = calloc(lim - start, sizeof *q.open);
	if (q.slots == NULL || q.open == NULL)
		goto plain;
	cut = find_cut(fd, start, lim, &q, &db_size, &err);
	if (err != 0 || cut == 0)
		goto plain;
	n = pages_to_send(&q, db_size);
	/* Worth it only when it saves a tenth of the frames. */
	if ((uint64_t)n * 10 > (uint64_t)(cut - start + 1) * 9)
		goto plain;
	if (write_body(fd, &q, n, db_size, &before, &out->fd, &len) != 0)
		goto plain;
	out->offset = 0;
	out->len = len;
	out->end = cut + 1;
	frames_chain_format(&before, out->chain);
	out->has_checksum = 0;
	if (current) {
		pthread_mutex_lock(&s->mu);
		if (store_current_locked(s)->number == gen &&
		    store_sum_at_locked(&s->sum, cut, &out->checksum) == 0) {
			out->checksum_frame = cut;
			out->has_checksum = 1;
		}
		pthread_mutex_unlock(&s->mu);
	}
	*span = cut - start + 1;
	close(fd);
	free(q.slots);
	free(q.open);
	return STORE_PULL_FRAMES;
plain:
	if (fd >= 0)
		close(fd);
	free(q.slots);
	free(q.open);
	if (end - start > STORE_SQUASH_PLAIN_FRAMES)
		end = start + STORE_SQUASH_PLAIN_FRAMES;
	return store_pull(s, gen, start, end, out);
}
