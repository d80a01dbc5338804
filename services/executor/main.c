/*
 * main.c - mark-executor: the executor service process. Wiring only; see executor.h.
 */
#include "executor.h"

int main(int argc, char **argv)
{
	executor_config cfg;

	return mk_svc_main(argc, argv, &executor_app, &cfg);
}
