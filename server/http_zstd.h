/* zstd content encoding of the primary's file-range answers (GET /export
 * and GET /sync): compressed as they are sent, a block at a time, so that
 * neither the image nor its compressed form is ever held in memory.
 *
 * Only a client that asks for it (Accept-Encoding: zstd) gets it; the
 * checksums the answers carry are of the decoded bytes, so a replica
 * verifies exactly what it applies whatever the encoding. */
#ifndef REPLITE_SERVER_HTTP_ZSTD_H
#define REPLITE_SERVER_HTTP_ZSTD_H

#include <stdint.h>

struct MHD_Response;

/* The largest level accepted (zstd's own maximum). */
#define HTTP_ZSTD_MAX_LEVEL 19

/* Does an Accept-Encoding header value (NULL: none) allow zstd?  It does
 * when "zstd" is listed with a weight above 0 (RFC 9110 §12.5.3), or "*"
 * is and zstd is not excluded. */
int http_zstd_accepted(const char *accept_encoding);

/* A response sending [offset, offset + len) of fd compressed at level
 * (1..HTTP_ZSTD_MAX_LEVEL), with Content-Encoding: zstd and no length
 * (chunked).  Takes fd, also when it fails (NULL). */
struct MHD_Response *http_zstd_response(int fd, uint64_t offset, uint64_t len,
					int level);

#endif
