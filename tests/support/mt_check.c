/*
 * mt_check.c - the one main() shape of every Check test binary.
 */
#include <stdlib.h>

#include "mt_check.h"

int mt_check_main(Suite *s, int nofork)
{
	SRunner *sr = srunner_create(s);
	int failed;

	if (nofork)
		srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
