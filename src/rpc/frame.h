/* SPDX-License-Identifier: MIT */
/* ttrpc framing without I/O: the 10-byte big-endian frame header, its encoder, and the
 * incremental scanner (frame.rl, a ragel machine) that cuts any split of an incoming byte
 * stream into headers and payload pieces. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define TTRPC_HEADER_LEN  10u
#define TTRPC_MESSAGE_MAX (4u << 20) /* payload bytes; exactly 4 MiB is allowed */

enum ttrpc_msg_type {
        TTRPC_TYPE_REQUEST = 0x01,
        TTRPC_TYPE_RESPONSE = 0x02,
        TTRPC_TYPE_DATA = 0x03,
};

enum ttrpc_flag {
        TTRPC_FLAG_REMOTE_CLOSED = 0x01, /* Request, Data: sender sends nothing more */
        TTRPC_FLAG_REMOTE_OPEN = 0x02,   /* Request: client keeps sending Data */
        TTRPC_FLAG_NO_DATA = 0x04,       /* Data: frame carries no payload */
};

struct ttrpc_frame_header {
        uint32_t length; /* payload bytes */
        uint32_t stream_id;
        uint8_t type;
        uint8_t flags;
};

/* Writes the 10 header bytes of hdr into out (which must hold TTRPC_HEADER_LEN bytes). */
void ttrpc_header_encode(const struct ttrpc_frame_header *hdr, uint8_t out[TTRPC_HEADER_LEN]);

/* Reads a header from 10 bytes. Never fails: every 10-byte string is a header; limits are
 * checked by the caller. */
void ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_LEN], struct ttrpc_frame_header *ret_hdr);

enum ttrpc_scan_event {
        TTRPC_SCAN_NEED_MORE = 0, /* every byte given was consumed; feed more */
        TTRPC_SCAN_HEADER,        /* a header is complete: see scanner.header */
        TTRPC_SCAN_PAYLOAD,       /* a piece of the current frame's payload */
        TTRPC_SCAN_FRAME_END,     /* the current frame's payload is complete */
};

/* Caller-owned scanner state; initialise with ttrpc_scanner_init(). */
struct ttrpc_scanner {
        int cs;                           /* ragel state */
        uint32_t remaining;               /* payload bytes still to come in this frame */
        int in_payload;                   /* between HEADER and FRAME_END */
        struct ttrpc_frame_header header; /* valid from HEADER until the next header starts */
};

void ttrpc_scanner_init(struct ttrpc_scanner *sc);

/* True while the scanner is inside a frame (some header or payload byte seen, frame not
 * complete): a peer that stops here is stalled mid-frame. */
int ttrpc_scanner_mid_frame(const struct ttrpc_scanner *sc);

/* Scans at most n bytes of p (borrowed) and stops at the first event. Stores how many bytes
 * were consumed in *ret_used and, for TTRPC_SCAN_PAYLOAD, the piece in *ret_piece /
 * *ret_piece_len (pointing into p). Returns the event; never fails. A header whose length
 * exceeds any limit is still scanned: the caller decides, and its payload is reported as
 * pieces the caller may discard, so the stream stays in sync. */
enum ttrpc_scan_event ttrpc_scanner_next(struct ttrpc_scanner *sc, const uint8_t *p, size_t n,
                                         size_t *ret_used, const uint8_t **ret_piece,
                                         size_t *ret_piece_len);
