/*
 * hdb_wire.h - checks on the raw protobuf bytes of a request that protobuf-c does not make.
 *
 * protobuf-c hands string fields over as NUL-terminated C strings without a length, and does
 * not validate UTF-8. So a string with an embedded NUL would be cut short silently (two
 * distinct ids could merge, a size limit could be bypassed), and invalid UTF-8 would be stored
 * and later break clients. This module walks the wire format with the message descriptors and
 * rejects both, naming the field, e.g. `points[2].attributes[0].value.string_value: invalid
 * UTF-8 at byte 5`. Map entries are named by their position in the request.
 *
 * Thread-safety: no state; any thread.
 */
#ifndef HDB_WIRE_H
#define HDB_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Checks every string field (recursively through sub-messages) of a message of type desc
 * encoded in data[0..len): valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF) and no
 * NUL character; and that messages nest at most 64 deep (protobuf-c's unpacking recurses
 * without a limit). Safe on any bytes: call it before protobuf-c unpacks them. Returns HDB_OK,
 * or HDB_EINVAL with the field path in err ("request: malformed protobuf encoding" for bytes
 * that are not protobuf). */
int hdb_wire_check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                           size_t len, char *err, size_t errlen);

/* Returns 1 when s[0..n) is valid UTF-8, else 0 and the offset of the first bad byte in *bad
 * (when bad is not NULL). */
int hdb_utf8_valid(const uint8_t *s, size_t n, size_t *bad);

#ifdef __cplusplus
}
#endif

#endif /* HDB_WIRE_H */
