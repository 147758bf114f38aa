/* base/crc.h — CRC-32C (Castagnoli), the checksum of prism's logs and snapshots.
 *
 * prism_crc32c(crc, p, n) extends crc over n bytes; start with 0.  The same polynomial as
 * iSCSI, ext4 and RocksDB, so a record's checksum can be verified with standard tools
 * ("123456789" gives 0xe3069283).  Table-driven, eight bytes per step where the CPU has
 * SSE4.2's crc32 instruction, a byte per step otherwise.  No state; thread-safe.
 */
#ifndef PRISM_BASE_CRC_H
#define PRISM_BASE_CRC_H

#include <stddef.h>
#include <stdint.h>

#include "base/api.h"

#ifdef __cplusplus
extern "C" {
#endif

PRISM_API uint32_t prism_crc32c(uint32_t crc, const void *p, size_t n);

#ifdef __cplusplus
}
#endif
#endif
