#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sync/http_client.h"
#include "vfs/uri_params.h"

#define DURATION_EXPECTED "a non-negative number of seconds such as 1 or 0.5"

/* The parameters this module reads, for the duplicate check. */
static const char *const known_params[] = {
    "sync_url",         "auth_token", "encryption_key", "sync_interval",
    "read_your_writes", "offline",    "write_timeout",  "conflict",
    "tls_ca_file",      "as_of",
};

static const char *default_env(const char *name)
{
	return getenv(name);
}

/* Where a string option comes from: the URI, else the environment (an
 * empty variable counts as unset).  *from_env tells which, for messages. */
static const char *lookup(sqlite3_filename name, uri_params_env_fn env,
			  const char *param, const char *var, int *from_env)
{
	const char *v = sqlite3_uri_parameter(name, param);

	*from_env = 0;
	if (v != NULL || var == NULL)
		return v;
	v = env(var);
	if (v == NULL || v[0] == '\0')
		return NULL;
	*from_env = 1;
	return v;
}

/* Refuse any of our parameters given more than once: SQLite would silently
 * use the first one. */
static int check_duplicates(sqlite3_filename name, char *err, size_t err_len)
{
	size_t i;

	for (i = 0; i < sizeof known_params / sizeof known_params[0]; i++) {
		const char *key;
		int n, count = 0;

		for (n = 0; (key = sqlite3_uri_key(name, n)) != NULL; n++) {
			if (strcmp(key, known_params[i]) == 0)
				count++;
		}
		if (count > 1) {
			snprintf(err, err_len,
				 "replite: %s is given %d times in the URI: "
				 "give it once",
				 known_params[i], count);
			return -1;
		}
	}
	return 0;
}

/* SQLite's own URI parameters (https://sqlite.org/uri.html), never typos. */
static const char *const sqlite_params[] = {
    "vfs", "mode", "cache", "psow", "nolock", "immutable", "modeof",
};

/* A parameter name folded for comparison: lower case, without '_' and '-'
 * (so that syncUrl, sync-url and SYNC_URL all read "syncurl"). */
static void fold(const char *in, char *out, size_t out_len)
{
	size_t n = 0;

	for (; *in != '\0' && n + 1 < out_len; in++) {
		if (*in == '_' || *in == '-')
			continue;
		out[n++] = (char)((*in >= 'A' && *in <= 'Z') ? *in + 32 : *in);
	}
	out[n] = '\0';
}

/* The edit distance of a and b (insertions, deletions, substitutions and
 * swaps of neighbours), capped: anything above 3 reads 3. */
static int distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	int d[33][33];

	if (la > 32 || lb > 32)
		return 3;
	for (i = 0; i <= la; i++)
		d[i][0] = (int)i;
	for (j = 0; j <= lb; j++)
		d[0][j] = (int)j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return d[la][lb] < 3 ? d[la][lb] : 3;
}

/* Refuse a URI parameter that is not ours but reads like one (syncUrl,
 * sync_ur, authToken, conflicts): SQLite ignores parameters it does not
 * know, so the typo would silently leave the option at its default (no
 * token, say, and an open that fails later for a reason far from the
 * cause).  Other unknown parameters are the application's business. */
static int check_typos(sqlite3_filename name, char *err, size_t err_len)
{
	char key_f[64], ours_f[64];
	const char *key;
	size_t i;
	int n;

	for (n = 0; (key = sqlite3_uri_key(name, n)) != NULL; n++) {
		int exact = 0;
		for (i = 0; i < sizeof known_params / sizeof known_params[0];
		     i++)
			exact |= strcmp(key, known_params[i]) == 0;
		for (i = 0; i < sizeof sqlite_params / sizeof sqlite_params[0];
		     i++)
			exact |= strcmp(key, sqlite_params[i]) == 0;
		if (exact)
			continue;
		fold(key, key_f, sizeof key_f);
		for (i = 0; i < sizeof known_params / sizeof known_params[0];
		     i++) {
			fold(known_params[i], ours_f, sizeof ours_f);
			/* One edit in a name of 5+ letters, two in 8+. */
			int d = distance(key_f, ours_f);
			size_t len = strlen(ours_f);
			if (d == 0 || (d == 1 && len >= 5) ||
			    (d == 2 && len >= 8)) {
				snprintf(err, err_len,
					 "replite: unknown URI parameter '%s': "
					 "did you mean %s?",
					 key, known_params[i]);
				return -1;
			}
		}
	}
	return 0;
}

/* Parse "S", "S.F" (decimal digits only) into milliseconds, a fraction of
 * a millisecond rounding up.  Returns 0, -1 when malformed, -2 when over
 * URI_PARAMS_MAX_SECONDS. */
