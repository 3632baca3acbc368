// Package llamacpp holds quantkit's checks against the real llama.cpp, the
// independent reference for its GGUF output (conversion, types, mixes,
// whole files) and for package lm's forward pass (next-token
// distributions on stories260K in F32 and quantized, within stated KL
// bounds; decode speed beside llama.cpp's, logged only, through
// scripts/integration/decode-speed.mjs). They are tests
// with the build tag integration, run by `make integration`
// (scripts/integration/run.sh), which first runs
// scripts/integration/setup-llamacpp.sh: it installs llama.cpp's prebuilt
// CPU libraries and source (the npm package node-llama-cpp) into a cache
// outside the clone, builds two harnesses against them and prints the
// environment the tests read:
//
//	QUANTKIT_LLAMACPP_QUANTIZE      llama_model_quantize(in, out, &params), by llama-quantize's type names
//	QUANTKIT_LLAMACPP_PROBS         a node script: next-token probabilities of a GGUF model, as JSON
//	QUANTKIT_LLAMACPP_NODE_MODULES  node-llama-cpp, for that script
//	QUANTKIT_LLAMACPP_LIB_DIR       libllama and libggml-base, for the quantize harness
//
// and QUANTKIT_BIN, the quantkit binary under test (default build/quantkit).
// A missing resource fails the test in CI and skips it elsewhere
// (internal/testenv). The package has no code of its own.
package llamacpp
