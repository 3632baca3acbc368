# quantkit — see README.md. `make run` runs the main job, `make test` the tests.

GO      ?= go
BIN     := build/quantkit
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# go-nvml's bundled header marks some NVML calls deprecated; cgo would print
# a page of warnings for functions quantkit never calls.
export CGO_CFLAGS := -O2 -g -Wno-deprecated-declarations

# Fuzz targets run by `make fuzz` (a fixed number of inputs each, as CI does).
FUZZ       := ./model/npy:FuzzDecode ./model/safetensors:FuzzOpen
FUZZ_INPUTS ?= 2000

.PHONY: all build run test bench fmt fmt-check vet fuzz clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/quantkit

# The main job on a built-in default: FP32 and INT8 GEMM on the CPU against
# gonum's Sgemm.
run: build
	./$(BIN) bench gemm --device cpu

test: fmt-check vet
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -race -short ./cpu/... ./quant/... ./backend/...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./cpu/ ./quant/

fmt:
	gofmt -w $$($(GO) list -f '{{.Dir}}' ./...)

fmt-check:
	@out=$$(gofmt -l $$($(GO) list -f '{{.Dir}}' ./...)); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

fuzz:
	@for t in $(FUZZ); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn ($(FUZZ_INPUTS) inputs)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZ_INPUTS)x $$pkg || exit 1; \
	done

clean:
	rm -rf build
