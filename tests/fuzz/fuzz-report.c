/* tests/fuzz/fuzz-report.c: the bottleneck report (bl_report_compute) over
 * a trace in memory.
 *
 * The input is a trace; the report reads its header through
 * bl_trace_meta_read() and every STAT, LENS and TENS record, with the
 * spectrum, the bootstrap (3 draws), the kept rows (at most 64 per hook)
 * and the compressibility, without the probe (it needs a model), on one
 * thread and in 16 MiB, so that a header's claims (vocabulary, layers,
 * widths, prompts) cannot make it allocate more than the input backs.
 * Checked: a failure sets err with its code and a message; a success has
 * positions no more than the STAT rows' bytes allow, eigenvalues
 * descending and >= 0, participation in [1, d] and c90 <= c99 <= d, the
 * entropy percentiles in order.  The input is read a second time with its
 * CRCs recomputed (fuzz_fix_trace_crcs), so that mutations reach the
 * records instead of stopping at a CRC.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <bitlens/bitlens.h>

#include "fuzz.h"

static void check_report(const struct bl_report *r, size_t size)
{
    FUZZ_CHECK(r->n_prompts >= 1);
    FUZZ_CHECK(r->n_positions >= 0 && (uint64_t)r->n_positions <= size / 28 + 1);
    FUZZ_CHECK(r->n_units >= 1 && r->n_units <= r->n_prompts);
    if (r->entropy.n > 0)
        FUZZ_CHECK(r->entropy.min <= r->entropy.median && r->entropy.median <= r->entropy.max);
    FUZZ_CHECK(r->log2_vocab >= 0 && isfinite(r->log2_vocab));
    for (int64_t i = 0; i < r->n_hooks; i++) {
        const struct bl_report_hook *h = &r->hooks[i];
        FUZZ_CHECK(h->name && h->width >= 1);
        FUZZ_CHECK(h->kept <= h->rows && h->kept <= 64);
        if (h->spec.eig) {
            int64_t d = h->spec.d;
            FUZZ_CHECK(d == h->width);
            for (int64_t j = 0; j < d; j++) {
                FUZZ_CHECK(h->spec.eig[j] >= 0 && !isnan(h->spec.eig[j]));
                if (j)
                    FUZZ_CHECK(h->spec.eig[j] <= h->spec.eig[j - 1]);
            }
            if (h->spec.total > 0 && isfinite(h->spec.total)) {
                FUZZ_CHECK(h->spec.participation >= 1 - 1e-9 && h->spec.participation <= (double)d + 1e-9);
                FUZZ_CHECK(h->spec.c90 <= h->spec.c99 && h->spec.c99 <= d);
            }
        }
        fuzz_sink += (uint64_t)h->rows + (uint64_t)(h->capacity.value > 0);
    }
    FUZZ_CHECK(memchr(r->notes, '\0', sizeof r->notes) != NULL);
}

static void run(const uint8_t *data, size_t size)
{
    bl_trace_reader *rd;
    bl_err err;
    memset(&err, 0, sizeof err);
    int rc = bl_trace_reader_open_memory(&rd, data, size, "fuzz.blt", &err);
    if (rc) {
        FUZZ_CHECK(err.code == rc && err.msg[0] != '\0');
        return;
    }
    struct bl_report_params p = bl_report_default_params();
    p.k = 0;
    p.bootstrap = 3;
    p.max_rows = 64;
    p.memory = (size_t)16 << 20;
    p.n_threads = 1;
    struct bl_report r;
    rc = bl_report_compute(&rd, 1, &p, &r, &err);
    if (rc == 0) {
        FUZZ_REACHED(FZ_REPORT);
        check_report(&r, size);
        bl_report_release(&r);
    } else {
        FUZZ_CHECK(err.code == rc && err.msg[0] != '\0');
        FUZZ_CHECK(memchr(err.msg, '\0', sizeof err.msg) != NULL);
    }
    bl_trace_reader_free(rd);
}

int FUZZ_ENTRY(report)(const uint8_t *data, size_t size)
{
    run(data, size);
    uint8_t *fixed = fuzz_fix_trace_crcs(data, size);
    if (fixed) {
        if (memcmp(fixed, data, size) != 0)
            run(fixed, size);
        free(fixed);
    }
    return 0;
}

#ifdef BL_FUZZ_REPLAY
/* Seeds for tests/fuzz/replay.c: small traces as bitlens record writes
 * them (header, STAT, LENS, TENS of f32, f16 and bf16), each expected to
 * give a report. */
#include "testutil.h"

size_t fuzz_report_seeds(void (*add)(const char *name, const void *data, size_t n, unsigned expect, int mutate));

static void le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> 8 * i);
}

static void le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> 8 * i);
}

static void lef(unsigned char *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    le32(p, u);
}

enum { SP = 3, SN = 6, SD = 4, SV = 8, SL = 2 };

