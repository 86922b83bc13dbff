# Stevedore build, demo and test entry points. See README.md.
GO        ?= go
BIN       ?= bin
PLUGINS   := oci:oci-layout docker:docker dir:dir archive:archive static:static
GOTEST    ?= $(GO) test -race -count=1 -timeout 19m
export CGO_ENABLED ?= 1

.PHONY: all build demo test test-deps unit examples fuzz vet cross proto bench clean

all: build

# Every binary into ./bin: the CLI and one stevedore-transport-NAME per plugin,
# side by side so the CLI finds them next to itself.
build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/stevedore ./cmd/stevedore
	@set -e; for p in $(PLUGINS); do name=$${p%%:*}; dir=$${p#*:}; \
		if [ -f plugins/$$dir/main.go ]; then \
			echo "$(GO) build -o $(BIN)/stevedore-transport-$$name ./plugins/$$dir"; \
			$(GO) build -o $(BIN)/stevedore-transport-$$name ./plugins/$$dir; \
		fi; done
	$(GO) build -o $(BIN)/mkimage ./tools/mkimage

# End-to-end on an embedded default: no external service.
demo: build
	./scripts/demo.sh

# Installs what the tests need that is missing, then runs every test.
test: test-deps vet unit examples fuzz

test-deps:
	./scripts/test-deps.sh

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The library packages and plugins type-check for macOS (not in `test`:
# a cold cache compiles the darwin standard library, minutes here).
cross:
	GOOS=darwin GOARCH=arm64 $(GO) vet ./core/... ./pluginapi/... ./host/... ./server/... ./plugins/...

unit: build
	$(GOTEST) ./...

# Each example is a Go module of its own, built, vetted and tested as its
# author would, against this checkout (replace => ../..).
EXAMPLES := $(patsubst %/go.mod,%,$(wildcard examples/*/go.mod))
examples:
	@set -e; for d in $(EXAMPLES); do \
		echo "== $$d"; \
		(cd $$d && $(GO) vet ./... && $(GO) test -race -count=1 ./...); \
	done

# Each fuzz target runs briefly; the seed corpora also run in `unit`.
FUZZTIME ?= 10s
fuzz:
	@./scripts/fuzz.sh $(FUZZTIME)

bench: build
	./bench/copy.sh

proto:
	PATH=$$PATH:$$($(GO) env GOPATH)/bin protoc -I . \
		--go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative \
		pluginapi/proto/v1/transport.proto

clean:
	rm -rf $(BIN)
