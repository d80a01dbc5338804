# Mark - build, run and test.
#
#   make            build the five services into build/bin/
#   make run        install deps, build, start Postgres and every service
#   make stop       stop what `make run` started
#   make test       install deps, build, run unit + integration tests, then
#                   again under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      benchmarks (tests/bench/), printing their figures
#   make lint       clang-format check and banned calls
#
# BUILD=dir puts the build elsewhere; SAN=1 builds with sanitizers;
# V=1 shows the full commands.

BUILD ?= build
SAN ?= 0
CC ?= cc
SERVICES := gateway auth llm executor metadata

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes \
	-Wno-format-nonliteral
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_GNU_SOURCE -pthread $(WARN) -MMD -MP \
	-Icommon -Iproto -Iservices -Itests/support -I$(BUILD)/gen $(shell pkg-config --cflags libpq)
# --as-needed: each binary loads only the libraries it calls (less memory).
LDFLAGS += -Wl,--as-needed
LDLIBS := -lcivetweb -lnng -lpq -lcjson -lcurl -lsodium -lcrypto -lpthread -lm
ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif

ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-6s %s\n'
endif

OBJ = $(BUILD)/obj
LIBMK := $(BUILD)/lib/libmk.a
LIBTEST := $(BUILD)/lib/libmktest.a
EMBED := $(BUILD)/tools/mk-embed

COMMON_OBJ := $(patsubst %.c,$(OBJ)/%.o,$(wildcard common/*.c proto/*.c))
TEST_SUPPORT_OBJ := $(patsubst %.c,$(OBJ)/%.o,$(wildcard tests/support/*.c))
BINS := $(SERVICES:%=$(BUILD)/bin/mark-%)

UNIT_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/*/*_test.c))
INTEG_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/integration/*_test.c))
SEC_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/security/*_test.c))
BENCH_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/bench/*_bench.c))
# Test doubles: every tests/doubles/<name>/ with C sources builds <name>-double.
DOUBLE_DIRS := $(patsubst %/,%,$(dir $(wildcard tests/doubles/*/*.c)))
DOUBLE_BINS := $(sort $(foreach d,$(DOUBLE_DIRS),$(BUILD)/tests/doubles/$(notdir $(d))-double))

.PHONY: all deps run stop test test-build bench deploy-test lint clean
all: $(BINS)

$(LIBMK): $(COMMON_OBJ)
	@mkdir -p $(@D)
	$(say) AR $@
	$(Q)$(AR) rcs $@ $^

$(LIBTEST): $(TEST_SUPPORT_OBJ)
	@mkdir -p $(@D)
	$(say) AR $@
	$(Q)$(AR) rcs $@ $^

$(OBJ)/%.o: %.c
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(EMBED): tools/mk_embed.c
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) -std=c11 -O2 -Wall -Wextra -Werror $< -o $@

# Per service: lib<svc>.a (everything but main.c, plus its embedded
# migrations) and the thin binary mark-<svc>.
# Extra generated objects of a service's library.
executor_EXTRA_OBJ := $(OBJ)/gen/executor_driver.o $(OBJ)/gen/executor_relay.o
llm_EXTRA_OBJ := $(OBJ)/gen/llm_prompt_system.o
gateway_EXTRA_OBJ := $(OBJ)/gen/gateway_openapi.o

