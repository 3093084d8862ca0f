/* analysis/percentiles.c: percentile blocks (see bitlens/analysis.h). */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>

#include <bitlens/analysis.h>
#include "internal.h"

void bl_percentiles(double *v, int64_t n, struct bl_percentiles *o)
{
    /* NaNs to the end, then sort the rest */
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (!isnan(v[i]))
            v[k++] = v[i];
    o->nan = n - k;
    o->n = k;
    if (k == 0) {
        o->min = o->p01 = o->p05 = o->median = o->p95 = o->p99 = o->max = o->mean = NAN;
        return;
    }
    gsl_sort(v, 1, (size_t)k);
    o->min = v[0];
    o->max = v[k - 1];
    o->p01 = gsl_stats_quantile_from_sorted_data(v, 1, (size_t)k, 0.01);
    o->p05 = gsl_stats_quantile_from_sorted_data(v, 1, (size_t)k, 0.05);
    o->median = gsl_stats_quantile_from_sorted_data(v, 1, (size_t)k, 0.5);
    o->p95 = gsl_stats_quantile_from_sorted_data(v, 1, (size_t)k, 0.95);
    o->p99 = gsl_stats_quantile_from_sorted_data(v, 1, (size_t)k, 0.99);
    o->mean = gsl_stats_mean(v, 1, (size_t)k);
}
