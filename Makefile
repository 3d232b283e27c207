# accessledger — the two commands that matter: `make run` and `make test`.
GO      ?= go
BIN     := bin
PKGS    := ./...
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build run test test-race fuzz bench bench-sustained lint fmt clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/accessledger ./cmd/accessledger

## run: start the service with embedded defaults (data in ./data, 127.0.0.1:8080).
run: build
	$(BIN)/accessledger serve

## test: vet and run every test, including the end-to-end and crash tests.
test:
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 20m $(PKGS)

test-race:
	$(GO) test -count=1 -race -timeout 30m $(PKGS)

## fuzz: every fuzz target for FUZZTIME each (default 30s); FUZZ=regexp narrows.
fuzz:
	./scripts/fuzz.sh

## bench: Go benchmarks of the ledger plus a load generator against a real server,
## and the side-by-side run with Tessera.
bench:
	./scripts/bench.sh

## bench-sustained: 10 minutes at 80 % of the maximum, plotted (BENCHMARKS-sustained.png).
bench-sustained:
	./scripts/bench-sustained.sh

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

## lint: formatting, vet and staticcheck.
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN) bench-out
