/* tests/testutil.h: test data paths and readers shared by the C tests. */
#ifndef BITLENS_TESTUTIL_H
#define BITLENS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* $BL_TESTDATA/rel, or NULL (with the reason in a static buffer) if the
 * test data or that file is absent.  Returns a malloc'd string. */
char *td_path(const char *rel);

/* Skip the whole test program unless rel exists under the test data. */
char *td_require(const char *rel);

/* Read a whole file (NUL-terminated for convenience); *n receives its size.
 * NULL if it cannot be read. */
void *read_file(const char *path, size_t *n);

/* Write n bytes to path (created or replaced): 0, or -1. */
int write_file(const char *path, const void *data, size_t n);

/* Read a raw little-endian float32 file of exactly n floats (NULL otherwise). */
float *read_f32(const char *path, size_t n);

/* Parse a JSON file (NULL on failure). */
cJSON *read_json(const char *path);

/* ids from a JSON array of integers; returns the count, -1 on error. */
int64_t json_ids(const cJSON *arr, int32_t *ids, int64_t cap);

/* max |a[i] - b[i]| */
double max_abs_diff(const float *a, const float *b, size_t n);

/* A fresh temporary directory (removed by the caller with rm_rf). */
char *tmp_dir(void);
void rm_rf(const char *dir);

#endif
