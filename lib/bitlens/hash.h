/* bitlens/hash.h: SHA-256 (FIPS 180-4), for the model identity in traces.
 *
 * Written here from the standard because bitlens links no crypto library.
 * A streaming context hashes a message fed in pieces of any size; the digest
 * is the same however the message is split.  bl_sha256_file hashes a file
 * through a fixed buffer, so files larger than memory are fine.
 *
 *   struct bl_sha256 h;
 *   unsigned char d[32];
 *   char hex[65];
 *   bl_sha256_init(&h);
 *   bl_sha256_update(&h, "ab", 2);
 *   bl_sha256_update(&h, "c", 1);
 *   bl_sha256_final(&h, d);
 *   bl_sha256_hex(d, hex);   // "ba7816bf...f20015ad"
 *
 * The compression function runs on the CPU's SHA extensions (x86 SHA-NI)
 * when the CPU has them, else on a portable implementation; both give the
 * same digests (tests/test-sha256.c checks them against each other).
 *
 * Thread safety: contexts are independent; use one per thread.
 */
#ifndef BITLENS_HASH_H
#define BITLENS_HASH_H

#include <bitlens/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BL_SHA256_SIZE 32        /* bytes in a digest */
#define BL_SHA256_HEX_SIZE 65    /* 64 lowercase hex digits and a NUL */

/* A streaming SHA-256 context.  Embed it (on the stack, in a struct): it
 * owns no memory, so there is nothing to release.  The fields are for the
 * implementation; read none of them. */
struct bl_sha256 {
    uint32_t state[8];          /* H0..H7 of FIPS 180-4: the hash so far */
    uint64_t n_bytes;           /* message bytes fed so far */
    unsigned char block[64];    /* the first n_bytes % 64 bytes of the next
                                   block, waiting for the rest */
    int impl;                   /* compression function chosen by _init */
};

/* Start a new message.  Also resets a context that was used before. */
void bl_sha256_init(struct bl_sha256 *h);

/* Append n bytes at data to the message (n may be 0, data then may be
 * NULL).  The bytes are consumed before it returns: the caller keeps
 * ownership of data. */
void bl_sha256_update(struct bl_sha256 *h, const void *data, size_t n);

/* Finish the message and write its 32-byte digest to out (owned by the
 * caller).  The context is then spent: call bl_sha256_init before using it
 * again. */
void bl_sha256_final(struct bl_sha256 *h, unsigned char out[32]);

/* The digest as 64 lowercase hex digits and a NUL, written to out (owned by
 * the caller, 65 bytes). */
void bl_sha256_hex(const unsigned char digest[32], char out[65]);

/* Hash the file at path and write its digest in hex (as bl_sha256_hex) to
 * out_hex, owned by the caller.  The file is read in 64 KiB blocks, never
 * held whole in memory.  A directory is refused; any other file is read to
 * its end (a FIFO or /dev/stdin included).
 *
 * progress, if not NULL, is called with user, the bytes hashed so far and
 * the size of the file (0 when it has none: a FIFO) each time another 64 MiB
 * has been hashed, and once at the end with done the whole length.  A
 * nonzero return stops the hashing.  It must not call back into this
 * function with the same user data.
 *
 * Returns BL_OK; BL_EIO if the file cannot be opened, is a directory or a
 * read fails; BL_ESTOPPED if progress asked to stop.  On failure out_hex is
 * the empty string and err (if not NULL) names the path and the problem. */
int bl_sha256_file(const char *path, char out_hex[65],
                   int (*progress)(void *user, uint64_t done, uint64_t total),
                   void *user, bl_err *err);

#ifdef __cplusplus
}
#endif
#endif
