#!/usr/bin/env python3
"""How far FlagEmbedding's own fp16 setting (BGEM3FlagModel(use_fp16=True), BAAI's recommended
one) is from its f32 outputs, beside our f16 pack: the same texts and measure as pack_fidelity.py
(check_reference.fidelity: least dense and ColBERT row cosine, largest sparse difference over the
text's largest weight), all against FlagEmbedding in f32.

    python3 scripts/fp16_flagembedding.py MODEL [--pack F16_PACK] [--int8 INT8_PACK]

MODEL is an f32 folder in BAAI's layout (BAAI's .pt heads, or the safetensors heads of
`random_checkpoint.py --numpy`, converted to .pt in a temporary folder). Needs torch, numpy and
FlagEmbedding with transformers<5 (../shared/fixtures/README.md), and a release `m3` for the packs.

On a GPU, use_fp16=True runs the whole model in half precision (weights, activations and every
layer's output rounded to fp16; PyTorch's kernels sum in f32 inside a matmul). On the CPU
FlagEmbedding turns the model back to f32 before encoding; this script keeps it in half so that
the CPU runs what a GPU would (PyTorch's CPU half kernels also sum in f32).
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from check_reference import fidelity  # noqa: E402  (the one measure)
from pack_fidelity import TEXTS, encode  # noqa: E402  (the texts of the packs.md figures)

FIXTURE = ROOT.parent / "shared/fixtures/tiny-m3"


def flag_folder(model, tmp):
    """MODEL as FlagEmbedding reads it: .pt heads, and the tokenizer's config files."""
    model = Path(model).resolve()
    if (model / "colbert_linear.pt").exists() and (model / "tokenizer_config.json").exists():
        return model
    from safetensors.torch import load_file
    out = Path(tmp) / "model"
    out.mkdir()
    for f in model.iterdir():
        if f.suffix != ".safetensors" or f.name == "model.safetensors":
            os.symlink(f, out / f.name)
    for head in ("colbert_linear", "sparse_linear"):
        if not (out / f"{head}.pt").exists():
            torch.save(load_file(model / f"{head}.safetensors"), out / f"{head}.pt")
    for f in ("tokenizer_config.json", "special_tokens_map.json"):
        if not (out / f).exists():
            os.symlink(FIXTURE / f, out / f)
    return out


def flag_encode(folder, half):
    from FlagEmbedding import BGEM3FlagModel
    m = BGEM3FlagModel(str(folder), use_fp16=half, devices="cpu")
    if half:
        m.model.float = lambda: m.model  # keep it in half on the CPU, as on a GPU
    out = m.encode(TEXTS, batch_size=1, max_length=8192, return_dense=True, return_sparse=True,
                   return_colbert_vecs=True)
    dtypes = {p.dtype for p in m.model.parameters()}
    assert dtypes == {torch.float16 if half else torch.float32}, dtypes
    f = lambda a: np.asarray(a, dtype=np.float64)
    return [{"dense": f(d).tolist(), "colbert": f(c).tolist(),
             "sparse": {k: float(v) for k, v in s.items()}}
            for d, s, c in zip(out["dense_vecs"], out["lexical_weights"], out["colbert_vecs"])]


def show(name, got, want):
    f = fidelity(got, want)
    print(f"{name:<44} dense cos {f['dense_cos']:.7f}  ColBERT row cos {f['colbert_row_cos']:.7f}  "
          f"sparse err / largest {f['sparse_rel']:.2e}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--pack", help="an f16 pack of MODEL (m3 convert)")
    ap.add_argument("--int8", help="an int8 pack of MODEL (m3 convert)")
    ap.add_argument("--device", default="cpu", help="m3 encode's device")
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = flag_folder(a.model, tmp)
        f32 = flag_encode(folder, half=False)
        print(f"{a.model}: {len(TEXTS)} texts, each against FlagEmbedding f32 (torch {torch.__version__}, CPU)")
        show("FlagEmbedding use_fp16=True (half model)", flag_encode(folder, half=True), f32)
    show("m3 encode, f32 folder", encode(a.model, a.device, TEXTS)[0], f32)
    for name, pack in (("f16", a.pack), ("int8", a.int8)):
        if pack:
            show(f"m3 encode, {name} pack", encode(pack, a.device, TEXTS)[0], f32)


if __name__ == "__main__":
    main()
