/* lib/common.c: status strings, error messages, file mapping, threads. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"
#include "kernels.h"


const char *bl_strerror(int status)
{
    switch (status) {
    case BL_OK: return "success";
    case BL_EIO: return "input/output error";
    case BL_EFORMAT: return "malformed input";
    case BL_EUNSUPPORTED: return "unsupported";
    case BL_EINVAL: return "invalid argument";
    case BL_ENOMEM: return "out of memory";
    case BL_ERANGE: return "out of range";
    case BL_EMISMATCH: return "inputs disagree";
    case BL_ENOTFOUND: return "not found";
    case BL_ESTOPPED: return "stopped by a hook";
    default: return "unknown status";
    }
}

const char *bl_version(void)
{
    return BL_VERSION;
}

void bli_assert_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "bitlens: %s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}

int bli_verr(bl_err *err, int code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

int bli_err(bl_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bli_verr(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int bli_map_file(struct bli_map *m, const char *path, bl_err *err)
{
    struct stat st;
    int fd;

    m->data = NULL;
    m->size = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return bli_err(err, BL_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return bli_err(err, BL_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return bli_err(err, BL_EIO, "%s: is a directory", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return bli_err(err, BL_EIO, "%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return bli_err(err, BL_EIO, "%s: cannot map: %s", path, strerror(e));
        }
        m->data = p;
        m->size = (size_t)st.st_size;
    }
    close(fd);
    return BL_OK;
}

void bli_unmap(struct bli_map *m)
{
    if (m->data)
        munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

const char *bli_basename(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

void *bli_calloc(size_t n, size_t size)
{
    if (n == 0 || size == 0)
        return calloc(1, 1);
    return calloc(n, size);
}

void *bli_malloc_array(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    return malloc(n && size ? n * size : 1);
}

char *bli_strdup(const char *s)
{
    return bli_strndup(s, strlen(s));
}

char *bli_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

int bli_threads(int n)
{
    if (n > 0)
        return n;
#ifdef _OPENMP
    /* the processors, or OMP_NUM_THREADS where the user set it */
    return omp_get_max_threads();
#else
    long p = sysconf(_SC_NPROCESSORS_ONLN);
    return p > 0 ? (int)p : 1;
#endif
}

int bl_set_threads(int n)
{
    n = bli_threads(n);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    bli_blas_single_threaded();   /* bitlens splits the work itself */
    return n;
}


int bli_match_globs(const char *globs, const char *name)
{
    const char *s = globs;
    char one[256];
    while (*s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n > 0 && n < sizeof one) {
            memcpy(one, s, n);
            one[n] = '\0';
            if (fnmatch(one, name, 0) == 0)
                return 1;
        }
        if (!e)
            break;
        s = e + 1;
    }
    return 0;
}
