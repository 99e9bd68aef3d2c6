/* `replite db` (replite_db.h), over libcurl. */
#include "replite_db.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

static const char db_usage[] =
    "usage: replite db create NAME [--retention DURATION] [options]\n"
    "       replite db config NAME [--retention DURATION|default] [options]\n"
    "       replite db delete NAME [options]\n"
    "       replite db list [options]\n"
    "       replite db fork FROM TO [--at WHEN] [options]\n"
    "       replite db restore NAME --at WHEN --to NEW [options]\n"
    "       replite db backup NAME --out FILE [--at WHEN] [options]\n"
    "\n"
    "Drive a running `replite serve --admin-listen HOST:PORT`: database\n"
    "NAME then answers under /db/NAME/ on the server's user listener\n"
    "(e.g. a replica's sync_url=http://HOST:PORT/db/NAME).  The default\n"
    "database is named \"default\".\n"
    "\n"
    "fork creates TO as a copy of FROM, now or as of WHEN; restore is a\n"
    "fork as of WHEN into NEW (NAME is left as it is); backup writes a\n"
    "SQLite file of the state now or as of WHEN.  WHEN is an RFC 3339\n"
    "time (2026-12-03T17:00:00Z; no offset: UTC), the state after the\n"
    "last commit made at or before it, or GENERATION:FRAME.  `list`\n"
    "shows how far back each database can be restored.\n"
    "\n"
    "options:\n"
    "  --at WHEN     the state to fork, restore or back up\n"
    "  --to NEW      restore: the new database\n"
    "  --out FILE    backup: the file to write (replaced atomically)\n"
    "  --retention DURATION  how long the database keeps its history\n"
    "                (ended generations, and so restorable states): 90d,\n"
    "                12h, 30m, 3600s or seconds; \"default\": the server's\n"
    "                --retention.  config without it shows the settings\n"
    "  --admin URL   the admin listener (default $REPLITE_ADMIN_URL, else\n"
    "                http://127.0.0.1:9090)\n"
    "  --token T     an admin token (default $REPLITE_ADMIN_TOKEN)\n"
    "  -h, --help    show this help\n";

struct body {
	char *p;
	size_t len;
};

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	char *p = realloc(b->p, b->len + size * n + 1);

	if (p == NULL)
		return 0;
	memcpy(p + b->len, data, size * n);
	b->len += size * n;
	p[b->len] = '\0';
	b->p = p;
	return size * n;
}

/* method path on the admin listener: 0 with *out the JSON answer, or the
 * exit code with the cause printed. */
