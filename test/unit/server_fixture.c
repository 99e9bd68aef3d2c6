#include "server_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* The URL the server printed once it listens, if it did yet. */
static int read_url(const char *log_path, char *url, size_t url_len)
{
	char line[512];
	FILE *fp = fopen(log_path, "r");
	int found = 0;

	if (fp == NULL)
		return 0;
	while (!found && fgets(line, sizeof line, fp) != NULL) {
		char *p = strstr(line, "listening on ");
		if (p != NULL) {
			p += strlen("listening on ");
			p[strcspn(p, " \n")] = '\0';
			snprintf(url, url_len, "%s", p);
			found = 1;
		}
	}
	fclose(fp);
	return found;
}

void server_fixture_start(struct server_fixture *f, const char *const *args)
{
	const char *bin = getenv("REPLITE_BIN");
	char *data, *log_path;
	const char *argv[32];
	int n = 0, i, status;

	ck_assert_msg(bin != NULL, "REPLITE_BIN is not set");
	memset(f, 0, sizeof *f);
	f->dir = fixture_tmpdir();
	data = fixture_path(f->dir, "data");
	log_path = fixture_path(f->dir, "server.log");
	argv[n++] = bin;
	argv[n++] = "serve";
	argv[n++] = "--data-dir";
	argv[n++] = data;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	for (i = 0; args != NULL && args[i] != NULL && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;

	f->pid = fork();
	ck_assert_int_ge(f->pid, 0);
	if (f->pid == 0) {
		int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		/* A failed test must not leave a server behind. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	for (i = 0; i < 2000 && !read_url(log_path, f->url, sizeof f->url);
	     i++) {
		ck_assert_msg(waitpid(f->pid, &status, WNOHANG) == 0,
			      "replite serve exited; see %s", log_path);
		sleep_ms(10);
	}
	ck_assert_msg(f->url[0] != '\0', "replite serve did not start");
	free(data);
	free(log_path);
}

void server_fixture_stop(struct server_fixture *f)
{
	int status = 0;

	if (f->pid > 0) {
		kill(f->pid, SIGTERM);
		ck_assert_int_eq(waitpid(f->pid, &status, 0), f->pid);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "replite serve did not exit cleanly (status %d)",
			      status);
	}
	fixture_rmdir(f->dir);
	f->dir = NULL;
	f->pid = 0;
}
