# prism — the front door.  Every target installs what it needs first (make deps).
#
#   make deps        install missing Debian packages (as root), or print the command
#   make build       configure and build into build/ (binaries in build/bin/)
#   make demo        build, then run the quick-start demo
#   make es-demo     build, then train the MuJoCo humanoid with evolution strategies on
#                    prism actors (ES_FLAGS: es_humanoid's options; the policy is saved)
#   make control-demo  build, then run the MuJoCo humanoid's control loop at 1-30 ms with
#                    its policy in a real-time actor, idle and under ES training
#                    (CONTROL_FLAGS: robot_control's options)
#   make test        build, then run every test (ctest)
#   make asan-test   the same tests built with AddressSanitizer + UBSan, in build-asan/
#   make stress      new random task graphs (tests/prop/dag.c) under ASan + UBSan for
#                    SECONDS (default 600), half with workers killed; prints failing seeds
#   make bench       build, then run every benchmark suite (table; JSON: BENCH_FLAGS=--json)
#   make fuzz        build the libFuzzer targets with clang and fuzz each for FUZZ_SECONDS
#   make format      clang-format every C file;  make format-check  checks only
#   make install     install libprism, headers, CMake package and pkg-config file
#   make clean

BUILD       ?= build
ASAN_BUILD  ?= build-asan
FUZZ_BUILD  ?= build-fuzz
BUILD_TYPE  ?= RelWithDebInfo
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
BENCH_FLAGS ?=
ES_FLAGS    ?= --timesteps 300000
FUZZ_SECONDS ?= 60
SECONDS     ?= 600
PREFIX      ?= /usr/local

# Exact Debian 12 package names.  Tools first, then the libraries prism builds on:
# DPDK (rte_ring), liburing (the event loop), Criterion (tests),
# libsodium (the cluster token's HMAC), rdma-core (the verbs backend, built always),
# iproute2 (the two-host transport test's namespaces), and for the evolution-strategies
# example (examples/es_humanoid) and its peer: libmujoco-dev (the MuJoCo 2.2 simulator),
# libmujoco-samples (its humanoid.xml model), libopenmpi-dev and openmpi-bin (the
# OpenMPI peer bench/peers/es_mpi.c, and mpirun to run it).
DEB_PACKAGES := gcc make cmake pkg-config libc6-dev \
	libdpdk-dev liburing-dev libcriterion-dev \
	libsodium-dev libibverbs-dev librdmacm-dev iproute2 \
	libmujoco-dev libmujoco-samples libopenmpi-dev openmpi-bin
FUZZ_PACKAGES := clang libclang-rt-14-dev
# The peers `make bench` measures beside prism, from Debian (../shared/BENCHMARKS.md).
BENCH_PACKAGES := python3-distributed redis-server
PEER_PYTHON := /usr/bin/python3

C_FILES = $(shell git ls-files -co --exclude-standard '*.c' '*.h' 2>/dev/null)

.PHONY: all deps fuzz-deps build demo es-demo control-demo test asan-test stress bench fuzz format \
	format-check \
	install clean

all: build

# Installs only what is missing; 'apt-get update' runs once, and only then.
deps:
	@missing=""; for p in $(DEB_PACKAGES) $(EXTRA_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" \
			|| missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "prism: missing Debian packages:$$missing"; \
	if [ "$$(id -u)" = 0 ]; then \
		export DEBIAN_FRONTEND=noninteractive; \
		if [ -z "$(NO_APT_UPDATE)" ]; then apt-get update; fi && \
		apt-get install -y --no-install-recommends $$missing; \
	else \
		echo "prism: run as root:  apt-get update && apt-get install -y --no-install-recommends$$missing"; \
		exit 1; \
	fi

fuzz-deps:
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES="$(FUZZ_PACKAGES)"

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	@sh examples/demo.sh $(BUILD)

# Needs MuJoCo (libmujoco-dev, libmujoco-samples: make deps installs them).  300,000
# timesteps take about 30 s on 2 CPUs; the mean return climbs from ~110 as the humanoid
# learns to stay up and lean forward.
es-demo: build
	@test -x $(BUILD)/bin/es_humanoid || { echo "es_humanoid was not built: MuJoCo is missing (make deps)"; exit 1; }
	$(BUILD)/bin/es_humanoid $(ES_FLAGS) --save $(BUILD)/es_policy.bin

control-demo: build
	@test -x $(BUILD)/bin/robot_control || { echo "robot_control was not built: MuJoCo is missing (make deps)"; exit 1; }
	$(BUILD)/bin/robot_control $(CONTROL_FLAGS)
	$(BUILD)/bin/robot_control --load $(CONTROL_FLAGS)

# Tests run one at a time: several fork helpers that spin, and the machine may have
# only two cores.
test: build
	ctest --test-dir $(BUILD) --output-on-failure --timeout 900

asan-test: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPRISM_SANITIZE=address,undefined \
		-DPRISM_BUILD_BENCH=OFF
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --test-dir $(ASAN_BUILD) --output-on-failure --timeout 1800

# New seeds each run (from the clock); the log is $(ASAN_BUILD)/stress.log.
stress: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPRISM_SANITIZE=address,undefined \
		-DPRISM_BUILD_BENCH=OFF
	cmake --build $(ASAN_BUILD) -j$(JOBS) --target prop_dag
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		MALLOC_PERTURB_=165 sh tests/prop/stress.sh $(ASAN_BUILD)/tests/prop_dag $(SECONDS) \
		$(ASAN_BUILD)/stress.log

# prism's suites, then the peers' measurements of the same cases, side by side.  JSON
# lines of both land in $(BUILD)/bench.json.
bench: build
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES="$(BENCH_PACKAGES)"
	$(BUILD)/bin/prism-bench $(BENCH_FLAGS) --json-file $(BUILD)/bench.json all
	@for p in bench/peers/*.py; do $(PEER_PYTHON) $$p --json 2>/dev/null >> $(BUILD)/bench.json \
		|| echo "peer $$p failed"; done
	@$(PEER_PYTHON) bench/compare.py < $(BUILD)/bench.json

fuzz: fuzz-deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DPRISM_FUZZ=ON -DPRISM_BUILD_BENCH=OFF \
		-DPRISM_SANITIZE=address,undefined
	cmake --build $(FUZZ_BUILD) -j$(JOBS)
	@for f in $(FUZZ_BUILD)/bin/fuzz_*; do \
		name=$$(basename $$f | sed 's/^fuzz_//'); \
		work=$$(mktemp -d); cp -r tests/fuzz/corpus/$$name/. $$work/; \
		echo "== fuzzing $$name for $(FUZZ_SECONDS) s (new inputs in $$work)"; \
		$$f -max_total_time=$(FUZZ_SECONDS) $$work || exit 1; \
	done

format:
	clang-format -i $(C_FILES)

format-check:
	clang-format --dry-run -Werror $(C_FILES)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