static int request(const char *admin, const char *token, const char *method,
		   const char *path, const char *body, json_t **out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *headers = NULL;
	struct body b = {NULL, 0};
	char url[2048], auth[4096];
	long status = 0;
	CURLcode rc;
	int rv = 1;

	*out = NULL;
	if (c == NULL)
		return 1;
	snprintf(url, sizeof url, "%s%s", admin, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "POST") == 0)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "{}");
	if (token != NULL && token[0] != '\0') {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
		headers = curl_slist_append(headers, auth);
	}
	headers = curl_slist_append(headers, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	/* A fork copies the database once: no overall timeout, but one on
	 * connecting. */
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		fprintf(stderr,
			"replite db: cannot reach the admin API at %s: "
			"%s\n",
			admin, curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	*out = b.p != NULL ? json_loads(b.p, 0, NULL) : NULL;
	if (status != 200) {
		const char *msg =
		    json_string_value(json_object_get(*out, "message"));
		fprintf(stderr, "replite db: %s %s: HTTP %ld: %s\n", method,
			path, status, msg != NULL ? msg : (b.p ? b.p : ""));
		json_decref(*out);
		*out = NULL;
		goto out;
	}
	rv = 0;
out:
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	free(b.p);
	return rv;
}

static int list(const char *admin, const char *token)
{
	json_t *answer, *db;
	size_t i;

	if (request(admin, token, "GET", "/v1/namespaces", NULL, &answer) != 0)
		return 1;
	printf("%-24s %-36s %10s %10s  %s\n", "NAME", "DATABASE ID",
	       "GENERATION", "FRAME", "RESTORABLE SINCE");
	json_array_foreach(json_object_get(answer, "namespaces"), i, db)
	{
		const char *since =
		    json_string_value(json_object_get(db, "restorable_since"));
		printf("%-24s %-36s %10lld %10lld  %s\n",
		       json_string_value(json_object_get(db, "name")),
		       json_string_value(json_object_get(db, "database_id")),
		       (long long)json_integer_value(
			   json_object_get(db, "generation")),
		       (long long)json_integer_value(
			   json_object_get(db, "frame_no")),
		       since != NULL ? since : "-");
	}
	json_decref(answer);
	return 0;
}

/* Is name usable in a path?  The server validates names; this refuses
 * what would change the path here. */
static int name_ok(const char *name)
{
	if (name[0] == '\0' || strlen(name) > 63 ||
	    strpbrk(name, "/?#%& ") != NULL) {
		fprintf(stderr, "replite db: \"%s\" is not a database name\n",
			name);
		return 0;
	}
	return 1;
}

/* WHEN as the JSON body of a fork ({"timestamp"} or {"frame"}), or as a
 * query string of a backup, into out.  Returns 0, or 2 with the cause
 * printed. */
static int point_of(const char *when, int query, char *out, size_t n)
{
	unsigned long g, f;
	char tail;
	int frame = sscanf(when, "%lu:%lu%c", &g, &f, &tail) == 2;
	char *esc;

	if (strpbrk(when, "\"\\&#") != NULL) {
		fprintf(stderr, "replite db: \"%s\" is not a time or a frame\n",
			when);
		return 2;
	}
	if (!query) {
		snprintf(out, n, "{\"%s\": \"%s\"}",
			 frame ? "frame" : "timestamp", when);
		return 0;
	}
	esc = curl_easy_escape(NULL, when, 0);
	if (esc == NULL)
		return 2;
	snprintf(out, n, "?%s=%s", frame ? "frame" : "timestamp", esc);
	curl_free(esc);
	return 0;
}

static int fork_db(const char *admin, const char *token, const char *from,
		   const char *to, const char *when)
{
	char path[256], body[256];
	json_t *answer;

	if (!name_ok(from) || !name_ok(to))
		return 2;
	if (when != NULL && point_of(when, 0, body, sizeof body) != 0)
		return 2;
	snprintf(path, sizeof path, "/v1/namespaces/%s/fork/%s", from, to);
	if (request(admin, token, "POST", path, when ? body : NULL, &answer) !=
	    0)
		return 1;
	printf("created database %s from %s as of %s (generation %lld, "
	       "frame %lld)\n",
	       to, from,
	       json_string_value(json_object_get(answer, "timestamp")),
	       (long long)json_integer_value(
		   json_object_get(answer, "generation")),
	       (long long)json_integer_value(json_object_get(answer, "frame")));
	json_decref(answer);
	return 0;
}

struct header_state {
	char state[64];
	char timestamp[64];
	long long pages;
};

static void header_value(const char *line, size_t len, const char *name,
			 char *out, size_t n)
{
	size_t k = strlen(name);

	if (len > k && strncasecmp(line, name, k) == 0) {
		line += k;
		len -= k;
		while (len > 0 && (*line == ' ' || *line == ':'))
			line++, len--;
		while (len > 0 &&
		       (line[len - 1] == '\r' || line[len - 1] == '\n'))
			len--;
		if (len >= n)
			len = n - 1;
		memcpy(out, line, len);
		out[len] = '\0';
	}
}

static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
	struct header_state *h = arg;
	char pages[32] = "";

	header_value(line, size * n, "X-Replite-State:", h->state,
		     sizeof h->state);
	header_value(line, size * n, "X-Replite-Timestamp:", h->timestamp,
		     sizeof h->timestamp);
	header_value(line, size * n, "X-Replite-Pages:", pages, sizeof pages);
	if (pages[0] != '\0')
		h->pages = atoll(pages);
	return size * n;
}

/* Download the backup into out.tmp, check its length, sync it and rename
 * it over out: a failure never leaves a partial file at out. */
