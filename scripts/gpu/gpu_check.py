"""PyTorch peers for quantkit's GPU kernels, timed in the same run.

Reads quantkit's bench JSON reports (its own rows), measures torch._int_mm (cuBLASLt INT8),
torch.mm on float32 with TF32 off (cuBLAS SGEMM), torch.histc and a
device-to-device copy at the same sizes with CUDA events (warm-up, then the
median), prints a table of the ratios and writes everything as JSON.
"""
import argparse
import json
import statistics
import sys

import torch


def timed(fn, reps=20, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    return statistics.median(times)


def gemm_peers(n):
    g = torch.Generator(device="cuda").manual_seed(n)
    a8 = torch.randint(-128, 128, (n, n), dtype=torch.int8, device="cuda", generator=g)
    b8 = torch.randint(-128, 128, (n, n), dtype=torch.int8, device="cuda", generator=g)
    a32 = torch.randn(n, n, device="cuda", generator=g)
    b32 = torch.randn(n, n, device="cuda", generator=g)
    torch.backends.cuda.matmul.allow_tf32 = False
    reps = 10 if n >= 8192 else 20
    flops = 2.0 * n * n * n
    int_mm = timed(lambda: torch._int_mm(a8, b8.t()), reps)  # C = A·Bᵀ, B is N×K as quantkit's
    sgemm = timed(lambda: torch.mm(a32, b32.t()), reps)
    return {"int_mm_ops": flops / int_mm, "sgemm_flops": flops / sgemm}


def memory_peers(n):
    x = torch.randn(n, device="cuda")
    y = torch.empty_like(x)
    amax = x.abs().max().item()
    copy = timed(lambda: y.copy_(x))
    histc = timed(lambda: torch.histc(x.abs(), bins=2048, min=0, max=amax))
    return {"copy_bytes": 8.0 * n / copy, "histc_bytes": 4.0 * n / histc}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("reports", nargs="+")
    args = ap.parse_args()
    ours = []
    for path in args.reports:
        with open(path) as f:
            # quantkit's own rows (the reports also hold cuBLAS's and the copy's)
            ours.extend(r for r in json.load(f)["results"] if r.get("impl") == "quantkit")
    dev = torch.cuda.get_device_name()
    print(f"{dev}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    rows, ok = [], True

    print(f"\n{'GEMM n³':>9} {'ours INT8':>11} {'cuBLASLt':>11} {'ratio':>6} {'ours FP32':>10} {'cuBLAS':>9} {'ratio':>6} {'INT8/FP32':>9}")
    for n in sorted({r["m"] for r in ours if r["op"] == "gemm"}):
        peer = gemm_peers(n)
        mine = {r["dtype"]: r["ops_per_second"] for r in ours if r["op"] == "gemm" and r["m"] == n}
        i8, f32 = mine.get("int8", 0), mine.get("fp32", 0)
        row = {"op": "gemm", "n": n, "ours_int8_ops": i8, "ours_fp32_flops": f32, **peer,
               "int8_vs_int_mm": i8 / peer["int_mm_ops"], "fp32_vs_sgemm": f32 / peer["sgemm_flops"],
               "int8_over_fp32": i8 / f32 if f32 else 0}
        rows.append(row)
        print(f"{n:>9} {i8/1e12:>8.1f} TO {peer['int_mm_ops']/1e12:>8.1f} TO {row['int8_vs_int_mm']:>6.2f}"
              f" {f32/1e12:>7.1f} TF {peer['sgemm_flops']/1e12:>6.1f} TF {row['fp32_vs_sgemm']:>6.2f} {row['int8_over_fp32']:>8.1f}×")

    print(f"\n{'kernel':>20} {'elements':>10} {'ours GB/s':>10} {'copy GB/s':>10} {'vs copy':>8} {'histc GB/s':>10}")
    for n in sorted({r["elements"] for r in ours if r.get("elements")}):
        peer = memory_peers(n)
        for r in ours:
            if r.get("elements") != n:
                continue
            row = {"op": r["op"], "elements": n, "ours_bytes": r["bytes_per_second"], **peer,
                   "vs_copy": r["bytes_per_second"] / peer["copy_bytes"]}
            rows.append(row)
            extra = f"{peer['histc_bytes']/1e9:>10.0f}" if r["op"] == "histogram" else ""
            print(f"{r['op']:>20} {n:>10} {r['bytes_per_second']/1e9:>10.0f} {peer['copy_bytes']/1e9:>10.0f} {row['vs_copy']:>8.2f} {extra}")

    with open(args.out, "w") as f:
        json.dump({"device": dev, "torch": torch.__version__, "cuda": torch.version.cuda, "rows": rows, "ours": ours}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
