/* replite: embedded replicas of a remote SQLite primary.
 *
 * Public C API for programs that link replite directly instead of loading it
 * as a SQLite extension.  The replica VFS ("replite") and its registration
 * function are added by the replica issues; what is here is stable. */
#ifndef REPLITE_H
#define REPLITE_H

#ifdef __cplusplus
extern "C" {
#endif

#define REPLITE_VERSION_MAJOR 0
#define REPLITE_VERSION_MINOR 1
#define REPLITE_VERSION_PATCH 0

/* Page size replicas and the primary exchange (the libSQL clients hard-code
 * it): databases served by `replite serve` always use it. */
#define REPLITE_PAGE_SIZE 4096

#ifdef __cplusplus
}
#endif

#endif
