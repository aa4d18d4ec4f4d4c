# zedbox: the two commands a person needs are `make demo` and `make test`.
# Each installs what it needs (npm packages from package-lock.json).

NODE_DEPS := node_modules/.zedbox-deps
TSX := node --import tsx

.PHONY: all deps build typecheck test bench demo clean

all: build

# npm ci only when package-lock.json changed since the last install.
$(NODE_DEPS): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: $(NODE_DEPS)

build: $(NODE_DEPS)
	node scripts/build.mjs

typecheck: $(NODE_DEPS)
	npx tsc --noEmit -p .

# Unit tests (pure code) and integration tests (real processes on a real ZeroMQ bus,
# and the built bundle). The bundle is built first so the tests exercise dist/ itself.
test: build typecheck
	npx tap

bench: build
	$(TSX) bench/main.ts

demo: build
	bash scripts/demo.sh

clean:
	rm -rf dist .tap
