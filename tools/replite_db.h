/* `replite db`: create, list and delete the databases of a running
 * `replite serve` through its admin API (server/admin.h). */
#ifndef REPLITE_TOOLS_DB_H
#define REPLITE_TOOLS_DB_H

/* argv[0] is "db".  Returns the process exit code. */
int replite_db_main(int argc, char **argv);

#endif
