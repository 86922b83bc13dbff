# Shared set-up of the bench/sync scripts (sourced from the repository root):
# a work directory under /var/tmp removed on exit with every process pushed
# on pids, the binaries built into $bin (and found there by the CLI), and
# free_port. Usage: sync_bench_setup NAME.
sync_bench_setup() {
	work=$(mktemp -d "/var/tmp/stevedore-$1-XXXX")
	pids=()
	trap sync_bench_cleanup EXIT
	bin=$work/bin
	mkdir -p "$bin"
	go build -o "$bin/stevedore" ./cmd/stevedore
	go build -o "$bin/stevedore-transport-docker" ./plugins/docker
	go build -o "$bin/stevedore-transport-oci" ./plugins/oci-layout
	go build -o "$bin/mkfixture" ./bench/sync/mkfixture
	export STEVEDORE_PLUGIN_PATH=$bin
}

sync_bench_cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
