/* tests/test-sha256.c: SHA-256 (lib/sha256.c) against independent
 * references: the FIPS 180-4 / NIST example vectors, a digest-of-digests
 * value computed with Python's hashlib, the sha256 sums published with the
 * test data, and coreutils' sha256sum run on temporary files.  Every
 * compression function the CPU offers (portable, SHA-NI) is run on the same
 * messages, and however a message is split the digest must not change. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bitlens/hash.h>

#include "internal.h"

#include "tap.h"
#include "testutil.h"

/* Internal, defined in lib/sha256.c: start a message on a named compression
 * function; BL_EUNSUPPORTED if this CPU or build lacks it. */

static const char *const impls[] = {"portable", "sha-ni"};
#define N_IMPLS 2

/* splitmix64: a deterministic generator for data and split points */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void rng_fill(uint64_t *s, unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(rng_next(s) >> 56);
}

/* How to feed a message: whole, a byte at a time, or in random pieces (some
 * of them empty) of up to max_piece bytes. */
enum feed { WHOLE, BYTES, RANDOM };

static void digest_of(const char *impl, const void *data, size_t n, enum feed how,
                      uint64_t *rng, size_t max_piece, unsigned char out[32])
{
    struct bl_sha256 h;
    const unsigned char *p = data;

    if (bli_sha256_init_impl(&h, impl) != BL_OK)
        abort();   /* callers check availability first */
    switch (how) {
    case WHOLE:
        bl_sha256_update(&h, p, n);
        break;
    case BYTES:
        for (size_t i = 0; i < n; i++)
            bl_sha256_update(&h, p + i, 1);
        break;
    case RANDOM:
        for (size_t i = 0; i < n;) {
            size_t k = (size_t)(rng_next(rng) % (max_piece + 1));
            if (k > n - i)
                k = n - i;
            bl_sha256_update(&h, p + i, k);
            i += k;
        }
        break;
    }
    bl_sha256_final(&h, out);
}

static void hex_of(const char *impl, const void *data, size_t n, char out[65])
{
    unsigned char d[32];
    digest_of(impl, data, n, WHOLE, NULL, 0, d);
    bl_sha256_hex(d, out);
}

static int impl_available(const char *impl)
{
    struct bl_sha256 h;
    return bli_sha256_init_impl(&h, impl) == BL_OK;
}

/* ---------------------------------------------------------------- vectors */

/* FIPS 180-4 examples (NIST CSRC "SHA256.pdf", "SHA2_Additional.pdf"). */
static void test_nist(const char *impl)
{
    static const struct {
        const char *msg, *hex, *what;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "empty"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
         "'abc' (one block)"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
         "448-bit message (padding needs a second block)"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
         "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
         "896-bit message"},
    };
    char hex[65];

    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        hex_of(impl, v[i].msg, strlen(v[i].msg), hex);
        ok(strcmp(hex, v[i].hex) == 0, "%s: NIST %s", impl, v[i].what);
        if (strcmp(hex, v[i].hex) != 0)
            diag("got %s, want %s", hex, v[i].hex);
    }

    /* one million 'a': whole, and in pieces of 1000 */
    static const char *mil = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    hex_of(impl, a, 1000000, hex);
    ok(strcmp(hex, mil) == 0, "%s: NIST one million 'a' in one call", impl);
    struct bl_sha256 h;
    unsigned char d[32];
    bli_sha256_init_impl(&h, impl);
    for (int i = 0; i < 1000; i++)
        bl_sha256_update(&h, a, 1000);
    bl_sha256_final(&h, d);
    bl_sha256_hex(d, hex);
    ok(strcmp(hex, mil) == 0, "%s: NIST one million 'a' in 1000 pieces", impl);
    free(a);

    /* NULL data with n = 0 is allowed */
    bli_sha256_init_impl(&h, impl);
    bl_sha256_update(&h, NULL, 0);
    bl_sha256_final(&h, d);
    bl_sha256_hex(d, hex);
    ok(strcmp(hex, v[0].hex) == 0, "%s: update(NULL, 0) leaves the empty message", impl);
}

