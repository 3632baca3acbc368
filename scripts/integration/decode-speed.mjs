// decode-speed.mjs: llama.cpp's greedy decode speed on a GGUF model, as
// JSON, for the integration tests (quantkit's lm against llama.cpp).
//
// usage: node decode-speed.mjs MODEL.gguf N [THREADS]
//
// llama.cpp runs through node-llama-cpp (from $QUANTKIT_LLAMACPP_NODE_MODULES)
// on the CPU with its prebuilt binaries, with the settings of probs.mjs (F32
// KV cache, flash attention off) on THREADS threads (default 1). BOS (the
// model's, or 1) is evaluated, then N tokens are generated greedily one at a
// time (temperature 0); the clock runs from the first generated token to the
// last, so it measures N-1 single-token decode steps (each an evaluation and
// a greedy pick, node-llama-cpp's own loop), not the load or the prompt:
//
//   {"model": PATH, "threads": T, "tokens": [...], "decodeSteps": N-1,
//    "seconds": S, "tokensPerSecond": (N-1)/S}
//
// llama.cpp's own log goes to stderr; stdout holds the JSON alone.
import {join} from "node:path";
import {pathToFileURL} from "node:url";

const [modelPath, nArg, threadsArg] = process.argv.slice(2);
const n = Number(nArg);
const threads = Number(threadsArg ?? "1");
if (!modelPath || !Number.isInteger(n) || n < 2 || !Number.isInteger(threads) || threads < 1 || process.argv.length > 5) {
    process.stderr.write("usage: node decode-speed.mjs MODEL.gguf N (>= 2) [THREADS]\n");
    process.exit(2);
}
const nm = process.env.QUANTKIT_LLAMACPP_NODE_MODULES;
if (!nm) {
    process.stderr.write("decode-speed.mjs: QUANTKIT_LLAMACPP_NODE_MODULES is not set (scripts/integration/setup-llamacpp.sh prints it)\n");
    process.exit(2);
}
const {getLlama, LlamaLogLevel} = await import(pathToFileURL(join(nm, "node-llama-cpp", "dist", "index.js")).href);

const llama = await getLlama({
    gpu: false,
    build: "never",
    usePrebuiltBinaries: true,
    skipDownload: true,
    maxThreads: threads,
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => process.stderr.write(`llama.cpp ${level}: ${message}${message.endsWith("\n") ? "" : "\n"}`),
});
const model = await llama.loadModel({modelPath, gpuLayers: 0, useMmap: true});
const context = await model.createContext({
    contextSize: n + 8,
    batchSize: 32,
    sequences: 1,
    threads,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
});
const sequence = context.getSequence();
const bos = model.tokens.bos ?? 1;
const out = [];
let start = 0;
for await (const token of sequence.evaluate([bos], {temperature: 0})) {
    if (out.length === 0) start = performance.now();
    out.push(token);
    if (out.length >= n) break;
}
const seconds = (performance.now() - start) / 1000;
const steps = out.length - 1;
process.stdout.write(JSON.stringify({model: modelPath, threads, tokens: out, decodeSteps: steps,
    seconds, tokensPerSecond: steps / seconds}) + "\n");
await context.dispose();
await model.dispose();
await llama.dispose();
