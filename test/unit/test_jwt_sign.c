/* Key pairs made by jwt_sign_keygen and tokens signed by jwt_sign_token,
 * checked by the verifier the server uses (jwt.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "base/base64.h"
#include "base/fileio.h"
#include "fixture.h"
#include "server/jwt.h"
#include "server/jwt_sign.h"
#include "server/util.h"

#define NOW 1700000000

static char *tmp;

static void setup(void)
{
	tmp = fixture_tmpdir();
}

static void teardown(void)
{
	fixture_rmdir(tmp);
	tmp = NULL;
}

struct pair {
	char *dir, *priv, *pub;
	struct jwt_sign_key *key;
	struct jwt_keys *keys;
};

/* A key pair generated in tmp/name, loaded both ways. */
static struct pair make_pair(const char *name)
{
	struct pair p;
	char err[512] = "";

	p.dir = fixture_path(tmp, name);
	ck_assert_msg(
	    jwt_sign_keygen(p.dir, &p.priv, &p.pub, err, sizeof err) == 0,
	    "keygen: %s", err);
	ck_assert_msg(jwt_sign_key_load_file(p.priv, &p.key, err, sizeof err) ==
			  0,
		      "load private: %s", err);
	/* The public key in exactly the form --auth-jwt-key-file reads. */
	ck_assert_msg(jwt_keys_load_file(p.pub, &p.keys, err, sizeof err) == 0,
		      "load public: %s", err);
	return p;
}

static void free_pair(struct pair *p)
{
	jwt_sign_key_free(p->key);
	jwt_keys_free(p->keys);
	free(p->dir);
	free(p->priv);
	free(p->pub);
}

static char *sign(const struct pair *p, int read_only, int64_t exp,
		  const char *db)
{
	struct jwt_sign_claims c = {read_only, NOW - 10, exp, db};
	char err[256] = "";
	char *t = jwt_sign_token(p->key, &c, err, sizeof err);

	ck_assert_msg(t != NULL, "sign: %s", err);
	return t;
}

static enum jwt_access check(const struct jwt_keys *keys, const char *token,
			     const char **code)
{
	char msg[256];

	*code = NULL;
	return jwt_verify(keys, token, NOW, code, msg, sizeof msg);
}

/* The JSON of part i (0 header, 1 claims) of a token, as text. */
static char *part_json(const char *token, int i)
{
	const char *start = token, *end;
	size_t len;
	uint8_t *raw;
	char *out;

	while (i-- > 0)
		start = strchr(start, '.') + 1;
	end = strchr(start, '.');
	raw = base64_decode(start, (size_t)(end - start), &len);
	ck_assert_ptr_nonnull(raw);
	out = strndup((const char *)raw, len);
	free(raw);
	return out;
}

START_TEST(test_round_trip)
{
	struct pair p = make_pair("keys");
	const char *code;
	char *t, *j;

	t = sign(&p, 0, 0, NULL);
	ck_assert_int_eq(check(p.keys, t, &code), JWT_ACCESS_READ_WRITE);
	j = part_json(t, 0);
	ck_assert_str_eq(j, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}");
	free(j);
	j = part_json(t, 1);
	ck_assert_str_eq(j, "{\"iat\":1699999990,\"a\":\"rw\"}");
	free(j);
	/* No padding, URL-safe alphabet: a compact JWS. */
	ck_assert_ptr_null(strpbrk(t, "=+/"));
	free(t);

	t = sign(&p, 1, NOW + 3600, "my-db_2");
	ck_assert_int_eq(check(p.keys, t, &code), JWT_ACCESS_READ_ONLY);
	j = part_json(t, 1);
	ck_assert_str_eq(j, "{\"iat\":1699999990,\"exp\":1700003600,"
			    "\"a\":\"ro\",\"id\":\"my-db_2\"}");
	free(j);
	free(t);
	free_pair(&p);
}
END_TEST

START_TEST(test_expired_refused)
{
	struct pair p = make_pair("keys");
	const char *code;
	char *t = sign(&p, 0, NOW - 1, NULL);

	ck_assert_int_eq(check(p.keys, t, &code), JWT_ACCESS_DENIED);
	ck_assert_str_eq(code, "AUTH_JWT_EXPIRED");
	free(t);
	t = sign(&p, 0, NOW + 1, NULL);
	ck_assert_int_eq(check(p.keys, t, &code), JWT_ACCESS_READ_WRITE);
	free(t);
	free_pair(&p);
}
END_TEST

