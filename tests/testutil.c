/* tests/testutil.c: see testutil.h. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "testutil.h"

char *td_path(const char *rel)
{
    const char *root = getenv("BL_TESTDATA");
    if (!root || !*root)
        return NULL;
    size_t n = strlen(root) + strlen(rel) + 2;
    char *p = malloc(n);
    if (!p)
        return NULL;
    snprintf(p, n, "%s/%s", root, rel);
    if (access(p, R_OK) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

char *td_require(const char *rel)
{
    char *p = td_path(rel);
    if (!p) {
        char why[512];
        snprintf(why, sizeof why, "test data '%s' not found under BL_TESTDATA='%s'", rel,
                 getenv("BL_TESTDATA") ? getenv("BL_TESTDATA") : "");
        skip_all(why);
    }
    return p;
}

void *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        char *nb = realloc(buf, 2 * cap + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    if (buf) {
        buf[len] = '\0';
        *n = len;
    }
    return buf;
}

int write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int bad = n && fwrite(data, 1, n, f) != n;
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}

float *read_f32(const char *path, size_t n)
{
    size_t sz;
    float *f = read_file(path, &sz);
    if (f && sz != n * sizeof(float)) {
        fprintf(stderr, "%s: %zu bytes, expected %zu\n", path, sz, n * sizeof(float));
        free(f);
        return NULL;
    }
    return f;
}

cJSON *read_json(const char *path)
{
    size_t n;
    char *s = read_file(path, &n);
    if (!s)
        return NULL;
    cJSON *j = cJSON_ParseWithLength(s, n);
    free(s);
    return j;
}

int64_t json_ids(const cJSON *arr, int32_t *ids, int64_t cap)
{
    int64_t n = 0;
    const cJSON *e;
    if (!cJSON_IsArray(arr))
        return -1;
    cJSON_ArrayForEach(e, arr) {
        if (!cJSON_IsNumber(e) || n >= cap)
            return -1;
        ids[n++] = (int32_t)e->valuedouble;
    }
    return n;
}

double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || isnan(d))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

char *tmp_dir(void)
{
    const char *base = getenv("TMPDIR");
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/bitlens-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

void rm_rf(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}
