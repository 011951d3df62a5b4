/* SPDX-License-Identifier: MIT */
/* The sim backend's memory transfer: iterative pre-copy over a stream socket.
 *
 * Wire format (little-endian; see docs/hcs.md):
 *   source → dest  HELLO   "FERRYLM1" u16 version u16 flags (bit 0: checksum verified)
 *                          (bit 1: page hashes are hcs_hash64_bulk; required with bit 0)
 *                          u32 session u64 image_size u32 page_size u32 compat_len, compat
 *   dest → source  REPLY   u32 'FLMR' i32 status
 *   source → dest  records: u32 type u32 pass u32 nruns u32 npages u64 payload_len, then
 *                  PAGES: nruns × {u64 first_page, u64 count} and the pages' bytes in order;
 *                  PASS_END (npages = pages still dirty), BLACKOUT, DEVICE_STATE and
 *                  GUEST_STATE (payload_len bytes of JSON), CHECKSUM (8-byte image checksum,
 *                  or empty when not verified)
 *   dest → source  REPLY   status of the checksum check
 *   source → dest  COMMIT  (record): from here the destination owns the VM.
 * Pages are sent with sendmsg straight from the image (one iovec per run, up to 2 MiB per
 * record) and received with readv straight into the destination image: no per-page syscalls,
 * no copies of our own.
 *
 * Image checksum (HELLO flags VERIFY | BULK): each side keeps a 64-bit hcs_hash64_bulk per page.
 * The source hashes each 256 KiB slice of a record right before its sendmsg (the hash pulls it
 * into L2, the kernel's copy into the socket then reads it from there); the destination reads
 * 256 KiB slices straight into the image and hashes each right after, while still in L2. So
 * each side reads the image from memory once, as without verification. The checksum is the
 * hash of the page-hash array. A page written after it was hashed is dirty and is sent (and
 * hashed) again, and the blackout pass runs with the workload paused, so at the end both arrays
 * describe the final image. The blackout only hashes the final pass's pages and 8 bytes per
 * page, instead of the whole image twice. */
#include "hcs/sim/sim.h"

#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "hcs/fault.h"
#include "hcs/hash.h"
#include "util/util.h"

#define XFER_VERSION     1
#define XFER_FLAG_VERIFY 1u
#define XFER_FLAG_BULK   2u          /* page hashes are hcs_hash64_bulk (set whenever VERIFY is) */
#define XFER_SLICE_PAGES 64          /* 256 KiB: hashed while it sits in L2 */
#define XFER_REPLY_MAGIC 0x524d4c46u /* "FLMR" */
#define XFER_MAX_RUNS    256
#define XFER_MAX_PAGES   512 /* 2 MiB per record */
#define XFER_MAX_STATE   (4u << 20)
#define XFER_HASH_SEED   0x66657272796c6dULL

static const char xfer_magic[8] = {'F', 'E', 'R', 'R', 'Y', 'L', 'M', '1'};

enum xfer_type {
        REC_PAGES = 1,
        REC_PASS_END,
        REC_BLACKOUT,
        REC_DEVICE_STATE,
        REC_GUEST_STATE,
        REC_CHECKSUM,
        REC_COMMIT,
};

struct rec_hdr {
        uint32_t type, pass, nruns, npages;
        uint64_t payload_len;
};

struct run {
        uint64_t first, count;
};

/* The source's HELLO; compat_len bytes of compatibility blob follow it. */
struct hello {
        char magic[8];
        uint16_t version, flags;
        uint32_t session;
        uint64_t image_size;
        uint32_t page_size, compat_len;
};

struct xfer {
        struct sim_vm *vm;
        int fd;
        enum hcs_origin origin;
        uint64_t bytes;
        bool drop_armed;
        uint64_t drop_at;
        /* failure attribution */
        enum hcs_result fail_result;
        char reason[128];
        /* source record buffer: header + runs */
        struct {
                struct rec_hdr hdr;
                struct run runs[XFER_MAX_RUNS];
        } rec;
        struct iovec iov[XFER_MAX_RUNS + 1];
        bool verify;
        uint64_t *page_hash; /* npages entries when verifying */
        uint64_t hash_ns;    /* time spent hashing pages */
};

