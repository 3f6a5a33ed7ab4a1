# The entry point on a fresh machine (Node, npm, python3 and pip; nothing else).
# Every target installs what it needs: `make demo` and `make test` are all a
# newcomer runs.

ZIG_VERSION := 0.15.2
ZIG := .tools/ziglang/ziglang/zig
DENO := node_modules/.bin/deno
BUN := node_modules/.bin/bun
LIB := zig-out/lib/libpluginshm.so
PEER := zig-out/bin/c_peer
LAUNCHER := zig-out/bin/pshm-launch
# Real cosign for the signature interop test, built from the Go module proxy
# (pinned; about 4 minutes the first time, then cached in .tools).
COSIGN_VERSION := v2.6.5
COSIGN := .tools/cosign-$(COSIGN_VERSION)/cosign
ZIG_SOURCES := build.zig $(wildcard zig/*.zig zig/include/*.h tests/peers/*.c)
LAUNCHER_SOURCES := build.zig $(wildcard zig/launcher/*.zig)
# Defined before `build:` uses it (make expands prerequisites as it reads them).
NATIVE := native/manifest.json

.PHONY: cosign setup build dist package test test-publish test-zig test-cross test-deno test-bun test-node test-ops ops-tools lint bench bench-sandbox bench-shmipc bench-integrity bench-scale demo clean
.PHONY: fuzz doc-lint bench-compression bench-inspect bench-wake-floor

setup: node_modules/.installed $(ZIG)

node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

$(ZIG):
	python3 -m pip install --quiet --disable-pip-version-check --target .tools/ziglang ziglang==$(ZIG_VERSION)

# native/ too: library.ts prefers the package's prebuilt library to zig-out, so
# it must never be older than the Zig sources.
build: setup $(LIB) $(PEER) $(LAUNCHER) $(NATIVE)

# The sandbox launcher (docs/security.md); static, no libc.
$(LAUNCHER): $(LAUNCHER_SOURCES) | $(ZIG)
	$(ZIG) build launcher -Doptimize=ReleaseSafe

# Node runs no TypeScript: the package compiled to JavaScript + .d.ts in dist/
# (tsconfig.dist.json; relative ./x.ts imports become ./x.js). The tests are
# compiled too, for test-node; the Node test plugin imports dist/plugin.js.
DIST_SOURCES := tsconfig.dist.json $(wildcard *.ts src/*.ts src/*/*.ts tests/*.ts tests/peers/*.ts bench/*.ts)

dist: setup dist/.built

dist/.built: $(DIST_SOURCES) package-lock.json
	rm -rf dist
	node_modules/.bin/tsc -p tsconfig.dist.json
	touch $@

# The libraries the package ships, one per platform, stripped, with their SHA-256 in
# native/manifest.json (src/native/library.ts picks one and checks remote copies).
# `make package` leaves the tarball in .scratch/pack/ and prints its size.

package: setup $(NATIVE) dist
	rm -rf .scratch/pack && mkdir -p .scratch/pack
	npm pack --silent --ignore-scripts --pack-destination .scratch/pack >/dev/null
	@ls -l .scratch/pack/*.tgz | awk '{ printf "%s: %d bytes (limit 3 MiB = 3145728)\n", $$9, $$5; if ($$5 > 3145728) exit 1 }'

$(NATIVE): $(ZIG_SOURCES) $(LAUNCHER_SOURCES) | $(ZIG)
	rm -rf native zig-out/native
	$(ZIG) build package
	cp -r zig-out/native native
	node scripts/native_manifest.mjs

# ReleaseFast on purpose: Debug builds carry thread-local storage that glibc's
# dlopen cannot set up for threads the library starts.
$(LIB) $(PEER): $(ZIG_SOURCES) | $(ZIG)
	$(ZIG) build peer install -Doptimize=ReleaseFast

test: build test-zig test-cross lint test-publish test-deno test-bun test-node
	bash tests/leak_check.sh

# What JSR would publish: no slow types, a license, every module resolvable for a consumer (offline).
test-publish: setup $(NATIVE)
	$(DENO) publish --dry-run --allow-dirty

test-zig: setup
	$(ZIG) build test --summary new

# Proves the library compiles for the targets CI cannot run.
test-cross: setup
	$(ZIG) build cross -Doptimize=ReleaseSafe
	@ls zig-out/cross/*/

# Every public entry point documented (deno doc --lint: JSDoc on each export, no private types in public ones).
# Every entry file; testing.ts joins when it exists (scripts/doc_lint.sh names the few allowed npm type refs).
DOC_LINT_ENTRIES := mod.ts plugin.ts security.ts admin.ts observe.ts $(wildcard testing.ts)

doc-lint: setup
	bash scripts/doc_lint.sh $(DENO) $(DOC_LINT_ENTRIES)

lint: setup dist doc-lint
	$(DENO) fmt --check
	$(DENO) lint
	$(DENO) check mod.ts plugin.ts cli.ts admin.ts observe.ts security.ts testing.ts src tests bench examples
	$(ZIG) fmt --check build.zig zig

# --doc also runs every JSDoc @example that is not marked ignore, so examples cannot rot.
# Test files run one at a time (Deno's default): their leak checks read /proc/self/fd, /dev/shm and child pids, which
# every test worker of one `deno test` shares. Do not pass --parallel=false: Deno 2.9.6 takes it as --parallel.
test-deno: build dist ops-tools $(COSIGN)
	bash tests/deno_suite.sh $(DENO) test -A src tests
	bash tests/deno_suite.sh $(DENO) test -A --doc mod.ts plugin.ts security.ts admin.ts observe.ts src

test-bun: build dist ops-tools $(COSIGN)
	$(BUN) test --timeout 60000 ./src ./tests

# The same suites under Node, on the compiled JavaScript, one file at a time.
test-node: build dist ops-tools $(COSIGN)
	node --test --test-concurrency=1 dist/tests/*_test.js dist/src/*/*_test.js

# The real tools the operations tests check against: promtool (Debian
# prometheus), Chromium for the dashboard test, Python's Prometheus parser.
# The tests install them too when run alone; doing it here keeps installs
# out of test timeouts.
OPS_TESTS := src/observe tests/observe_metrics_test.ts tests/observe_logs_test.ts tests/admin_api_test.ts \
	tests/admin_serve_test.ts tests/admin_browser_test.ts tests/admin_cli_test.ts tests/admin_config_test.ts \
	tests/tracing_test.ts

ops-tools:
	@command -v promtool >/dev/null && command -v chromium >/dev/null || { \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus chromium; }
	@PYTHONPATH=.tools/python python3 -c "import prometheus_client" 2>/dev/null || \
		python3 -m pip install --quiet --disable-pip-version-check --target .tools/python prometheus-client==0.26.0

# Metrics, logs, admin API and dashboard only, under Deno, Bun and Node (the
# browser test drives Chromium from Deno).
test-ops: build dist ops-tools
	$(DENO) test -A $(OPS_TESTS)
	$(BUN) test --timeout 300000 $(OPS_TESTS)
	node --test --test-concurrency=1 $(patsubst %.ts,dist/%.js,$(filter %.ts,$(OPS_TESTS))) dist/src/observe/*_test.js

# The long protocol fuzz run (docs/protocol.md, "Fuzzing"): 1 M frame sequences and 100 k handshakes per
# runtime by default, about an hour under Deno and 40 minutes under Bun on a loaded 2-core VM. Smaller: FUZZ_RPC_RUNS=20000
# FUZZ_HANDSHAKE_RUNS=10000 make fuzz; replay a failed batch with FUZZ_SEED=<its printed seed>.
fuzz: build
	$(DENO) run -A tests/fuzz_long.ts
	$(BUN) tests/fuzz_long.ts

bench: build dist
	$(DENO) run -A bench/channel_bench.ts $(BENCH_ARGS)
	$(BUN) bench/channel_bench.ts $(BENCH_ARGS)
	mkdir -p .scratch
	$(DENO) run -A bench/rpc_bench.ts --json $(BENCH_ARGS) > .scratch/rpc_deno.jsonl
	$(BUN) bench/rpc_bench.ts --json $(BENCH_ARGS) > .scratch/rpc_bun.jsonl
	node dist/bench/rpc_bench.js --json $(BENCH_ARGS) > .scratch/rpc_node.jsonl
	$(DENO) run -A bench/table.ts .scratch/rpc_deno.jsonl .scratch/rpc_bun.jsonl .scratch/rpc_node.jsonl
	$(DENO) run -A bench/tails_bench.ts --json > .scratch/tails_deno.jsonl
	$(BUN) bench/tails_bench.ts --json > .scratch/tails_bun.jsonl
	$(DENO) run -A bench/charts.ts .scratch/rpc_deno.jsonl .scratch/rpc_bun.jsonl .scratch/rpc_node.jsonl \
		.scratch/tails_deno.jsonl .scratch/tails_bun.jsonl
	$(BUN) bench/cold_start.ts
	$(DENO) run -A bench/wake_bench.ts
	$(BUN) bench/wake_bench.ts
	node dist/bench/wake_bench.js
	$(MAKE) bench-shmipc
	$(MAKE) bench-scale

# shmipc-go (cloudwego, pinned in bench/shmipc/go.mod) beside our channel and a unix socket, same sizes,
# same run, one table (bench/side_by_side.ts) and SVG charts in bench/ (bench/charts.ts). Go from the module proxy; the build is cached in .tools.
SHMIPC_BENCH := .tools/bench-shmipc
$(SHMIPC_BENCH): bench/shmipc/main.go bench/shmipc/go.mod bench/shmipc/go.sum
	cd bench/shmipc && GOFLAGS=-buildvcs=false go build -o $(abspath $@) .

bench-shmipc: build $(SHMIPC_BENCH)
	mkdir -p .scratch
	$(DENO) run -A bench/channel_bench.ts --json --only=rtt,throughput --transports=shm,unix $(BENCH_ARGS) > .scratch/side_deno.jsonl
	$(BUN) bench/channel_bench.ts --json --only=rtt,throughput --transports=shm,unix $(BENCH_ARGS) > .scratch/side_bun.jsonl
	$(DENO) run -A bench/shmipc/views.ts --json $(BENCH_ARGS) > .scratch/side_deno_view.jsonl
	$(BUN) bench/shmipc/views.ts --json $(BENCH_ARGS) > .scratch/side_bun_view.jsonl
	$(SHMIPC_BENCH) --json $(BENCH_ARGS) > .scratch/side_go.jsonl
	$(DENO) run -A bench/side_by_side.ts .scratch/side_deno.jsonl .scratch/side_bun.jsonl .scratch/side_go.jsonl \
	  .scratch/side_deno_view.jsonl .scratch/side_bun_view.jsonl
	$(DENO) run -A bench/charts.ts .scratch/side_deno.jsonl .scratch/side_bun.jsonl .scratch/side_go.jsonl

# The floor under issue 12's parked->woken target: two native processes waking each other through a shared
# futex, a futex plus a relay thread, eventfd, pipe and unix socket (each with epoll), both sides parked every time.
WAKE_FLOOR := zig-out/bin/bench-wake-floor
$(WAKE_FLOOR): bench/wake_floor.c | $(ZIG)
	mkdir -p zig-out/bin
	$(ZIG) cc -O2 -std=c11 -Wall -Werror -pthread -o $@ bench/wake_floor.c

bench-wake-floor: $(WAKE_FLOOR)
	$(WAKE_FLOOR) $(BENCH_ARGS)

# Where compression pays: echo calls over shm and tcp, off and deflate, 4 KiB-1 MiB, compressible and random payloads.
bench-compression: build
	$(DENO) run -A bench/compression_bench.ts $(BENCH_ARGS)

# 64 plugin processes under one host: aggregate calls/s with all calling, CPU with all idle.
bench-scale: build
	$(DENO) run -A bench/scale_bench.ts $(BENCH_ARGS)

# The product's story on this machine in under a minute, then serving until Ctrl-C.
# What the OS sandbox costs, sandboxed vs not in the same run: echo p50, cold start, memory-limit detection.
# A smoke run: make bench-sandbox BENCH_ARGS="--calls=50 --rounds=2 --runs=2 --crossings=1"
bench-sandbox: build
	$(DENO) run -A bench/sandbox_bench.ts $(BENCH_ARGS)
	$(BUN) bench/sandbox_bench.ts $(BENCH_ARGS)

# Tree digest and verify-at-load cost, signature checks, audit rate (issue 9's targets); BENCH_ARGS=--quick to smoke-run.
bench-integrity: build
	$(DENO) run -A bench/integrity_bench.ts $(BENCH_ARGS)
	$(BUN) bench/integrity_bench.ts $(BENCH_ARGS)

# What an inspector costs a plugin's cold start (none / blameStalls / inspect, per plugin runtime), interleaved.
# A smoke run: make bench-inspect BENCH_ARGS="--runs 2"
bench-inspect: build dist
	$(DENO) run -A bench/inspect_bench.ts $(BENCH_ARGS)

demo: build
	$(DENO) run -A cli.ts demo --admin

cosign: $(COSIGN)

$(COSIGN):
	GOBIN=$(abspath $(dir $(COSIGN))) GOFLAGS=-buildvcs=false go install github.com/sigstore/cosign/v2/cmd/cosign@$(COSIGN_VERSION)

clean:
	rm -rf zig-out .zig-cache native dist
