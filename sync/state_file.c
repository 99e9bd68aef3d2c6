#include "state_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "base/fileio.h"

#define MAGIC "RPLS"
#define VERSION 2
#define FLAG_SYNCED 1u
#define FILE_SIZE ((size_t)STATE_FILE_SLOTS * STATE_FILE_SLOT_SIZE)

struct slot {
	uint64_t seq; /* 0: not valid */
	uint32_t flags;
	const char *text;
	size_t len;
};

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static uint64_t slot_sum(const uint8_t *slot, size_t len)
{
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, slot, 24);
	XXH3_64bits_update(&st, slot + STATE_FILE_HEADER_SIZE, len);
	return XXH3_64bits_digest(&st);
}

/* Decode slot i of a file of size bytes; a torn, damaged, misplaced or
 * never written slot is not valid (seq 0). */
static struct slot decode_slot(const uint8_t *file, size_t size, unsigned i)
{
	const uint8_t *p = file + (size_t)i * STATE_FILE_SLOT_SIZE;
	struct slot s = {0};
	uint64_t seq;
	uint32_t len;

	if ((size_t)(i + 1) * STATE_FILE_SLOT_SIZE > size ||
	    memcmp(p, MAGIC, 4) != 0 || get32(p + 4) != VERSION)
		return s;
	seq = get64(p + 8);
	len = get32(p + 16);
	if (seq == 0 || seq % STATE_FILE_SLOTS != i ||
	    len > STATE_FILE_MAX_TEXT || get64(p + 24) != slot_sum(p, len))
		return s;
	s.seq = seq;
	s.flags = get32(p + 20);
	s.text = (const char *)p + STATE_FILE_HEADER_SIZE;
	s.len = len;
	return s;
}

static struct slot newest_slot(const uint8_t *file, size_t size)
{
	struct slot best = {0};
	unsigned i;

	for (i = 0; i < STATE_FILE_SLOTS; i++) {
		struct slot s = decode_slot(file, size, i);
		if (s.seq > best.seq)
			best = s;
	}
	return best;
}

/* Anything but the new container is read as the old bare JSON text, so
 * that a damaged or foreign file is reported as such by the JSON parser.
 * The container has its exact size and a magic at the start of some slot
 * (not necessarily the first: a write of it may be torn). */
static int is_old_format(const char *file, size_t size)
{
	unsigned i;

	if (size != FILE_SIZE)
		return 1;
	for (i = 0; i < STATE_FILE_SLOTS; i++) {
		if (memcmp(file + (size_t)i * STATE_FILE_SLOT_SIZE, MAGIC, 4) ==
		    0)
			return 0;
	}
	return 1;
}

int state_file_read(const char *path, char **text, size_t *len)
{
	struct slot s;
	char *file, *out;
	size_t size;
	int rv;

	rv = fileio_read_file(path, &file, &size);
	if (rv != 0)
		return rv;
	if (is_old_format(file, size)) {
		*text = file; /* NUL-terminated by fileio_read_file */
		*len = size;
		return 0;
	}
	s = newest_slot((const uint8_t *)file, size);
	if (s.seq == 0) {
		free(file);
		return -EBADMSG;
	}
	out = malloc(s.len + 1);
	if (out == NULL) {
		free(file);
		return -ENOMEM;
	}
	memcpy(out, s.text, s.len);
	out[s.len] = '\0';
	*text = out;
	*len = s.len;
	free(file);
	return 0;
}

int state_file_stamp(const char *path, struct state_file_stamp *out)
{
	uint8_t hdr[STATE_FILE_HEADER_SIZE];
	uint64_t best_seq = 0, best_sum = 0;
	struct stat st;
	unsigned i;
	int fd, found = 0, rv = 0;

	memset(out, 0, sizeof *out);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		rv = -errno;
		goto out;
	}
	out->v[0] = (uint64_t)st.st_ino;
	for (i = 0; (size_t)st.st_size == FILE_SIZE && i < STATE_FILE_SLOTS;
	     i++) {
		if (fileio_read_all(fd, hdr, sizeof hdr,
				    (uint64_t)i * STATE_FILE_SLOT_SIZE) != 0 ||
		    memcmp(hdr, MAGIC, 4) != 0)
			continue;
		found = 1;
		if (get64(hdr + 8) >= best_seq) {
			best_seq = get64(hdr + 8);
			best_sum = get64(hdr + 24);
		}
	}
	if (found) {
		out->v[1] = best_seq;
		out->v[2] = best_sum;
	} else {
		out->v[1] = (uint64_t)st.st_size;
		out->v[2] = (uint64_t)st.st_mtim.tv_sec;
		out->v[3] = (uint64_t)st.st_mtim.tv_nsec;
	}
out:
	close(fd);
	return rv;
}

static void encode_slot(uint8_t *p, uint64_t seq, uint32_t flags,
			const char *text, size_t len)
{
	memcpy(p, MAGIC, 4);
	put32(p + 4, VERSION);
	put64(p + 8, seq);
	put32(p + 16, (uint32_t)len);
	put32(p + 20, flags);
	memcpy(p + STATE_FILE_HEADER_SIZE, text, len);
	put64(p + 24, slot_sum(p, len));
}

/* A new-format file whose only version is text (seq 1), replacing
 * whatever is at path atomically and durably. */
static int create(const char *path, const char *text, size_t len)
{
	uint8_t *file = calloc(1, FILE_SIZE);
	int rv;

	if (file == NULL)
		return -ENOMEM;
	encode_slot(file + (1 % STATE_FILE_SLOTS) * STATE_FILE_SLOT_SIZE, 1,
		    FLAG_SYNCED, text, len);
	rv = fileio_write_file_atomic(path, file, FILE_SIZE);
	free(file);
	return rv;
}

int state_file_write(const char *path, const char *text, size_t len,
		     int durable)
{
	uint8_t slot[STATE_FILE_SLOT_SIZE];
	struct slot newest;
	uint64_t seq;
	char *file = NULL;
	size_t size;
	int fd = -1, rv;

	if (len > STATE_FILE_MAX_TEXT)
		return -E2BIG;
	rv = fileio_read_file(path, &file, &size);
	if (rv == -ENOENT)
		return create(path, text, len);
	if (rv != 0)
		return rv;
	newest = is_old_format(file, size)
		     ? (struct slot){0}
		     : newest_slot((const uint8_t *)file, size);
	free(file);
	if (newest.seq == 0 || size != FILE_SIZE)
		return create(path, text, len);
	/* The last version was not made durable: this one must be (see
	 * state_file.h, "Durability"). */
	if (!(newest.flags & FLAG_SYNCED))
		durable = 1;
	seq = newest.seq + 1;
	encode_slot(slot, seq, durable ? FLAG_SYNCED : 0, text, len);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rv = fileio_write_all(fd, slot, STATE_FILE_HEADER_SIZE + len,
			      (seq % STATE_FILE_SLOTS) * STATE_FILE_SLOT_SIZE);
	if (rv == 0 && durable && fdatasync(fd) != 0)
		rv = -errno;
	close(fd);
	return rv;
}