static int write_seed(const char *path, int dtype)
{
    static const char *const names[] = {"f32", "f16", "bf16"};
    const char *dn = names[dtype == BL_F32 ? 0 : dtype == BL_F16 ? 1 : 2];
    char h[1024];
    snprintf(h, sizeof h,
             "{\"prompts\":[\"a\",\"b\",\"c\"],\"recorded\":{\"top_k\":1,\"n_layers\":%d,\"n_vocab\":%d,"
             "\"n_ctx\":16,\"lens\":true,\"dtype\":\"%s\",\"hooks\":[{\"name\":\"blocks.0.hook_resid_post\","
             "\"kind\":%d,\"layer\":0,\"width\":%d},{\"name\":\"blocks.1.hook_resid_post\",\"kind\":%d,"
             "\"layer\":1,\"width\":%d}]},\"model\":{\"path\":\"m.bin\",\"name\":\"m\",\"config\":{\"dim\":%d,"
             "\"n_heads\":1}},\"sampling\":{\"temperature\":1.0}}",
             SL, SV, dn, BL_HOOK_RESID_POST, SD, BL_HOOK_RESID_POST, SD, SD);
    bl_trace_writer *w;
    bl_err err;
    int rc = bl_trace_writer_open(&w, path, h, BL_TRACE_FORCE, &err);
    if (rc)
        return -1;
    size_t es = dtype == BL_F32 ? 4 : 2;
    for (uint32_t q = 0; q < SP && !rc; q++) {
        unsigned char st[24 + SN * 36];
        le32(st, q);
        le32(st + 4, 1);
        le64(st + 8, 0);
        le64(st + 16, SN);
        for (int i = 0; i < SN; i++) {
            unsigned char *r = st + 24 + 36 * i;
            le32(r, (uint32_t)((i + q) % SV));
            le32(r + 4, i + 1 < SN ? (uint32_t)((i + 1 + q) % SV) : UINT32_MAX);
            lef(r + 8, 0.5f * (float)i);
            lef(r + 12, 0.5f * (float)i);
            lef(r + 16, 1.5f);
            le32(r + 20, 1);
            lef(r + 24, 0.3f);
            le32(r + 28, (uint32_t)(i % SV));
            lef(r + 32, 0.4f);
        }
        rc = bl_trace_writer_put(w, BL_CHUNK_STATS, st, sizeof st, 0, 0, &err);
        unsigned char ln[24 + SN * SL * 12];
        le32(ln, q);
        le32(ln + 4, SL);
        le64(ln + 8, 0);
        le64(ln + 16, SN);
        for (int i = 0; i < SN * SL * 3; i++)
            lef(ln + 24 + 4 * i, (float)(i % 5) * 0.25f);
        rc = rc ? rc : bl_trace_writer_put(w, BL_CHUNK_LENS, ln, sizeof ln, 24, 4, &err);
        for (uint32_t k = 0; k < 2 && !rc; k++) {
            unsigned char te[40 + SN * SD * 4];
            memset(te, 0, 40);
            le32(te, q);
            le32(te + 4, k);
            le32(te + 8, (uint32_t)dtype);
            le64(te + 16, 0);
            le64(te + 24, SN);
            le64(te + 32, SD);
            float v[SN * SD];
            for (int i = 0; i < SN * SD; i++)
                v[i] = (float)((i * 7 + (int)q * 3 + (int)k) % 11) - 5.0f;
            for (int i = 0; i < SN * SD; i++) {
                if (dtype == BL_F32)
                    lef(te + 40 + 4 * i, v[i]);
                else {
                    uint16_t u = dtype == BL_F16 ? bl_f32_to_f16(v[i]) : bl_f32_to_bf16(v[i]);
                    te[40 + 2 * i] = (unsigned char)u;
                    te[40 + 2 * i + 1] = (unsigned char)(u >> 8);
                }
            }
            rc = bl_trace_writer_put(w, BL_CHUNK_TENSOR, te, 40 + SN * SD * es, 40, es, &err);
        }
    }
    if (rc) {
        bl_trace_writer_discard(w);
        return -1;
    }
    return bl_trace_writer_close(w, NULL, &err) ? -1 : 0;
}

size_t fuzz_report_seeds(void (*add)(const char *name, const void *data, size_t n, unsigned expect, int mutate))
{
    char *dir = tmp_dir();
    size_t count = 0;
    if (!dir)
        return 0;
    static const int dtypes[] = {BL_F32, BL_F16, BL_BF16};
    for (int i = 0; i < 3; i++) {
        char path[4200], name[32];
        snprintf(path, sizeof path, "%s/seed%d.blt", dir, i);
        snprintf(name, sizeof name, "report-%s", i == 0 ? "f32" : i == 1 ? "f16" : "bf16");
        size_t n;
        void *data = write_seed(path, dtypes[i]) == 0 ? read_file(path, &n) : NULL;
        if (data) {
            add(name, data, n, FZ_REPORT, i == 0);
            free(data);
            count++;
        }
    }
    rm_rf(dir);
    free(dir);
    return count;
}
#endif
