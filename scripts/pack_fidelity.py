#!/usr/bin/env python3
"""Packs at any size: converts a model folder to f16 and int8 packs with `m3 convert`, encodes the
same texts with the f32 folder and each pack through `m3 encode`, and prints sizes, conversion
times, the worst tensor errors, and how far each pack's outputs are from the f32 ones (dense and
ColBERT cosines, sparse error relative to the text's largest weight). Standard library only.

    python3 scripts/pack_fidelity.py MODEL_DIR [--out DIR] [--device cpu|wgpu] [--kernel K] [--texts N]

The full-size figures in docs/packs.md come from a random model with HF-like weights:
    python3 scripts/random_checkpoint.py /tmp/full --tokenizer ../shared/fixtures/tiny-m3/tokenizer.json --std 0.02 --numpy
    python3 scripts/pack_fidelity.py /tmp/full
(our f32 path is within 2.2e-7 of FlagEmbedding on such a model, so the differences are the
dtype's). Random weights lack a trained model's outlier channels: say so next to the figures.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from check_reference import fidelity  # noqa: E402  (one measure for packs, against f32 or a reference)
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/bge-m3-target"))
M3 = TARGET / "release/m3"

TEXTS = [
    "What is BGE M3?",
    "BGE M3 is an embedding model supporting dense retrieval, lexical matching and multi-vector interaction.",
    "Definition of BM25: a bag-of-words retrieval function that ranks documents by query terms.",
    "Les modèles d'embedding multilingues projettent des phrases de langues différentes dans le même espace.",
    "多语言向量模型可以把不同语言的句子映射到同一个空间。",
    "Die Suchmaschine läuft vollständig im Browser; der Text verlässt die Seite nie.",
    "Прямой поиск по плотным векторам дополняется лексическими весами.",
    "A longer passage about hives and honey: bees collect nectar, store it in wax cells, and fan it "
    "with their wings until enough water evaporates; the honey is then capped with wax. " * 4,
]


def encode(model, device, texts, kernel="auto"):
    lines = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    t0 = time.time()
    run = subprocess.run([str(M3), "encode", "--model", str(model), "--device", device, "--kernel", kernel],
                         input=lines.encode(), capture_output=True, check=False)
    if run.returncode != 0:
        sys.exit(f"m3 encode {model}: {run.stderr.decode()}")
    return [json.loads(l) for l in run.stdout.decode().splitlines()], time.time() - t0


def folder_bytes(d):
    return sum(f.stat().st_size for f in Path(d).iterdir() if f.is_file())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--out", help="where the packs go (default: MODEL-f16, MODEL-int8 beside it)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--kernel", default="auto", help="m3 --kernel on wgpu: auto, burn, register or burn-f16")
    ap.add_argument("--texts", type=int, default=len(TEXTS))
    a = ap.parse_args()
    model = Path(a.model)
    texts = TEXTS[: a.texts]
    base, base_s = encode(model, a.device, texts, a.kernel)
    print(f"f32  {folder_bytes(model) / 1e9:6.3f} GB  encode {base_s:6.1f} s")
    for dtype in ("f16", "int8"):
        pack = Path(a.out or model.parent) / f"{model.name}-{dtype}"
        if not (pack / "m3-pack.json").exists():
            t0 = time.time()
            run = subprocess.run([str(M3), "convert", "--model", str(model), "--out", str(pack), "--dtype", dtype],
                                 capture_output=True, check=False)
            if run.returncode != 0:
                sys.exit(f"m3 convert: {run.stderr.decode()}")
            worst = [l for l in run.stdout.decode().splitlines() if l.startswith("worst")]
            print(f"{dtype}: converted in {time.time() - t0:.1f} s; {worst[0] if worst else ''}")
        got, s = encode(pack, a.device, texts, a.kernel)
        f = fidelity(got, base)
        dense, colbert, sparse = f["dense_cos"], f["colbert_row_cos"], f["sparse_rel"]
        print(f"{dtype:<4} {folder_bytes(pack) / 1e9:6.3f} GB  encode {s:6.1f} s  vs f32: dense cosine >= {dense:.6f}, "
              f"ColBERT row cosine >= {colbert:.6f}, sparse error <= {sparse:.2e} of the largest weight")


if __name__ == "__main__":
    main()
