// probs.mjs: llama.cpp's next-token probabilities for a GGUF model, as JSON,
// for the integration tests (quantkit's GGUF against llama.cpp's own).
//
// usage: node probs.mjs MODEL.gguf [TOKENS]
//
// TOKENS is a JSON array of token ids (default [1,400,34,94]); they are
// evaluated in one sequence, as given (no BOS is added), and for each
// position i the probabilities of the token after tokens[0..i] are printed:
//
//   {"model": PATH, "tokens": [...], "nVocab": N,
//    "probs": [[p_0, ..., p_{N-1}], ...]}   one row per position
//
// llama.cpp runs through node-llama-cpp (from $QUANTKIT_LLAMACPP_NODE_MODULES)
// on the CPU with its prebuilt binaries (getLlama({gpu: false, build:
// "never"})), with a F32 KV cache and flash attention off so that the
// numbers are those of the model in float32, on 2 threads. Probabilities
// are node-llama-cpp's softmax in float32 of the raw logits (no sampling
// options: temperature 0, no top-k, top-p or min-p cut): they sum to 1
// within a few 1e-6 only, so compare after renormalising. llama.cpp's own
// log goes to stderr; stdout holds the JSON alone.
import {join} from "node:path";
import {pathToFileURL} from "node:url";

const [modelPath, tokensArg] = process.argv.slice(2);
if (!modelPath || process.argv.length > 4) {
    process.stderr.write("usage: node probs.mjs MODEL.gguf [TOKENS as a JSON array]\n");
    process.exit(2);
}
const tokens = JSON.parse(tokensArg ?? "[1,400,34,94]");
if (!Array.isArray(tokens) || tokens.length === 0 || !tokens.every(Number.isInteger)) {
    process.stderr.write(`probs.mjs: TOKENS must be a non-empty JSON array of token ids, got ${tokensArg}\n`);
    process.exit(2);
}
const nm = process.env.QUANTKIT_LLAMACPP_NODE_MODULES;
if (!nm) {
    process.stderr.write("probs.mjs: QUANTKIT_LLAMACPP_NODE_MODULES is not set (scripts/integration/setup-llamacpp.sh prints it)\n");
    process.exit(2);
}
const {getLlama, LlamaLogLevel} = await import(pathToFileURL(join(nm, "node-llama-cpp", "dist", "index.js")).href);

const llama = await getLlama({
    gpu: false,
    build: "never",
    usePrebuiltBinaries: true,
    skipDownload: true,
    maxThreads: 2,
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => process.stderr.write(`llama.cpp ${level}: ${message}${message.endsWith("\n") ? "" : "\n"}`),
});
const model = await llama.loadModel({modelPath, gpuLayers: 0, useMmap: true});
const context = await model.createContext({
    contextSize: Math.max(32, tokens.length + 1),
    batchSize: Math.max(32, tokens.length + 1),
    sequences: 1,
    threads: 2,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
});
const sequence = context.getSequence();
const results = await sequence.controlledEvaluate(
    tokens.map((t) => [t, {generateNext: {probabilities: true}}]));

const probs = [];
let nVocab = 0;
for (const [i, r] of results.entries()) {
    const p = r?.next?.probabilities;
    if (p == null) throw new Error(`probs.mjs: no probabilities at position ${i}`);
    nVocab = Math.max(nVocab, Math.max(...p.keys()) + 1);
    probs.push(p);
}
const rows = probs.map((p, i) => {
    if (p.size !== nVocab) throw new Error(`probs.mjs: position ${i} has ${p.size} probabilities, want one per token id 0..${nVocab - 1}`);
    const row = new Array(nVocab);
    for (const [tok, v] of p) row[tok] = v;
    return row;
});
process.stdout.write(JSON.stringify({model: modelPath, tokens, nVocab, probs: rows}) + "\n");
await context.dispose();
await model.dispose();
await llama.dispose();
