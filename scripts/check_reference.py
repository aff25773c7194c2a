#!/usr/bin/env python3
"""Checks `m3 encode` / `m3 score` against a FlagEmbedding reference JSON (the layout of
../shared/fixtures/tiny-m3-reference.json, as written by make_fixture.py).

    python3 scripts/check_reference.py REFERENCE.json MODEL_DIR [--device cpu|wgpu] [--m3 PATH] [--tol 1e-4]

--backend is the same as --device (m3's own alias). m3 runs with --truncate: FlagEmbedding's
reference truncates long texts at 8192 tokens, where m3 by default cuts them into windows.
--m3 defaults to $CARGO_TARGET_DIR/release/m3, CARGO_TARGET_DIR defaulting to ~/.cache/bge-m3-target.
Prints the largest difference per output and ends with 'N passed, M failed'; exits 1 on failure.
Standard library only.
"""
import argparse
import json
import os
import subprocess
import sys


def run_m3(m3, command, model, device, lines):
    proc = subprocess.run(
        [m3, command, "--model", model, "--device", device, "--batch-size", "4", "--truncate"],
        input="".join(json.dumps(l, ensure_ascii=False) + "\n" for l in lines),
        capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"m3 {command} failed: {proc.stderr.strip()}")
    return [json.loads(l) for l in proc.stdout.splitlines() if l.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reference")
    ap.add_argument("model")
    ap.add_argument("--device", "--backend", dest="device", default="cpu", help="cpu, wgpu or auto (m3 --device)")
    ap.add_argument("--tol", type=float, default=1e-4)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/bge-m3-target"))
    ap.add_argument("--m3", default=os.path.join(target, "release", "m3"))
    a = ap.parse_args()
    ref = json.load(open(a.reference, encoding="utf-8"))
    items = ref["items"]
    got = run_m3(a.m3, "encode", a.model, a.device, [{"text": i["text"]} for i in items])
    passed = failed = 0
    worst = {"dense": 0.0, "sparse": 0.0, "colbert": 0.0}

    def check(ok, what):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print("FAIL", what)

    for n, (g, w) in enumerate(zip(got, items)):
        check(g["input_ids"] == w["input_ids"], f"text {n}: input ids differ")
        d = max(abs(x - y) for x, y in zip(g["dense"], w["dense"]))
        worst["dense"] = max(worst["dense"], d)
        check(d <= a.tol and len(g["dense"]) == len(w["dense"]), f"text {n}: dense differs by {d}")
        gs, ws = g["sparse"], w["sparse"]
        d = max([abs(gs.get(k, 0.0) - v) for k, v in ws.items()] + [v for k, v in gs.items() if k not in ws] + [0.0])
        worst["sparse"] = max(worst["sparse"], d)
        check(d <= a.tol, f"text {n}: sparse differs by {d}")
        gc, wc = g["colbert"], w["colbert"]
        same_rows = len(gc) == len(wc)
        d = max((abs(x - y) for gr, wr in zip(gc, wc) for x, y in zip(gr, wr)), default=0.0)
        worst["colbert"] = max(worst["colbert"], d)
        check(same_rows and d <= a.tol, f"text {n}: colbert differs by {d} (rows {len(gc)} vs {len(wc)})")
    check(len(got) == len(items), "number of outputs")
    scores = ref["scores"]
    got_scores = run_m3(a.m3, "score", a.model, a.device,
                        [{"query": q, "passage": p} for q, p in scores["pairs"]])
    for name, want in scores["result"].items():
        d = max(abs(g[name] - w) for g, w in zip(got_scores, want))
        worst[name] = d
        check(d <= a.tol, f"score {name} differs by {d}")
    print(f"{a.model} on {a.device}: largest differences " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