/* Messages of every length 0..200 (every position of the padding in the
 * last block, one to four blocks): fed whole, byte by byte and in random
 * pieces they hash alike, and the digest of their 201 digests matches
 * Python's hashlib:
 *   cat = b''.join(hashlib.sha256(bytes((i*167+13) & 255 for i in range(n)))
 *                  .digest() for n in range(201))
 *   hashlib.sha256(cat).hexdigest() */
static void test_lengths(const char *impl, unsigned char all[201][32])
{
    static const char *want = "a0b467bb960e58387aceb2f39cbf8fbc0ca59b277b040842812d22b7c7db3ba8";
    unsigned char msg[200], d[32];
    uint64_t rng = 0x5eed5eedu;
    int bad_bytes = -1, bad_random = -1;

    for (int i = 0; i < 200; i++)
        msg[i] = (unsigned char)(i * 167 + 13);
    for (int n = 0; n <= 200; n++) {
        digest_of(impl, msg, (size_t)n, WHOLE, NULL, 0, all[n]);
        digest_of(impl, msg, (size_t)n, BYTES, NULL, 0, d);
        if (memcmp(d, all[n], 32) != 0 && bad_bytes < 0)
            bad_bytes = n;
        for (int rep = 0; rep < 8; rep++) {
            digest_of(impl, msg, (size_t)n, RANDOM, &rng, rep < 4 ? 9 : 70, d);
            if (memcmp(d, all[n], 32) != 0 && bad_random < 0)
                bad_random = n;
        }
    }
    ok(bad_bytes < 0, "%s: lengths 0..200 byte by byte = in one call%s", impl,
       bad_bytes < 0 ? "" : " (first difference below)");
    if (bad_bytes >= 0)
        diag("length %d differs", bad_bytes);
    ok(bad_random < 0, "%s: lengths 0..200 in random pieces (8 splits each) = in one call", impl);
    if (bad_random >= 0)
        diag("length %d differs", bad_random);

    char hex[65];
    hex_of(impl, all, sizeof(unsigned char[201][32]), hex);
    ok(strcmp(hex, want) == 0, "%s: digest of the 201 digests matches hashlib", impl);
    if (strcmp(hex, want) != 0)
        diag("got %s, want %s", hex, want);
}

/* The SHA-NI path against the portable one on random messages up to 20 KB
 * in random pieces up to 5000 bytes (many blocks per update call). */
static void test_cross(void)
{
    if (!impl_available("sha-ni")) {
        skip(1, "no SHA-NI on this CPU or build: nothing to compare the portable path with");
        return;
    }
    enum { N = 300, MAXLEN = 20000 };
    unsigned char *buf = malloc(MAXLEN), a[32], b[32];
    uint64_t rng = 42, split = 7;
    int bad = -1;
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(rng_next(&rng) % (MAXLEN + 1));
        rng_fill(&rng, buf, n);
        digest_of("portable", buf, n, WHOLE, NULL, 0, a);
        digest_of("sha-ni", buf, n, RANDOM, &split, 5000, b);
        if (memcmp(a, b, 32) != 0 && bad < 0)
            bad = i;
    }
    ok(bad < 0, "sha-ni = portable on %d random messages of 0..%d bytes", N, MAXLEN);
    if (bad >= 0)
        diag("message %d differs", bad);
    free(buf);
}

static void test_hex(void)
{
    unsigned char d[32];
    char hex[65], want[65];
    memset(hex, 'X', sizeof hex);
    for (int i = 0; i < 32; i++) {
        d[i] = (unsigned char)(i * 0x1f + 0xa0);
        snprintf(want + 2 * i, 3, "%02x", d[i]);
    }
    bl_sha256_hex(d, hex);
    ok(memcmp(hex, want, 64) == 0 && hex[64] == '\0',
       "bl_sha256_hex: lowercase, byte order kept, NUL-terminated");
}

/* ---------------------------------------------------------------- files */

struct calls {
    int n;
    uint64_t done[8], total[8];
    int stop_at;      /* return nonzero on this call (0-based); -1 never */
};

