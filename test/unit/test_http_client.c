/* The replica's HTTP client against a real primary on loopback. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "server_fixture.h"
#include "sync/http_client.h"

static struct http_client *client_for(const char *url, const char *token,
				      size_t max_body)
{
	struct http_client_config cfg = {url, token, 2000, max_body,
					 0,   NULL,  NULL};
	struct http_client *c = NULL;
	char err[256] = "";

	ck_assert_msg(http_client_new(&cfg, &c, err, sizeof err) == 0, "%s",
		      err);
	return c;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST(test_normalize_url)
{
	char err[256];
	char *u;

	u = http_client_normalize_url("libsql://db.example.com/", err,
				      sizeof err);
	ck_assert_str_eq(u, "https://db.example.com");
	free(u);
	u = http_client_normalize_url("HTTP://127.0.0.1:8080", err, sizeof err);
	ck_assert_str_eq(u, "http://127.0.0.1:8080");
	free(u);
	ck_assert_ptr_null(
	    http_client_normalize_url("127.0.0.1:8080", err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "http://"));
	ck_assert_ptr_null(
	    http_client_normalize_url("ftp://host", err, sizeof err));
	ck_assert_ptr_null(
	    http_client_normalize_url("http:///path", err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "no host"));
	ck_assert_ptr_null(
	    http_client_normalize_url("http://h/?x=1", err, sizeof err));
}
END_TEST

START_TEST(test_get_and_post)
{
	struct server_fixture srv;
	struct http_client_response r;
	struct http_client *c;
	char err[256] = "";
	const char *sql = "{\"requests\":[{\"type\":\"execute\",\"stmt\":"
			  "{\"sql\":\"SELECT 40 + 2\"}},{\"type\":\"close\"}]}";

	server_fixture_start(&srv, NULL);
	c = client_for(srv.url, NULL, 1 << 20);
	ck_assert_msg(http_client_request(c, "GET", "/info", NULL, 0, 2000, &r,
					  err, sizeof err) == 0,
		      "%s", err);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.content_type, "application/json");
	ck_assert_ptr_nonnull(strstr((char *)r.body, "\"database_id\""));
	http_client_response_free(&r);

	ck_assert_int_eq(http_client_request(c, "POST", "/v2/pipeline", sql,
					     strlen(sql), 2000, &r, err,
					     sizeof err),
			 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr((char *)r.body, "\"42\""));
	http_client_response_free(&r);

	/* An HTTP error is a response, not a failure. */
	ck_assert_int_eq(http_client_request(c, "GET", "/no/such/route", NULL,
					     0, 2000, &r, err, sizeof err),
			 0);
	ck_assert_int_eq(r.status, 404);
	http_client_response_free(&r);
	http_client_free(c);
	server_fixture_stop(&srv);
}
END_TEST

START_TEST(test_body_limit)
{
	struct server_fixture srv;
	struct http_client_response r;
	struct http_client *c;
	char err[256] = "";

	server_fixture_start(&srv, NULL);
	c = client_for(srv.url, NULL, 100);
	/* /export/1 is a whole database file: far over 100 bytes. */
	ck_assert_int_eq(http_client_request(c, "GET", "/export/1", NULL, 0,
					     2000, &r, err, sizeof err),
			 -1);
	ck_assert_msg(strstr(err, "larger than 100 bytes") != NULL, "%s", err);
	/* The client stays usable. */
	ck_assert_int_eq(http_client_request(c, "GET", "/health", NULL, 0, 2000,
					     &r, err, sizeof err),
			 0);
	ck_assert_int_eq(r.status, 200);
	http_client_response_free(&r);
	http_client_free(c);
	server_fixture_stop(&srv);
}
END_TEST

START_TEST(test_timeout_names_the_cause)
{
	struct server_fixture srv;
	struct http_client_response r;
	struct http_client *c;
	char err[256] = "";

	server_fixture_start(&srv, NULL);
	c = client_for(srv.url, NULL, 1 << 20);
	/* Caught up: the server holds the long-poll for 10 s. */
	ck_assert_int_eq(http_client_request(c, "GET", "/sync/1/1/2?wait=10",
					     NULL, 0, 300, &r, err, sizeof err),
			 -1);
	ck_assert_msg(strstr(err, "within 300 ms") != NULL, "%s", err);
	http_client_free(c);
	server_fixture_stop(&srv);
}
END_TEST

struct canceller {
	struct http_client *c;
	long after_ms;
};

