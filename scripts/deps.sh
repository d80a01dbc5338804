#!/usr/bin/env bash
# deps.sh - install the Debian packages Mark needs, when any is missing.
# Does nothing (and needs no root) when all are present.
set -euo pipefail

pkgs=(
	build-essential pkg-config
	libcivetweb-dev libnng-dev libpq-dev libcjson-dev libcurl4-openssl-dev
	libssl-dev check libsodium-dev
	postgresql-15 postgresql-client-15
	bubblewrap
	python3 python3-yaml python3-pandas python3-numpy python3-plotly python3-matplotlib python3-openpyxl
	nodejs curl ca-certificates openssl wrk procps util-linux iproute2
)

# kubectl (for `kubectl kustomize` in the manifest test): Debian's, unless one is installed.
command -v kubectl >/dev/null 2>&1 || pkgs+=(kubernetes-client)

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
	SUDO=
elif command -v sudo >/dev/null 2>&1; then
	SUDO=sudo
else
	echo "deps: missing packages and neither root nor sudo: ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# python3-pyarrow is not in Debian 12; the local sandbox reports Parquet as
# unsupported (the Daytona image in deploy/ has pyarrow).
if apt-cache show python3-pyarrow >/dev/null 2>&1; then
	$SUDO apt-get install -y -qq --no-install-recommends python3-pyarrow >/dev/null || true
fi
