/* The `replite` command. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

static const char usage[] =
    "usage: replite <command> [options]\n"
    "\n"
    "replite keeps SQLite files in sync with a primary database.\n"
    "\n"
    "commands:\n"
    "  serve      run a primary: HTTP sync protocol + Hrana SQL API\n"
    "\n"
    "options:\n"
    "  -h, --help     show this help (replite <command> --help for more)\n"
    "  -V, --version  print the version\n";

static const char serve_usage[] =
    "usage: replite serve [options]\n"
    "\n"
    "Run a primary: owns the database, keeps a durable log of committed\n"
    "page frames, serves replicas (/info, /export, /sync) and libSQL\n"
    "clients (Hrana over HTTP: /v2/pipeline, /v3/pipeline, /v3/cursor).\n"
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
    "  --generation-frames N     start a new generation after N frames\n"
    "                            (default 10000)\n"
    "  --retention SECONDS       keep ended generations this long\n"
    "                            (default 604800 = 7 days)\n"
    "  --threads N               HTTP worker threads (default 8)\n"
    "  --max-body BYTES          largest request body (default 33554432)\n"
    "  --max-streams N           open Hrana streams at most (default 1024)\n"
    "  --stream-idle-ms MS       idle Hrana streams expire (default 10000)\n"
    "  --log-requests            log every answered request to stderr\n"
    "  -h, --help                show this help\n";

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
	fprintf(stderr, "replite: unknown command '%s'\n%s", argv[1], usage);
	return 2;
}
