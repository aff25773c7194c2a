#!/usr/bin/env python3
"""Exports the encoder of a BGE-M3-layout checkpoint to ONNX, as a transformers.js model folder,
for the side-by-side benchmark (scripts/bench.mjs):

    python scripts/bench_export_onnx.py --model CHECKPOINT_DIR --out OUT_DIR [--opset 17]

OUT_DIR gets config.json, tokenizer.json, tokenizer_config.json, special_tokens_map.json and
onnx/model.onnx: XLMRobertaModel (transformers' AutoModel on the checkpoint's weights), inputs
input_ids and attention_mask [batch, sequence] (int64), output last_hidden_state
[batch, sequence, hidden] in fp32. BGE-M3's dense vector is the L2-normalised first row of
last_hidden_state; the sparse and ColBERT heads are not part of the export (transformers.js
has no BGE-M3 pipeline that would run them).

Models over 2 GB (the protobuf limit) keep their weights in onnx/model.onnx_data, and
config.json says so ("transformers.js_config": {"use_external_data_format": 1}).

Needs torch, transformers and onnx (the TorchScript exporter is used: dynamo=False).
"""
import argparse
import glob
import json
import os
import shutil
import tempfile

import torch
from transformers import AutoModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--opset", type=int, default=17)
    a = ap.parse_args()
    import onnx  # fail early, before the slow part

    # Eager attention: the SDPA path decides from the example mask whether a mask is needed at
    # all, and tracing would freeze that decision into the graph.
    model = AutoModel.from_pretrained(a.model, attn_implementation="eager", add_pooling_layer=False).eval()
    n_params = sum(p.numel() for p in model.parameters())
    external = n_params * 4 > 1.8e9
    # Two rows, the second one padded, so the traced graph keeps the attention mask.
    ids = torch.tensor([[0, 581, 10, 3034, 83, 142, 2], [0, 581, 10, 2, 1, 1, 1]], dtype=torch.long)
    mask = (ids != 1).long()
    os.makedirs(os.path.join(a.out, "onnx"), exist_ok=True)
    final = os.path.join(a.out, "onnx", "model.onnx")
    with tempfile.TemporaryDirectory(dir=a.out) as tmp:
        path = os.path.join(tmp, "model.onnx")
        with torch.no_grad():
            torch.onnx.export(
                model, (ids, mask), path,
                input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                              "last_hidden_state": {0: "batch", 1: "sequence"}},
                opset_version=a.opset, do_constant_folding=True, dynamo=False,
            )
        m = onnx.load(path, load_external_data=True)
        for old in glob.glob(os.path.join(a.out, "onnx", "model.onnx*")):
            os.remove(old)
        if external:
            onnx.save_model(m, final, save_as_external_data=True, all_tensors_to_one_file=True,
                            location="model.onnx_data", size_threshold=1024)
        else:
            onnx.save_model(m, final)
        del m
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask).last_hidden_state
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    cfg["transformers.js_config"] = {"use_external_data_format": 1} if external else {}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        src = os.path.join(a.model, name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(a.out, name))
    if not os.path.exists(os.path.join(a.out, "tokenizer_config.json")):
        special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                   "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}
        with open(os.path.join(a.out, "tokenizer_config.json"), "w") as f:
            json.dump(dict(special, model_max_length=8192, tokenizer_class="XLMRobertaTokenizer"), f, indent=2)
    # Check the export with onnxruntime where it is installed (it need not be).
    try:
        import onnxruntime as ort
        sess = ort.InferenceSession(final, providers=["CPUExecutionProvider"])
        got = sess.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        diff = float(abs(torch.from_numpy(got) - want)[mask.bool()].max())
        print(f"onnxruntime check: max abs diff {diff:.2e}")
    except ImportError:
        pass
    size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(a.out, "onnx", "*")))
    print(json.dumps({"out": a.out, "params": n_params, "onnx_bytes": size, "external_data": external}))


if __name__ == "__main__":
    main()
