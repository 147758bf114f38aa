/* CRC-32C: the standard check value, incremental use, and the hardware path agreeing
 * with the table at every length and alignment. */
#include <criterion/criterion.h>
#include <string.h>

#include "base/crc.h"

Test(crc, check_value_and_incremental)
{
	cr_assert_eq(prism_crc32c(0, "123456789", 9), 0xe3069283u);
	cr_assert_eq(prism_crc32c(0, "", 0), 0u);
	uint32_t c = prism_crc32c(0, "1234", 4);
	cr_assert_eq(prism_crc32c(c, "56789", 5), 0xe3069283u, "extending gives the same");
}

/* A plain bitwise CRC-32C to compare with. */
static uint32_t slow(const uint8_t *p, size_t n)
{
	uint32_t c = ~0u;
	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
	}
	return ~c;
}

Test(crc, matches_bitwise_reference_at_every_length_and_offset)
{
	uint8_t buf[300];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 37 + 11);
	for (size_t off = 0; off < 8; off++)
		for (size_t n = 0; n + off <= sizeof(buf); n += 7)
			cr_assert_eq(prism_crc32c(0, buf + off, n), slow(buf + off, n),
				     "off %zu len %zu", off, n);
}
