#include "failed_file.h"

#include <string.h>

static int failed_close(sqlite3_file *f)
{
	sqlite3_free(((struct failed_file *)f)->reason);
	return SQLITE_OK;
}

/* Reads as an empty file, so that sqlite3_open_v2 itself completes and the
 * reason can be reported to the connection. */
static int failed_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	(void)f;
	(void)off;
	memset(buf, 0, (size_t)amt);
	return SQLITE_IOERR_SHORT_READ;
}

static int failed_refuse(sqlite3_file *f)
{
	sqlite3_log(SQLITE_CANTOPEN, "%s", ((struct failed_file *)f)->reason);
	return SQLITE_CANTOPEN;
}

static int failed_write(sqlite3_file *f, const void *buf, int amt,
			sqlite3_int64 off)
{
	(void)buf;
	(void)amt;
	(void)off;
	return failed_refuse(f);
}

static int failed_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	(void)size;
	return failed_refuse(f);
}

static int failed_sync(sqlite3_file *f, int flags)
{
	(void)flags;
	return failed_refuse(f);
}

static int failed_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	(void)f;
	*size = 0;
	return SQLITE_OK;
}

static int failed_lock(sqlite3_file *f, int lock)
{
	(void)lock;
	return failed_refuse(f);
}

static int failed_unlock(sqlite3_file *f, int lock)
{
	(void)f;
	(void)lock;
	return SQLITE_OK;
}

static int failed_check_reserved_lock(sqlite3_file *f, int *out)
{
	(void)f;
	*out = 0;
	return SQLITE_OK;
}

static int failed_file_control(sqlite3_file *f, int op, void *arg)
{
	if (op == SQLITE_FCNTL_PRAGMA) {
		char **az = arg;
		az[0] =
		    sqlite3_mprintf("%s", ((struct failed_file *)f)->reason);
		return SQLITE_ERROR;
	}
	return SQLITE_NOTFOUND;
}

static int failed_sector_size(sqlite3_file *f)
{
	(void)f;
	return 4096;
}

static int failed_device_characteristics(sqlite3_file *f)
{
	(void)f;
	return 0;
}

static const sqlite3_io_methods failed_io_methods = {
    1,
    failed_close,
    failed_read,
    failed_write,
    failed_truncate,
    failed_sync,
    failed_file_size,
    failed_lock,
    failed_unlock,
    failed_check_reserved_lock,
    failed_file_control,
    failed_sector_size,
    failed_device_characteristics,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
};

void failed_file_init(sqlite3_file *f, char *reason)
{
	struct failed_file *ff = (struct failed_file *)f;

	ff->reason = reason;
	ff->base.pMethods = &failed_io_methods;
}

const char *failed_file_reason(sqlite3_file *f)
{
	if (f != NULL && f->pMethods == &failed_io_methods)
		return ((struct failed_file *)f)->reason;
	return NULL;
}
