/*
 * main.c - mark-llm: the llm service process. Wiring only; see llm.h.
 */
#include "llm.h"

int main(int argc, char **argv)
{
	llm_config cfg;

	return mk_svc_main(argc, argv, &llm_app, &cfg);
}
