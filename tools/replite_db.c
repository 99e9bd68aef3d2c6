/* `replite db` (replite_db.h), over libcurl. */
#include "replite_db.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

static const char db_usage[] =
    "usage: replite db create NAME [options]\n"
    "       replite db delete NAME [options]\n"
    "       replite db list [options]\n"
    "\n"
    "Drive a running `replite serve --admin-listen HOST:PORT`: database\n"
    "NAME then answers under /db/NAME/ on the server's user listener\n"
    "(e.g. a replica's sync_url=http://HOST:PORT/db/NAME).\n"
    "\n"
    "options:\n"
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
		   const char *path, json_t **out)
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
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{}");
	if (token != NULL && token[0] != '\0') {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
		headers = curl_slist_append(headers, auth);
	}
	headers = curl_slist_append(headers, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
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

	if (request(admin, token, "GET", "/v1/namespaces", &answer) != 0)
		return 1;
	printf("%-32s %-36s %10s %10s\n", "NAME", "DATABASE ID", "GENERATION",
	       "FRAME");
	json_array_foreach(json_object_get(answer, "namespaces"), i, db)
	{
		printf("%-32s %-36s %10lld %10lld\n",
		       json_string_value(json_object_get(db, "name")),
		       json_string_value(json_object_get(db, "database_id")),
		       (long long)json_integer_value(
			   json_object_get(db, "generation")),
		       (long long)json_integer_value(
			   json_object_get(db, "frame_no")));
	}
	json_decref(answer);
	return 0;
}

int replite_db_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"admin", required_argument, NULL, 'a'},
	    {"token", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *admin = getenv("REPLITE_ADMIN_URL");
	const char *token = getenv("REPLITE_ADMIN_TOKEN");
	const char *cmd, *name = NULL;
	char path[256];
	json_t *answer;
	int c;

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
	if (strcmp(cmd, "list") == 0 && optind == argc)
		return list(admin, token);
	if ((strcmp(cmd, "create") != 0 && strcmp(cmd, "delete") != 0) ||
	    optind + 1 != argc) {
		fprintf(stderr,
			"replite db: expected create NAME, delete NAME "
			"or list\n%s",
			db_usage);
		return 2;
	}
	name = argv[optind];
	/* The server validates the name; refuse what would change the path
	 * here. */
	if (strlen(name) > 63 || strpbrk(name, "/?#%") != NULL ||
	    name[0] == '\0') {
		fprintf(stderr, "replite db: \"%s\" is not a database name\n",
			name);
		return 2;
	}
	snprintf(path, sizeof path, "/v1/namespaces/%s%s", name,
		 strcmp(cmd, "create") == 0 ? "/create" : "");
	if (request(admin, token,
		    strcmp(cmd, "create") == 0 ? "POST" : "DELETE", path,
		    &answer) != 0)
		return 1;
	json_decref(answer);
	printf("%s database %s\n",
	       strcmp(cmd, "create") == 0 ? "created" : "deleted", name);
	return 0;
}
