/* The JSON answers of the HTTP sync protocol (DESIGN.md §5,
 * notes/libsql-protocols.md "HTTP sync protocol"), encoded by the primary
 * and parsed by the replica, in one place so the two halves cannot drift:
 *
 *   GET /info 200 {"current_generation": G, "database_id": "...",
 *     "max_frame_no": N, "oldest_generation": O}.
 *   GET /info?as_of=... (ext) 200: the same, describing the state as of
 *     a time or frame (G and N its position), with "as_of": "<RFC 3339>",
 *     the time of its commit.
 *   GET /sync/... 400 {"generation": N}: no frames at start; N is the
 *     generation to continue with (the same one: caught up; the next one:
 *     the requested generation has ended).
 *   POST /sync/... 200 {"status": "ok"|"conflict", "generation": G,
 *     "max_frame_no": N, "baton": "..."|null}.
 *
 * Every parse failure is reported as text naming what was wrong with the
 * answer of the primary. */
#ifndef REPLITE_PROTO_MESSAGES_H
#define REPLITE_PROTO_MESSAGES_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct messages_info {
	uint32_t current_generation; /* >= 1 */
	char *database_id;           /* malloc'd; NULL if not reported */
	int has_max_frame_no;
	uint32_t max_frame_no;      /* when has_max_frame_no */
	uint32_t oldest_generation; /* 0 if not reported */
	/* (ext) "checksum": the whole-database checksum (base/dbsum.h) at
	 * max_frame_no, 16 hex digits. */
	int has_checksum;
	uint64_t checksum;
	/* (ext) "as_of": the answer describes the state made at this time
	 * (Unix ms; RFC 3339 on the wire), not the head. */
	int has_as_of;
	int64_t as_of_unix_ms;
};

/* Parse the 200 body of GET /info.  Returns 0, or -1 with err; *out is set
 * only on success (release with messages_info_free). */
int messages_parse_info(const void *body, size_t len, struct messages_info *out,
			char *err, size_t err_len);
void messages_info_free(struct messages_info *info);

/* Parse the 400 body of a pull that found no frames: {"generation": N}
 * with N >= 1.  When the body has no generation (another 400 or an error
 * of the primary) err carries the primary's message if it gave one.
 * Returns 0, or -1 with err. */
int messages_parse_generation(const void *body, size_t len,
			      uint32_t *generation, char *err, size_t err_len);

/* The 200 answer to a push: {"status": "ok"|"conflict", "generation": G,
 * "max_frame_no": N, "baton": "..."|null}. */
struct messages_push_reply {
	int conflict;
	uint32_t generation;
	uint32_t max_frame_no;
	char *baton; /* malloc'd, NULL when none */
};
int messages_parse_push_reply(const void *body, size_t len,
			      struct messages_push_reply *out, char *err,
			      size_t err_len);
void messages_push_reply_free(struct messages_push_reply *r);

/* GET /checksum/{G}/{F} 200 (ext): {"generation": G, "frame_no": F,
 * "checksum": "<16 hex digits>"}. */
int messages_parse_checksum(const void *body, size_t len, uint64_t *checksum,
			    char *err, size_t err_len);

/* The primary's side: the answers as JSON values (new references). */
json_t *messages_encode_info(const struct messages_info *info);
json_t *messages_encode_generation(uint32_t generation);
json_t *messages_encode_push_reply(const struct messages_push_reply *r);
json_t *messages_encode_checksum(uint32_t generation, uint32_t frame_no,
				 uint64_t checksum);

#endif