START_TEST(test_other_key_refused)
{
	struct pair a = make_pair("a"), b = make_pair("b");
	const char *code;
	char *t = sign(&b, 0, 0, NULL);

	ck_assert_int_eq(check(a.keys, t, &code), JWT_ACCESS_DENIED);
	ck_assert_str_eq(code, "AUTH_JWT_INVALID");
	ck_assert_int_eq(check(b.keys, t, &code), JWT_ACCESS_READ_WRITE);
	free(t);
	free_pair(&a);
	free_pair(&b);
}
END_TEST

/* A read-only token whose payload is swapped for a read-write one, the
 * signature kept. */
START_TEST(test_tampered_payload_refused)
{
	struct pair p = make_pair("keys");
	const char *code;
	char *t = sign(&p, 1, 0, NULL);
	const char *dot1 = strchr(t, '.'), *dot2 = strchr(dot1 + 1, '.');
	const char *rw = "{\"iat\":1699999990,\"a\":\"rw\"}";
	char *body = base64_encode((const uint8_t *)rw, strlen(rw), 1, 0);
	char *forged =
	    util_strdupf("%.*s.%s%s", (int)(dot1 - t), t, body, dot2);

	ck_assert_int_eq(check(p.keys, t, &code), JWT_ACCESS_READ_ONLY);
	ck_assert_int_eq(check(p.keys, forged, &code), JWT_ACCESS_DENIED);
	ck_assert_str_eq(code, "AUTH_JWT_INVALID");
	free(body);
	free(forged);
	free(t);
	free_pair(&p);
}
END_TEST

static mode_t mode_of(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_mode & 07777;
}

START_TEST(test_keygen_modes)
{
	mode_t old = umask(0); /* even with a permissive umask */
	struct pair p = make_pair("sub/keys/");

	umask(old);
	ck_assert_uint_eq(mode_of(p.priv), 0600);
	ck_assert_uint_eq(mode_of(p.pub), 0644);
	ck_assert_uint_eq(mode_of(p.dir), 0700);
	ck_assert(strstr(p.priv, "sub/keys/jwt_private.pem") != NULL);
	ck_assert(strstr(p.pub, "sub/keys/jwt_public.pem") != NULL);
	free_pair(&p);
}
END_TEST

static char *read_text(const char *path)
{
	char *text = NULL;
	size_t len;

	ck_assert_int_eq(fileio_read_file(path, &text, &len), 0);
	return text;
}

