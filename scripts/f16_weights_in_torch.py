#!/usr/bin/env python3
"""How much of an f16 pack's error is the dtype's: runs a model in PyTorch (f32 arithmetic) with
groups of its parameters rounded to f16, and prints each group's sparse error (per text against
the text's largest weight, and against the largest weight of all texts) and least dense cosine,
against the same model unrounded. Rounding every parameter is what an f16 pack stores, so a pack
whose outputs show the same error adds none of its own. Needs torch and transformers (the
versions make_fixture.py uses).

    python3 scripts/f16_weights_in_torch.py MODEL_DIR [--texts N]

MODEL_DIR in BAAI's layout with sparse_linear.pt, and MODEL_DIR-reference.json beside it for the
texts (make_fixture.py writes both).
"""
import argparse
import copy
import json

import torch
from transformers import AutoTokenizer, XLMRobertaModel

SPECIAL = (0, 1, 2, 3)  # <s> <pad> </s> <unk>


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--texts", type=int, default=11, help="the reference's first N texts (default 11: the short ones)")
    a = ap.parse_args()
    ref = json.load(open(a.model.rstrip("/") + "-reference.json", encoding="utf-8"))
    texts = [i["text"] for i in ref["items"][: a.texts]]
    tok = AutoTokenizer.from_pretrained(a.model)
    base = XLMRobertaModel.from_pretrained(a.model).eval()
    head = torch.load(a.model + "/sparse_linear.pt")
    sw, sb = head["weight"].float(), head["bias"].float()

    def outputs(model):
        out = []
        with torch.no_grad():
            for t in texts:
                enc = tok(t, return_tensors="pt")
                h = model(**enc).last_hidden_state[0]
                w = torch.relu(h @ sw.T + sb)[:, 0]
                sparse = {}
                for tid, v in zip(enc["input_ids"][0].tolist(), w.tolist()):
                    if tid not in SPECIAL and v > 0:
                        sparse[tid] = max(sparse.get(tid, 0.0), v)
                out.append((sparse, h[0] / h[0].norm()))
        return out

    f32 = outputs(base)
    top_all = max(max(s.values(), default=0.0) for s, _ in f32)

    def report(name, pred):
        model = copy.deepcopy(base)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if pred(n):
                    p.copy_(p.half().float())
        per_text = overall = 0.0
        cos = 1.0
        for (s, d), (w, dw) in zip(outputs(model), f32):
            e = max([abs(s.get(k, 0.0) - w.get(k, 0.0)) for k in set(s) | set(w)] + [0.0])
            per_text = max(per_text, e / max(list(w.values()) + [1e-6]))
            overall = max(overall, e / max(top_all, 1e-6))
            cos = min(cos, float(d @ dw))
        print(f"{name:<28} sparse error / text's largest {per_text:.2e}, / largest of all {overall:.2e}, dense cosine {cos:.7f}")

    norm_or_bias = lambda n: "LayerNorm" in n or n.endswith("bias")
    report("every parameter (= f16 pack)", lambda n: True)
    report("all but LayerNorms, biases", lambda n: not norm_or_bias(n))
    report("linear weights only", lambda n: n.endswith(("dense.weight", "query.weight", "key.weight", "value.weight")))
    report("word embeddings only", lambda n: "word_embeddings" in n)
    report("LayerNorms, biases only", norm_or_bias)


if __name__ == "__main__":
    main()
