#!/usr/bin/env bash
# Installs what the test suite needs and is missing: Debian's skopeo,
# docker-registry (distribution), nginx, caddy, umoci, apache2-utils and bzip2 (the
# bzip2-compressed archive tests compress with it), and the Go
# modules. Tests start and stop their own registry and nginx instances on
# 127.0.0.1; nothing is left running.
set -euo pipefail
need=()
for pair in skopeo:skopeo docker-registry:docker-registry nginx:nginx caddy:caddy umoci:umoci ab:apache2-utils bzip2:bzip2; do
	cmd=${pair%%:*} pkg=${pair#*:}
	command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "test-deps: missing ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
		exit 1
	fi
	echo "test-deps: installing ${need[*]}"
	# docker-registry's, nginx's and caddy's postinst would start daemons with Debian's
	# configs; the tests start their own, so forbid service starts meanwhile.
	policy=/usr/sbin/policy-rc.d
	had_policy=0; [ -e "$policy" ] && had_policy=1
	if [ $had_policy -eq 0 ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; fi
	trap '[ $had_policy -eq 0 ] && rm -f "$policy"' EXIT
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# skopeo refuses to run without a signature policy; Debian's containers-common
# ships one, but make sure a permissive default exists.
if [ ! -e /etc/containers/policy.json ] && [ "$(id -u)" -eq 0 ]; then
	mkdir -p /etc/containers
	printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' > /etc/containers/policy.json
fi
go mod download
