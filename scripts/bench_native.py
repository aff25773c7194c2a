#!/usr/bin/env python3
"""Native half of the side-by-side benchmark: `m3 encode` (cpu and wgpu devices) against
FlagEmbedding's BGEM3FlagModel (PyTorch) on the same checkpoint and the same texts.

    python3 scripts/bench_native.py --model tiny=../shared/fixtures/tiny-m3 [--model small=DIR ...] \\
        --texts texts.json [--m3 PATH] [--backends cpu,wgpu] [--flag cpu|cuda|none] [--python PY] \\
        [--cells 16,512,2048,mixed32,8192] [--skip small:8192 ...] [--cell-timeout 300] [--out results.json]

Runs under any python3 (standard library only); FlagEmbedding runs in a child process of
--python (default: $M3_PYTHON, else python3). `texts.json` comes from scripts/bench_texts.py.
Prints a markdown table and writes all figures as JSON to --out (scratch files go next to it;
without --out, to a temporary folder removed at the end). scripts/bench.mjs calls this; on a
machine without node or chromium (a GPU box) scripts/bench-gpu-vs-pytorch.sh runs it. --backends
names m3's devices (`m3 --device cpu|wgpu`). For wgpu on an NVIDIA GPU, set VK_DRIVER_FILES if the Vulkan
loader does not find the driver by itself (typically the nvidia_icd.json of the driver install).

What is measured, per model and cell (each side in its own process, so peak RSS is its own):
- m3 runs with `--truncate --max-length 8192`, as FlagEmbedding truncates at 8192 tokens
  (without --truncate, m3 would cut a longer text into windows).
- batch-1 cells (16, 512, 2048, 8192 tokens): R runs at batch size 1 (R = 3, or 2 at 8192);
  "cold" is the first (wgpu: shader compilation included), "warm" the last for m3 and the mean
  of all but the first for FlagEmbedding. m3's times come from `m3 bench --tokens N` (timed
  inside the process, on its own text of the same length); one `m3 encode` run of the cell's
  text gives the outputs that are checked (ids, dense) and the peak RSS.
- mixed32: the 32 texts in one call at batch size 32, one pass (cold for both sides); m3's time
  comes from its progress lines on stderr (0.1 s resolution, used from 2 s up) or else from
  when its stdout starts (process start and model load excluded).
- tokens/s counts real tokens (<s> and </s> included, padding not).
- FlagEmbedding: dense + sparse + ColBERT, as `m3 encode` computes; its own tokenizer,
  length sorting, padding and heads, but without the batch-size probe that `encode()` runs
  first (one extra forward pass of the first batch): a user calling `encode()` on one batch
  waits up to twice the time shown.
- match: the smallest cosine between m3's dense vector and FlagEmbedding's over the cell's texts.
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def repeats(n):
    return 3 if n <= 2048 else 2


# ----------------------------------------------------------------------------------------------
# FlagEmbedding worker (runs under --python, in its own process)

def flag_worker(a):
    import resource
    import numpy as np
    import torch
    from collections import defaultdict

    cell = json.load(open(a.cell))
    t0 = time.perf_counter()
    if a.peer == "flagembedding":
        from FlagEmbedding import BGEM3FlagModel
        m = BGEM3FlagModel(a.model, use_fp16=False, devices=a.device)
        dev = m.target_devices[0] if hasattr(m, "target_devices") else a.device
        if dev == "cpu":
            m.model.float()
        m.model.to(dev)
        m.model.eval()
        tok = m.tokenizer

        def forward(batch):
            return m.model(batch, return_dense=True, return_sparse=True, return_colbert_vecs=True)
    else:
        # The same computation in plain transformers + torch (for machines without FlagEmbedding):
        # XLMRobertaModel, dense = normalised <s> row, sparse = relu(linear), ColBERT =
        # normalised linear of the rows after <s>, masked — what FlagEmbedding's M3 model does.
        from transformers import AutoModel, AutoTokenizer
        dev = a.device if a.device != "cuda" else "cuda:0"
        tok = AutoTokenizer.from_pretrained(a.model)
        enc = AutoModel.from_pretrained(a.model, add_pooling_layer=False).float().to(dev).eval()
        h = enc.config.hidden_size
        heads = {}
        for name, d_out in (("colbert_linear", h), ("sparse_linear", 1)):
            lin = torch.nn.Linear(h, d_out)
            lin.load_state_dict({k: v.float() for k, v in torch.load(os.path.join(a.model, name + ".pt"), map_location="cpu").items()})
            heads[name] = lin.to(dev).eval()

        def forward(batch):
            hs = enc(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            col = heads["colbert_linear"](hs[:, 1:]) * batch["attention_mask"][:, 1:][:, :, None].float()
            return {"dense_vecs": torch.nn.functional.normalize(hs[:, 0], dim=-1),
                    "sparse_vecs": torch.relu(heads["sparse_linear"](hs)),
                    "colbert_vecs": torch.nn.functional.normalize(col, dim=-1)}
    load_s = time.perf_counter() - t0
    unused = {tok.convert_tokens_to_ids(tok.special_tokens_map[t]) for t in ("cls_token", "eos_token", "pad_token", "unk_token")
              if t in tok.special_tokens_map}

    def sync():
        if dev.startswith("cuda"):
            torch.cuda.synchronize()

    @torch.no_grad()
    def encode(texts, batch_size):
        # BGEM3FlagModel.encode_single_device without its batch-size probe: tokenize, sort by
        # length, pad per batch, run model + heads, post-process like FlagEmbedding does.
        enc = tok(texts, truncation=True, max_length=8192)
        items = [{k: enc[k][i] for k in enc.keys()} for i in range(len(texts))]
        order = np.argsort([-len(x["input_ids"]) for x in items])
        dense, lexical, colbert = [None] * len(texts), [None] * len(texts), [None] * len(texts)
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            batch = tok.pad([items[i] for i in idx], padding=True, return_tensors="pt").to(dev)
            out = forward(batch)
            d = out["dense_vecs"].float().cpu().numpy()
            w = out["sparse_vecs"].squeeze(-1).float().cpu().numpy()
            c = out["colbert_vecs"].float().cpu().numpy()
            ids = batch["input_ids"].cpu().numpy().tolist()
            am = batch["attention_mask"].cpu().numpy()
            for k, i in enumerate(idx):
                dense[i] = d[k]
                lw = defaultdict(int)
                for wt, t in zip(w[k], ids[k]):
                    if t not in unused and wt > 0 and wt > lw[str(t)]:
                        lw[str(t)] = wt
                lexical[i] = lw
                colbert[i] = c[k][: int(am[k].sum()) - 1]
        sync()
        return dense, [len(x["input_ids"]) for x in items]

    texts = cell["texts"]
    times = []
    for r in range(a.repeats):
        sync()
        t = time.perf_counter()
        dense, lengths = encode(texts, cell["batch"])
        times.append(time.perf_counter() - t)
        if r == 0:
            first_dense, first_lengths = dense, lengths
    res = {
        "load_s": load_s, "cold_s": times[0], "warm_s": (sum(times[1:]) / len(times[1:])) if len(times) > 1 else None,
        "runs": len(times), "lengths": first_lengths, "dense": [[float(x) for x in d] for d in first_dense],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "threads": torch.get_num_threads(),
        "device": str(dev), "torch": torch.__version__, "peer": a.peer,
    }
    if dev.startswith("cuda"):
        res["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    json.dump(res, open(a.result, "w"))


# ----------------------------------------------------------------------------------------------
# Driver

class Proc:
    """A child process with timestamped stdout/stderr, its peak RSS (wait4) and a time limit."""

    def __init__(self, args, stdin_bytes, timeout, env=None):
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.err, self.out, self.first_out = [], [], None
        self.timed_out = False
        ths = [threading.Thread(target=self._feed, args=(stdin_bytes,)), threading.Thread(target=self._read_err),
               threading.Thread(target=self._read_out)]
        for t in ths:
            t.daemon = True
            t.start()
        killer = threading.Timer(timeout, self._kill)
        killer.start()
        _, status, ru = os.wait4(self.p.pid, 0)
        killer.cancel()
        self.p.returncode = os.waitstatus_to_exitcode(status)
        for t in ths:
            t.join()
        self.rc = self.p.returncode
        self.maxrss_mib = ru.ru_maxrss / 1024
        self.wall_s = time.monotonic() - self.t0

    def _kill(self):
        self.timed_out = True
        self.p.kill()

    def _feed(self, data):
        try:
            self.p.stdin.write(data)
            self.p.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def _read_err(self):
        for line in self.p.stderr:
            self.err.append((time.monotonic(), line.decode(errors="replace").rstrip()))

    def _read_out(self):
        while True:
            chunk = self.p.stdout.read1(1 << 20)
            if not chunk:
                break
            if self.first_out is None:
                self.first_out = time.monotonic()
            self.out.append(chunk)

    def stderr_text(self):
        return "\n".join(l for _, l in self.err)


LOADED = re.compile(r"^m3: loaded .* in ([\d.]+) s")
ENCODED = re.compile(r"^m3: encoded (\d+)/(\d+) tokens \(([\d.]+) s\)")


def m3_once(m3, model, device, texts, batch, timeout, env):
    stdin = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts).encode()
    # --truncate: FlagEmbedding's behaviour (first 8192 tokens), not m3's default of windows.
    pr = Proc([m3, "encode", "--model", model, "--device", device, "--batch-size", str(batch), "--max-length", "8192",
               "--truncate"], stdin, timeout, env)
    if pr.timed_out:
        return {"error": f"timeout > {timeout:.0f} s"}
    if pr.rc != 0:
        return {"error": (pr.stderr_text().strip().splitlines() or [f"exit {pr.rc}"])[-1][:200]}
    t_loaded, load_s, progress = None, None, []
    for t, line in pr.err:
        if (mm := LOADED.match(line)):
            t_loaded, load_s = t, float(mm.group(1))
        elif (mm := ENCODED.match(line)):
            progress.append((int(mm.group(1)), float(mm.group(3))))
    out = b"".join(pr.out).split(b"\n")
    return {"load_s": load_s, "encode_total_s": pr.first_out - t_loaded, "progress": progress,
            "peak_rss_mib": pr.maxrss_mib, "lines": out, "n_lines": sum(1 for l in out if l.strip())}


def parse_dense(lines, k):
    res = []
    for line in lines[:k]:
        o = json.loads(line)
        res.append((o["input_ids"], o["dense"]))
    return res


def run_m3(m3, model, device, cell, timeout, env):
    texts, batch = cell["texts"], cell["batch"]
    enc = m3_once(m3, model, device, texts, batch, timeout, env)
    if "error" in enc:
        return enc
    if batch == 1:
        # Times from `m3 bench` (its own text of the same length, timed inside the process); the
        # `m3 encode` run above gives the outputs to check and a cross-check of the cold time.
        # (`m3 bench` encodes exactly --tokens tokens, one window.)
        n = cell["lengths"][0]
        pb = Proc([m3, "bench", "--model", model, "--device", device, "--tokens", str(n), "--runs", str(repeats(n))],
                  b"", timeout, env)
        if pb.timed_out:
            return {"error": f"timeout > {timeout:.0f} s"}
        try:
            b = json.loads(b"".join(pb.out).decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"error": (pb.stderr_text().strip().splitlines() or [f"exit {pb.rc}"])[-1][:200]}
        res = {"cold_s": b["encode_first_s"], "warm_s": b["encode_s"], "runs": repeats(n), "load_s": b["load_s"],
               "timing": "m3 bench (median of the warm runs)", "encode_cold_s": enc["encode_total_s"],
               "peak_rss_mib": max(pb.maxrss_mib, enc["peak_rss_mib"]), "bench": b}
    else:
        prog = enc["progress"]
        cold = prog[-1][1] if prog and prog[-1][1] >= 2.0 else enc["encode_total_s"]
        res = {"cold_s": cold, "warm_s": None, "runs": 1, "timing": "m3 encode, one pass", "load_s": enc["load_s"],
               "peak_rss_mib": enc["peak_rss_mib"]}
    dense = parse_dense(enc["lines"], len(texts))
    res.update({"lengths": [len(i) for i, _ in dense], "dense": [d for _, d in dense]})
    return res


def run_flag(py, model, cell, device, timeout, scratch, peer):
    cell_file, result_file = os.path.join(scratch, "cell.json"), os.path.join(scratch, "flag-result.json")
    json.dump(cell, open(cell_file, "w"))
    if os.path.exists(result_file):
        os.remove(result_file)
    r = repeats(cell["lengths"][0]) if cell["batch"] == 1 else 1
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    pr = Proc([py, os.path.abspath(__file__), "flag-worker", "--model", model, "--cell", cell_file, "--result", result_file,
               "--repeats", str(r), "--device", device, "--peer", peer], b"", timeout, env)
    if pr.timed_out:
        return {"error": f"timeout > {timeout:.0f} s"}
    if pr.rc != 0 or not os.path.exists(result_file):
        lines = [l for l in pr.stderr_text().splitlines() if l.strip()]
        return {"error": (lines or [f"exit {pr.rc}"])[-1][:200]}
    res = json.load(open(result_file))
    res["peak_rss_mib"] = max(res["peak_rss_mib"], pr.maxrss_mib)
    res["timing"] = "in-process, first call and mean of the others"
    return res


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(x * x for x in b))
    return dot / (na * nb) if na and nb else float("nan")


def tok_s(r, key="warm_s"):
    t = r.get(key) if r.get(key) is not None else r.get("cold_s")
    return r["tokens"] / t if t else None


def fmt(x, digits=0):
    if x is None:
        return "–"
    if x >= 100 or digits == 0:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def table(results):
    peer = "PyTorch (FlagEmbedding's math)" if results.get("peer") == "torch" else "FlagEmbedding"
    rows = [f"| model | text | m3 cpu tok/s | m3 wgpu tok/s | {peer} ({results['flag_device']}) tok/s | cpu / FE | wgpu / FE | peak RSS MiB (cpu / wgpu / FE) | dense cosine vs FE (cpu / wgpu) |",
            "|---|---|---:|---:|---:|---:|---:|---|---|"]
    for row in results["rows"]:
        sides = row["sides"]

        def cell_tps(name):
            r = sides.get(name)
            if r is None:
                return "–"
            if "error" in r:
                return r["error"]
            if "skipped" in r:
                return f"skipped ({r['skipped']})"
            return fmt(tok_s(r))

        def ratio(name):
            a, b = sides.get(name), sides.get("flagembedding")
            if not a or not b or "cold_s" not in a or "cold_s" not in b:
                return "–"
            if "error" in a or "error" in b or "skipped" in a or "skipped" in b:
                return "–"
            return f"{tok_s(a) / tok_s(b):.2f}×"

        rss = " / ".join(fmt(sides[s]["peak_rss_mib"]) if s in sides and "peak_rss_mib" in sides[s] else "–"
                         for s in ("m3-cpu", "m3-wgpu", "flagembedding"))
        cos = " / ".join(f"{sides[s]['cosine']:.7f}" if s in sides and sides[s].get("cosine") is not None else "–"
                         for s in ("m3-cpu", "m3-wgpu"))
        rows.append(f"| {row['model']} | {row['label']} | {cell_tps('m3-cpu')} | {cell_tps('m3-wgpu')} | {cell_tps('flagembedding')} "
                    f"| {ratio('m3-cpu')} | {ratio('m3-wgpu')} | {rss} | {cos} |")
    return "\n".join(rows)


def cell_label(cell):
    if cell["batch"] == 1:
        return f"{cell['lengths'][0]} tok ×1"
    return f"{len(cell['texts'])} mixed ({min(cell['lengths'])}–{max(cell['lengths'])} tok, {sum(cell['lengths'])} total) ×{cell['batch']}"


def driver(a):
    py = a.python or os.environ.get("M3_PYTHON") or "python3"
    m3 = a.m3 or os.environ.get("M3") or default_m3()
    backends = [b for b in a.backends.split(",") if b]
    env = dict(os.environ)
    if a.out:
        scratch = os.path.join(os.path.dirname(os.path.abspath(a.out)), "native-scratch")
        os.makedirs(scratch, exist_ok=True)
        run(a, py, m3, backends, env, scratch)
    else:
        with tempfile.TemporaryDirectory(prefix="m3-bench-native-") as scratch:
            run(a, py, m3, backends, env, scratch)


def run(a, py, m3, backends, env, scratch):
    texts = json.load(open(a.texts))
    cells = {c["name"]: c for c in texts["cells"]}
    wanted = [c for c in a.cells.split(",") if c]
    flag_ok = a.flag != "none"
    flag_why, peer = None, "flagembedding"
    if flag_ok:
        if subprocess.run([py, "-c", "import FlagEmbedding, torch"], capture_output=True).returncode != 0:
            if a.torch_fallback and subprocess.run([py, "-c", "import transformers, torch"], capture_output=True).returncode == 0:
                peer, flag_why = "torch", f"FlagEmbedding not importable by {py}: plain transformers + torch with FlagEmbedding's heads instead"
            else:
                flag_ok, flag_why = False, f"FlagEmbedding not importable by {py}"
            print(f"bench_native: {flag_why}", file=sys.stderr)
    results = {"m3": m3, "python": py, "backends": backends, "flag_device": a.flag, "flag_note": flag_why, "peer": peer if flag_ok else None,
               "cpu": cpu_name(), "cores": os.cpu_count(), "rows": []}
    skip = set(a.skip or [])
    for spec in a.model:
        name, model = spec.split("=", 1)
        failed = set()  # sides that failed or timed out on this model: skip its later cells
        for cname in wanted:
            cell = dict(cells[cname])
            cell["tokens"] = sum(cell["lengths"])
            row = {"model": name, "cell": cname, "label": cell_label(cell), "tokens": cell["tokens"], "sides": {}}
            sides = [(f"m3-{b}", b) for b in backends] + ([("flagembedding", None)] if flag_ok else [])
            for side, backend in sides:
                if f"{name}:{cname}" in skip or f"{name}:{cname}:{side}" in skip:
                    row["sides"][side] = {"skipped": "--skip"}
                    continue
                if side in failed:
                    row["sides"][side] = {"skipped": "after a failure on a smaller cell"}
                    continue
                print(f"bench_native: {name} {cname} {side} ...", file=sys.stderr, flush=True)
                t = time.monotonic()
                if backend:
                    r = run_m3(m3, model, backend, cell, a.cell_timeout, env)
                else:
                    r = run_flag(py, model, cell, a.flag, a.cell_timeout, scratch, peer)
                r["tokens"] = cell["tokens"]
                if "error" in r:
                    failed.add(side)
                elif r["lengths"] != cell["lengths"]:
                    r["length_mismatch"] = r["lengths"]
                print(f"bench_native:   {time.monotonic() - t:.1f} s " + (r.get("error") or f"{fmt(tok_s(r))} tok/s warm"),
                      file=sys.stderr, flush=True)
                row["sides"][side] = r
            ref = row["sides"].get("flagembedding")
            for side, r in row["sides"].items():
                if side != "flagembedding" and ref and "dense" in r and "dense" in ref:
                    r["cosine"] = min(cosine(x, y) for x, y in zip(r["dense"], ref["dense"]))
            for r in row["sides"].values():
                r.pop("dense", None)
            results["rows"].append(row)
            if a.out:
                json.dump(results, open(a.out, "w"), indent=1)
    print(table(results))
    if a.out:
        json.dump(results, open(a.out, "w"), indent=1)


def default_m3():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/bge-m3-target")
    return os.path.join(target, "release", "m3")


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "flag-worker":
        ap = argparse.ArgumentParser()
        ap.add_argument("cmd")
        ap.add_argument("--model", required=True)
        ap.add_argument("--cell", required=True)
        ap.add_argument("--result", required=True)
        ap.add_argument("--repeats", type=int, default=2)
        ap.add_argument("--device", default="cpu")
        ap.add_argument("--peer", default="flagembedding")
        flag_worker(ap.parse_args())
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="NAME=DIR (BAAI/bge-m3 layout), repeatable")
    ap.add_argument("--texts", required=True, help="from scripts/bench_texts.py")
    ap.add_argument("--m3", help="m3 binary (default $M3, else $CARGO_TARGET_DIR/release/m3, "
                    "CARGO_TARGET_DIR defaulting to ~/.cache/bge-m3-target)")
    ap.add_argument("--backends", default="cpu,wgpu", help="m3 devices to run (m3 --device), comma-separated")
    ap.add_argument("--flag", default="cpu", help="FlagEmbedding device: cpu, cuda or none")
    ap.add_argument("--python", help="python with FlagEmbedding (default $M3_PYTHON, else python3)")
    ap.add_argument("--torch-fallback", action="store_true",
                    help="without FlagEmbedding, compare against the same model in plain transformers + torch")
    ap.add_argument("--cells", default="16,512,2048,mixed32,8192")
    ap.add_argument("--skip", action="append", help="MODEL:CELL or MODEL:CELL:SIDE (side: m3-cpu, m3-wgpu, flagembedding)")
    ap.add_argument("--cell-timeout", type=float, default=300)
    ap.add_argument("--out")
    driver(ap.parse_args())


if __name__ == "__main__":
    main()
