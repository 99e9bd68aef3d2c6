/* The `replite` command. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "server/http_zstd.h"
#include "server/jwt_sign.h"
#include "server/server.h"

#include "replite_db.h"

static const char usage[] =
    "usage: replite <command> [options]\n"
    "\n"
    "replite keeps SQLite files in sync with a primary database.\n"
    "\n"
    "commands:\n"
    "  serve      run a primary: HTTP sync protocol + Hrana SQL API\n"
    "  keygen     generate the Ed25519 key pair that signs access tokens\n"
    "  token      print an access token signed with the private key\n"
    "  db         create, list and delete a running server's databases\n"
    "\n"
    "options:\n"
    "  -h, --help     show this help (replite <command> --help for more)\n"
    "  -V, --version  print the version\n";

static const char serve_usage[] =
    "usage: replite serve [options]\n"
    "\n"
    "Run a primary: owns the database, keeps a durable log of committed\n"
    "page frames, serves replicas (/info, /export, /sync) and libSQL\n"
    "clients (Hrana over HTTP: /v2/pipeline, /v3/pipeline, /v3/cursor,\n"
    "/v3-protobuf/pipeline, /v3-protobuf/cursor; over WebSocket:\n"
    "hrana1-3, hrana3-protobuf).\n"
    "\n"
    "options:\n"
    "  --data-dir DIR            where the database lives (default\n"
    "                            ./replite-data)\n"
    "  --listen HOST:PORT        address to listen on (default\n"
    "                            127.0.0.1:8080; port 0 = any free port)\n"
    "  --import FILE             seed a new data directory from an\n"
    "                            existing SQLite file (page size is\n"
    "                            converted to 4096)\n"
    "  --auth-jwt-key-file FILE  Ed25519 public key(s) (PEM, or raw\n"
    "                            base64url) that verify bearer tokens;\n"
    "                            without it, access is open\n"
    "  --tls-cert FILE           serve HTTPS (and WSS) with this PEM\n"
    "                            certificate (then any intermediates)\n"
    "  --tls-key FILE            the certificate's PEM private key\n"
    "                            (unencrypted); both or neither\n"
    "  --generation-frames N     start a new generation after N frames\n"
    "                            (default 10000)\n"
    "  --retention SECONDS       keep ended generations this long\n"
    "                            (default 604800 = 7 days)\n"
    "  --threads N               worker threads for SQL and pushes\n"
    "                            (default 16; 2 more serve /health,\n"
    "                            /info and frames)\n"
    "  --max-body BYTES          largest request body (default 33554432)\n"
    "  --max-streams N           open Hrana streams at most, HTTP and\n"
    "                            WebSocket together (default 1024)\n"
    "  --stream-idle-ms MS       idle Hrana streams expire (default 10000)\n"
    "  --statement-timeout MS    interrupt a Hrana statement that runs\n"
    "                            longer (default 30000; 0 = never)\n"
    "  --max-ws-connections N    open WebSocket sockets at most (default\n"
    "                            256; more: 503)\n"
    "  --max-ws-per-client N     WebSocket sockets of one client address\n"
    "                            at most (default 64; more: 429)\n"
    "  --ws-idle-ms MS           close a WebSocket silent this long\n"
    "                            (default 120000)\n"
    "  --admin-listen HOST:PORT  serve the admin API (databases, /metrics)\n"
    "                            there (default: none)\n"
    "  --admin-auth-key-file F   Ed25519 public key(s) that verify admin\n"
    "                            tokens (a key pair of its own; without it\n"
    "                            the admin API is open)\n"
    "  --log-requests            log every answered request to stderr\n"
    "  --replica-expiry SECONDS  /metrics forgets a replica that has not\n"
    "                            pulled for this long (default 300)\n"
    "  --compression-level N     zstd level (1-19) of /export and /sync\n"
    "                            answers to clients that accept zstd;\n"
    "                            0 = never compress (default 1)\n"
    "  -h, --help                show this help\n";

static const char keygen_usage[] =
    "usage: replite keygen --out DIR\n"
    "\n"
    "Generate an Ed25519 key pair for access tokens:\n"
    "  DIR/" JWT_SIGN_PRIVATE_FILE
    "  the private key (PKCS#8 PEM, mode 0600):\n"
    "                    signs tokens (replite token --key); keep it secret\n"
    "  DIR/" JWT_SIGN_PUBLIC_FILE "   the public key (PEM): verifies them\n"
    "                    (replite serve --auth-jwt-key-file)\n"
    "DIR is created (mode 0700) if missing.  Existing key files are never\n"
    "overwritten.\n"
    "\n"
    "options:\n"
    "  --out DIR   where to write the two files (required)\n"
    "  -h, --help  show this help\n";

static const char token_usage[] =
    "usage: replite token --key PRIVATE_KEY [--read-only] [--expires D]\n"
    "                     [--db NAME]\n"
    "\n"
    "Print an access token (a JWT signed with Ed25519, as libSQL's server\n"
    "reads them) for clients (authToken) and replicas (auth_token=).  The\n"
    "server accepts it when started with --auth-jwt-key-file and the\n"
    "matching public key.\n"
    "\n"
    "options:\n"
    "  --key FILE     the private key from replite keygen (required)\n"
    "  --read-only    queries only: no writes, no pushes (claim a=\"ro\";\n"
    "                 default a=\"rw\", read-write)\n"
    "  --expires D    lifetime: a whole number and a unit, s m h d or w\n"
    "                 (30d, 12h, 3600s), or never (default: never, as\n"
    "                 Turso's `db tokens create`; a replica whose token\n"
    "                 expires stops syncing, so expiring tokens must be\n"
    "                 renewed; revoke tokens by replacing the key pair)\n"
    "  --db NAME      the one database the token is for, in sqld's\n"
    "                 \"id\" claim (\"default\": the root URL's); the\n"
    "                 server refuses it elsewhere with 403.  Without it\n"
    "                 the token is good for every database\n"
    "  -h, --help     show this help\n";

static int parse_number(const char *opt, const char *text, long long min,
			long long max, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < min || v > max) {
		fprintf(stderr,
			"replite serve: invalid %s '%s': expected an integer "
			"between %lld and %lld\n",
			opt, text, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

enum {
	OPT_DATA_DIR = 256,
	OPT_LISTEN,
	OPT_IMPORT,
	OPT_KEY_FILE,
	OPT_GEN_FRAMES,
	OPT_RETENTION,
	OPT_THREADS,
	OPT_MAX_BODY,
	OPT_MAX_STREAMS,
	OPT_STREAM_IDLE,
	OPT_LOG_REQUESTS,
	OPT_COMPRESSION,
	OPT_STATEMENT_TIMEOUT,
	OPT_REPLICA_EXPIRY,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_MAX_WS,
	OPT_MAX_WS_PER_CLIENT,
	OPT_WS_IDLE,
	OPT_ADMIN_LISTEN,
	OPT_ADMIN_KEY,
};

static int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
	    {"listen", required_argument, NULL, OPT_LISTEN},
	    {"import", required_argument, NULL, OPT_IMPORT},
	    {"auth-jwt-key-file", required_argument, NULL, OPT_KEY_FILE},
	    {"generation-frames", required_argument, NULL, OPT_GEN_FRAMES},
	    {"retention", required_argument, NULL, OPT_RETENTION},
	    {"threads", required_argument, NULL, OPT_THREADS},
	    {"max-body", required_argument, NULL, OPT_MAX_BODY},
	    {"max-streams", required_argument, NULL, OPT_MAX_STREAMS},
	    {"stream-idle-ms", required_argument, NULL, OPT_STREAM_IDLE},
	    {"log-requests", no_argument, NULL, OPT_LOG_REQUESTS},
	    {"compression-level", required_argument, NULL, OPT_COMPRESSION},
	    {"statement-timeout", required_argument, NULL,
	     OPT_STATEMENT_TIMEOUT},
	    {"replica-expiry", required_argument, NULL, OPT_REPLICA_EXPIRY},
	    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
	    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
	    {"max-ws-connections", required_argument, NULL, OPT_MAX_WS},
	    {"max-ws-per-client", required_argument, NULL,
	     OPT_MAX_WS_PER_CLIENT},
	    {"ws-idle-ms", required_argument, NULL, OPT_WS_IDLE},
	    {"admin-listen", required_argument, NULL, OPT_ADMIN_LISTEN},
	    {"admin-auth-key-file", required_argument, NULL, OPT_ADMIN_KEY},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct server_config cfg;
	long long v;
	int c;

	server_config_defaults(&cfg);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_DATA_DIR:
			cfg.data_dir = optarg;
			break;
		case OPT_LISTEN:
			cfg.listen = optarg;
			break;
		case OPT_IMPORT:
			cfg.import_path = optarg;
			break;
		case OPT_KEY_FILE:
			cfg.jwt_key_file = optarg;
			break;
		case OPT_GEN_FRAMES:
			if (parse_number("--generation-frames", optarg, 1,
					 UINT32_MAX / 2, &v) != 0)
				return 2;
			cfg.generation_frames = (uint32_t)v;
			break;
		case OPT_RETENTION:
			if (parse_number("--retention", optarg, 0,
					 100LL * 365 * 86400, &v) != 0)
				return 2;
			cfg.retention_ms = v * 1000;
			break;
		case OPT_THREADS:
			if (parse_number("--threads", optarg, 1, 1024, &v) != 0)
				return 2;
			cfg.threads = (unsigned)v;
			break;
		case OPT_MAX_BODY:
			if (parse_number("--max-body", optarg, 1 << 16,
					 1LL << 32, &v) != 0)
				return 2;
			cfg.max_body = (size_t)v;
			break;
		case OPT_MAX_STREAMS:
			if (parse_number("--max-streams", optarg, 1, 1000000,
					 &v) != 0)
				return 2;
			cfg.max_streams = (int)v;
			break;
		case OPT_STREAM_IDLE:
			if (parse_number("--stream-idle-ms", optarg, 100,
					 86400000, &v) != 0)
				return 2;
			cfg.stream_idle_ms = (int)v;
			break;
		case OPT_LOG_REQUESTS:
			cfg.log_requests = 1;
			break;
		case OPT_COMPRESSION:
			if (parse_number("--compression-level", optarg, 0,
					 HTTP_ZSTD_MAX_LEVEL, &v) != 0)
				return 2;
			cfg.compression_level = (int)v;
			break;
		case OPT_STATEMENT_TIMEOUT:
			if (parse_number("--statement-timeout", optarg, 0,
					 86400000, &v) != 0)
				return 2;
			cfg.statement_timeout_ms = v;
			break;
		case OPT_REPLICA_EXPIRY:
			if (parse_number("--replica-expiry", optarg, 1,
					 30LL * 86400, &v) != 0)
				return 2;
			cfg.replica_expiry_ms = v * 1000;
			break;
		case OPT_TLS_CERT:
			cfg.tls_cert_file = optarg;
			break;
		case OPT_TLS_KEY:
			cfg.tls_key_file = optarg;
			break;
		case OPT_MAX_WS:
			/* each socket is a thread; libmicrohttpd serves 4096
			 * connections in all */
			if (parse_number("--max-ws-connections", optarg, 1,
					 4096, &v) != 0)
				return 2;
			cfg.max_ws_connections = (unsigned)v;
			break;
		case OPT_MAX_WS_PER_CLIENT:
			if (parse_number("--max-ws-per-client", optarg, 1, 4096,
					 &v) != 0)
				return 2;
			cfg.max_ws_per_client = (unsigned)v;
			break;
		case OPT_WS_IDLE:
			if (parse_number("--ws-idle-ms", optarg, 100, 86400000,
					 &v) != 0)
				return 2;
			cfg.ws_idle_ms = (int)v;
			break;
		case OPT_ADMIN_LISTEN:
			cfg.admin_listen = optarg;
			break;
		case OPT_ADMIN_KEY:
			cfg.admin_key_file = optarg;
			break;
		case 'h':
			fputs(serve_usage, stdout);
			return 0;
		default:
			fputs(serve_usage, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "replite serve: unexpected argument '%s'\n%s",
			argv[optind], serve_usage);
		return 2;
	}
	return server_run(&cfg);
}