/* The host is little-endian on every target ferry builds for; the static assert keeps the
 * raw-struct framing honest. */
_Static_assert(sizeof(struct rec_hdr) == 24, "record header is 24 bytes");
_Static_assert(sizeof(struct run) == 16, "run is 16 bytes");
_Static_assert(sizeof(struct hello) == 32, "hello is 32 bytes");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "wire format is little-endian");

static void fail(struct xfer *x, enum hcs_result res, const char *reason)
{
        if (x->reason[0])
                return; /* keep the first cause */
        x->fail_result = res;
        ferry_strscpy(x->reason, reason, sizeof(x->reason));
}

static void hash_pages(struct xfer *x, const uint8_t *at, uint64_t first, uint64_t n)
{
        for (uint64_t k = 0; k < n; k++)
                x->page_hash[first + k] =
                    hcs_hash64_bulk(at + k * SIM_PAGE_SIZE, SIM_PAGE_SIZE, first + k);
}

static uint64_t image_checksum(const struct xfer *x)
{
        return hcs_hash64_bulk(x->page_hash, x->vm->npages * sizeof(uint64_t), XFER_HASH_SEED);
}

static int io_error(struct xfer *x, int err)
{
        if (atomic_load(&x->vm->cancel))
                return -ECANCELED;
        return err;
}

/* Moves the vector past done bytes: whole entries are dropped, a partial one is trimmed. */
static void iov_advance(struct iovec **iov, int *n, size_t done)
{
        while (done > 0 && *n > 0) {
                struct iovec *v = *iov;
                if (done >= v->iov_len) {
                        done -= v->iov_len;
                        (*iov)++;
                        (*n)--;
                } else {
                        v->iov_base = (uint8_t *)v->iov_base + done;
                        v->iov_len -= done;
                        done = 0;
                }
        }
}

/* The drop fault: at the drop point the link goes down (-EPIPE); before it, the first *cnt
 * entries of iov are clipped so that no byte past it moves: *ret_cut is then the entry cut
 * short (*saved holds it whole), else -1. */
static int drop_clip(struct xfer *x, struct iovec *iov, int *cnt, struct iovec *saved, int *ret_cut)
{
        *ret_cut = -1;
        if (!x->drop_armed)
                return 0;
        uint64_t left = x->drop_at - x->bytes;
        if (left == 0) {
                shutdown(x->fd, SHUT_RDWR);
                return -EPIPE;
        }
        uint64_t acc = 0;
        for (int i = 0; i < *cnt; i++) {
                if (acc + iov[i].iov_len >= left) {
                        *saved = iov[i];
                        iov[i].iov_len = left - acc;
                        *cnt = i + 1;
                        *ret_cut = i;
                        break;
                }
                acc += iov[i].iov_len;
        }
        return 0;
}

/* Sends (sendmsg) or reads (readv) the whole iovec array (modified in place). Honours cancel
 * and the drop fault (-EPIPE sending, -ECONNRESET reading); EOF while reading → -ECONNRESET. */
static int xfer_iov(struct xfer *x, struct iovec *iov, int n, bool sending)
{
        while (n > 0) {
                if (iov->iov_len == 0) {
                        iov++;
                        n--;
                        continue;
                }
                if (atomic_load(&x->vm->cancel))
                        return -ECANCELED;
                int cnt = n > IOV_MAX ? IOV_MAX : n;
                struct iovec saved;
                int cut;
                if (drop_clip(x, iov, &cnt, &saved, &cut) < 0)
                        return sending ? -EPIPE : -ECONNRESET;
                struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
                ssize_t r = sending ? sendmsg(x->fd, &msg, MSG_NOSIGNAL) : readv(x->fd, iov, cnt);
                if (cut >= 0)
                        iov[cut] = saved;
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return io_error(x, -errno);
                }
                if (r == 0 && !sending)
                        return io_error(x, -ECONNRESET);
                x->bytes += (uint64_t)r;
                iov_advance(&iov, &n, (size_t)r);
        }
        return 0;
}

