#!/usr/bin/env python3
"""Writes a random-weight checkpoint laid out like BAAI/bge-m3 with torch alone, or with numpy
alone where torch is missing (no transformers / FlagEmbedding): for benchmarks and pack figures.

    python3 scripts/random_checkpoint.py OUT_DIR --tokenizer tokenizer.json [--hidden 1024 --layers 24 --heads 16 --inter 4096] [--std 0.2] [--bin] [--numpy]

Writes config.json, model.safetensors (or pytorch_model.bin with --bin), the heads (fp16, as BAAI
ships them: colbert_linear.pt and sparse_linear.pt with torch; colbert_linear.safetensors and
sparse_linear.safetensors with numpy, which the loader reads the same way) and copies
tokenizer.json. Same initialisation as ../shared/fixtures/make_fixture.py (matrices normal(0, std),
std 0.2 by default; LayerNorm weight 1 + normal(0, 0.1), biases normal(0, 0.05)); the numbers differ
from it (no reference is made here). At full size use --std 0.02 (HF-like): with 0.2 a 24-layer,
1024-wide random model is ill-conditioned and errors measured on it are not the dtype's.
"""
import argparse
import json
import os
import shutil

try:
    import torch
except ImportError:  # numpy alone (--numpy is then implied)
    torch = None


def write_safetensors(path, tensors, dtype="F32"):
    """tensors: list of (name, numpy array); written one at a time after the header."""
    import numpy as np
    np_type = {"F32": "<f4", "F16": "<f2"}[dtype]
    header, offset = {}, 0
    for name, t in tensors:
        n = t.size * np.dtype(np_type).itemsize
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h)
        for _, t in tensors:
            f.write(np.ascontiguousarray(t, dtype=np_type).tobytes())


def layout(a):
    """(name, shape, (mean, std)) of every encoder tensor, in the order the weights are drawn."""
    h, f, vocab, pos = a.hidden, a.inter, 250002, 8194
    out = []

    def lin(prefix, d_in, d_out):
        out.append((f"{prefix}.weight", (d_out, d_in), (0.0, a.std)))
        out.append((f"{prefix}.bias", (d_out,), (0.0, 0.05)))

    def ln(prefix):
        out.append((f"{prefix}.weight", (h,), (1.0, 0.1)))
        out.append((f"{prefix}.bias", (h,), (0.0, 0.05)))

    for name, rows in (("word", vocab), ("position", pos), ("token_type", 1)):
        out.append((f"embeddings.{name}_embeddings.weight", (rows, h), (0.0, a.std)))
    ln("embeddings.LayerNorm")
    for i in range(a.layers):
        p = f"encoder.layer.{i}"
        for m in ("query", "key", "value"):
            lin(f"{p}.attention.self.{m}", h, h)
        lin(f"{p}.attention.output.dense", h, h)
        ln(f"{p}.attention.output.LayerNorm")
        lin(f"{p}.intermediate.dense", h, f)
        lin(f"{p}.output.dense", f, h)
        ln(f"{p}.output.LayerNorm")
    return out


def heads(a):
    """(file stem, [(name, shape, (mean, std))]) of the two heads."""
    h = a.hidden
    return [(stem, [("weight", (d_out, h), (0.0, a.std)), ("bias", (d_out,), (0.1 if d_out == 1 else 0.0, 0.05))])
            for stem, d_out in (("colbert_linear", h), ("sparse_linear", 1))]


def main_numpy(a):
    import numpy as np
    rng = np.random.default_rng(a.seed)

    def draw(shape, mean_std):
        mean, std = mean_std
        return (mean + std * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)

    os.makedirs(a.out, exist_ok=True)
    write_safetensors(os.path.join(a.out, "model.safetensors"), [(n, draw(s, d)) for n, s, d in layout(a)])
    for stem, tensors in heads(a):
        write_safetensors(os.path.join(a.out, f"{stem}.safetensors"), [(n, draw(s, d)) for n, s, d in tensors], "F16")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--inter", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--std", type=float, default=0.2, help="std of the weight matrices (0.02: HF-like)")
    ap.add_argument("--bin", action="store_true", help="pytorch_model.bin instead of model.safetensors")
    ap.add_argument("--numpy", action="store_true", help="numpy instead of torch (safetensors heads)")
    a = ap.parse_args()
    if a.numpy or torch is None:
        if a.bin:
            raise SystemExit("random_checkpoint.py: --bin needs torch")
        main_numpy(a)
        write_config(a)
        return
    torch.manual_seed(a.seed)

    def draw(shape, mean_std):
        mean, std = mean_std
        return mean + std * torch.randn(*shape)

    sd = {n: draw(s, d) for n, s, d in layout(a)}
    os.makedirs(a.out, exist_ok=True)
    if a.bin:
        torch.save(sd, os.path.join(a.out, "pytorch_model.bin"))
    else:
        from safetensors.torch import save_file
        save_file(sd, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})
    for stem, tensors in heads(a):
        torch.save({n: draw(s, d).half() for n, s, d in tensors}, os.path.join(a.out, f"{stem}.pt"))
    write_config(a)


def write_config(a):
    h, f, vocab, pos = a.hidden, a.inter, 250002, 8194
    cfg = dict(architectures=["XLMRobertaModel"], model_type="xlm-roberta", vocab_size=vocab, hidden_size=h,
               num_hidden_layers=a.layers, num_attention_heads=a.heads, intermediate_size=f,
               max_position_embeddings=pos, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1,
               bos_token_id=0, eos_token_id=2, hidden_act="gelu", position_embedding_type="absolute")
    with open(os.path.join(a.out, "config.json"), "w") as fh:
        json.dump(cfg, fh, indent=2)
    shutil.copy(a.tokenizer, os.path.join(a.out, "tokenizer.json"))


if __name__ == "__main__":
    main()
