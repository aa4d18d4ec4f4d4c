# zedbox: the two commands a person needs are `make demo` and `make test`.
# Each installs what it needs (npm packages from package-lock.json).

NODE_DEPS := node_modules/.zedbox-deps
TSX := node --import tsx

.PHONY: all deps services build typecheck test bench demo schema clean

all: build

# npm ci only when package-lock.json changed since the last install.
$(NODE_DEPS): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: $(NODE_DEPS)

# The real parts tests and benchmarks use: Docker engine, registry, skopeo, test image.
services:
	bash scripts/test-services.sh

build: $(NODE_DEPS)
	node scripts/build.mjs

typecheck: $(NODE_DEPS)
	npx tsc --noEmit -p .

# Unit tests (pure code) and integration tests (real processes on a real ZeroMQ bus,
# a real Docker engine and registry, and the built bundle). The bundle is built
# first so the tests exercise dist/ itself.
test: build typecheck services
	npx tap

bench: build services
	$(TSX) bench/main.ts

# docs/device-config.schema.json from the TypeBox declaration (a unit test checks it is current).
schema: $(NODE_DEPS)
	$(TSX) scripts/device-config-schema.ts

demo: build services
	bash scripts/demo.sh

clean:
	rm -rf dist .tap
