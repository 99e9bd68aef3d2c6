/* base64, shared by the primary (Hrana blobs, JWTs, batons) and the
 * replica (reading its token's claims). */
#ifndef REPLITE_BASE64_H
#define REPLITE_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* base64: standard alphabet with padding on output; decoding accepts both
 * alphabets, with or without padding.  Return malloc'd buffers (NUL
 * terminated for encode), or NULL on malformed input. */
char *base64_encode(const uint8_t *data, size_t len, int url_safe, int pad);
uint8_t *base64_decode(const char *text, size_t text_len, size_t *out_len);

#endif