static int record(void *user, uint64_t done, uint64_t total)
{
    struct calls *c = user;
    if (c->n < 8) {
        c->done[c->n] = done;
        c->total[c->n] = total;
    }
    return c->n++ == c->stop_at;
}

/* The output of `sha256sum ARGS` (ARGS quoted for the shell, a glob
 * allowed), malloc'd; NULL if it could not be run or printed nothing. */
static char *sha256sum_run(const char *args)
{
    char cmd[4400];
    size_t len = 0, cap = 1 << 16;
    char *out = malloc(cap);
    snprintf(cmd, sizeof cmd, "sha256sum %s 2>/dev/null", args);
    FILE *p = popen(cmd, "r");
    if (!p || !out) {
        free(out);
        return NULL;
    }
    for (size_t got; (got = fread(out + len, 1, cap - 1 - len, p)) > 0;) {
        len += got;
        if (len == cap - 1) {
            char *bigger = realloc(out, cap *= 2);
            if (!bigger)
                break;
            out = bigger;
        }
    }
    out[len] = '\0';
    int status = pclose(p);
    if (status != 0 || len == 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* The sum sha256sum printed for file: 1 and its hex, or 0. */
static int sha256sum_lookup(const char *out, const char *file, char hex[65])
{
    size_t flen = strlen(file);
    for (const char *line = out; *line;) {
        const char *eol = line + strcspn(line, "\n");
        if ((size_t)(eol - line) == 66 + flen && line[64] == ' ' &&
            memcmp(line + 66, file, flen) == 0) {
            memcpy(hex, line, 64);
            hex[64] = '\0';
            return 1;
        }
        line = *eol ? eol + 1 : eol;
    }
    return 0;
}

static void test_files_vs_sha256sum(const char *dir)
{
    char path[4200], ref[65], hex[65];
    unsigned char msg[200];
    int bad = -1, missing = 0;

    /* files of every length 0..200 as in test_lengths */
    for (int i = 0; i < 200; i++)
        msg[i] = (unsigned char)(i * 167 + 13);
    int wrote = 1;
    for (int n = 0; n <= 200; n++) {
        snprintf(path, sizeof path, "%s/len-%03d", dir, n);
        wrote &= write_file(path, msg, (size_t)n) == 0;
    }

    /* a few MB of random bytes, not a whole number of blocks */
    size_t big_n = (5u << 20) + 12345;
    unsigned char *big = malloc(big_n);
    uint64_t rng = 1234;
    rng_fill(&rng, big, big_n);
    char big_path[4200];
    snprintf(big_path, sizeof big_path, "%s/big.bin", dir);
    wrote &= write_file(big_path, big, big_n) == 0;
    if (!ok(wrote, "temporary files written in '%s'", dir)) {
        free(big);
        return;
    }

    char glob[4300];
    snprintf(glob, sizeof glob, "'%s'/*", dir);
    char *sums = sha256sum_run(glob);
    if (!sums || !sha256sum_lookup(sums, big_path, ref)) {
        skip(4, "sha256sum could not be run (coreutils)");
        free(sums);
        free(big);
        return;
    }

    for (int n = 0; n <= 200; n++) {
        snprintf(path, sizeof path, "%s/len-%03d", dir, n);
        char want[65];
        if (!sha256sum_lookup(sums, path, want)) {
            missing++;
            continue;
        }
        if ((bl_sha256_file(path, hex, NULL, NULL, NULL) != BL_OK || strcmp(hex, want) != 0) &&
            bad < 0)
            bad = n;
    }
    ok(bad < 0 && missing == 0, "bl_sha256_file = sha256sum on files of 0..200 bytes");
    if (bad >= 0 || missing)
        diag("first difference at length %d; %d not listed by sha256sum", bad, missing);

    struct calls c = {.stop_at = -1};
    bl_err err = {0};
    int rc = bl_sha256_file(big_path, hex, record, &c, &err);
    ok(rc == BL_OK && strcmp(hex, ref) == 0, "bl_sha256_file = sha256sum on %zu random bytes",
       big_n);
    if (rc != BL_OK || strcmp(hex, ref) != 0)
        diag("rc %d (%s), got %s, want %s", rc, err.msg, hex, ref);
    ok(c.n == 1 && c.done[0] == big_n && c.total[0] == big_n,
       "progress: one call at the end of a file under 64 MiB, done = total = size");

    /* the same bytes in memory, in random pieces */
    unsigned char d[32];
    uint64_t split = 99;
    digest_of(impl_available("sha-ni") ? "sha-ni" : "portable", big, big_n, RANDOM, &split,
              300000, d);
    bl_sha256_hex(d, hex);
    ok(strcmp(hex, ref) == 0, "the same bytes in memory in random pieces = sha256sum");
    free(sums);
    free(big);
}

/* A sparse file past 128 MiB (no disk used): progress is called after 64
 * and 128 MiB and at the end, and a nonzero return stops the hashing. */
static void test_progress_sparse(const char *dir)
{
    const uint64_t MiB = 1u << 20, size = 128 * MiB + 12345;
    char path[4200], hex[65], ref[65], quoted[4300];
    bl_err err = {0};

    snprintf(path, sizeof path, "%s/sparse.bin", dir);
    FILE *f = fopen(path, "wb");
    int made = f && ftruncate(fileno(f), (off_t)size) == 0;
    if (f)
        made &= fclose(f) == 0;
    if (!made) {
        skip(3, "cannot make a sparse file of 128 MiB in the temporary directory");
        return;
    }

    struct calls c = {.stop_at = -1};
    int rc = bl_sha256_file(path, hex, record, &c, &err);
    snprintf(quoted, sizeof quoted, "'%s'", path);
    char *sums = sha256sum_run(quoted);
    if (sums && sha256sum_lookup(sums, path, ref)) {
        ok(rc == BL_OK && strcmp(hex, ref) == 0, "bl_sha256_file = sha256sum on %llu zero bytes",
           (unsigned long long)size);
        if (rc != BL_OK || strcmp(hex, ref) != 0)
            diag("rc %d (%s), got %s, want %s", rc, err.msg, hex, ref);
    } else {
        skip(1, "sha256sum could not be run (coreutils)");
    }
    free(sums);
    /* done lands on a read boundary at or just past each 64 MiB */
    ok(c.n == 3 && c.done[0] >= 64 * MiB && c.done[0] < 65 * MiB && c.done[1] >= 128 * MiB &&
           c.done[1] < 129 * MiB && c.done[2] == size && c.total[0] == size &&
           c.total[1] == size && c.total[2] == size,
       "progress: called after 64 MiB, after 128 MiB and at the end, with the file size");
    if (c.n != 3)
        diag("%d calls", c.n);

    /* stop on the first call */
    struct calls s = {.stop_at = 0};
    memset(&err, 0, sizeof err);
    memset(hex, 'X', sizeof hex);
    rc = bl_sha256_file(path, hex, record, &s, &err);
    ok(rc == BL_ESTOPPED && err.code == BL_ESTOPPED && s.n == 1 && hex[0] == '\0' &&
           strstr(err.msg, path) != NULL,
       "progress returning nonzero after 64 MiB: BL_ESTOPPED, no digest, path in message");
    diag("message: %s", err.msg);
    remove(path);
}

static void test_stop_at_end(const char *dir)
{
    char path[4200], hex[65];
    bl_err err = {0};
    snprintf(path, sizeof path, "%s/small.txt", dir);
    write_file(path, "abc", 3);
    struct calls s = {.stop_at = 0};
    memset(hex, 'X', sizeof hex);
    int rc = bl_sha256_file(path, hex, record, &s, &err);
    ok(rc == BL_ESTOPPED && err.code == BL_ESTOPPED && s.n == 1 && s.done[0] == 3 &&
           s.total[0] == 3 && hex[0] == '\0' && strstr(err.msg, path) != NULL,
       "progress returning nonzero at the end of a small file: BL_ESTOPPED");
    rc = bl_sha256_file(path, hex, record, &(struct calls){.stop_at = -1}, NULL);
    ok(rc == BL_OK &&
           strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
       "the same file with a callback that lets it finish: the digest of 'abc'");
}

static void test_errors(const char *dir)
{
    char path[4200], hex[65];
    bl_err err = {0};

    snprintf(path, sizeof path, "%s/no-such-file", dir);
    memset(hex, 'X', sizeof hex);
    int rc = bl_sha256_file(path, hex, NULL, NULL, &err);
    ok(rc == BL_EIO && err.code == BL_EIO && strstr(err.msg, path) && hex[0] == '\0',
       "missing file: BL_EIO, the path in the message, no digest");
    diag("message: %s", err.msg);
    ok(bl_sha256_file(path, hex, NULL, NULL, NULL) == BL_EIO, "missing file, err NULL: BL_EIO");

    memset(&err, 0, sizeof err);
    rc = bl_sha256_file(dir, hex, NULL, NULL, &err);
    ok(rc == BL_EIO && err.code == BL_EIO && strstr(err.msg, dir) &&
           strstr(err.msg, "directory"),
       "a directory: BL_EIO, 'is a directory' with the path");
    diag("message: %s", err.msg);

    /* a read that fails after a successful open: /proc/self/mem at offset 0
     * (address 0 is never mapped) gives EIO on Linux */
    memset(&err, 0, sizeof err);
    if (access("/proc/self/mem", R_OK) == 0) {
        rc = bl_sha256_file("/proc/self/mem", hex, NULL, NULL, &err);
        ok(rc == BL_EIO && strstr(err.msg, "/proc/self/mem") && strstr(err.msg, "cannot read"),
           "a read error: BL_EIO, 'cannot read' with the path");
        diag("message: %s", err.msg);
    } else {
        skip(1, "no /proc/self/mem to provoke a read error");
    }
}

/* ---------------------------------------------------------------- test data */

/* $BL_TESTDATA/golden/SHA256SUMS: "hex  path" lines, paths under golden/. */
static void test_golden_sums(void)
{
    char *sums = td_path("golden/SHA256SUMS");
    if (!sums) {
        skip(1, "test data 'golden/SHA256SUMS' not found (BL_TESTDATA unset or incomplete)");
        return;
    }
    size_t n;
    char *text = read_file(sums, &n);
    int checked = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strlen(line) < 67 || line[64] != ' ')
            continue;
        line[64] = '\0';
        const char *rel = line + 65 + (line[65] == ' ' || line[65] == '*');
        char relpath[4200], hex[65];
        bl_err err = {0};
        snprintf(relpath, sizeof relpath, "golden/%s", rel);
        char *p = td_path(relpath);
        int rc = p ? bl_sha256_file(p, hex, NULL, NULL, &err) : BL_EIO;
        ok(rc == BL_OK && strcmp(hex, line) == 0, "SHA256SUMS: %s", relpath);
        if (rc != BL_OK || strcmp(hex, line) != 0)
            diag("rc %d (%s), got %s, want %s", rc, p ? err.msg : "absent", hex, line);
        checked++;
        free(p);
    }
    ok(checked > 0, "SHA256SUMS: %d files checked", checked);
    free(text);
    free(sums);
}

