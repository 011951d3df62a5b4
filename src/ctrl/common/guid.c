/* SPDX-License-Identifier: MIT */
#include "ctrl/common/guid.h"

#include <errno.h>
#include <stdint.h>
#include <sys/random.h>

#include "util/util.h"

int ctrl_new_guid(char buf[CTRL_GUID_LEN])
{
        uint8_t b[16];
        if (getrandom(b, sizeof(b), 0) != sizeof(b))
                return -EIO;
        b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
        b[8] = (b[8] & 0x3f) | 0x80; /* RFC 4122 variant */
        ferry_bprintf(buf, CTRL_GUID_LEN,
                      "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                      b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                      b[13], b[14], b[15]);
        return 0;
}