/* Writes the whole iovec array (modified in place). */
static int xfer_sendv(struct xfer *x, struct iovec *iov, int n)
{
        return xfer_iov(x, iov, n, true);
}

static int xfer_send(struct xfer *x, const void *p, size_t len)
{
        struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
        return xfer_sendv(x, &iov, 1);
}

/* Reads exactly the iovec array (modified in place). EOF → -ECONNRESET. */
static int xfer_recvv(struct xfer *x, struct iovec *iov, int n)
{
        return xfer_iov(x, iov, n, false);
}

static int xfer_recv(struct xfer *x, void *p, size_t len)
{
        struct iovec iov = {.iov_base = p, .iov_len = len};
        return xfer_recvv(x, &iov, 1);
}

static void progress(struct xfer *x, uint32_t pass, uint64_t dirty)
{
        struct hcs_notification n = {
            .event = HCS_EVENT_TRANSFER_IN_PROGRESS,
            .origin = x->origin,
            .bytes = x->bytes,
            .pass = pass,
            .dirty_pages = dirty,
        };
        hcs_system_emit(x->vm->sys, &n);
}

/* ---- source ----------------------------------------------------------------------------- */

/* Verifying: sends the record in slices of XFER_SLICE_PAGES, hashing each slice right before
 * its sendmsg. The hash pulls the slice into L2 and the kernel's copy into the socket then reads
 * it from there, so the image is read from memory once, as without verification. */
static int send_sliced(struct xfer *x, uint32_t nruns)
{
        uint8_t *mem = x->vm->mem;
        struct iovec *v = x->iov;
        int n = 1; /* x->iov[0] is the record header: it goes with the first slice */
        uint64_t room = XFER_SLICE_PAGES;
        for (uint32_t i = 0; i < nruns; i++) {
                const struct run *rn = &x->rec.runs[i];
                for (uint64_t p = rn->first; p < rn->first + rn->count;) {
                        uint64_t k = rn->first + rn->count - p;
                        if (k > room)
                                k = room;
                        uint8_t *at = mem + p * SIM_PAGE_SIZE;
                        uint64_t t0 = ferry_now_ns();
                        hash_pages(x, at, p, k);
                        x->hash_ns += ferry_now_ns() - t0;
                        v[n++] = (struct iovec){.iov_base = at, .iov_len = k * SIM_PAGE_SIZE};
                        p += k;
                        room -= k;
                        if (room == 0 || n == XFER_MAX_RUNS + 1) {
                                int r = xfer_sendv(x, v, n);
                                if (r < 0)
                                        return r;
                                n = 0;
                                room = XFER_SLICE_PAGES;
                        }
                }
        }
        return n ? xfer_sendv(x, v, n) : 0;
}

static int flush_pages(struct xfer *x, uint32_t pass)
{
        struct sim_vm *vm = x->vm;
        uint32_t nruns = x->rec.hdr.nruns;
        if (nruns == 0)
                return 0;
        x->rec.hdr.type = REC_PAGES;
        x->rec.hdr.pass = pass;
        x->rec.hdr.payload_len = (uint64_t)x->rec.hdr.npages * SIM_PAGE_SIZE;
        x->iov[0].iov_base = &x->rec;
        x->iov[0].iov_len = sizeof(x->rec.hdr) + nruns * sizeof(struct run);
        int r;
        if (x->verify) {
                r = send_sliced(x, nruns);
        } else {
                for (uint32_t i = 0; i < nruns; i++) {
                        x->iov[i + 1].iov_base = vm->mem + x->rec.runs[i].first * SIM_PAGE_SIZE;
                        x->iov[i + 1].iov_len = x->rec.runs[i].count * SIM_PAGE_SIZE;
                }
                r = xfer_sendv(x, x->iov, (int)nruns + 1);
        }
        x->rec.hdr.nruns = 0;
        x->rec.hdr.npages = 0;
        return r;
}