static int is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* $BL_TESTDATA/README.md: tables under "## <dir>/" headings whose rows
 * start with `file` names and end with a sha256 cell: a full sum, or a
 * prefix ending in an ellipsis ("196139668be6…, 1ce1664773c5…" for two
 * files).  Names starting with '.' ("(+ `.inp`, `.out`)") are not files. */
static void test_readme_sums(void)
{
    char *readme = td_path("README.md");
    if (!readme) {
        skip(1, "test data 'README.md' not found (BL_TESTDATA unset or incomplete)");
        return;
    }
    size_t len;
    char *text = read_file(readme, &len);
    char dir[256] = "";
    int full = 0, prefix = 0;

    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, "## ", 3) == 0) {
            size_t w = strcspn(line + 3, " ");
            dir[0] = '\0';
            if (w > 0 && w < sizeof dir && line[3 + w - 1] == '/')
                snprintf(dir, sizeof dir, "%.*s", (int)w, line + 3);
            continue;
        }
        if (!dir[0] || strncmp(line, "| `", 3) != 0)
            continue;

        /* the first and the last cell */
        char *first = line + 1, *end = first + strcspn(first, "|");
        if (!*end)
            continue;
        *end = '\0';
        char *last = strrchr(end + 1, '|');   /* the closing bar */
        if (!last)
            continue;
        *last = '\0';
        last = strrchr(end + 1, '|');
        last = last ? last + 1 : end + 1;

        /* the names */
        const char *names[8];
        int n_names = 0;
        for (char *q = first; (q = strchr(q, '`')) != NULL;) {
            char *close = strchr(q + 1, '`');
            if (!close)
                break;
            *close = '\0';
            if (q[1] != '.' && n_names < 8)
                names[n_names++] = q + 1;
            q = close + 1;
        }

        /* the sums: comma-separated, each all hex, an optional ellipsis */
        const char *sums[8];
        size_t sum_len[8];
        int n_sums = 0, all_hex = 1;
        for (char *q = last; *q && all_hex;) {
            q += strspn(q, " ,");
            if (!*q)
                break;
            size_t k = strcspn(q, " ,\xe2");   /* \xe2: the ellipsis' first byte */
            if (k < 8 || k > 64 || !is_hex(q, k) || n_sums == 8) {
                all_hex = 0;
                break;
            }
            sums[n_sums] = q;
            sum_len[n_sums++] = k;
            q += k;
            if (strncmp(q, "\xe2\x80\xa6", 3) == 0)
                q += 3;
        }
        if (!all_hex || n_sums == 0 || n_sums != n_names)
            continue;

        for (int i = 0; i < n_sums; i++) {
            char rel[512], hex[65];
            bl_err err = {0};
            snprintf(rel, sizeof rel, "%s%s", dir, names[i]);
            char *p = td_path(rel);
            int rc = p ? bl_sha256_file(p, hex, NULL, NULL, &err) : BL_EIO;
            int same = rc == BL_OK && strncmp(hex, sums[i], sum_len[i]) == 0;
            ok(same, "README.md: %s (%s)", rel, sum_len[i] == 64 ? "full sum" : "prefix");
            if (!same)
                diag("rc %d (%s), got %s, want %.*s", rc, p ? err.msg : "absent", hex,
                     (int)sum_len[i], sums[i]);
            if (sum_len[i] == 64)
                full++;
            else
                prefix++;
            free(p);
        }
    }
    ok(full > 0, "README.md: %d files checked by full sum, %d by prefix", full, prefix);
    free(text);
    free(readme);
}