static int backup_db(const char *admin, const char *token, const char *name,
		     const char *when, const char *out)
{
	char url[2048], query[256] = "", auth[4096], *tmp = NULL;
	struct header_state h = {.pages = -1};
	struct curl_slist *headers = NULL;
	CURL *c = NULL;
	FILE *f = NULL;
	long status = 0;
	CURLcode rc;
	int rv = 1;

	if (!name_ok(name))
		return 2;
	if (when != NULL && point_of(when, 1, query, sizeof query) != 0)
		return 2;
	tmp = malloc(strlen(out) + 5);
	c = curl_easy_init();
	if (tmp == NULL || c == NULL)
		goto out;
	sprintf(tmp, "%s.tmp", out);
	f = fopen(tmp, "wb");
	if (f == NULL) {
		fprintf(stderr, "replite db: cannot write %s: %s\n", tmp,
			strerror(errno));
		goto out;
	}
	snprintf(url, sizeof url, "%s/v1/namespaces/%s/backup%s", admin, name,
		 query);
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (token != NULL && token[0] != '\0') {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
		headers = curl_slist_append(headers, auth);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	}
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK) {
		fprintf(stderr, "replite db: the backup of %s failed: %s\n",
			name, curl_easy_strerror(rc));
		goto out;
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fprintf(stderr, "replite db: cannot write %s: %s\n", tmp,
			strerror(errno));
		goto out;
	}
	if (status != 200) {
		/* The answer is the error, in the file: show it. */
		char msg[1024] = "";
		FILE *r = freopen(tmp, "rb", f);
		f = r;
		json_t *j;
		const char *m;
		if (r != NULL)
			msg[fread(msg, 1, sizeof msg - 1, r)] = '\0';
		j = json_loads(msg, 0, NULL);
		m = json_string_value(json_object_get(j, "message"));
		fprintf(stderr, "replite db: backup of %s: HTTP %ld: %s\n",
			name, status, m != NULL ? m : msg);
		json_decref(j);
		goto out;
	}
	if (h.pages < 0 || (long long)ftello(f) != h.pages * 4096) {
		fprintf(stderr,
			"replite db: the backup of %s is truncated (%lld "
			"bytes, expected %lld pages)\n",
			name, (long long)ftello(f), h.pages);
		goto out;
	}
	if (fclose(f) != 0 || rename(tmp, out) != 0) {
		f = NULL;
		fprintf(stderr, "replite db: cannot write %s: %s\n", out,
			strerror(errno));
		goto out;
	}
	f = NULL;
	printf("wrote %s: database %s as of %s (state %s, %lld pages)\n", out,
	       name, h.timestamp, h.state, h.pages);
	rv = 0;
out:
	if (f != NULL)
		fclose(f);
	if (rv != 0 && tmp != NULL)
		unlink(tmp);
	curl_slist_free_all(headers);
	if (c != NULL)
		curl_easy_cleanup(c);
	free(tmp);
	return rv;
}

/* DURATION as "retention_seconds" JSON: N, Ns, Nm, Nh, Nd, or "default"
 * (null).  Returns 0, or 2 with the cause printed. */
static int retention_json(const char *text, char *out, size_t n)
{
	unsigned long long v;
	char unit = 's', tail;
	int k;

	if (strcmp(text, "default") == 0) {
		snprintf(out, n, "{\"retention_seconds\": null}");
		return 0;
	}
	k = sscanf(text, "%llu%c%c", &v, &unit, &tail);
	if (text[0] < '0' || text[0] > '9' || k < 1 || k > 2 ||
	    strchr("smhd", unit) == NULL || v > 100ULL * 365 * 86400) {
		fprintf(stderr,
			"replite db: --retention %s: expected a duration "
			"such as 90d, 12h, 30m, 3600s or 3600, or "
			"\"default\"\n",
			text);
		return 2;
	}
	v *= unit == 'd' ? 86400 : unit == 'h' ? 3600 : unit == 'm' ? 60 : 1;
	snprintf(out, n, "{\"retention_seconds\": %llu}", v);
	return 0;
}

