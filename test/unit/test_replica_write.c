/* Placeholder: being written. */
#include "fixture.h"
#include "replica_fixture.h"

int main(void)
{
	Suite *s = suite_create("replica_write");

	return fixture_run(s);
}
