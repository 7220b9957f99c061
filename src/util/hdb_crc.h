/*
 * hdb_crc.h - CRC-32C (Castagnoli), used to detect damaged snapshot files. Uses the SSE4.2
 * crc32 instruction when the CPU has it (checked at run time), else a table.
 */
#ifndef HDB_CRC_H
#define HDB_CRC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Extends crc (0 to start) over n bytes of p and returns the new value. Thread-safe. */
uint32_t hdb_crc32c(uint32_t crc, const void *p, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* HDB_CRC_H */
