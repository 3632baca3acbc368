// Times ONNX Runtime (onnxruntime-node, CPU) on ONNX image classifiers for
// bench/ort: argv[2] is a JSON request
//   {"models": [{"name", "path"}], "inputs": "FILE", "labels": "FILE",
//    "images": N, "sample": [C,H,W], "batches": [1, 256], "threads": 2,
//    "rounds": 3}
// with the inputs as N·C·H·W little-endian float32 and the labels as N
// bytes. For each model and batch it runs all N images in batches (the
// last one short: a model with a fixed batch dimension runs batch 1 only)
// and prints one JSON line per model and batch: the seconds of the best
// round (session.run calls with their tensor creation), and the accuracy.
import fs from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.ORT_NODE_MODULES + "/");
const ort = require("onnxruntime-node");

const req = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const buf = fs.readFileSync(req.inputs);
const x = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
const labels = fs.readFileSync(req.labels);
const per = req.sample.reduce((a, b) => a * b, 1);
const N = req.images;

for (const m of req.models) {
  const sess = await ort.InferenceSession.create(m.path, {
    intraOpNumThreads: req.threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  });
  const inName = sess.inputNames[0], outName = sess.outputNames[0];
  for (const batch of req.batches) {
    if (batch > 1 && m.fixedBatch) {
      continue;
    }
    const run = async () => {
      let correct = 0;
      const t0 = process.hrtime.bigint();
      for (let b0 = 0; b0 < N; b0 += batch) {
        const nb = Math.min(batch, N - b0);
        const t = new ort.Tensor("float32", x.subarray(b0 * per, (b0 + nb) * per), [nb, ...req.sample]);
        const out = (await sess.run({ [inName]: t }))[outName].data;
        const k = out.length / nb;
        for (let n = 0; n < nb; n++) {
          let best = 0;
          for (let j = 1; j < k; j++) if (out[n * k + j] > out[n * k + best]) best = j;
          if (best === labels[b0 + n]) correct++;
        }
      }
      return [Number(process.hrtime.bigint() - t0) / 1e9, correct];
    };
    await run(); // warm-up
    let best = Infinity, correct = 0;
    for (let r = 0; r < req.rounds; r++) {
      const [s, c] = await run();
      best = Math.min(best, s);
      correct = c;
    }
    console.log(JSON.stringify({ model: m.name, batch, seconds: best, correct, images: N }));
  }
  await sess.release();
}