define service_rules
$(1)_SRC := $$(filter-out services/$(1)/main.c,$$(wildcard services/$(1)/*.c))
$(1)_MIG := $$(sort $$(wildcard services/$(1)/migrations/*.sql))
$(1)_OBJ := $$(patsubst %.c,$(OBJ)/%.o,$$($(1)_SRC)) $(OBJ)/gen/$(1)_migrations.o \
	$$($(1)_EXTRA_OBJ)

$(BUILD)/gen/$(1)_migrations.c: $$($(1)_MIG) $(EMBED)
	@mkdir -p $$(@D)
	$$(say) GEN $$@
	$(Q)$(EMBED) $(1) $$($(1)_MIG) > $$@.tmp && mv $$@.tmp $$@

$(OBJ)/gen/$(1)_migrations.o: $(BUILD)/gen/$(1)_migrations.c
	@mkdir -p $$(@D)
	$$(say) CC $$@
	$(Q)$(CC) $(CFLAGS) -c $$< -o $$@

$(BUILD)/lib/lib$(1).a: $$($(1)_OBJ)
	@mkdir -p $$(@D)
	$$(say) AR $$@
	$(Q)$(AR) rcs $$@ $$^

$(BUILD)/bin/mark-$(1): $(OBJ)/services/$(1)/main.o $(BUILD)/lib/lib$(1).a $(LIBMK)
	@mkdir -p $$(@D)
	$$(say) CC $$@
	$(Q)$(CC) $(LDFLAGS) $$^ $(LDLIBS) -o $$@

$(BUILD)/tests/unit/$(1)/%: tests/unit/$(1)/%.c $(BUILD)/lib/lib$(1).a $(LIBTEST) $(LIBMK)
	@mkdir -p $$(@D)
	$$(say) CC $$@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $$^ $(LDLIBS) $$(shell pkg-config --libs check) -o $$@
endef
$(foreach s,$(SERVICES),$(eval $(call service_rules,$(s))))

# The executor also carries the sandbox's Python driver.
$(BUILD)/gen/executor_driver.c: services/executor/sandbox/driver.py $(EMBED)
	@mkdir -p $(@D)
	$(say) GEN $@
	$(Q)$(EMBED) --blob executor_driver_py $< > $@.tmp && mv $@.tmp $@

$(OBJ)/gen/executor_driver.o: $(BUILD)/gen/executor_driver.c
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# And the relay that holds the driver in a Daytona sandbox.
$(BUILD)/gen/executor_relay.c: services/executor/sandbox/relay.py $(EMBED)
	@mkdir -p $(@D)
	$(say) GEN $@
	$(Q)$(EMBED) --blob executor_relay_py $< > $@.tmp && mv $@.tmp $@

$(OBJ)/gen/executor_relay.o: $(BUILD)/gen/executor_relay.c
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# The llm carries its prompts (services/llm/prompts/<name>.md -> llm_prompt_<name>).
$(BUILD)/gen/llm_prompt_%.c: services/llm/prompts/%.md $(EMBED)
	@mkdir -p $(@D)
	$(say) GEN $@
	$(Q)$(EMBED) --blob llm_prompt_$* $< > $@.tmp && mv $@.tmp $@

$(OBJ)/gen/llm_prompt_%.o: $(BUILD)/gen/llm_prompt_%.c
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# The gateway carries its OpenAPI description (GET /openapi.json): docs/openapi.yaml
# stays the one source and becomes JSON here, so the gateway parses no YAML
# and a description that does not parse fails the build. python3-yaml: make deps.
$(BUILD)/gen/openapi.json: docs/openapi.yaml scripts/openapi_json.py
	@mkdir -p $(@D)
	$(say) GEN $@
	$(Q)scripts/openapi_json.py $< > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/gateway_openapi.c: $(BUILD)/gen/openapi.json $(EMBED)
	@mkdir -p $(@D)
	$(say) GEN $@
	$(Q)$(EMBED) --blob gateway_openapi_json $< > $@.tmp && mv $@.tmp $@

$(OBJ)/gen/gateway_openapi.o: $(BUILD)/gen/gateway_openapi.c
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# Generated sources are kept (not removed as intermediates), so a second make rebuilds nothing.
.SECONDARY: $(BUILD)/gen/llm_prompt_system.c $(BUILD)/gen/executor_driver.c \
	$(BUILD)/gen/executor_relay.c $(BUILD)/gen/openapi.json $(BUILD)/gen/gateway_openapi.c

# The generated migration tables must exist before any service object
# that includes them is compiled.
$(foreach s,$(SERVICES),$(patsubst %.c,$(OBJ)/%.o,$(wildcard services/$(s)/*.c))): \
	$(SERVICES:%=$(BUILD)/gen/%_migrations.c)

$(BUILD)/tests/unit/common/%: tests/unit/common/%.c $(LIBTEST) $(LIBMK)
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) $(shell pkg-config --libs check) -o $@

# The LLM integration tests call the provider clients directly: they link libllm too.
$(BUILD)/tests/integration/llm_%: tests/integration/llm_%.c $(BUILD)/lib/libllm.a $(LIBTEST) \
	$(LIBMK)
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) $(shell pkg-config --libs check) -o $@

$(BUILD)/tests/integration/%: tests/integration/%.c $(LIBTEST) $(LIBMK)
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) $(shell pkg-config --libs check) -o $@

# Security tests attack the real executor like integration tests do.
$(BUILD)/tests/security/%: tests/security/%.c $(LIBTEST) $(LIBMK)
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) $(shell pkg-config --libs check) -o $@

$(BUILD)/tests/bench/%: tests/bench/%.c $(LIBTEST) $(LIBMK)
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

.SECONDEXPANSION:
$(BUILD)/tests/doubles/%-double: $$(wildcard tests/doubles/%/*.c) $(LIBTEST) $(LIBMK)
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

test-build: $(BINS) $(DOUBLE_BINS) $(UNIT_BINS) $(INTEG_BINS) $(SEC_BINS) $(BENCH_BINS)

deps:
	@scripts/deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run.sh

stop:
	@scripts/stop.sh

test: deps
	@tests/run.sh

bench: deps
	@$(MAKE) --no-print-directory all $(DOUBLE_BINS) $(BENCH_BINS)
	@tests/bench/run.sh

# The compose stack in Docker, built and driven end to end (needs root or a
# Docker daemon; tests/deploy/compose/run.sh).
deploy-test:
	@tests/deploy/compose/run.sh

lint:
	@scripts/lint.sh

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
