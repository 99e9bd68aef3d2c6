#!/usr/bin/env bash
# Builds the SQLite host programs of the extension's compatibility test
# (hosts.test.mjs): host.c compiled together with the SQLite amalgamation
# that an npm package bundles, one program per SQLite version.
#
#   build.sh [CACHE_DIR [PACKAGE@VERSION...]]
#
# CACHE_DIR     where tarballs, amalgamations and programs go (default
#               build/sqlite-hosts in the source tree, git-ignored); every
#               step is skipped when its result is already there
# PACKAGE@...   the packages whose amalgamation to use (default: the
#               $SQLITE_HOSTS list, else the three below)
#
# Prints one line per host on stdout, "SQLITE_VERSION<TAB>PACKAGE@VERSION
# <TAB>PROGRAM"; progress goes to stderr.  Needs npm (the registry, or its
# cache: --prefer-offline uses a cached tarball without asking the
# registry) and cc.  Environment: CC (default cc), HOST_CFLAGS (flags for
# the amalgamation, default -O1), JOBS (parallel amalgamation builds,
# default: nproc).
#
# The default packages and the SQLite they bundle:
#   better-sqlite3@5.4.3   3.29.0  (older than the minimum: must be refused)
#   better-sqlite3@7.0.1   3.31.1  (the minimum; as Ubuntu 20.04)
#   better-sqlite3@7.1.2   3.34.0  (sqlite3_txn_state appeared)
#   better-sqlite3@13.2.0  3.54.1  (the newest found)
# Others that work: better-sqlite3@7.1.0 (3.32.0), @7.1.1 (3.33.0),
# @7.1.4 (3.35.2), @12.11.1 (3.53.2); sqlite3@6.0.1 (3.52.0, an autoconf
# tarball in deps/).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
CACHE=${1:-$ROOT/build/sqlite-hosts}
[ $# -gt 0 ] && shift
if [ $# -eq 0 ]; then
	# shellcheck disable=SC2086 # a space-separated list
	set -- ${SQLITE_HOSTS:-better-sqlite3@5.4.3 better-sqlite3@7.0.1 better-sqlite3@7.1.2 better-sqlite3@13.2.0}
fi
CC=${CC:-cc}
HOST_CFLAGS=${HOST_CFLAGS:--O1}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

mkdir -p "$CACHE/npm" "$CACHE/amalgamation" "$CACHE/bin"
CACHE=$(cd "$CACHE" && pwd)

say() { echo "sqlite-hosts: $*" >&2; }

# The package's tarball in $CACHE/npm (npm pack; the npm cache first).
fetch() {
	spec=$1
	tgz=$CACHE/npm/$(echo "$spec" | tr '/@' '__').tgz
	if [ ! -s "$tgz" ]; then
		say "fetching $spec (npm pack)"
		tmp=$(mktemp -d "$CACHE/npm/tmp.XXXXXX")
		if ! (cd "$tmp" && npm pack --prefer-offline --silent "$spec" >/dev/null); then
			rm -rf "$tmp"
			say "npm pack $spec failed"
			return 1
		fi
		mv "$tmp"/*.tgz "$tgz"
		rm -rf "$tmp"
	fi
	echo "$tgz"
}

# The amalgamation (sqlite3.c, sqlite3.h, sqlite3ext.h) of a package in
# $CACHE/amalgamation/SPEC: deps/sqlite3/ (better-sqlite3 >= 7.5), inside
# deps/sqlite3.tar.gz (older better-sqlite3) or deps/sqlite-autoconf-*.tar.gz
# (node-sqlite3).  With it, in "defines", the compile-time options of
# better-sqlite3's deps/defines.gypi: its sqlite3.c is generated with them
# (the parser of 3.33.0's does not link without
# SQLITE_ENABLE_UPDATE_DELETE_LIMIT), and so the host's SQLite is configured
# as better-sqlite3's.
extract() {
	spec=$1
	tgz=$2
	dir=$CACHE/amalgamation/$(echo "$spec" | tr '/@' '__')
	if [ ! -s "$dir/sqlite3.c" ] || [ ! -e "$dir/defines" ]; then
		say "extracting the amalgamation of $spec"
		tmp=$(mktemp -d "$CACHE/amalgamation/tmp.XXXXXX")
		tar -xzf "$tgz" -C "$tmp"
		c=$(find "$tmp" -name sqlite3.c | head -n 1)
		if [ -z "$c" ]; then
			mkdir -p "$tmp/inner"
			find "$tmp/package/deps" -name '*.tar.gz' \
				-exec tar -xzf {} -C "$tmp/inner" \;
			c=$(find "$tmp" -name sqlite3.c | head -n 1)
		fi
		if [ -z "$c" ]; then
			rm -rf "$tmp"
			say "$spec bundles no sqlite3.c"
			return 1
		fi
		mkdir -p "$dir"
		for f in sqlite3.c sqlite3.h sqlite3ext.h; do
			cp "$(dirname "$c")/$f" "$dir/$f.tmp"
			mv "$dir/$f.tmp" "$dir/$f"
		done
		gypi=$tmp/package/deps/defines.gypi
		if [ -f "$gypi" ]; then
			sed -n "s/^ *'\([A-Z][A-Z0-9_]*\(=[^']*\)\{0,1\}\)',\{0,1\}$/\1/p" "$gypi"
		fi >"$dir/defines"
		rm -rf "$tmp"
	fi
	echo "$dir"
}

version_of() {
	sed -n 's/^#define SQLITE_VERSION  *"\([^"]*\)".*/\1/p' "$1/sqlite3.h"
}

# sqlite3.o of an amalgamation (the slow part: cached, and run in parallel).
# The package's options, then SQLITE_THREADSAFE=1 (the extension's sync
# thread), HAVE_USLEEP as in every real build (without it sqlite3_sleep, and
# so the busy handler, sleeps whole seconds); SQLITE_OMIT_LOAD_EXTENSION stays
# undefined: extensions load.
compile_amalgamation() {
	dir=$1
	SQLITE_FLAGS="$HOST_CFLAGS -w"
	while read -r d; do
		case $d in
		SQLITE_THREADSAFE=* | SQLITE_OMIT_LOAD_EXTENSION* | HAVE_USLEEP*) ;;
		?*) SQLITE_FLAGS="$SQLITE_FLAGS -D$d" ;;
		esac
	done <"$dir/defines"
	SQLITE_FLAGS="$SQLITE_FLAGS -DSQLITE_THREADSAFE=1 -DHAVE_USLEEP=1"
	if [ ! -s "$dir/sqlite3.o" ] ||
		[ "$(cat "$dir/sqlite3.o.flags" 2>/dev/null)" != "$CC $SQLITE_FLAGS" ]; then
		say "compiling SQLite $(version_of "$dir") ($dir/sqlite3.c," \
			"$HOST_CFLAGS and $(wc -l <"$dir/defines") options of the package)"
		# shellcheck disable=SC2086 # flags
		$CC $SQLITE_FLAGS -c "$dir/sqlite3.c" -o "$dir/sqlite3.o.tmp"
		mv "$dir/sqlite3.o.tmp" "$dir/sqlite3.o"
		echo "$CC $SQLITE_FLAGS" >"$dir/sqlite3.o.flags"
	fi
}

