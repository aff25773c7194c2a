#!/usr/bin/env python3
"""Writes a random-weight checkpoint laid out like BAAI/bge-m3 with torch alone (no
transformers / FlagEmbedding): for benchmarks on machines that only have PyTorch.

    python3 scripts/random_checkpoint.py OUT_DIR --tokenizer tokenizer.json [--hidden 1024 --layers 24 --heads 16 --inter 4096] [--bin]

Writes config.json, model.safetensors (or pytorch_model.bin with --bin), colbert_linear.pt and
sparse_linear.pt (fp16, as BAAI ships them) and copies tokenizer.json. Same initialisation as
../shared/fixtures/make_fixture.py (normal(0, 0.2), LayerNorm weight 1 + normal(0, 0.1),
biases normal(0, 0.05)); the numbers differ from it (no reference is made here).
"""
import argparse
import json
import os
import shutil

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--inter", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bin", action="store_true", help="pytorch_model.bin instead of model.safetensors")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    h, f, vocab, pos = a.hidden, a.inter, 250002, 8194
    sd = {}

    def mat(name, *shape):
        sd[name] = 0.2 * torch.randn(*shape)

    def lin(prefix, d_in, d_out):
        mat(f"{prefix}.weight", d_out, d_in)
        sd[f"{prefix}.bias"] = 0.05 * torch.randn(d_out)

    def ln(prefix):
        sd[f"{prefix}.weight"] = 1 + 0.1 * torch.randn(h)
        sd[f"{prefix}.bias"] = 0.05 * torch.randn(h)

    mat("embeddings.word_embeddings.weight", vocab, h)
    mat("embeddings.position_embeddings.weight", pos, h)
    mat("embeddings.token_type_embeddings.weight", 1, h)
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
    os.makedirs(a.out, exist_ok=True)
    if a.bin:
        torch.save(sd, os.path.join(a.out, "pytorch_model.bin"))
    else:
        from safetensors.torch import save_file
        save_file(sd, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})
    for name, d_out in (("colbert_linear.pt", h), ("sparse_linear.pt", 1)):
        w = {"weight": 0.2 * torch.randn(d_out, h), "bias": 0.05 * torch.randn(d_out) + (0.1 if d_out == 1 else 0)}
        torch.save({k: v.half() for k, v in w.items()}, os.path.join(a.out, name))
    cfg = dict(architectures=["XLMRobertaModel"], model_type="xlm-roberta", vocab_size=vocab, hidden_size=h,
               num_hidden_layers=a.layers, num_attention_heads=a.heads, intermediate_size=f,
               max_position_embeddings=pos, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1,
               bos_token_id=0, eos_token_id=2, hidden_act="gelu", position_embedding_type="absolute")
    with open(os.path.join(a.out, "config.json"), "w") as fh:
        json.dump(cfg, fh, indent=2)
    shutil.copy(a.tokenizer, os.path.join(a.out, "tokenizer.json"))


if __name__ == "__main__":
    main()