enum { OPT_OUT = 256 };

static int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"out", required_argument, NULL, OPT_OUT},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *out = NULL;
	char *priv = NULL, *pub = NULL;
	char err[512];
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_OUT:
			out = optarg;
			break;
		case 'h':
			fputs(keygen_usage, stdout);
			return 0;
		default:
			fputs(keygen_usage, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "replite keygen: unexpected argument '%s'\n%s",
			argv[optind], keygen_usage);
		return 2;
	}
	if (out == NULL || *out == '\0') {
		fprintf(stderr, "replite keygen: --out DIR is required\n%s",
			keygen_usage);
		return 2;
	}
	if (jwt_sign_keygen(out, &priv, &pub, err, sizeof err) != 0) {
		fprintf(stderr, "replite keygen: %s\n", err);
		return 1;
	}
	printf("private key: %s (mode 0600: keep it secret)\n"
	       "public key:  %s\n"
	       "\n"
	       "next:\n"
	       "  replite serve --auth-jwt-key-file %s\n"
	       "  replite token --key %s\n",
	       priv, pub, pub, priv);
	free(priv);
	free(pub);
	return 0;
}

enum { OPT_KEY = 256, OPT_READ_ONLY, OPT_EXPIRES, OPT_DB };

static int cmd_token(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, OPT_KEY},
	    {"read-only", no_argument, NULL, OPT_READ_ONLY},
	    {"expires", required_argument, NULL, OPT_EXPIRES},
	    {"db", required_argument, NULL, OPT_DB},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct jwt_sign_claims claims = {0};
	struct jwt_sign_key *key = NULL;
	const char *key_path = NULL;
	int64_t lifetime = 0;
	char err[512];
	struct stat st;
	char *token;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_KEY:
			key_path = optarg;
			break;
		case OPT_READ_ONLY:
			claims.read_only = 1;
			break;
		case OPT_EXPIRES:
			if (jwt_sign_parse_duration(optarg, &lifetime, err,
						    sizeof err) != 0) {
				fprintf(stderr,
					"replite token: invalid --expires: "
					"%s\n",
					err);
				return 2;
			}
			break;
		case OPT_DB:
			if (!jwt_sign_valid_db_name(optarg)) {
				fprintf(stderr,
					"replite token: invalid --db '%s': 1 "
					"to 128 letters, digits, '-' or '_'\n",
					optarg);
				return 2;
			}
			claims.db = optarg;
			break;
		case 'h':
			fputs(token_usage, stdout);
			return 0;
		default:
			fputs(token_usage, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "replite token: unexpected argument '%s'\n%s",
			argv[optind], token_usage);
		return 2;
	}
	if (key_path == NULL) {
		fprintf(stderr,
			"replite token: --key PRIVATE_KEY is required\n%s",
			token_usage);
		return 2;
	}
	if (jwt_sign_key_load_file(key_path, &key, err, sizeof err) != 0) {
		fprintf(stderr, "replite token: %s\n", err);
		return 1;
	}
	if (stat(key_path, &st) == 0 && (st.st_mode & 077) != 0)
		fprintf(stderr,
			"replite token: warning: %s is readable by other "
			"users (mode %04o); chmod 600 it\n",
			key_path, (unsigned)(st.st_mode & 07777));
	claims.iat = (int64_t)time(NULL);
	claims.exp = lifetime != 0 ? claims.iat + lifetime : 0;
	token = jwt_sign_token(key, &claims, err, sizeof err);
	jwt_sign_key_free(key);
	if (token == NULL) {
		fprintf(stderr, "replite token: %s\n", err);
		return 1;
	}
	printf("%s\n", token);
	free(token);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("replite %s\n", REPLITE_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "keygen") == 0)
		return cmd_keygen(argc - 1, argv + 1);
	if (strcmp(argv[1], "token") == 0)
		return cmd_token(argc - 1, argv + 1);
	if (strcmp(argv[1], "db") == 0)
		return replite_db_main(argc - 1, argv + 1);
	fprintf(stderr, "replite: unknown command '%s'\n%s", argv[1], usage);
	return 2;
}
