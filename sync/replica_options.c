#include "replica_options.h"

#include <stdlib.h>
#include <string.h>

void replica_options_free(struct replica_options *o)
{
	free(o->sync_url);
	free(o->auth_token);
	free(o->encryption_key);
	free(o->tls_ca_file);
	memset(o, 0, sizeof *o);
}
