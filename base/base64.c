#include "base64.h"

#include <stdlib.h>

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *base64_encode(const uint8_t *data, size_t len, int url_safe, int pad)
{
	const char *alpha = url_safe ? b64_url : b64_std;
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	size_t i, o = 0;

	if (out == NULL) {
		return NULL;
	}
	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = ((uint32_t)data[i] << 16) |
			     ((uint32_t)data[i + 1] << 8) | data[i + 2];
		out[o++] = alpha[(v >> 18) & 63];
		out[o++] = alpha[(v >> 12) & 63];
		out[o++] = alpha[(v >> 6) & 63];
		out[o++] = alpha[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)data[i] << 16;
		out[o++] = alpha[(v >> 18) & 63];
		out[o++] = alpha[(v >> 12) & 63];
		if (pad) {
			out[o++] = '=';
			out[o++] = '=';
		}
	} else if (len - i == 2) {
		uint32_t v =
		    ((uint32_t)data[i] << 16) | ((uint32_t)data[i + 1] << 8);
		out[o++] = alpha[(v >> 18) & 63];
		out[o++] = alpha[(v >> 12) & 63];
		out[o++] = alpha[(v >> 6) & 63];
		if (pad) {
			out[o++] = '=';
		}
	}
	out[o] = '\0';
	return out;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

uint8_t *base64_decode(const char *text, size_t text_len, size_t *out_len)
{
	uint8_t *out;
	uint32_t acc = 0;
	size_t i, o = 0, n;
	int bits = 0;

	while (text_len > 0 && text[text_len - 1] == '=') {
		text_len--;
	}
	if (text_len % 4 == 1) {
		return NULL;
	}
	n = text_len / 4 * 3 + 3;
	out = malloc(n + 1);
	if (out == NULL) {
		return NULL;
	}
	for (i = 0; i < text_len; i++) {
		int v = b64_value(text[i]);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	*out_len = o;
	return out;
}
