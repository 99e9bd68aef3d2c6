/* The store's numbers for /metrics, and how far behind a position is (the
 * commit times store_notify notes: commit_times.h). */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

int64_t store_behind_since(struct store *s, uint32_t gen, uint32_t frame,
			   uint64_t *frames)
{
	uint64_t behind = 0;
	size_t i;

	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->n_gens; i++) {
		struct generation *g = s->gens[i];
		uint32_t head = frame_log_head(g->log);
		if (g->number == gen && head > frame)
			behind += head - frame;
		else if (g->number > gen)
			behind += head;
	}
	pthread_mutex_unlock(&s->mu);
	if (frames != NULL)
		*frames = behind;
	return behind == 0 ? 0 : commit_times_after(s->times, gen, frame);
}

static uint64_t file_size(const char *dir, const char *name)
{
	char *path = util_strdupf("%s/%s", dir, name);
	struct stat sb;
	uint64_t size = 0;

	if (path != NULL && stat(path, &sb) == 0)
		size = (uint64_t)sb.st_size;
	free(path);
	return size;
}

void store_stats(struct store *s, struct store_stats *out)
{
	char **dirs = NULL;
	size_t i, n = 0;

	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&s->mu);
	out->generation = store_current_locked(s)->number;
	out->head = frame_log_head(store_current_locked(s)->log);
	out->oldest_generation = s->gens[0]->number;
	out->generations = (uint32_t)s->n_gens;
	dirs = calloc(s->n_gens, sizeof *dirs);
	for (i = 0; dirs != NULL && i < s->n_gens; i++) {
		dirs[i] = strdup(s->gens[i]->dir);
		if (dirs[i] != NULL)
			n = i + 1;
	}
	pthread_mutex_unlock(&s->mu);
	out->commits_sql = atomic_load(&s->commits_sql);
	out->commits_pushed = atomic_load(&s->commits_pushed);
	out->fsync = &s->fsync;
	/* Sizes outside the lock: stat may wait on the disk.  A generation
	 * dropped meanwhile counts as empty. */
	out->live_bytes = file_size(s->data_dir, "live.db");
	out->live_wal_bytes = file_size(s->data_dir, "live.db-wal");
	for (i = 0; i < n; i++) {
		if (dirs[i] == NULL)
			continue;
		out->log_bytes += file_size(dirs[i], "frames.log") +
				  file_size(dirs[i], "pushes.log");
		out->base_bytes += file_size(dirs[i], "base.db") +
				   file_size(dirs[i], "base.db.zst");
		free(dirs[i]);
	}
	free(dirs);
}
