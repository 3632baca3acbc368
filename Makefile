# quantkit — see README.md. `make run` runs the main job, `make test` the tests.

GO      ?= go
BIN     := build/quantkit
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# go-nvml's bundled header marks some NVML calls deprecated; cgo would print
# a page of warnings for functions quantkit never calls.
export CGO_CFLAGS := -O2 -g -Wno-deprecated-declarations

# Fuzz targets run by `make fuzz` (a fixed number of inputs each, as CI does).
FUZZ       := ./model/npy:FuzzDecode ./model/safetensors:FuzzOpen ./model/gguf:FuzzOpen ./model/onnx:FuzzRead ./nn/onnxnet:FuzzLower ./cpu:FuzzElemKernels \
              ./dataset:FuzzReadIdx ./quant:FuzzReadHistograms ./model/ctensors:FuzzConfig ./model/plan:FuzzParsePart ./model/checkpoint:FuzzParseIndex \
              ./model/llamacpp:FuzzParse ./job/quantize:FuzzParseGGUFPart
FUZZ_INPUTS ?= 2000

# CUDA: kernels in cuda/*.cu, PTX in cuda/ptx and fatbins in cuda/fatbin
# (both committed), nvcc from CUDA 11.8+. Each fatbin holds SASS for every
# architecture of CUDA_SASS, compiled by ptxas from the committed PTX, and
# that PTX (compute_$(CUDA_PTX)) for the driver to JIT on other GPUs.
NVCC       ?= nvcc
CUDA_PTX   := 80
CUDA_SASS  := 80 86 89 90
NVCCFLAGS  := -ptx -arch=compute_$(CUDA_PTX) -O3 -std=c++17
comma      := ,
empty      :=
space      := $(empty) $(empty)
FATBIN_GENCODE := -gencode arch=compute_$(CUDA_PTX),code=[$(subst $(space),$(comma),$(foreach a,$(CUDA_SASS),sm_$(a)) compute_$(CUDA_PTX))]
# -compress-all compresses the SASS too (3.5 MB of fatbins become 1.3 MB);
# the driver inflates it when it loads a module.
FATBINFLAGS := -fatbin $(FATBIN_GENCODE) -Xfatbin -compress-all
CU_SRC     := $(wildcard cuda/*.cu)

.PHONY: all build run test bench fmt fmt-check vet fuzz clean \
	cuda cuda-tools ptx ptx-check cuda-check vet-cuda cuda-test-compile preflight-check ci-cuda gpu-check

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/quantkit

# The main job on a built-in default: PTQ and QAT end to end on the MNIST
# CNN (FP32 against INT8 and INT4 in integer arithmetic: accuracy, size,
# latency, throughput, energy), about a minute on two cores.
run: build
	./$(BIN) demo --device cpu

test: fmt-check vet
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -race -short ./cpu/... ./quant/... ./backend/...
	$(GO) test -count=1 -tags nommap ./internal/mmap

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./cpu/ ./quant/

# The checks against the real llama.cpp (issue 15), not part of make test:
# scripts/integration/setup-llamacpp.sh installs node-llama-cpp@3.21.1
# (llama.cpp's prebuilt CPU libraries and its source, about 730 MB from npm)
# once into QUANTKIT_CACHE, keyed by version, builds the harnesses there and
# prints their environment; then scripts/integration/run.sh runs the tests
# with build tag integration, in the packages that have them, against
# build/quantkit. In CI (CI set) a missing piece fails; elsewhere it skips
# with a message. Then scripts/integration/slurm.sh (also alone: make
# integration-slurm) runs deploy/slurm's jobs on a one-node Slurm cluster it
# starts on this machine (slurm-wlm and munge installed when missing; root
# only, else it skips): merged parts equal one run byte for byte, also
# after a task killed mid-run is rerun alone. Then
# scripts/integration/prometheus.sh: a real Prometheus (Debian's package)
# scrapes quantkit monitor on fake sources.
QUANTKIT_CACHE ?= $(HOME)/.cache/quantkit
.PHONY: integration integration-slurm
integration: build
	QUANTKIT_CACHE="$(QUANTKIT_CACHE)" QUANTKIT_BIN="$(CURDIR)/$(BIN)" GO="$(GO)" ./scripts/integration/run.sh
	QUANTKIT_BIN="$(CURDIR)/$(BIN)" ./scripts/integration/slurm.sh
	QUANTKIT_BIN="$(CURDIR)/$(BIN)" GO="$(GO)" ./scripts/integration/prometheus.sh

integration-slurm: build
	QUANTKIT_BIN="$(CURDIR)/$(BIN)" ./scripts/integration/slurm.sh

# quantkit's CPU GEMMs beside OpenBLAS sgemm and gonum, and the streaming
# kernels beside a memmove, in one run on 2 threads (cgo, build tag openblas:
# not part of make test). Installs Debian's libopenblas-dev when missing.
# OpenBLAS picks its kernels for the processor itself (OPENBLAS_CORE=auto)
# even where the environment forces others through OPENBLAS_CORETYPE (some
# machines force Haswell, its AVX2 kernels, at half the speed of its AVX-512
# ones on AMD Zen 5); OPENBLAS_CORE=Haswell, say, forces a core type.
OPENBLAS_FLAGS ?= -threads 2 -sizes 1024,2048
OPENBLAS_CORE  ?= auto
.PHONY: bench-openblas
bench-openblas:
	@dpkg -s libopenblas-dev >/dev/null 2>&1 || { \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get install -y libopenblas-dev || { $$SUDO apt-get update && $$SUDO apt-get install -y libopenblas-dev; }; }
	@if [ "$(OPENBLAS_CORE)" = auto ]; then set -- -u OPENBLAS_CORETYPE; else set -- OPENBLAS_CORETYPE=$(OPENBLAS_CORE); fi; \
	echo "env $$* $(GO) run -tags openblas ./bench/openblas $(OPENBLAS_FLAGS)"; \
	env "$$@" $(GO) run -tags openblas ./bench/openblas $(OPENBLAS_FLAGS)

# The same Llama-shaped model through llama.cpp and through quantkit's lm on
# the same threads, side by side with ratios (issue 17; not part of make
# test). scripts/integration/build-llamacpp-bench.sh builds llama.cpp once
# from the source setup-llamacpp.sh caches (CPU backend, native, Release;
# cmake installed when missing) into QUANTKIT_CACHE, keyed by version,
# compiler and CPU, with its timing harness; LLAMACPP_BUILD=prebuilt links
# node-llama-cpp's prebuilt libraries instead (no long build). The model
# (quantkit gen, 1B by default) and its GGUF and int8/int4 conversions are
# made once into QUANTKIT_CACHE/bench-llamacpp. A quick run:
#   make bench-llamacpp LLAMACPP_FLAGS='-params 150M -prompt 128 -gen 32'
LLAMACPP_FLAGS ?= -params 1B -prompt 512 -gen 128 -threads 2 -rounds 3
LLAMACPP_BUILD ?= native
.PHONY: bench-llamacpp
bench-llamacpp: build
	@env=$$(QUANTKIT_CACHE="$(QUANTKIT_CACHE)" LLAMACPP_BUILD=$(LLAMACPP_BUILD) ./scripts/integration/build-llamacpp-bench.sh) && \
	eval "$$env" && export QUANTKIT_CACHE="$(QUANTKIT_CACHE)" && \
	echo "$(GO) run ./bench/llamacpp -quantkit $(BIN) $(LLAMACPP_FLAGS)" && \
	$(GO) run ./bench/llamacpp -quantkit $(BIN) $(LLAMACPP_FLAGS)

# The MNIST CNN through ONNX Runtime (onnxruntime-node 1.30.0, CPU) and
# quantkit's float and integer engines on the same ONNX files and threads,
# images/s at batch 1 and 256 with ratios (issue 21; not part of make
# test). npm installs onnxruntime-node once into QUANTKIT_CACHE (CPU build
# only). A longer run: make bench-ort ORT_FLAGS='-rounds 5'
ORT_FLAGS   ?= -threads 2 -batches 1,256 -rounds 3
ORT_MODULES := $(QUANTKIT_CACHE)/onnxruntime-node-1.30.0
.PHONY: bench-ort
bench-ort:
	@[ -d "$(ORT_MODULES)/node_modules/onnxruntime-node" ] || { mkdir -p "$(ORT_MODULES)" && \
		cd "$(ORT_MODULES)" && { [ -f package.json ] || echo '{"private":true}' > package.json; } && \
		npm install --no-audit --no-fund onnxruntime-node@1.30.0 --onnxruntime-node-install=skip; }
	$(GO) run ./bench/ort -ort-modules "$(ORT_MODULES)/node_modules" $(ORT_FLAGS)

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

# --- amd64 assembly ---------------------------------------------------------

.PHONY: asm asm-check test-noasm

# Regenerates the committed assembly of packages cpu and model/gguf
# (cpu/_gen/kquant): every generator in
# cpu/_gen (a module of its own, so that avo is no dependency of quantkit)
# writes its .s file and Go declarations.
asm:
	@cd cpu/_gen && for d in */; do [ "$$d" = internal/ ] && continue; echo "go run ./$$d"; $(GO) run ./$$d || exit 1; done

# Fails when the committed assembly is not what the generators write.
asm-check: asm
	@git diff --exit-code --stat -- 'cpu/*_amd64.s' 'cpu/*_stubs_amd64.go' 'model/gguf/*_amd64.s' 'model/gguf/*_stubs_amd64.go' || { echo "cpu assembly is stale: run make asm and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- 'cpu/*_amd64.s' 'cpu/*_stubs_amd64.go' 'model/gguf/*_amd64.s' 'model/gguf/*_stubs_amd64.go')" || { echo "cpu assembly has uncommitted files: run make asm and commit"; exit 1; }

# The tests of the kernels and backends with the pure-Go kernels only (the
# assembly is left out of the build).
test-noasm:
	$(GO) test -count=1 -tags noasm ./cpu/... ./backend/... ./model/gguf/

# --- CUDA -----------------------------------------------------------------

# Installs nvcc, ptxas and the CUDA headers from Debian's non-free component
# when they are missing (about 3 GB; does nothing when they are there).
cuda-tools:
	./scripts/install-cuda.sh

# The GPU-enabled binary, with the CPU one beside it (each hands work to the
# other: see README).
cuda: build
	$(GO) build -tags cuda -ldflags "$(LDFLAGS)" -o build/quantkit-cuda ./cmd/quantkit

# Regenerates the committed launch constants (cuda/launch.cuh and
# gpu/constants_gen.go, from the one table in cuda/launch/table.go), the PTX
# from the .cu sources, the fatbins from the PTX, and cuda/fatbin_gen.go, the list of
# architectures the fatbins hold.
ptx:
	$(GO) run ./cuda/launch/gen
	@for cu in $(CU_SRC); do n=$$(basename $$cu .cu); \
		echo "nvcc $$cu -> cuda/ptx/$$n.ptx"; \
		$(NVCC) $(NVCCFLAGS) -o cuda/ptx/$$n.ptx.tmp $$cu || exit 1; \
		{ echo "// Code generated by make ptx from cuda/$$n.cu; DO NOT EDIT."; cat cuda/ptx/$$n.ptx.tmp; } > cuda/ptx/$$n.ptx; \
		rm cuda/ptx/$$n.ptx.tmp; \
	done
	@mkdir -p cuda/fatbin
	@rm -f cuda/fatbin/*.fatbin
	@for ptx in cuda/ptx/*.ptx; do n=$$(basename $$ptx .ptx); \
		echo "nvcc $$ptx -> cuda/fatbin/$$n.fatbin (SASS $(CUDA_SASS), PTX compute_$(CUDA_PTX))"; \
		$(NVCC) $(FATBINFLAGS) -o cuda/fatbin/$$n.fatbin $$ptx || exit 1; \
	done
	@{ echo "// Code generated by make ptx; DO NOT EDIT."; echo; echo "package cuda"; echo; \
		echo "// sassArchs are the architectures (sm_XY as XY) each fatbin holds SASS for,"; \
		echo "// ptxArch the compute capability of the PTX it holds (Makefile: CUDA_SASS,"; \
		echo "// CUDA_PTX)."; \
		echo "var sassArchs = []int{$(subst $(space),$(comma) ,$(CUDA_SASS))}"; echo; \
		echo "const ptxArch = $(CUDA_PTX)"; } > cuda/fatbin_gen.go
	@gofmt -l cuda/fatbin_gen.go | { ! grep .; } || { echo "cuda/fatbin_gen.go is not gofmt-clean"; exit 1; }

# Fails when the committed launch constants, PTX or fatbins are not what
# the sources generate. nvcc 11.8 writes the same PTX and fatbin bytes for
# the same input, wherever it runs (checked: two runs, two directories),
# so the bytes are compared; another nvcc version writes other bytes, and
# the check then asks for a regeneration with it.
GENERATED := cuda/ptx cuda/fatbin cuda/fatbin_gen.go cuda/launch.cuh gpu/constants_gen.go
ptx-check: ptx
	@git diff --exit-code --stat -- $(GENERATED) || { echo "generated CUDA files are stale: run make ptx and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- $(GENERATED))" || { echo "generated CUDA files are uncommitted: run make ptx and commit"; git status --short -- $(GENERATED); exit 1; }

# ptxas and the committed fatbins, for every architecture of CUDA_SASS:
# registers and no spills, the fatbins hold exactly those SASS and the PTX,
# and the INT8 GEMM's kernels run on IMMA, LDSM and LDGSTS;
# and the CPU emulations: the INT8 GEMM's index math and pipeline, and the
# LM kernels' bodies (lm.cuh) and the packed-weight GEMV/GEMM (packed.cuh)
# run thread by thread with checked memory.
cuda-check:
	CUDA_SASS="$(CUDA_SASS)" CUDA_PTX="$(CUDA_PTX)" ./scripts/cuda-check.sh
	@mkdir -p build
	g++ -std=c++17 -O2 -ffp-contract=off -o build/gemm_s8_sim cuda/tools/gemm_s8_sim.cpp
	@./build/gemm_s8_sim > build/gemm_s8_sim.log || { tail -20 build/gemm_s8_sim.log; exit 1; }
	@tail -1 build/gemm_s8_sim.log
	g++ -std=c++17 -O2 -ffp-contract=off -Wall -Wextra -Werror -o build/lm_sim cuda/tools/lm_sim.cpp
	@./build/lm_sim > build/lm_sim.log || { tail -35 build/lm_sim.log; exit 1; }
	@tail -1 build/lm_sim.log
	g++ -std=c++17 -O2 -ffp-contract=off -Wall -Wextra -Werror -o build/packed_sim cuda/tools/packed_sim.cpp
	@./build/packed_sim > build/packed_sim.log || { tail -35 build/packed_sim.log; exit 1; }
	@tail -2 build/packed_sim.log

vet-cuda:
	$(GO) vet -tags cuda ./...

# Compiles (never runs: no GPU here) the GPU tests; runs the cuda-tagged
# tests that need no GPU: cuBLAS and cuBLASLt opened with dlopen and every
# entry point found (skipped where neither library is installed).
cuda-test-compile:
	$(GO) test -tags cuda -c -o build/gpu.test ./gpu
	$(GO) test -count=1 -tags cuda ./gpu/internal/cublas

preflight-check: cuda
	./scripts/preflight-check.sh

# What CI checks of the CUDA side on a machine without a GPU.
ci-cuda: cuda-tools ptx-check cuda-check vet-cuda cuda-test-compile preflight-check

# The GPU check: builds into build/gpu-check/ (ignored by git, about 40 MB:
# symbols stripped so that it fits a 64 MiB carry) everything a machine with
# an NVIDIA GPU needs, Go not among it: quantkit-cuda, the gpu test binary,
# run.sh and gpu_check.py; then prints the one command to run there. run.sh
# writes $$OUT/summary.json (README, "The GPU check"); it is sized for under
# 5 minutes (timeouts of 150 + 150 + 45 s), not yet run on a GPU.
GPU_CHECK := build/gpu-check
gpu-check:
	@rm -rf $(GPU_CHECK) && mkdir -p $(GPU_CHECK)
	$(GO) build -tags cuda -ldflags "$(LDFLAGS) -s -w" -o $(GPU_CHECK)/quantkit-cuda ./cmd/quantkit
	$(GO) test -tags cuda -ldflags "-s -w" -c -o $(GPU_CHECK)/gpu.test ./gpu
	cp scripts/gpu/run.sh scripts/gpu/gpu_check.py $(GPU_CHECK)/
	@du -sh $(GPU_CHECK)
	@echo "Carry $(GPU_CHECK)/ to the GPU machine; there, from the repository root:"
	@echo "  OUT=gpu-results bash $(GPU_CHECK)/run.sh   # gpu-results/summary.json, then a short table"
