/*
 * main.c - mark-metadata: the metadata service process. Wiring only; see metadata.h.
 */
#include "metadata.h"

int main(int argc, char **argv)
{
	metadata_config cfg;

	return mk_svc_main(argc, argv, &metadata_app, &cfg);
}
