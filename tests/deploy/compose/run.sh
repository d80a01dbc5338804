#!/usr/bin/env bash
# run.sh - `make deploy-test`: build Mark's images, run the compose stack
# (deploy/docker-compose.yml) with two llm replicas, two executor workers and
# the LLM double as the model server, drive it through the composed gateway
# (smoke.mjs), tear it down, and print "N passed, M failed".
#
# Docker: the daemon at DOCKER_HOST or /var/run/docker.sock when one answers;
# otherwise, as root, this starts Debian's dockerd for the run (its images
# kept in MARK_DOCKER_ROOT, default /var/lib/mark-deploy-test/docker, so a
# later run reuses their layers) and stops it at the end. No registry is
# needed: the Debian base image is made with debootstrap from the machine's
# Debian mirror and `docker import`ed as mark-base/debian:bookworm (reused
# for 7 days), and every image is built from it and Debian's packages.
#
# Exit status: 0 all passed; 1 a check failed; 2 Docker cannot be run on this
# machine (said loudly, never a pass).
#
# Settings (environment): MARK_DOCKER_ROOT, MARK_DEPLOY_GATEWAY_PORT (18080),
# MARK_DEPLOY_DOUBLE_PORT (18090), MARK_DEPLOY_KEEP=1 (leave the stack up).
set -uo pipefail

root=$(cd "$(dirname "$0")/../../.." && pwd)
here=$root/tests/deploy/compose
project=mark-deploy-test
base_image=mark-base/debian:bookworm
gw_port=${MARK_DEPLOY_GATEWAY_PORT:-18080}
dbl_port=${MARK_DEPLOY_DOUBLE_PORT:-18090}
work=$(mktemp -d /tmp/mark-deploy-test.XXXXXX)
dockerd_pid=
passed=0
failed=0

log() { printf 'deploy-test: %s\n' "$*"; }
ok() {
	passed=$((passed + 1))
	printf 'ok - %s\n' "$1"
}
not_ok() {
	failed=$((failed + 1))
	printf 'not ok - %s\n' "$1"
	[ -n "${2:-}" ] && [ -s "$2" ] && tail -n 40 "$2" | sed 's/^/    /'
	return 0
}
# step NAME CMD...: one check, its output kept in $work and shown on failure.
step() {
	local name=$1 out
	shift
	out=$work/step.$((passed + failed)).log
	if "$@" >"$out" 2>&1; then ok "$name"; else not_ok "$name" "$out"; return 1; fi
}

unavailable() {
	cat >&2 <<-EOF

	################################################################
	# deploy-test: NOT RUN - Docker cannot be used on this machine:
	#   $*
	# The compose stack was not built or tested. This is not a pass.
	################################################################

	EOF
	cleanup
	exit 2
}