static int parse_seconds(const char *s, int64_t *ms)
{
	int64_t secs = 0, frac = 0;
	int digits = 0, round_up = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		secs = secs * 10 + (*p - '0');
		if (secs > URI_PARAMS_MAX_SECONDS)
			return -2;
	}
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		for (; *p >= '0' && *p <= '9'; p++, digits++) {
			if (digits < 3)
				frac = frac * 10 + (*p - '0');
			else if (*p != '0')
				round_up = 1;
		}
		for (; digits < 3; digits++)
			frac *= 10;
	}
	if (*p != '\0')
		return -1;
	*ms = secs * 1000 + frac + round_up;
	if (*ms > (int64_t)URI_PARAMS_MAX_SECONDS * 1000)
		return -2;
	return 0;
}

static int parse_duration(sqlite3_filename name, const char *param,
			  int64_t dflt, int positive, int64_t *out, char *err,
			  size_t err_len)
{
	const char *v = sqlite3_uri_parameter(name, param);
	int rv;

	if (v == NULL) {
		*out = dflt;
		return 0;
	}
	rv = parse_seconds(v, out);
	if (rv == -1) {
		snprintf(err, err_len,
			 "replite: %s '%s' is not a duration: expected %s%s, "
			 "at most %d (a year), in plain decimal digits",
			 param, v, positive ? "a positive" : DURATION_EXPECTED,
			 positive ? " number of seconds such as 10 or 2.5"
				  : " (0 = only explicit syncs)",
			 URI_PARAMS_MAX_SECONDS);
		return -1;
	}
	if (rv == -2) {
		snprintf(err, err_len,
			 "replite: %s '%s' is too large: expected at most %d "
			 "seconds",
			 param, v, URI_PARAMS_MAX_SECONDS);
		return -1;
	}
	if (positive && *out == 0) {
		snprintf(err, err_len,
			 "replite: %s '%s' is not a positive duration: "
			 "expected a number of seconds greater than 0 such as "
			 "10 or 2.5",
			 param, v);
		return -1;
	}
	return 0;
}

static int parse_bool(sqlite3_filename name, uri_params_env_fn env,
		      const char *param, const char *var, int dflt, int *out,
		      char *err, size_t err_len)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};
	int from_env;
	const char *v = lookup(name, env, param, var, &from_env);
	size_t i;

	if (v == NULL) {
		*out = dflt;
		return 0;
	}
	for (i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	snprintf(err, err_len,
		 "replite: %s%s%s%s '%s' is not a boolean: expected 0, 1, "
		 "true, false, yes, no, on or off",
		 param, from_env ? " (from " : "", from_env ? var : "",
		 from_env ? ")" : "", v);
	return -1;
}

/* conflict: what an offline replica does with local transactions that the
 * primary's newer ones conflict with. */
static int parse_conflict(sqlite3_filename name, enum replica_conflict *out,
			  char *err, size_t err_len)
{
	const char *v = sqlite3_uri_parameter(name, "conflict");

	*out = REPLICA_CONFLICT_REBASE;
	if (v == NULL || strcasecmp(v, "rebase") == 0)
		return 0;
	if (strcasecmp(v, "discard") == 0) {
		*out = REPLICA_CONFLICT_DISCARD;
		return 0;
	}
	snprintf(err, err_len,
		 "replite: conflict '%s' is not a conflict policy: expected "
		 "rebase or discard",
		 v);
	return -1;
}

static int parse_sync_url(sqlite3_filename name, uri_params_env_fn env,
			  char **out, char *err, size_t err_len)
{
	char why[512];
	int from_env;
	const char *v =
	    lookup(name, env, "sync_url", "REPLITE_SYNC_URL", &from_env);

	*out = NULL;
	if (v == NULL)
		return 0;
	*out = http_client_normalize_url(v, why, sizeof why);
	if (*out == NULL) {
		snprintf(err, err_len, "replite: sync_url%s %s",
			 from_env ? " (from REPLITE_SYNC_URL)" : "", why);
		return -1;
	}
	return 0;
}

/* auth_token and encryption_key: copied as given; empty in the URI means
 * none.  The value is a secret, so messages never quote it. */
static int parse_secret(sqlite3_filename name, uri_params_env_fn env,
			const char *param, const char *var, int header,
			char **out, char *err, size_t err_len)
{
	int from_env;
	const char *v = lookup(name, env, param, var, &from_env);
	const unsigned char *p;

	*out = NULL;
	if (v == NULL || v[0] == '\0')
		return 0;
	/* A token goes into an HTTP header: no CR, LF or other control. */
	for (p = (const unsigned char *)v; header && *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			snprintf(err, err_len,
				 "replite: %s%s%s%s contains a control "
				 "character (byte 0x%02x at offset %zu): "
				 "expected printable text, it is sent in an "
				 "HTTP header",
				 param, from_env ? " (from " : "",
				 from_env ? var : "", from_env ? ")" : "", *p,
				 (size_t)(p - (const unsigned char *)v));
			return -1;
		}
	}
	*out = strdup(v);
	if (*out == NULL) {
		snprintf(err, err_len, "replite: %s: out of memory", param);
		return -1;
	}
	return 0;
}

/* tls_ca_file: a PEM file of the CAs that verify an https primary.  It must
 * be a readable file now (a wrong path would otherwise surface later as a
 * certificate that does not verify); a relative path is made absolute, as
 * the sync thread reads it later.  Empty in the URI means the system's CAs
 * and overrides the environment. */
