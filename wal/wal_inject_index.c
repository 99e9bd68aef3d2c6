/* The wal-index of the injector: the header copies, the checkpoint info of a
 * restart and the hash tables, written as SQLite's wal.c writes them. */
#include "wal_inject_internal.h"

#include <assert.h>
#include <string.h>

#include "wal/walfmt.h"

static int map_region(struct injector *inj, uint32_t region, bool extend,
		      volatile uint8_t **out)
{
	volatile void *p = NULL;
	int rc;

	rc = inj->db_file->pMethods->xShmMap(inj->db_file, (int)region,
					     WAL_INDEX_REGION_SIZE, extend, &p);
	if (rc != SQLITE_OK) {
		return wal_inject_fail(
		    inj, rc, "cannot map wal-index region %u", region);
	}
	if (p == NULL) {
		return wal_inject_fail(inj, SQLITE_CORRUPT,
				       "wal-index region %u does not exist",
				       region);
	}
	*out = p;
	return SQLITE_OK;
}

static void shm_barrier(struct injector *inj)
{
	inj->db_file->pMethods->xShmBarrier(inj->db_file);
}

static int get_hash_block(struct injector *inj, uint32_t block, bool extend,
			  struct wal_index_hash_block *hb)
{
	volatile uint8_t *base = NULL;
	int rc;

	rc = map_region(inj, block, extend, &base);
	if (rc != SQLITE_OK) {
		return rc;
	}
	hb->slots = (volatile uint16_t *)(base + WAL_INDEX_HASH_NPAGE * 4);
	if (block == 0) {
		hb->pgno = (volatile uint32_t *)(base + WAL_INDEX_HDR_TOTAL);
		hb->zero = 0;
	} else {
		hb->pgno = (volatile uint32_t *)base;
		hb->zero = WAL_INDEX_HASH_NPAGE_ONE +
			   (block - 1) * WAL_INDEX_HASH_NPAGE;
	}
	return SQLITE_OK;
}

/* Readers and writers take the header from copy 1 and check it against copy
 * 2 and its checksum; with the write lock held nobody else may change it, so
 * any mismatch means a broken wal-index, not a race. */
int wal_inject_read_index_header(struct injector *inj)
{
	struct wal_index_hdr copy2;
	uint32_t sum[2];
	int rc;

	rc = map_region(inj, 0, false, &inj->region0);
	if (rc != SQLITE_OK) {
		return rc;
	}
	memcpy(&inj->hdr, (const void *)inj->region0, sizeof inj->hdr);
	shm_barrier(inj);
	memcpy(&copy2, (const void *)(inj->region0 + sizeof inj->hdr),
	       sizeof copy2);
	if (memcmp(&inj->hdr, &copy2, sizeof copy2) != 0) {
		return wal_inject_fail(inj, SQLITE_CORRUPT,
				       "wal-index header is inconsistent");
	}
	if (inj->hdr.is_init != 1) {
		return wal_inject_fail(inj, SQLITE_CORRUPT,
				       "wal-index header is not initialised");
	}
	if (inj->hdr.version != WAL_INDEX_VERSION) {
		return wal_inject_fail(inj, SQLITE_CORRUPT,
				       "unsupported wal-index version %u",
				       inj->hdr.version);
	}
	wal_index_hdr_checksum(&inj->hdr, sum);
	if (sum[0] != inj->hdr.cksum[0] || sum[1] != inj->hdr.cksum[1]) {
		return wal_inject_fail(inj, SQLITE_CORRUPT,
				       "wal-index header checksum mismatch");
	}
	return SQLITE_OK;
}

/* walIndexWriteHdr(): copy 2 first, so a reader that sees the new copy 1
 * after the barrier also sees a matching copy 2. */
void wal_inject_publish_header(struct injector *inj)
{
	volatile uint8_t *copies = inj->region0;

	inj->hdr.is_init = 1;
	inj->hdr.version = WAL_INDEX_VERSION;
	wal_index_hdr_checksum(&inj->hdr, inj->hdr.cksum);
	memcpy((void *)(copies + sizeof inj->hdr), &inj->hdr, sizeof inj->hdr);
	shm_barrier(inj);
	memcpy((void *)copies, &inj->hdr, sizeof inj->hdr);
}

