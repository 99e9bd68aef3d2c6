# Shared by scripts/test and scripts/demo: install what is missing, build.
# shellcheck shell=bash

REPLITE_DEB_PACKAGES=(
	gcc pkg-config meson ninja-build
	libsqlite3-dev sqlite3 libcurl4-openssl-dev libssl-dev libgcrypt20-dev
	libmicrohttpd-dev libwslay-dev libjansson-dev libxxhash-dev libzstd-dev check
	libprotobuf-c-dev protobuf-c-compiler libroaring-dev
	python3 curl clang-format git
	openssl # test/compat/tls.test.mjs makes its certificates
	g++ make # node-gyp builds better-sqlite3 from source (test/compat)
)

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Install only the Debian packages that are missing (REPLITE_DEB_PACKAGES and
# the arguments: scripts/test adds prometheus, for promtool).
ensure_packages() {
	local missing=() p
	for p in "${REPLITE_DEB_PACKAGES[@]}" "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	if ! command -v node >/dev/null 2>&1; then missing+=(nodejs npm); fi
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing Debian packages: ${missing[*]}"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}

# npm packages for the compatibility tests and benchmarks, into a
# git-ignored node_modules beside their package.json.
ensure_npm() {
	local dir=$1
	if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.stamp" ]; then
		log "installing npm packages in $dir"
		# npm shows no progress without a terminal: one line per 50
		# packages fetched instead.
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=http 2>&1) |
			awk '/npm http fetch/ { if (++n % 50 == 0) printf "    npm: %d packages fetched\n", n; next }
			     /npm (error|warn)/ { print }
			     END { if (n) printf "    npm: %d packages fetched, done\n", n }' >&2
		[ "${PIPESTATUS[0]}" = 0 ] || return 1
		touch "$dir/node_modules/.stamp"
	fi
}

# build DIR [meson options...]
build() {
	local dir=$1; shift
	local out
	if [ ! -f "$dir/build.ninja" ]; then
		out=$(meson setup "$dir" "$@" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
	fi
	# Progress: one line per tenth of the build steps.
	ninja -C "$dir" > "$dir/.build.log" 2>&1 &
	local pid=$! last=-1 line pct
	while kill -0 "$pid" 2>/dev/null; do
		line=$(grep -o '^\[[0-9]*/[0-9]*\]' "$dir/.build.log" | tail -1 || true)
		if [ -n "$line" ]; then
			pct=$(echo "$line" | awk -F'[][/]' '{ if ($3 > 0) print int($2 * 10 / $3) * 10 }')
			if [ -n "$pct" ] && [ "$pct" != "$last" ]; then
				printf '    build %s: %s%% %s\n' "$dir" "$pct" "$line" >&2
				last=$pct
			fi
		fi
		sleep 1
	done
	wait "$pid" || { tail -n 60 "$dir/.build.log" >&2; return 1; }
}
