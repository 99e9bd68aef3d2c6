/* Which Accept-Encoding values get zstd answers from the primary: the
 * weights and wildcards of RFC 9110 §12.5.3, in the forms clients send. */
#include "fixture.h"
#include "server/http_zstd.h"

START_TEST(test_listed_zstd_is_accepted)
{
	ck_assert_int_eq(http_zstd_accepted("zstd"), 1);
	ck_assert_int_eq(http_zstd_accepted("ZSTD"), 1);
	ck_assert_int_eq(http_zstd_accepted("deflate, gzip, br, zstd"), 1);
	ck_assert_int_eq(http_zstd_accepted("gzip,zstd"), 1);
	ck_assert_int_eq(http_zstd_accepted("zstd;q=0.5, gzip"), 1);
	ck_assert_int_eq(http_zstd_accepted("zstd ; q=1"), 1);
	ck_assert_int_eq(http_zstd_accepted("zstd;q=0.001"), 1);
	ck_assert_int_eq(http_zstd_accepted("*"), 1);
	ck_assert_int_eq(http_zstd_accepted("gzip, *;q=0.1"), 1);
}
END_TEST

START_TEST(test_absent_or_refused_zstd_is_not)
{
	ck_assert_int_eq(http_zstd_accepted(NULL), 0);
	ck_assert_int_eq(http_zstd_accepted(""), 0);
	ck_assert_int_eq(http_zstd_accepted("identity"), 0);
	ck_assert_int_eq(http_zstd_accepted("gzip, deflate, br"), 0);
	ck_assert_int_eq(http_zstd_accepted("zstd;q=0"), 0);
	ck_assert_int_eq(http_zstd_accepted("zstd;q=0.000"), 0);
	ck_assert_int_eq(http_zstd_accepted("zstd; q=0.0, gzip"), 0);
	/* an explicit refusal wins over the wildcard */
	ck_assert_int_eq(http_zstd_accepted("*, zstd;q=0"), 0);
	ck_assert_int_eq(http_zstd_accepted("*;q=0"), 0);
	/* names that only start or end like it */
	ck_assert_int_eq(http_zstd_accepted("zstdx, xzstd"), 0);
	ck_assert_int_eq(http_zstd_accepted("x-zstd"), 0);
}
END_TEST

static Suite *http_zstd_suite(void)
{
	Suite *s = suite_create("http_zstd");
	TCase *tc = tcase_create("accept_encoding");

	tcase_add_test(tc, test_listed_zstd_is_accepted);
	tcase_add_test(tc, test_absent_or_refused_zstd_is_not);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(http_zstd_suite());
}