/* walCleanupHash(): a writer that died after spilling frames left hash
 * entries beyond mxFrame; a reader must never find them, and the probe
 * chains must stay those of the published frames.  Only the block holding
 * mxFrame needs it: later blocks are zeroed when their first frame is
 * appended. */
int wal_inject_clean_leftover_hash(struct injector *inj)
{
	struct wal_index_hash_block hb;
	uint32_t limit, i;
	int rc;

	if (inj->hdr.max_frame == 0) {
		return SQLITE_OK;
	}
	rc = get_hash_block(inj, wal_index_frame_block(inj->hdr.max_frame),
			    false, &hb);
	if (rc != SQLITE_OK) {
		return rc;
	}
	limit = inj->hdr.max_frame - hb.zero;
	assert(limit > 0);
	for (i = 0; i < WAL_INDEX_HASH_NSLOT; i++) {
		if (hb.slots[i] > limit) {
			hb.slots[i] = 0;
		}
	}
	memset((void *)&hb.pgno[limit], 0,
	       (size_t)((volatile uint8_t *)hb.slots -
			(volatile uint8_t *)&hb.pgno[limit]));
	return SQLITE_OK;
}

/* walIndexAppend(): map frame -> pgno in the block of the frame.  Readers
 * ignore the entry until the header's mxFrame covers it. */
static int append_index_entry(struct injector *inj, uint32_t frame,
			      uint32_t pgno)
{
	struct wal_index_hash_block hb;
	uint32_t idx, key, collisions;
	int rc;

	rc = get_hash_block(inj, wal_index_frame_block(frame), true, &hb);
	if (rc != SQLITE_OK) {
		return rc;
	}
	idx = frame - hb.zero;
	assert(idx >= 1 && idx <= WAL_INDEX_HASH_NSLOT / 2 + 1);
	if (idx == 1) {
		/* First frame of the block: whatever it holds is stale. */
		memset((void *)hb.pgno, 0,
		       (size_t)((volatile uint8_t *)(hb.slots +
						     WAL_INDEX_HASH_NSLOT) -
				(volatile uint8_t *)hb.pgno));
	}
	if (hb.pgno[idx - 1] != 0) {
		rc = wal_inject_clean_leftover_hash(inj);
		if (rc != SQLITE_OK) {
			return rc;
		}
		if (hb.pgno[idx - 1] != 0) {
			return wal_inject_fail(
			    inj, SQLITE_CORRUPT,
			    "stale wal-index entry for frame %u", frame);
		}
	}
	collisions = idx;
	for (key = wal_index_hash_key(pgno); hb.slots[key] != 0;
	     key = wal_index_next_hash_key(key)) {
		if (collisions-- == 0) {
			return wal_inject_fail(
			    inj, SQLITE_CORRUPT,
			    "wal-index hash block %u is full",
			    wal_index_frame_block(frame));
		}
	}
	hb.pgno[idx - 1] = pgno;
	__atomic_store_n((uint16_t *)&hb.slots[key], (uint16_t)idx,
			 __ATOMIC_RELAXED);
	return SQLITE_OK;
}

/* walRestartHdr(): the next frame goes to the start of the WAL, under new
 * salts (salt-1 + 1, a random salt-2) so recovery can never take the old
 * frames left behind them for ours. */
void wal_inject_restart_header(struct injector *inj, const uint8_t salt2[4])
{
	volatile struct wal_index_ckpt_info *info = wal_inject_ckpt_info(inj);
	int i;

	inj->hdr.max_frame = 0;
	walfmt_put32(inj->hdr.salt, walfmt_get32(inj->hdr.salt) + 1);
	memcpy(inj->hdr.salt + 4, salt2, 4);
	wal_inject_publish_header(inj);
	__atomic_store_n((uint32_t *)&info->n_backfill, 0, __ATOMIC_RELAXED);
	info->n_backfill_attempted = 0;
	info->read_mark[1] = 0;
	for (i = 2; i < WAL_INDEX_NREADER; i++) {
		info->read_mark[i] = WAL_INDEX_READMARK_NOT_USED;
	}
	assert(info->read_mark[0] == 0);
}

int wal_inject_append_index(struct injector *inj, const struct frame_plan *plan,
			    size_t n)
{
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		rc = append_index_entry(
		    inj, inj->hdr.max_frame + 1 + (uint32_t)i, plan[i].pgno);
		if (rc != SQLITE_OK) {
			return rc;
		}
	}
	return SQLITE_OK;
}
