/* Hrana 3 in protobuf: the bodies of /v3-protobuf/pipeline and
 * /v3-protobuf/cursor, and the messages of the WebSocket subprotocol
 * hrana3-protobuf (schemas: hrana.proto, hrana_http.proto, hrana_ws.proto).
 *
 * Protobuf is only another encoding of the structures the JSON encoding
 * carries, so this module translates: a protobuf request becomes the same
 * JSON object a JSON client would have sent, and the JSON answer is encoded
 * back.  One executor (hrana.c) and one set of request checks
 * (hrana_check.c) then serve both encodings, and cannot drift apart.
 *
 * Decoding is strict where protobuf-c is lenient: nesting deeper than
 * HRANA_PB_MAX_DEPTH messages is refused before protobuf-c's recursive
 * unpacker sees it, text must be UTF-8, a Value must hold a value, and a
 * float must be finite (JSON cannot carry the others).  Every refusal
 * names its cause through *err (static text). */
#ifndef REPLITE_HRANA_PB_H
#define REPLITE_HRANA_PB_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define HRANA_PB_MAX_DEPTH 64

/* A growing output buffer (malloc'd data). */
struct hrana_pb_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

void hrana_pb_buf_free(struct hrana_pb_buf *b);

/* Decoders: a new JSON object, or NULL with *err. */
json_t *hrana_pb_pipeline_request(const uint8_t *b, size_t n,
				  const char **err); /* PipelineReqBody */
json_t *hrana_pb_cursor_request(const uint8_t *b, size_t n,
				const char **err); /* CursorReqBody */
json_t *hrana_pb_client_msg(const uint8_t *b, size_t n,
			    const char **err); /* ws ClientMsg */

/* Encoders: append the protobuf form of a JSON answer to out.  They return
 * 0, or -1 when the JSON is not the structure expected (a bug: the caller
 * answers an internal error) or memory runs out. */
int hrana_pb_pipeline_response(json_t *resp, struct hrana_pb_buf *out);
/* The cursor's answer is length-delimited: each structure is preceded by
 * its length as a varint (CursorRespBody, then CursorEntry after entry). */
int hrana_pb_cursor_response(json_t *head, struct hrana_pb_buf *out);
int hrana_pb_cursor_entry(json_t *entry, struct hrana_pb_buf *out);
int hrana_pb_server_msg(json_t *msg, struct hrana_pb_buf *out);

#endif