static int parse_ca_file(sqlite3_filename name, uri_params_env_fn env,
			 char **out, char *err, size_t err_len)
{
	int from_env;
	const char *v =
	    lookup(name, env, "tls_ca_file", "REPLITE_CA_FILE", &from_env);
	const char *from = from_env ? " (from REPLITE_CA_FILE)" : "";
	char cwd[4096];
	struct stat sb;
	FILE *f;

	*out = NULL;
	if (v == NULL || v[0] == '\0')
		return 0;
	if (stat(v, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		snprintf(err, err_len,
			 "replite: tls_ca_file%s '%s' is a directory: expected "
			 "a PEM file of CA certificates",
			 from, v);
		return -1;
	}
	f = fopen(v, "r");
	if (f == NULL) {
		snprintf(err, err_len,
			 "replite: tls_ca_file%s '%s' cannot be read: %s", from,
			 v, strerror(errno));
		return -1;
	}
	fclose(f);
	if (v[0] == '/') {
		*out = strdup(v);
	} else if (getcwd(cwd, sizeof cwd) != NULL) {
		if (asprintf(out, "%s/%s", cwd, v) < 0)
			*out = NULL;
	} else {
		snprintf(err, err_len,
			 "replite: tls_ca_file%s '%s': the current directory "
			 "is unknown (%s); give an absolute path",
			 from, v, strerror(errno));
		return -1;
	}
	if (*out == NULL) {
		snprintf(err, err_len, "replite: tls_ca_file: out of memory");
		return -1;
	}
	return 0;
}

/* as_of: the primary's state an as-of replica holds, a time or a frame
 * (sync/as_of.h).  URI only: an environment variable would make every
 * replica of the process an as-of one, and turn the opens of live replica
 * files into refusals.  An as-of replica is read-only, so offline=1 in the
 * URI contradicts it; REPLITE_OFFLINE, meant for the process's live
 * replicas, does not apply to it. */
static int parse_as_of(sqlite3_filename name, struct replica_options *p,
		       char *err, size_t err_len)
{
	const char *v = sqlite3_uri_parameter(name, "as_of");

	p->as_of.kind = AS_OF_NONE;
	if (v == NULL)
		return 0;
	if (as_of_parse(v, &p->as_of) != 0) {
		snprintf(
		    err, err_len,
		    "replite: as_of '%s' is not a time or a frame: "
		    "expected an RFC 3339 time such as "
		    "2026-12-03T17:00:00Z or 2026-12-03T18:00:00.250+01:00 "
		    "(without an offset: UTC; from 1970 on), or "
		    "GENERATION:FRAME such as 3:120 (frame 0: the "
		    "generation's start)",
		    v);
		return -1;
	}
	if (p->offline && sqlite3_uri_parameter(name, "offline") != NULL) {
		snprintf(err, err_len,
			 "replite: as_of and offline=1 exclude each other: an "
			 "as-of replica is read-only");
		return -1;
	}
	p->offline = 0;
	return 0;
}

int uri_params_parse(sqlite3_filename name, uri_params_env_fn env,
		     struct replica_options *out, char *err, size_t err_len)
{
	struct replica_options p;

	memset(&p, 0, sizeof p);
	memset(out, 0, sizeof *out);
	if (env == NULL)
		env = default_env;

	if (check_duplicates(name, err, err_len) != 0 ||
	    check_typos(name, err, err_len) != 0)
		goto err;
	if (parse_sync_url(name, env, &p.sync_url, err, err_len) != 0)
		goto err;
	if (parse_secret(name, env, "auth_token", "REPLITE_AUTH_TOKEN", 1,
			 &p.auth_token, err, err_len) != 0)
		goto err_free;
	if (parse_secret(name, env, "encryption_key", "REPLITE_ENCRYPTION_KEY",
			 0, &p.encryption_key, err, err_len) != 0)
		goto err_free;
	if (parse_ca_file(name, env, &p.tls_ca_file, err, err_len) != 0)
		goto err_free;
	if (parse_duration(name, "sync_interval",
			   REPLICA_OPTIONS_SYNC_INTERVAL_MS, 0,
			   &p.sync_interval_ms, err, err_len) != 0)
		goto err_free;
	if (parse_bool(name, env, "read_your_writes", NULL, 1,
		       &p.read_your_writes, err, err_len) != 0)
		goto err_free;
	if (parse_bool(name, env, "offline", "REPLITE_OFFLINE", 0, &p.offline,
		       err, err_len) != 0)
		goto err_free;
	if (parse_conflict(name, &p.conflict, err, err_len) != 0)
		goto err_free;
	if (parse_duration(name, "write_timeout",
			   REPLICA_OPTIONS_WRITE_TIMEOUT_MS, 1,
			   &p.write_timeout_ms, err, err_len) != 0)
		goto err_free;
	if (parse_as_of(name, &p, err, err_len) != 0)
		goto err_free;

	*out = p;
	return 0;

err_free:
	replica_options_free(&p);
err:
	return -1;
}
