/* Hexadecimal text for binary values (ids, checksums in the protocol). */
#ifndef REPLITE_BASE_HEX_H
#define REPLITE_BASE_HEX_H

#include <stddef.h>
#include <stdint.h>

/* n bytes as 2n lowercase hex digits and a NUL (out: 2n + 1 bytes). */
void hex_encode(const uint8_t *in, size_t n, char *out);
/* Exactly 2n hex digits (any case) into n bytes.  Returns 0, or -1 when
 * text is anything else (out then undefined). */
int hex_decode(const char *text, uint8_t *out, size_t n);

#endif