START_TEST(test_keygen_refuses_overwrite)
{
	struct pair p = make_pair("keys");
	char *before = read_text(p.priv), *after, *priv = NULL, *pub = NULL;
	char err[512] = "";
	char *dir2 = fixture_path(tmp, "half"), *pub2, *priv2;
	FILE *f;
	struct stat st;

	ck_assert_int_eq(jwt_sign_keygen(p.dir, &priv, &pub, err, sizeof err),
			 -1);
	ck_assert_msg(strstr(err, "already exists") != NULL &&
			  strstr(err, "jwt_private.pem") != NULL,
		      "%s", err);
	after = read_text(p.priv);
	ck_assert_str_eq(before, after);

	/* Only the public key there: refused too, and no private key made. */
	ck_assert_int_eq(mkdir(dir2, 0700), 0);
	pub2 = fixture_path(dir2, "jwt_public.pem");
	priv2 = fixture_path(dir2, "jwt_private.pem");
	f = fopen(pub2, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(jwt_sign_keygen(dir2, &priv, &pub, err, sizeof err),
			 -1);
	ck_assert_msg(strstr(err, "jwt_public.pem") != NULL, "%s", err);
	ck_assert_int_ne(stat(priv2, &st), 0);

	/* Not a directory. */
	ck_assert_int_eq(jwt_sign_keygen(pub2, &priv, &pub, err, sizeof err),
			 -1);
	ck_assert_msg(strstr(err, "not a directory") != NULL, "%s", err);
	free(before);
	free(after);
	free(dir2);
	free(pub2);
	free(priv2);
	free_pair(&p);
}
END_TEST

static void assert_load_fails(const char *path, const char *needle)
{
	struct jwt_sign_key *k = NULL;
	char err[512] = "";

	ck_assert_int_eq(jwt_sign_key_load_file(path, &k, err, sizeof err), -1);
	ck_assert_ptr_null(k);
	ck_assert_msg(strstr(err, path) != NULL && strstr(err, needle) != NULL,
		      "'%s' lacks '%s'", err, needle);
}

START_TEST(test_private_key_errors)
{
	struct pair p = make_pair("keys");
	char *missing = fixture_path(tmp, "missing.pem");
	char *junk = fixture_path(tmp, "junk.pem");
	FILE *f = fopen(junk, "w");

	fputs("not a key\n", f);
	fclose(f);
	assert_load_fails(missing, "No such file");
	assert_load_fails(junk, "not a PEM private key");
	assert_load_fails(p.pub, "public key");
	free(missing);
	free(junk);
	free_pair(&p);
}
END_TEST

static int64_t dur(const char *text)
{
	int64_t s = -1;
	char err[256] = "";

	ck_assert_msg(jwt_sign_parse_duration(text, &s, err, sizeof err) == 0,
		      "%s: %s", text, err);
	return s;
}

static void bad_dur(const char *text, const char *needle)
{
	int64_t s = 12345;
	char err[256] = "";

	ck_assert_int_eq(jwt_sign_parse_duration(text, &s, err, sizeof err),
			 -1);
	ck_assert_int_eq(s, 12345);
	ck_assert_msg(strstr(err, needle) != NULL, "'%s': %s", text, err);
}

START_TEST(test_durations)
{
	ck_assert_int_eq(dur("never"), 0);
	ck_assert_int_eq(dur("3600s"), 3600);
	ck_assert_int_eq(dur("5m"), 300);
	ck_assert_int_eq(dur("12h"), 43200);
	ck_assert_int_eq(dur("30d"), 30 * 86400);
	ck_assert_int_eq(dur("2w"), 14 * 86400);
	ck_assert_int_eq(dur("36500d"), 36500LL * 86400);
	bad_dur("", "not a duration");
	bad_dur("30", "not a duration");
	bad_dur("d", "not a duration");
	bad_dur("30x", "not a duration");
	bad_dur("30dd", "not a duration");
	bad_dur("-5d", "not a duration");
	bad_dur(" 5d", "not a duration");
	bad_dur("1.5h", "not a duration");
	bad_dur("Never", "not a duration");
	bad_dur("0s", "out of range");
	bad_dur("36501d", "out of range");
	bad_dur("99999999999999999999999999w", "out of range");
}
END_TEST

START_TEST(test_db_names)
{
	struct pair p = make_pair("keys");
	struct jwt_sign_claims c = {0, NOW, 0, "bad name"};
	char err[256] = "";
	char long_name[130];

	ck_assert(jwt_sign_valid_db_name("a"));
	ck_assert(jwt_sign_valid_db_name("My-db_9"));
	ck_assert(!jwt_sign_valid_db_name(""));
	ck_assert(!jwt_sign_valid_db_name("a/b"));
	ck_assert(!jwt_sign_valid_db_name("a.b"));
	memset(long_name, 'x', 128);
	long_name[128] = '\0';
	ck_assert(jwt_sign_valid_db_name(long_name));
	long_name[128] = 'x';
	long_name[129] = '\0';
	ck_assert(!jwt_sign_valid_db_name(long_name));
	ck_assert_ptr_null(jwt_sign_token(p.key, &c, err, sizeof err));
	ck_assert_msg(strstr(err, "bad name") != NULL, "%s", err);
	free_pair(&p);
}
END_TEST

static Suite *jwt_sign_suite(void)
{
	Suite *s = suite_create("jwt_sign");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_expired_refused);
	tcase_add_test(tc, test_other_key_refused);
	tcase_add_test(tc, test_tampered_payload_refused);
	tcase_add_test(tc, test_keygen_modes);
	tcase_add_test(tc, test_keygen_refuses_overwrite);
	tcase_add_test(tc, test_private_key_errors);
	tcase_add_test(tc, test_durations);
	tcase_add_test(tc, test_db_names);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(jwt_sign_suite());
}
