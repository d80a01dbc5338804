/*
 * mt_prom.h - a strict reader of the Prometheus text format (0.0.4) for
 * tests: it checks every line and reads sample values back.
 */
#ifndef MT_PROM_H
#define MT_PROM_H

#include <stddef.h>

/*
 * Check text line by line: "# HELP name text" and "# TYPE name type" once
 * per family and before its samples; each sample `name{labels} value` with
 * valid names, quoted and escaped label values and a number; samples belong
 * to the family last typed (a histogram's _bucket/_sum/_count); counters
 * end in _total; each histogram series has ascending le buckets, cumulative
 * counts, a last le="+Inf" equal to its _count, and a _sum. Returns 0, or
 * -1 with the offending line and why in err.
 */
int mt_prom_check(const char *text, char *err, size_t errlen);

/*
 * The value of sample `name` whose labels include every "k=\"v\"" pair in
 * labels (a comma-separated list as written in the text, or "" for any),
 * summed over all matching series. Returns the sum (0 when none matched).
 */
double mt_prom_value(const char *text, const char *name, const char *labels);

#endif
