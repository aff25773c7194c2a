#!/usr/bin/env python3
"""How much of an f16 pack's error is the dtype's, at any size, with numpy alone: runs the model in
float64 twice, with its f32 weights and with the parameters that a pack stores in f16 rounded to
f16 (`pack::stored_as`: tensors with more than one dimension above 1; vectors stay f32), and
prints the sparse error of the rounding (per text, against the text's largest weight) and the least
dense cosine. Also measures `m3 encode` on the f32 folder and on an f16 pack (if given) against the
float64 run of the f32 weights: our own arithmetic's share.

    python3 scripts/f16_weights_numpy.py MODEL_DIR [--pack F16_PACK_DIR] [--groups]

MODEL_DIR: model.safetensors (f32) and sparse_linear.safetensors, as scripts/random_checkpoint.py
--numpy writes them (e.g. the full-size random model of docs/packs.md). The texts are
pack_fidelity.py's; their token ids come from `m3 encode` (our tokenizer, checked against HF's).
An independent forward pass (embeddings, 24 post-LN layers, exact GELU), written from HF's
XLMRobertaModel, not from src/.
"""
import argparse
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from check_reference import fidelity  # noqa: E402
from pack_fidelity import TEXTS, encode  # noqa: E402

SPECIAL = (0, 1, 2, 3)  # <s> <pad> </s> <unk>
ERF = np.vectorize(math.erf)


class SafeTensors:
    def __init__(self, path):
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            self.header = json.loads(f.read(n))
        self.data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)

    def get(self, name):
        e = self.header[name]
        a, b = e["data_offsets"]
        dt = {"F32": "<f4", "F16": "<f2"}[e["dtype"]]
        return np.frombuffer(self.data[a:b], dtype=dt).reshape(e["shape"])


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def stored_f16(t):
    """What an f16 pack stores in f16 (`pack::stored_as`): tensors with more than one dimension above 1."""
    return sum(d > 1 for d in t.shape) > 1


# Groups of the parameters a pack rounds: whose rounding costs what.
GROUPS = {
    "every matrix (= the f16 pack)": lambda n: True,
    "word embeddings only": lambda n: "word_embeddings" in n,
    "position embeddings only": lambda n: "position_embeddings" in n,
    "attention q, k, v, output only": lambda n: ".attention." in n,
    "FFN in and out only": lambda n: ".intermediate." in n or (".output.dense" in n and ".attention." not in n),
    "the last 4 layers only": lambda n: any(f"layer.{k}." in n for k in range(20, 24)),
}


def forward(st, cfg, ids, rounds):
    """Last hidden state [T, H] in float64; `rounds(name)`: f16-round that tensor if a pack stores it in f16."""
    def p(name):
        t = st.get(name)
        if rounds(name) and stored_f16(t):
            t = t.astype(np.float16)
        return t.astype(np.float64)

    eps, heads = cfg["layer_norm_eps"], cfg["num_attention_heads"]
    name = "embeddings.word_embeddings.weight"
    word = st.get(name)  # only the rows of `ids` are read
    x = word[ids].astype(np.float16 if rounds(name) and stored_f16(word) else np.float32).astype(np.float64)
    pos = np.arange(len(ids)) + 2  # cumsum(ids != 1) * (ids != 1) + 1, no padding
    x = x + p("embeddings.position_embeddings.weight")[pos] + p("embeddings.token_type_embeddings.weight")[0]
    x = layer_norm(x, p("embeddings.LayerNorm.weight"), p("embeddings.LayerNorm.bias"), eps)
    t, h = x.shape
    d = h // heads
    for i in range(cfg["num_hidden_layers"]):
        pre = f"encoder.layer.{i}."
        lin = lambda y, n: y @ p(pre + n + ".weight").T + p(pre + n + ".bias")
        q, k, v = (lin(x, f"attention.self.{n}").reshape(t, heads, d).transpose(1, 0, 2) for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        ctx = ((s / s.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(t, h)
        x = layer_norm(lin(ctx, "attention.output.dense") + x, p(pre + "attention.output.LayerNorm.weight"),
                       p(pre + "attention.output.LayerNorm.bias"), eps)
        u = lin(x, "intermediate.dense")
        u = 0.5 * u * (1.0 + ERF(u / math.sqrt(2.0)))
        x = layer_norm(lin(u, "output.dense") + x, p(pre + "output.LayerNorm.weight"), p(pre + "output.LayerNorm.bias"), eps)
    return x


def outputs(hidden, ids, sw, sb):
    w = np.maximum(hidden @ sw.T + sb, 0.0)[:, 0]
    sparse = {}
    for tid, v in zip(ids, w):
        if tid not in SPECIAL and v > 0:
            sparse[str(tid)] = max(sparse.get(str(tid), 0.0), float(v))
    return sparse, hidden[0] / np.linalg.norm(hidden[0])


def compare(name, got, want):
    """check_reference.fidelity's measure (sparse error over the text's largest weight, dense cosine)."""
    as_lines = lambda outs: [{"sparse": sp, "dense": list(d), "colbert": []} for sp, d in outs]
    f = fidelity(as_lines(got), as_lines(want))
    print(f"{name:<50} sparse error / text's largest {f['sparse_rel']:.2e}, dense cosine {f['dense_cos']:.7f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--pack", help="an f16 pack of MODEL (m3 convert): its m3 encode outputs are measured too")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--groups", action="store_true", help="also round each group of parameters alone (GROUPS)")
    a = ap.parse_args()
    cfg = json.load(open(Path(a.model) / "config.json"))
    st = SafeTensors(Path(a.model) / "model.safetensors")
    head = SafeTensors(Path(a.model) / "sparse_linear.safetensors")
    sw, sb = head.get("weight").astype(np.float64), head.get("bias").astype(np.float64)
    ours, _ = encode(a.model, a.device, TEXTS)
    ids = [o["input_ids"] for o in ours]
    run = lambda rounds: [outputs(forward(st, cfg, i, rounds), i, sw, sb) for i in ids]
    exact = run(lambda n: False)
    rounded = run(GROUPS["every matrix (= the f16 pack)"])
    print(f"{a.model}: {len(TEXTS)} texts, float64 arithmetic; against float64 with the f32 weights:")
    compare("float64, weights rounded as an f16 pack", rounded, exact)
    if a.groups:
        for name, rounds in list(GROUPS.items())[1:]:
            compare(f"float64, {name} rounded", run(rounds), exact)
    as_outputs = lambda enc: [(o["sparse"], np.array(o["dense"])) for o in enc]
    compare("m3 encode, f32 folder", as_outputs(ours), exact)
    if a.pack:
        pack, _ = encode(a.pack, a.device, TEXTS)
        compare("m3 encode, f16 pack", as_outputs(pack), exact)
        compare("m3 encode, f16 pack against float64 rounded", as_outputs(pack), rounded)


if __name__ == "__main__":
    main()
