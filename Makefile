# obake: build every package of an opam repository.
#
#   make            build ./obake
#   make check      build and run every test
#   make asan       the tests again, built with AddressSanitizer and UndefinedBehaviorSanitizer
#   make fuzz       short libFuzzer runs of every parser (clang)
#   make bench      benchmarks on the real repository snapshots
#   make format-check   clang-format conformance

CC ?= cc
CFLAGS ?= -O2 -g
WARNINGS = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla -Werror=implicit-function-declaration
ALL_CFLAGS = -std=gnu17 $(WARNINGS) -pthread -D_GNU_SOURCE $(CFLAGS)
LIBS = -ljansson -lcrypto -lcurl -lpthread

BUILD ?= build
SRC = $(sort $(wildcard src/*.c))
LIB_SRC = $(filter-out src/main.c,$(SRC))
LIB_OBJ = $(LIB_SRC:src/%.c=$(BUILD)/%.o)
TEST_SRC = $(sort $(wildcard tests/test_*.c))
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/%)
FUZZ_SRC = $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 20

.PHONY: all check asan fuzz bench format-check clean

all: $(BUILD)/obake
	ln -sf $(BUILD)/obake obake

$(BUILD)/obake: $(BUILD)/main.o $(BUILD)/libobake.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/libobake.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/test_%: tests/test_%.c $(wildcard tests/*.h) $(BUILD)/libobake.a
	$(CC) $(ALL_CFLAGS) -Isrc $(LDFLAGS) -o $@ $< $(BUILD)/libobake.a $(LIBS)

$(BUILD):
	mkdir -p $(BUILD)

# Each test binary prints its own "N passed, N failed, N skipped"; tests/run sums them up.
check: $(BUILD)/obake $(TEST_BIN)
	OBAKE=$(CURDIR)/$(BUILD)/obake sh tests/run $(TEST_BIN) tests/cli-tests.sh tests/solver-cases.sh

asan:
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		LDFLAGS="-fsanitize=address,undefined" check

fuzz:
	sh fuzz/run $(FUZZ_SECONDS) $(FUZZ_SRC)

bench: all
	sh bench/run

format-check:
	clang-format --dry-run -Werror src/*.c src/*.h tests/*.c tests/*.h fuzz/*.c

clean:
	rm -rf build build-asan build-fuzz obake