int main(void)
{
    unsigned char all[N_IMPLS][201][32];
    int have[N_IMPLS];

    {
        struct bl_sha256 h;
        bl_sha256_init(&h);
        diag("bl_sha256_init uses the %s compression function", bli_sha256_impl_name(&h));
    }
    for (int i = 0; i < N_IMPLS; i++) {
        have[i] = impl_available(impls[i]);
        if (!have[i]) {
            char why[128];
            snprintf(why, sizeof why, "the %s compression function is not available on this "
                     "CPU or build", impls[i]);
            skip(10, why);
            continue;
        }
        test_nist(impls[i]);
        test_lengths(impls[i], all[i]);
    }
    if (have[0] && have[1])
        ok(memcmp(all[0], all[1], sizeof all[0]) == 0,
           "sha-ni = portable on every length 0..200");
    else
        skip(1, "only one compression function here");
    test_cross();
    test_hex();

    char *dir = tmp_dir();
    if (!ok(dir != NULL, "a temporary directory"))
        return done_testing();
    test_files_vs_sha256sum(dir);
    test_progress_sparse(dir);
    test_stop_at_end(dir);
    test_errors(dir);
    rm_rf(dir);
    free(dir);

    test_golden_sums();
    test_readme_sums();
    return done_testing();
}
