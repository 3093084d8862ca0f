/* bitlens/common.h: status codes, error messages, version.
 *
 * Every function of libbitlens that can fail returns 0 (BL_OK) or a
 * negative BL_E* status.  Constructors take a `bl_err *` (may be NULL) that
 * receives a one-line message naming the file, the offset and the problem,
 * for example
 *
 *   stories.gguf: tensor 'blk.3.attn_q.weight': data at offset 91236 + 16384
 *   runs past the end of the file (size 90112)
 *
 * Messages are lowercase with no final period.  The library never prints and
 * never exits; bin/ decides what to do with a status.
 */
#ifndef BITLENS_COMMON_H
#define BITLENS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BL_VERSION "0.1.0"

/* Status codes.  Stable: they are part of the ABI. */
enum bl_status {
    BL_OK = 0,
    BL_EIO = -1,          /* a file cannot be opened, read, mapped or written */
    BL_EFORMAT = -2,      /* malformed input: bad magic, truncation, an offset or
                             length out of bounds, inconsistent fields */
    BL_EUNSUPPORTED = -3, /* well-formed but not supported: version, tensor
                             type, architecture, tokenizer model */
    BL_EINVAL = -4,       /* an argument value is out of its domain */
    BL_ENOMEM = -5,       /* allocation failed */
    BL_ERANGE = -6,       /* a length exceeds a limit (context, buffer) */
    BL_EMISMATCH = -7,    /* two inputs disagree (tokenizer vs model, ...) */
    BL_ENOTFOUND = -8,    /* a key, tensor or name is absent */
    BL_ESTOPPED = -9      /* a hook callback asked the run to stop */
};

/* Detail of a failure.  `msg` is always NUL-terminated. */
typedef struct bl_err {
    int code;       /* the status that was returned */
    char msg[512];  /* what went wrong, naming the file and the offset */
} bl_err;

/* A static string describing `status` ("malformed input", ...).  Never NULL. */
const char *bl_strerror(int status);

/* The library version, BL_VERSION, as compiled into the shared object. */
const char *bl_version(void);

/* Threads.  Sets the number of OpenMP threads for this process (a
 * process-wide runtime; bitlens itself keeps no global state) and makes
 * OpenBLAS run each call on its caller: bitlens splits matrix products across
 * its own threads, so OpenBLAS's pthreads never compete with them for cores.
 * n <= 0 selects OMP_NUM_THREADS if set, else the number of online
 * processors.  Returns the number set. */
int bl_set_threads(int n);

/* The shared object that answers cblas_sgemm
 * ("/lib/x86_64-linux-gnu/libopenblas.so.0"), and OpenBLAS's description of
 * its build ("OpenBLAS 0.3.21 DYNAMIC_ARCH ..."), or "unknown".  Static
 * strings. */
const char *bl_blas_name(void);
const char *bl_blas_config(void);

#ifdef __cplusplus
}
#endif
#endif