# Fetch and extract, one after another (npm output stays readable).
dirs=""
for spec in "$@"; do
	tgz=$(fetch "$spec")
	dir=$(extract "$spec" "$tgz")
	dirs="$dirs $dir"
done

# Compile the amalgamations, $JOBS at a time.
pids=""
n=0
for dir in $dirs; do
	compile_amalgamation "$dir" &
	pids="$pids $!"
	n=$((n + 1))
	if [ "$n" -ge "$JOBS" ]; then
		for pid in $pids; do wait "$pid" || true; done
		pids=""
		n=0
	fi
done
for pid in $pids; do wait "$pid" || true; done

# Link each host (host.c changes more often than the amalgamations).
for dir in $dirs; do
	spec=$1
	shift
	[ -s "$dir/sqlite3.o" ] || { say "SQLite of $spec did not compile"; exit 1; }
	version=$(version_of "$dir")
	bin=$CACHE/bin/host-$version-$(echo "$spec" | tr '/@' '__')
	if [ ! -x "$bin" ] || [ "$HERE/host.c" -nt "$bin" ] || [ "$dir/sqlite3.o" -nt "$bin" ]; then
		say "linking $bin"
		$CC -O1 -Wall -Wextra -Werror -I"$dir" "$HERE/host.c" "$dir/sqlite3.o" \
			-o "$bin.tmp" -ldl -lpthread -lm
		mv "$bin.tmp" "$bin"
	fi
	printf '%s\t%s\t%s\n' "$version" "$spec" "$bin"
done