cleanup() {
	if [ -n "${compose_ready:-}" ] && [ "${MARK_DEPLOY_KEEP:-0}" != 1 ]; then
		"${compose[@]}" down -v --remove-orphans -t 20 >"$work/down.log" 2>&1 ||
			cat "$work/down.log" >&2
	fi
	if [ -n "$dockerd_pid" ]; then
		kill "$dockerd_pid" 2>/dev/null
		for _ in $(seq 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
		kill -9 "$dockerd_pid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap 'cleanup; exit 130' INT TERM

# ---- the tools, from Debian's packages
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v node >/dev/null || need+=(nodejs)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || unavailable "missing ${need[*]} and not root to install them"
	log "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" \
		>"$work/apt.log" 2>&1 ||
		{ (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
			--no-install-recommends "${need[@]}") >>"$work/apt.log" 2>&1 ||
			unavailable "apt-get install ${need[*]} failed: $(tail -n 3 "$work/apt.log")"; }
fi

# ---- a Docker daemon
if [ -z "${DOCKER_HOST:-}" ] && ! docker version >/dev/null 2>&1; then
	[ "$(id -u)" = 0 ] || unavailable "no Docker daemon answers, and starting one needs root"
	data=${MARK_DOCKER_ROOT:-/var/lib/mark-deploy-test/docker}
	mkdir -p "$data"
	export DOCKER_HOST=unix://$work/docker.sock
	log "starting dockerd (images in $data)"
	dockerd --data-root "$data" --exec-root "$work/exec" -H "$DOCKER_HOST" \
		--pidfile "$work/docker.pid" >"$work/dockerd.log" 2>&1 &
	dockerd_pid=$!
	for _ in $(seq 120); do
		docker version >/dev/null 2>&1 && break
		kill -0 "$dockerd_pid" 2>/dev/null || break
		sleep 0.5
	done
	docker version >/dev/null 2>&1 ||
		unavailable "dockerd did not start: $(tail -n 5 "$work/dockerd.log")"
fi
log "Docker $(docker version -f '{{.Server.Version}}' 2>/dev/null)"

# ---- the Debian base image, without a registry
fresh_base() {
	local created
	created=$(docker image inspect -f '{{.Created}}' "$base_image" 2>/dev/null) || return 1
	[ $(($(date +%s) - $(date -d "$created" +%s))) -lt $((7 * 86400)) ]
}
make_base() {
	local mirror
	mirror=$(sed -n 's/^URIs: *//p; s/^deb  *\(http[^ ]*\) bookworm .*/\1/p' \
		/etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null | head -n 1)
	debootstrap --variant=minbase bookworm "$work/rootfs" "${mirror:-http://deb.debian.org/debian}" &&
		tar -C "$work/rootfs" -c . | docker import - "$base_image" &&
		rm -rf "$work/rootfs"
}
if fresh_base; then
	ok "the Debian base image $base_image is there (built within 7 days)"
else
	step "debootstrap builds the Debian base image $base_image" make_base ||
		unavailable "cannot build a base image: see above"
fi

# ---- Mark's images
export DOCKER_BUILDKIT=0 # the classic builder: Debian's docker.io has no buildx
args=(--build-arg "BUILD_IMAGE=$base_image" --build-arg "RUNTIME_IMAGE=$base_image")
build() { docker build "$@"; }
built=1
step "the builder stage builds Mark" \
	build -f deploy/Dockerfile --target builder -t mark-builder:latest "${args[@]}" "$root" || built=0
step "the runtime image builds (mark:latest)" \
	build -f deploy/Dockerfile --target runtime -t mark:latest "${args[@]}" "$root" || built=0
step "the executor worker image builds (mark-executor:latest)" \
	build -f deploy/Dockerfile --target executor -t mark-executor:latest "${args[@]}" "$root" || built=0
step "the Postgres image builds from Debian's postgresql-15 (mark-postgres:15)" \
	build -t mark-postgres:15 --build-arg "BASE_IMAGE=$base_image" "$root/deploy/postgres" || built=0
step "the LLM double image builds (mark-llm-double:latest)" \
	build -f "$here/Dockerfile.llm-double" -t mark-llm-double:latest "$here" || built=0

# ---- the stack: settings in a directory of its own, two llm replicas, two workers
"$root/deploy/dev-setup.sh" "$work/config" >/dev/null
sed -i 's/^LLM_API_KEY=.*/LLM_API_KEY=compose-test-key/' "$work/config/env/llm.env"
export MARK_CONFIG_DIR=$work/config MARK_GATEWAY_PORT=$gw_port MARK_TEST_LLM_PORT=$dbl_port \
	MARK_TEST_LLM_KEY=compose-test-key MARK_LLM_PROVIDER=openai \
	MARK_LLM_BASE_URL=http://llm-double:9000/v1 MARK_LLM_MODEL=compose-double-model
compose=(docker-compose -p "$project" -f "$root/deploy/docker-compose.yml")
# docker-compose 1.29 (Debian's) needs the workers' /proc unmasked its own way.
if docker-compose version --short 2>/dev/null | grep -q '^1\.'; then
	compose+=(-f "$root/deploy/docker-compose.v1.yml")
	export MARK_WORKER_PROC_OPT=label=disable
fi
compose+=(-f "$here/docker-compose.test.yml")
# A stack left by an interrupted run goes first.
"${compose[@]}" down -v --remove-orphans -t 5 >/dev/null 2>&1
step "the compose file is valid for docker-compose $(docker-compose version --short 2>/dev/null)" \
	"${compose[@]}" config -q
if [ "$built" = 1 ]; then
	compose_ready=1
	if step "the stack comes up with llm and executor-worker scaled to 2" \
		"${compose[@]}" up -d --no-build --scale llm=2 --scale executor-worker=2; then
		MARK_URL=http://127.0.0.1:$gw_port MARK_DOUBLE_URL=http://127.0.0.1:$dbl_port \
			MARK_COMPOSE="$(printf '%s\n' "${compose[@]}" | node -e \
				'process.stdout.write(JSON.stringify(require("fs").readFileSync(0,"utf8").trim().split("\n")))')" \
			node "$here/smoke.mjs" | tee "$work/smoke.log"
		line=$(grep -E '^smoke: [0-9]+ passed, [0-9]+ failed$' "$work/smoke.log" | tail -n 1)
		if [ -n "$line" ]; then
			set -- $line
			passed=$((passed + $2))
			failed=$((failed + $4))
		else
			not_ok "the smoke test printed its counts"
		fi
	fi
	if [ "$failed" -gt 0 ]; then
		log "the services' last log lines:"
		"${compose[@]}" logs --no-color --tail=30 2>&1 | sed 's/^/    /' | tail -n 300
	fi
else
	not_ok "the stack was not started: an image did not build"
fi

cleanup
trap - INT TERM
echo "deploy-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
