/* SPDX-License-Identifier: MIT */
/* The ttrpc frame scanner: a ragel machine over the 10 header bytes, resumable at any byte,
 * with payload bytes passed through in bulk between headers. */
#include "rpc/frame.h"

#include <string.h>

%%{
        machine ttrpc_header;
        access sc->;

        action len_byte   { sc->header.length = (sc->header.length << 8) | (uint8_t)fc; }
        action sid_byte   { sc->header.stream_id = (sc->header.stream_id << 8) | (uint8_t)fc; }
        action type_byte  { sc->header.type = (uint8_t)fc; }
        action flags_byte { sc->header.flags = (uint8_t)fc; }
        action done       { header_done = 1; fbreak; }

        # length u32 BE, stream id u32 BE, type u8, flags u8; every byte value is allowed here:
        # limits and unknown types are the session's decisions, not the grammar's.
        main := ( any $len_byte ){4} ( any $sid_byte ){4} ( any @type_byte ) ( any @flags_byte ) @done;
}%%

%% write data noerror nofinal noentry;

void ttrpc_header_encode(const struct ttrpc_frame_header *hdr, uint8_t out[TTRPC_HEADER_LEN])
{
        out[0] = (uint8_t)(hdr->length >> 24);
        out[1] = (uint8_t)(hdr->length >> 16);
        out[2] = (uint8_t)(hdr->length >> 8);
        out[3] = (uint8_t)hdr->length;
        out[4] = (uint8_t)(hdr->stream_id >> 24);
        out[5] = (uint8_t)(hdr->stream_id >> 16);
        out[6] = (uint8_t)(hdr->stream_id >> 8);
        out[7] = (uint8_t)hdr->stream_id;
        out[8] = hdr->type;
        out[9] = hdr->flags;
}

void ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_LEN], struct ttrpc_frame_header *ret_hdr)
{
        ret_hdr->length = (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 |
                          in[3];
        ret_hdr->stream_id = (uint32_t)in[4] << 24 | (uint32_t)in[5] << 16 |
                             (uint32_t)in[6] << 8 | in[7];
        ret_hdr->type = in[8];
        ret_hdr->flags = in[9];
}

static void header_restart(struct ttrpc_scanner *sc)
{
        %% write init;
        memset(&sc->header, 0, sizeof(sc->header));
}

void ttrpc_scanner_init(struct ttrpc_scanner *sc)
{
        memset(sc, 0, sizeof(*sc));
        header_restart(sc);
}

int ttrpc_scanner_mid_frame(const struct ttrpc_scanner *sc)
{
        return sc->in_payload || sc->cs != ttrpc_header_start;
}

enum ttrpc_scan_event ttrpc_scanner_next(struct ttrpc_scanner *sc, const uint8_t *data, size_t n,
                                         size_t *ret_used, const uint8_t **ret_piece,
                                         size_t *ret_piece_len)
{
        if (sc->in_payload) {
                if (sc->remaining == 0) {
                        /* keep the header readable for FRAME_END: the next header's bytes
                         * shift every field out anyway */
                        sc->in_payload = 0;
                        sc->cs = ttrpc_header_start;
                        *ret_used = 0;
                        return TTRPC_SCAN_FRAME_END;
                }
                if (n == 0) {
                        *ret_used = 0;
                        return TTRPC_SCAN_NEED_MORE;
                }
                size_t take = n < sc->remaining ? n : sc->remaining;
                sc->remaining -= (uint32_t)take;
                *ret_piece = data;
                *ret_piece_len = take;
                *ret_used = take;
                return TTRPC_SCAN_PAYLOAD;
        }

        if (n == 0) {
                *ret_used = 0;
                return TTRPC_SCAN_NEED_MORE;
        }
        const char *p = (const char *)data, *pe = p + n;
        int header_done = 0;
        %% write exec;
        *ret_used = (size_t)(p - (const char *)data); /* fbreak already stepped past the last header byte */
        if (!header_done)
                return TTRPC_SCAN_NEED_MORE;
        sc->in_payload = 1;
        sc->remaining = sc->header.length;
        return TTRPC_SCAN_HEADER;
}
