/*
 * mt_check.h - run one Check suite and turn the result into an exit status.
 * Integration suites run without forking (nofork = 1) because the
 * processes they start must outlive a single test.
 */
#ifndef MT_CHECK_H
#define MT_CHECK_H

#include <check.h>

int mt_check_main(Suite *s, int nofork);

#endif
