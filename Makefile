# Thin wrapper over CMake.  `make run` and `make test` do all the set-up.
BUILD    ?= build
ASAN     ?= build-asan
JOBS     ?= $(shell nproc)
MAKEFLAGS += --no-print-directory
DATA_DIR ?= ./var
LISTEN   ?= 127.0.0.1:8080

.PHONY: all build asan run test test-release test-asan bench checksrc clean bootstrap

all: build

bootstrap:
	@scripts/bootstrap

$(BUILD)/CMakeCache.txt:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS)

$(ASAN)/CMakeCache.txt:
	@cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DMDM_SANITIZE=ON >/dev/null

asan: $(ASAN)/CMakeCache.txt
	@cmake --build $(ASAN) -j $(JOBS)

run: bootstrap build
	@echo "mdmd: starting on http://$(LISTEN) with its data in $(DATA_DIR) (Ctrl-C stops it)"
	@echo "To enroll a device, in another terminal:"
	@echo "  export MDM_SERVER=http://$(LISTEN) MDM_TOKEN_FILE=$(abspath $(DATA_DIR))/admin.token"
	@echo "  TOKEN=\$$(build/bin/mdmctl enroll-token create)"
	@echo "  build/bin/mdm-agent enroll --server \$$MDM_SERVER --token \$$TOKEN --state-dir /tmp/mdm-agent"
	@echo "  build/bin/mdm-agent run --once --state-dir /tmp/mdm-agent"
	@echo "  build/bin/mdmctl devices list"
	@echo
	@exec build/bin/mdmd --listen $(LISTEN) --data-dir $(DATA_DIR)

# Every test twice: a release build, then under ASan+UBSan.
test: bootstrap checksrc build asan
	@cd $(BUILD) && ctest --output-on-failure -j 2
	@cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j 2

test-release: build
	@cd $(BUILD) && ctest --output-on-failure -j 2

test-asan: asan
	@cd $(ASAN) && ctest --output-on-failure -j 2

bench: bootstrap build
	@bench/run

checksrc:
	@scripts/checksrc

clean:
	rm -rf $(BUILD) $(ASAN)