/* Appends page to the current record, flushing when full. */
static int add_page(struct xfer *x, uint64_t page, uint32_t pass)
{
        struct rec_hdr *h = &x->rec.hdr;
        if (h->nruns > 0) {
                struct run *last = &x->rec.runs[h->nruns - 1];
                if (last->first + last->count == page) {
                        last->count++;
                        h->npages++;
                        goto check;
                }
        }
        if (h->nruns == XFER_MAX_RUNS) {
                int r = flush_pages(x, pass);
                if (r < 0)
                        return r;
        }
        x->rec.runs[h->nruns++] = (struct run){.first = page, .count = 1};
        h->npages++;
check:
        if (h->npages == XFER_MAX_PAGES)
                return flush_pages(x, pass);
        return 0;
}

static int send_all_pages(struct xfer *x, uint32_t pass)
{
        struct sim_vm *vm = x->vm;
        for (uint64_t first = 0; first < vm->npages; first += XFER_MAX_PAGES) {
                uint64_t count = vm->npages - first;
                if (count > XFER_MAX_PAGES)
                        count = XFER_MAX_PAGES;
                x->rec.hdr.nruns = 1;
                x->rec.hdr.npages = (uint32_t)count;
                x->rec.runs[0] = (struct run){.first = first, .count = count};
                int r = flush_pages(x, pass);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Sends every page whose dirty bit is set, clearing the bits as it goes. */
static int send_dirty(struct xfer *x, uint32_t pass)
{
        struct sim_vm *vm = x->vm;
        for (uint64_t w = 0; w < vm->dirty_words; w++) {
                if (atomic_load_explicit(&vm->dirty[w], memory_order_relaxed) == 0)
                        continue;
                uint64_t bits = atomic_exchange_explicit(&vm->dirty[w], 0, memory_order_acquire);
                while (bits) {
                        int b = __builtin_ctzll(bits);
                        bits &= bits - 1;
                        int r = add_page(x, w * 64 + (uint64_t)b, pass);
                        if (r < 0)
                                return r;
                }
        }
        return flush_pages(x, pass);
}

static uint64_t count_dirty(const struct sim_vm *vm)
{
        uint64_t n = 0;
        for (uint64_t w = 0; w < vm->dirty_words; w++)
                n += (uint64_t)__builtin_popcountll(
                    atomic_load_explicit(&vm->dirty[w], memory_order_relaxed));
        return n;
}

static int send_record(struct xfer *x, uint32_t type, uint32_t pass, uint32_t npages,
                       const void *payload, uint64_t len)
{
        struct rec_hdr h = {.type = type, .pass = pass, .npages = npages, .payload_len = len};
        struct iovec iov[2] = {{.iov_base = &h, .iov_len = sizeof(h)},
                               {.iov_base = (void *)payload, .iov_len = len}};
        return xfer_sendv(x, iov, len ? 2 : 1);
}

static int send_json(struct xfer *x, uint32_t type, struct json_object *o)
{
        size_t len;
        const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
        if (!s)
                return -ENOMEM;
        if (len > XFER_MAX_STATE)
                return -EMSGSIZE;
        return send_record(x, type, 0, 0, s, len);
}

static int read_reply(struct xfer *x, int *ret_status)
{
        uint32_t msg[2];
        int r = xfer_recv(x, msg, sizeof(msg));
        if (r < 0)
                return r;
        if (msg[0] != XFER_REPLY_MAGIC)
                return -EPROTO;
        int32_t st = (int32_t)msg[1];
        if (st > 0 || st < -4095)
                return -EPROTO;
        *ret_status = st;
        return 0;
}

static int source_run(struct xfer *x)
{
        struct sim_vm *vm = x->vm;
        int r, status;

        /* Handshake. */
        uint8_t compat[SIM_COMPAT_MAX];
        size_t clen = sim_compat_blob(vm, compat);
        struct hello hello = {.version = XFER_VERSION,
                              .flags = x->verify ? XFER_FLAG_VERIFY | XFER_FLAG_BULK : 0,
                              .session = vm->session_id,
                              .image_size = vm->mem_size,
                              .page_size = SIM_PAGE_SIZE,
                              .compat_len = (uint32_t)clen};
        memcpy(hello.magic, xfer_magic, sizeof(hello.magic));
        struct iovec hv[2] = {{&hello, sizeof(hello)}, {compat, clen}};
        if ((r = xfer_sendv(x, hv, 2)) < 0 || (r = read_reply(x, &status)) < 0)
                return r;
        if (status < 0) {
                fail(x, HCS_RESULT_DESTINATION_FAILED, "destination refused the handshake");
                return status;
        }

        /* Pass 1 sends everything; writes during it set bits for pass 2. */
        for (uint64_t w = 0; w < vm->dirty_words; w++)
                atomic_store_explicit(&vm->dirty[w], 0, memory_order_relaxed);
        uint32_t pass = 1;
        /* The fault point sits at the end of each pass, before its dirty count, so a stall
         * models a slow pass: the workload dirties pages while it lasts. */
        if ((r = send_all_pages(x, pass)) < 0 || (r = hcs_fault_check("transfer.pass")) < 0)
                return r;
        uint64_t dirty = count_dirty(vm);
        if ((r = send_record(x, REC_PASS_END, pass, (uint32_t)dirty, NULL, 0)) < 0)
                return r;
        progress(x, pass, dirty);

        while (dirty > vm->dirty_threshold && pass < vm->max_passes) {
                pass++;
                if ((r = send_dirty(x, pass)) < 0 || (r = hcs_fault_check("transfer.pass")) < 0)
                        return r;
                dirty = count_dirty(vm);
                if ((r = send_record(x, REC_PASS_END, pass, (uint32_t)dirty, NULL, 0)) < 0)
                        return r;
                progress(x, pass, dirty);
        }

        /* Blackout: the workload stops; what is dirty now is final. */
        pthread_mutex_lock(&vm->lock);
        sim_workload_pause_locked(vm);
        pthread_mutex_unlock(&vm->lock);
        uint64_t t0 = ferry_now_us();
        sim_emit(vm, HCS_EVENT_BLACKOUT_STARTED, HCS_ORIGIN_SOURCE);
        pass++;
        if ((r = send_record(x, REC_BLACKOUT, pass, 0, NULL, 0)) < 0 ||
            (r = send_dirty(x, pass)) < 0 ||
            (r = send_record(x, REC_PASS_END, pass, 0, NULL, 0)) < 0)
                return r;

        pthread_mutex_lock(&vm->lock);
        struct json_object *dev = sim_device_state_locked(vm);
        struct json_object *guest = sim_guest_to_json_locked(&vm->guest);
        pthread_mutex_unlock(&vm->lock);
        r = send_json(x, REC_DEVICE_STATE, dev);
        if (r == 0)
                r = send_json(x, REC_GUEST_STATE, guest);
        json_object_put(dev);
        json_object_put(guest);
        if (r < 0)
                return r;

        uint64_t sum = 0;
        vm->last_checksum_us = 0;
        if (x->verify) {
                uint64_t h0 = ferry_now_us();
                sum = image_checksum(x);
                vm->last_checksum_us = ferry_now_us() - h0;
        }
        if (hcs_fault_check("transfer.corrupt_checksum") < 0)
                sum ^= 1;
        if ((r = send_record(x, REC_CHECKSUM, pass, 0, &sum, x->verify ? sizeof(sum) : 0)) < 0 ||
            (r = read_reply(x, &status)) < 0)
                return r;
        if (status < 0) {
                fail(x, HCS_RESULT_DESTINATION_FAILED,
                     status == -EBADMSG ? "destination checksum mismatch"
                                        : "destination rejected the final state");
                return status;
        }
        /* Past this record the destination owns the VM: a cancel now finds nothing to undo. */
        if (atomic_load(&vm->cancel))
                return -ECANCELED;
        if ((r = send_record(x, REC_COMMIT, pass, 0, NULL, 0)) < 0)
                return r;

        uint64_t blackout = ferry_now_us() - t0;
        vm->last_passes = pass;
        vm->last_bytes = x->bytes;
        vm->last_blackout_us = blackout;
        progress(x, pass, 0);
        struct hcs_notification n = {.event = HCS_EVENT_BLACKOUT_EXITED,
                                     .origin = HCS_ORIGIN_SOURCE,
                                     .blackout_us = blackout};
        hcs_system_emit(vm->sys, &n);
        sim_emit(vm, HCS_EVENT_MIGRATION_DONE, HCS_ORIGIN_SOURCE);
        return 0;
}

/* ---- destination ------------------------------------------------------------------------ */

static int send_reply(struct xfer *x, int status)
{
        uint32_t msg[2] = {XFER_REPLY_MAGIC, (uint32_t)status};
        return xfer_send(x, msg, sizeof(msg));
}

static int recv_pages(struct xfer *x, const struct rec_hdr *h)
{
        struct sim_vm *vm = x->vm;
        if (h->nruns == 0 || h->nruns > XFER_MAX_RUNS || h->npages == 0 ||
            h->npages > XFER_MAX_PAGES || h->payload_len != (uint64_t)h->npages * SIM_PAGE_SIZE)
                return -EPROTO;
        int r = xfer_recv(x, x->rec.runs, h->nruns * sizeof(struct run));
        if (r < 0)
                return r;
        uint64_t total = 0;
        for (uint32_t i = 0; i < h->nruns; i++) {
                const struct run *rn = &x->rec.runs[i];
                if (rn->count == 0 || rn->count > XFER_MAX_PAGES || rn->first >= vm->npages ||
                    rn->count > vm->npages - rn->first)
                        return -EPROTO;
                total += rn->count;
                x->iov[i].iov_base = vm->mem + rn->first * SIM_PAGE_SIZE;
                x->iov[i].iov_len = rn->count * SIM_PAGE_SIZE;
        }
        if (total != h->npages)
                return -EPROTO;
        if (!x->verify)
                return xfer_recvv(x, x->iov, (int)h->nruns);
        /* Verifying: read straight into the image in XFER_SLICE_PAGES slices and hash each slice
         * right after its read, while the kernel's copy has left it in L2. */
        for (uint32_t i = 0; i < h->nruns; i++) {
                const struct run *rn = &x->rec.runs[i];
                for (uint64_t p = rn->first; p < rn->first + rn->count; p += XFER_SLICE_PAGES) {
                        uint64_t n = rn->first + rn->count - p;
                        if (n > XFER_SLICE_PAGES)
                                n = XFER_SLICE_PAGES;
                        uint8_t *at = vm->mem + p * SIM_PAGE_SIZE;
                        r = xfer_recv(x, at, n * SIM_PAGE_SIZE);
                        if (r < 0)
                                return r;
                        uint64_t t0 = ferry_now_ns();
                        hash_pages(x, at, p, n);
                        x->hash_ns += ferry_now_ns() - t0;
                }
        }
        return 0;
}

static int recv_json(struct xfer *x, const struct rec_hdr *h, struct json_object **ret)
{
        if (h->payload_len == 0 || h->payload_len > XFER_MAX_STATE)
                return -EPROTO;
        _cleanup_free_ char *buf = malloc(h->payload_len + 1);
        if (!buf)
                return -ENOMEM;
        int r = xfer_recv(x, buf, h->payload_len);
        if (r < 0)
                return r;
        buf[h->payload_len] = '\0';
        struct json_object *o = json_tokener_parse(buf);
        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

static int destination_run(struct xfer *x)
{
        struct sim_vm *vm = x->vm;
        struct hello hello;
        uint8_t compat[SIM_COMPAT_MAX], mine[SIM_COMPAT_MAX];
        int r = xfer_recv(x, &hello, sizeof(hello));
        if (r < 0)
                return r;
        if (memcmp(hello.magic, xfer_magic, sizeof(xfer_magic)) != 0 ||
            hello.compat_len > SIM_COMPAT_MAX)
                return -EPROTO;
        if ((r = xfer_recv(x, compat, hello.compat_len)) < 0)
                return r;
        size_t mlen = sim_compat_blob(vm, mine);
        int status = 0;
        x->verify = hello.flags & XFER_FLAG_VERIFY;
        if (x->verify && !x->page_hash) {
                x->page_hash = calloc(vm->npages, sizeof(uint64_t));
                if (!x->page_hash)
                        return -ENOMEM;
        }
        /* A peer verifying with another page hash is refused here rather than failing the
         * checksum after the whole transfer. */
        bool known_hash = !x->verify || (hello.flags & XFER_FLAG_BULK);
        if (hello.version != XFER_VERSION || !known_hash ||
            (hello.flags & ~(XFER_FLAG_VERIFY | XFER_FLAG_BULK)) ||
            hello.session != vm->session_id || hello.image_size != vm->mem_size ||
            hello.page_size != SIM_PAGE_SIZE)
                status = -EINVAL;
        else if (hello.compat_len != mlen || memcmp(compat, mine, mlen) != 0)
                status = -EINVAL;
        else if (vm->expect_compat_len &&
                 (vm->expect_compat_len != mlen || memcmp(vm->expect_compat, mine, mlen) != 0))
                status = -EINVAL;
        if ((r = send_reply(x, status)) < 0)
                return r;
        if (status < 0) {
                fail(x, HCS_RESULT_DESTINATION_FAILED, "handshake or compatibility mismatch");
                return status;
        }

        struct json_object *guest = NULL;
        bool have_dev = false, in_blackout = false, final = false;
        uint32_t last_pass = 0;
        for (;;) {
                struct rec_hdr h;
                if ((r = xfer_recv(x, &h, sizeof(h))) < 0)
                        goto out;
                switch (h.type) {
                case REC_PAGES:
                        if (h.pass < last_pass || h.pass == 0 || final) {
                                r = -EPROTO;
                                goto out;
                        }
                        last_pass = h.pass;
                        r = recv_pages(x, &h);
                        break;
                case REC_PASS_END:
                        if (h.payload_len != 0) {
                                r = -EPROTO;
                                goto out;
                        }
                        progress(x, h.pass, h.npages);
                        break;
                case REC_BLACKOUT:
                        if (h.payload_len != 0 || in_blackout) {
                                r = -EPROTO;
                                goto out;
                        }
                        in_blackout = true;
                        vm->blackout_start_us = ferry_now_us();
                        sim_emit(vm, HCS_EVENT_BLACKOUT_STARTED, HCS_ORIGIN_DESTINATION);
                        break;
                case REC_DEVICE_STATE: {
                        struct json_object *dev = NULL;
                        if (!in_blackout) {
                                r = -EPROTO;
                                goto out;
                        }
                        r = recv_json(x, &h, &dev);
                        if (r == 0) {
                                pthread_mutex_lock(&vm->lock);
                                r = sim_device_state_check_locked(vm, dev);
                                pthread_mutex_unlock(&vm->lock);
                                json_object_put(dev);
                                if (r < 0)
                                        fail(x, HCS_RESULT_DESTINATION_FAILED,
                                             "device layout differs from the source");
                                have_dev = true;
                        }
                        break;
                }
                case REC_GUEST_STATE:
                        if (!in_blackout || guest) {
                                r = -EPROTO;
                                goto out;
                        }
                        r = recv_json(x, &h, &guest);
                        break;
                case REC_CHECKSUM: {
                        uint64_t sum = 0;
                        uint64_t mine_sum = 0;
                        if (h.payload_len != (x->verify ? sizeof(sum) : 0) || !have_dev || !guest) {
                                r = -EPROTO;
                                goto out;
                        }
                        if (x->verify) {
                                if ((r = xfer_recv(x, &sum, sizeof(sum))) < 0)
                                        goto out;
                                uint64_t h0 = ferry_now_us();
                                mine_sum = image_checksum(x);
                                vm->last_checksum_us = ferry_now_us() - h0;
                        }
                        final = true;
                        status = mine_sum == sum ? 0 : -EBADMSG;
                        if (status == 0) {
                                pthread_mutex_lock(&vm->lock);
                                /* Staged: applied only once the source commits. */
                                struct sim_guest staged;
                                sim_guest_init(&staged);
                                status = sim_guest_from_json_locked(&staged, guest);
                                pthread_mutex_unlock(&vm->lock);
                        }
                        if ((r = send_reply(x, status)) < 0)
                                goto out;
                        if (status < 0) {
                                fail(x, HCS_RESULT_DESTINATION_FAILED,
                                     status == -EBADMSG ? "image checksum mismatch"
                                                        : "guest state rejected");
                                r = status;
                                goto out;
                        }
                        break;
                }
                case REC_COMMIT:
                        if (!guest || status != 0 || h.payload_len != 0) {
                                r = -EPROTO;
                                goto out;
                        }
                        pthread_mutex_lock(&vm->lock);
                        r = sim_guest_from_json_locked(&vm->guest, guest);
                        vm->last_passes = h.pass;
                        vm->last_bytes = x->bytes;
                        pthread_mutex_unlock(&vm->lock);
                        goto out;
                default:
                        r = -EPROTO;
                        goto out;
                }
                if (r < 0)
                        goto out;
        }
out:
        json_object_put(guest);
        return r;
}

/* ---- entry points ----------------------------------------------------------------------- */

static int run(struct sim_vm *vm, bool source)
{
        _cleanup_free_ struct xfer *x = calloc(1, sizeof(*x));
        if (!x)
                return -ENOMEM;
        x->vm = vm;
        x->fd = vm->fd;
        /* A small record followed by a wait for the peer's reply (the blackout's last records,
         * the checksum) must leave at once: with Nagle it waits for the ACK of the pass before,
         * which the peer's delayed-ACK timer holds back 40 ms. A unix socket refuses the option,
         * which is fine. */
        (void)setsockopt(x->fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
        x->origin = source ? HCS_ORIGIN_SOURCE : HCS_ORIGIN_DESTINATION;
        if (source && vm->verify_checksum) {
                x->verify = true;
                x->page_hash = calloc(vm->npages, sizeof(uint64_t));
                if (!x->page_hash)
                        return -ENOMEM;
        }
        x->drop_armed = hcs_fault_take_drop(source ? "transfer.source_drop_after_bytes"
                                                   : "transfer.destination_drop_after_bytes",
                                            &x->drop_at);
        int r = source ? source_run(x) : destination_run(x);
        vm->last_hash_us = x->hash_ns / 1000;
        free(x->page_hash);
        if (r < 0) {
                enum hcs_result res;
                const char *why;
                if (r == -ECANCELED) {
                        res = HCS_RESULT_CANCELLED;
                        why = "cancelled";
                } else if (x->reason[0]) {
                        res = x->fail_result;
                        why = x->reason;
                } else {
                        res = source ? HCS_RESULT_SOURCE_FAILED : HCS_RESULT_DESTINATION_FAILED;
                        why = r == -EPROTO ? "protocol violation" : "transport failed";
                }
                sim_emit_failed(vm, x->origin, res, r, why);
        }
        return r;
}

int sim_xfer_source(struct sim_vm *vm)
{
        return run(vm, true);
}

int sim_xfer_destination(struct sim_vm *vm)
{
        return run(vm, false);
}
