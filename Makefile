# mapram's front door.  The real build is meson + ninja; this file only
# installs what is missing (as root), configures the build directories and
# runs the suites.
#
#   make          build build/mapram and build/mapram-vm
#   make demo     a VM saved live and restored, memory verified
#   make check    every suite, in a normal and an ASan+UBSan build
#   make fuzz     the libFuzzer targets, longer (FUZZ_SECONDS=600)
#   make bench    the performance benchmark (bench/README.md; AB=DIR: A/B)

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 600
CHECK_FUZZ_SECONDS ?= 10
MESON_TEST = meson test --print-errorlogs --num-processes 2

.PHONY: all deps build asan fuzz-build check check-fast demo bench fuzz clean

all: build

deps:
	@scripts/setup-deps.sh

$(BUILD)/build.ninja: | deps
	@meson setup $(BUILD) >/dev/null

$(ASAN_BUILD)/build.ninja: | deps
	@meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined \
		-Db_lundef=false -Dfault_injection=true >/dev/null

$(FUZZ_BUILD)/build.ninja: | deps
	@CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true \
		-Db_sanitize=address,undefined -Db_lundef=false >/dev/null

# The programs also appear at the top of the build directory
# (build/mapram, build/mapram-vm), where a user looks for them first.
build: $(BUILD)/build.ninja
	@ninja -C $(BUILD)
	@ln -sf src/cli/mapram $(BUILD)/mapram
	@ln -sf src/vm/mapram-vm $(BUILD)/mapram-vm

asan: $(ASAN_BUILD)/build.ninja
	@ninja -C $(ASAN_BUILD)

fuzz-build: $(FUZZ_BUILD)/build.ninja
	@ninja -C $(FUZZ_BUILD)

# Every suite in the normal build, then again under ASan+UBSan, then a short
# bounded fuzzing run.
# The suites keep going after a failure so the summary counts everything;
# the last line is "check: N passed, N failed, N skipped".
check: build asan fuzz-build
	@echo "== tests (normal build) =="
	@$(MESON_TEST) -C $(BUILD) || true
	@echo "== tests (ASan + UBSan build) =="
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(MESON_TEST) -C $(ASAN_BUILD) || true
	@echo "== fuzzing ($(CHECK_FUZZ_SECONDS)s per target) =="
	@scripts/run-fuzz.sh $(FUZZ_BUILD) $(CHECK_FUZZ_SECONDS)
	@scripts/test-summary.py $(BUILD) $(ASAN_BUILD)

# The normal build's suites only, for a quick edit-test loop.
check-fast: build
	@$(MESON_TEST) -C $(BUILD)

demo: build
	@scripts/demo.sh $(BUILD)

# AB=OTHER_BUILD_DIR: the A/B comparison, OTHER as A against $(BUILD) as B.
bench: build
	@scripts/setup-deps.sh --bench
	@bench/run.sh $(if $(AB),--ab $(AB)) $(BUILD)

fuzz: fuzz-build
	@scripts/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