static int config_db(const char *admin, const char *token, const char *name,
		     const char *retention)
{
	char path[256], body[128];
	json_t *answer;
	long long secs;

	if (!name_ok(name))
		return 2;
	if (retention != NULL && retention_json(retention, body, sizeof body))
		return 2;
	snprintf(path, sizeof path, "/v1/namespaces/%s/config", name);
	if (request(admin, token, retention ? "POST" : "GET", path,
		    retention ? body : NULL, &answer) != 0)
		return 1;
	secs = (long long)json_integer_value(
	    json_object_get(answer, "retention_seconds"));
	printf("database %s: retention %llds (%.1f days)%s; restorable since "
	       "%s\n",
	       name, secs, (double)secs / 86400,
	       json_is_true(json_object_get(answer, "retention_is_default"))
		   ? ", the server's default"
		   : "",
	       json_string_value(json_object_get(answer, "restorable_since")));
	json_decref(answer);
	return 0;
}

int replite_db_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"admin", required_argument, NULL, 'a'},
	    {"token", required_argument, NULL, 't'},
	    {"at", required_argument, NULL, 'w'},
	    {"to", required_argument, NULL, 'o'},
	    {"out", required_argument, NULL, 'f'},
	    {"retention", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *admin = getenv("REPLITE_ADMIN_URL");
	const char *token = getenv("REPLITE_ADMIN_TOKEN");
	const char *cmd, *name = NULL, *when = NULL, *to = NULL, *out = NULL,
			 *retention = NULL;
	char body[128];
	char path[256];
	json_t *answer;
	int c, nargs;

	if (admin == NULL || admin[0] == '\0')
		admin = "http://127.0.0.1:9090";
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			admin = optarg;
			break;
		case 't':
			token = optarg;
			break;
		case 'w':
			when = optarg;
			break;
		case 'o':
			to = optarg;
			break;
		case 'f':
			out = optarg;
			break;
		case 'r':
			retention = optarg;
			break;
		case 'h':
			fputs(db_usage, stdout);
			return 0;
		default:
			fputs(db_usage, stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fputs(db_usage, stderr);
		return 2;
	}
	cmd = argv[optind++];
	nargs = argc - optind;
	if (strcmp(cmd, "list") == 0 && nargs == 0)
		return list(admin, token);
	if (strcmp(cmd, "fork") == 0 && nargs == 2)
		return fork_db(admin, token, argv[optind], argv[optind + 1],
			       when);
	if (strcmp(cmd, "restore") == 0 && nargs == 1) {
		if (when == NULL || to == NULL) {
			fprintf(stderr,
				"replite db: restore needs --at WHEN and --to "
				"NEW: the state is restored into a new "
				"database (NAME itself is not replaced; point "
				"clients at NEW, or delete NAME and fork NEW "
				"back into it)\n");
			return 2;
		}
		return fork_db(admin, token, argv[optind], to, when);
	}
	if (strcmp(cmd, "config") == 0 && nargs == 1)
		return config_db(admin, token, argv[optind], retention);
	if (strcmp(cmd, "backup") == 0 && nargs == 1) {
		if (out == NULL) {
			fprintf(stderr,
				"replite db: backup needs --out FILE\n");
			return 2;
		}
		return backup_db(admin, token, argv[optind], when, out);
	}
	if ((strcmp(cmd, "create") != 0 && strcmp(cmd, "delete") != 0) ||
	    nargs != 1) {
		fprintf(stderr,
			"replite db: expected create NAME, delete NAME, list, "
			"config NAME, fork FROM TO, restore NAME or backup "
			"NAME\n%s",
			db_usage);
		return 2;
	}
	name = argv[optind];
	if (!name_ok(name))
		return 2;
	snprintf(path, sizeof path, "/v1/namespaces/%s%s", name,
		 strcmp(cmd, "create") == 0 ? "/create" : "");
	if (retention != NULL &&
	    (strcmp(cmd, "create") != 0 || strcmp(retention, "default") == 0)) {
		fprintf(stderr, "replite db: --retention DURATION goes with "
				"create or config\n");
		return 2;
	}
	if (retention != NULL && retention_json(retention, body, sizeof body))
		return 2;
	if (request(admin, token,
		    strcmp(cmd, "create") == 0 ? "POST" : "DELETE", path,
		    retention ? body : NULL, &answer) != 0)
		return 1;
	json_decref(answer);
	printf("%s database %s\n",
	       strcmp(cmd, "create") == 0 ? "created" : "deleted", name);
	return 0;
}