static void *cancel_later(void *arg)
{
	struct canceller *k = arg;
	struct timespec ts = {0, k->after_ms * 1000000L};

	nanosleep(&ts, NULL);
	http_client_cancel(k->c);
	return NULL;
}

START_TEST(test_cancel_from_another_thread)
{
	struct server_fixture srv;
	struct http_client_response r;
	struct canceller k;
	pthread_t t;
	char err[256] = "";
	int64_t t0;

	server_fixture_start(&srv, NULL);
	k.c = client_for(srv.url, NULL, 1 << 20);
	k.after_ms = 200;
	pthread_create(&t, NULL, cancel_later, &k);
	t0 = now_ms();
	ck_assert_int_eq(http_client_request(k.c, "GET", "/sync/1/1/2?wait=20",
					     NULL, 0, 30000, &r, err,
					     sizeof err),
			 -1);
	pthread_join(t, NULL);
	ck_assert_msg(strstr(err, "cancelled") != NULL, "%s", err);
	/* Well before the server's 20 s wait or the 30 s timeout. */
	ck_assert_int_lt(now_ms() - t0, 15000);
	/* Cancelled stays cancelled until uncancel. */
	ck_assert_int_eq(http_client_request(k.c, "GET", "/health", NULL, 0,
					     2000, &r, err, sizeof err),
			 -1);
	http_client_uncancel(k.c);
	ck_assert_int_eq(http_client_request(k.c, "GET", "/health", NULL, 0,
					     2000, &r, err, sizeof err),
			 0);
	http_client_response_free(&r);
	http_client_free(k.c);
	server_fixture_stop(&srv);
}
END_TEST

/* A port that nothing listens on: bind one, note it, close it. */
static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

START_TEST(test_unreachable_primary)
{
	struct http_client_response r;
	struct http_client *c;
	char url[64], err[256] = "";

	snprintf(url, sizeof url, "http://127.0.0.1:%d", free_port());
	c = client_for(url, NULL, 1 << 20);
	ck_assert_int_eq(http_client_request(c, "GET", "/info", NULL, 0, 2000,
					     &r, err, sizeof err),
			 -1);
	ck_assert_msg(strstr(err, "cannot reach the primary at") != NULL &&
			  strstr(err, url) != NULL,
		      "%s", err);
	http_client_free(c);
}
END_TEST

START_TEST(test_bearer_token)
{
	static const char key[] =
	    "-----BEGIN PUBLIC KEY-----\n"
	    "MCowBQYDK2VwAyEAof6SKNh9Ip3Dz6w7N9QZkoFpkLjbUOA1MgxQD7zgBoU=\n"
	    "-----END PUBLIC KEY-----\n";
	struct server_fixture srv;
	struct http_client_response r;
	struct http_client *c;
	char *key_path, err[256] = "";
	char *dir = fixture_tmpdir();
	const char *args[3] = {"--auth-jwt-key-file", NULL, NULL};
	FILE *fp;

	key_path = fixture_path(dir, "key.pem");
	fp = fopen(key_path, "w");
	fputs(key, fp);
	fclose(fp);
	args[1] = key_path;
	server_fixture_start(&srv, args);
	/* The token is sent: a wrong one is refused as malformed, not as
	 * missing. */
	c = client_for(srv.url, "not-a-jwt", 1 << 20);
	ck_assert_int_eq(http_client_request(c, "GET", "/info", NULL, 0, 2000,
					     &r, err, sizeof err),
			 0);
	ck_assert_int_eq(r.status, 401);
	ck_assert_ptr_null(strstr((char *)r.body, "AUTH_HEADER_NOT_FOUND"));
	http_client_response_free(&r);
	http_client_free(c);
	c = client_for(srv.url, NULL, 1 << 20);
	ck_assert_int_eq(http_client_request(c, "GET", "/info", NULL, 0, 2000,
					     &r, err, sizeof err),
			 0);
	ck_assert_int_eq(r.status, 401);
	ck_assert_ptr_nonnull(strstr((char *)r.body, "AUTH_HEADER_NOT_FOUND"));
	http_client_response_free(&r);
	http_client_free(c);
	server_fixture_stop(&srv);
	free(key_path);
	fixture_rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("http_client");
	TCase *tc = tcase_create("http_client");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_normalize_url);
	tcase_add_test(tc, test_get_and_post);
	tcase_add_test(tc, test_body_limit);
	tcase_add_test(tc, test_timeout_names_the_cause);
	tcase_add_test(tc, test_cancel_from_another_thread);
	tcase_add_test(tc, test_unreachable_primary);
	tcase_add_test(tc, test_bearer_token);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
