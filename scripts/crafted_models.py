#!/usr/bin/env python3
"""Writes a corpus of crafted model folders: each is the tiny fixture model with one file replaced by
a hostile or broken one (zip, pickle, safetensors, config.json, tokenizer.json, head files).

    python3 scripts/crafted_models.py OUT_DIR [--fixture ../shared/fixtures/tiny-m3]

Every folder OUT_DIR/<case>/ holds config.json, tokenizer.json, the two heads and exactly one
encoder file (the crafted one or a link to the fixture's); OUT_DIR/cases.json lists the cases with
what each one tries. `tests/crafted.rs` runs `m3 encode` on each under an address-space cap and a
time limit and wants one line of error and exit status 1. Only the standard library is used.
"""
import base64
import json
import os
import random
import struct
import sys
import zipfile
from pathlib import Path

# ---------------------------------------------------------------- pickle (protocol 2) by hand
PROTO, STOP, MARK = b"\x80\x02", b".", b"("
EMPTY_TUPLE, TUPLE, TUPLE1, TUPLE2 = b")", b"t", b"\x85", b"\x86"
EMPTY_DICT, EMPTY_LIST, SETITEMS, REDUCE, BINPERSID = b"}", b"]", b"u", b"R", b"Q"
DUP, NEWFALSE, BINPUT, BINGET = b"2", b"\x89", b"q", b"h"


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def text(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def integer(n):
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if -(2**31) <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    b = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(b)]) + b


def tup(items):
    return MARK + b"".join(items) + TUPLE


def tensor(key, shape, stride, offset=0, storage="FloatStorage", numel=None):
    """torch._utils._rebuild_tensor_v2(storage, offset, shape, stride, False, OrderedDict())."""
    if numel is None:
        numel = 1
        for d in shape:
            numel *= d
    persid = tup([text("storage"), glob("torch", storage), text(key), text("cpu"), integer(numel)]) + BINPERSID
    ordered = glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE
    args = tup([persid, integer(offset), tup([integer(d) for d in shape]), tup([integer(s) for s in stride]),
                NEWFALSE, ordered])
    return glob("torch._utils", "_rebuild_tensor_v2") + args + REDUCE


def state_dict(entries):
    body = b"".join(text(name) + value for name, value in entries)
    return PROTO + glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE + MARK + body + SETITEMS + STOP


def torch_zip(pkl, storages, prefix="archive"):
    """A PyTorch zip checkpoint (stored, as torch.save writes it) from a data.pkl and its storages."""
    import io
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", pkl)
        z.writestr(f"{prefix}/version", b"3\n")
        for key, data in storages.items():
            z.writestr(f"{prefix}/data/{key}", data)
    return buf.getvalue()


def head_pt(hidden, weight=None, bias=None):
    """sparse_linear.pt: weight [1, H] and bias [1] (f32), or crafted tensor pickles instead."""
    weight = weight or tensor("0", (1, hidden), (hidden, 1))
    bias = bias or tensor("1", (1,), (1,))
    return torch_zip(state_dict([("weight", weight), ("bias", bias)]),
                     {"0": bytes(4 * hidden), "1": bytes(4)})


# ---------------------------------------------------------------- zip by hand
def eocd(entries, cd_size, cd_offset):
    return b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, entries, entries, cd_size, cd_offset, 0)


def zip64_count_bomb():
    """128 bytes whose zip64 end record claims 2^60 entries."""
    rec = b"PK\x06\x06" + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, 1 << 60, 1 << 60, 0, 0)
    loc = b"PK\x06\x07" + struct.pack("<IQI", 0, 0, 1)
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return b"PK\x03\x04" + bytes(8) + rec + loc + end


def patch_central(data, name, fn):
    """Applies fn(bytearray, offset_of_central_header) to the central entry called `name`."""
    b = bytearray(data)
    at = b.find(b"PK\x01\x02")
    while at >= 0:
        n_len = struct.unpack_from("<H", b, at + 28)[0]
        if bytes(b[at + 46:at + 46 + n_len]) == name.encode():
            fn(b, at)
        at = b.find(b"PK\x01\x02", at + 4)
    return bytes(b)


def zip64_extra_overrun(pt):
    """The data.pkl entry gets a zip64 extra field claiming 24 bytes with 4 present (and sizes of
    0xFFFFFFFF that send the reader to it)."""
    b = bytearray(pt)
    at = b.find(b"PK\x01\x02")
    n_len, x_len, c_len = struct.unpack_from("<HHH", b, at + 28)
    struct.pack_into("<II", b, at + 20, 0xFFFFFFFF, 0xFFFFFFFF)
    extra = struct.pack("<HH", 1, 24) + b"\xff\xff\xff\xff"
    start = at + 46 + n_len
    b[start:start + x_len] = extra
    struct.pack_into("<H", b, at + 30, len(extra))
    # The central directory grew or shrank: fix its size in the end record.
    end = b.rfind(b"PK\x05\x06")
    size = struct.unpack_from("<I", b, end + 12)[0]
    struct.pack_into("<I", b, end + 12, size + len(extra) - x_len)
    return bytes(b)


def set_flag(b, at):
    struct.pack_into("<H", b, at + 8, struct.unpack_from("<H", b, at + 8)[0] | 1)


def duplicate_storage(hidden):
    """A head whose storage 0 appears twice with different bytes: which one is the weight?"""
    import io
    import warnings
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name: that is the point
        z.writestr("archive/data.pkl", state_dict([("weight", tensor("0", (1, hidden), (hidden, 1))),
                                                   ("bias", tensor("1", (1,), (1,)))]))
        z.writestr("archive/data/0", bytes(4 * hidden))
        z.writestr("archive/data/0", b"\x7f" * (4 * hidden))
        z.writestr("archive/data/1", bytes(4))
    return buf.getvalue()


def cd_offset_past_end(pt):
    """The central directory's offset moved past the end of the file (in the zip64 record too)."""
    b = bytearray(pt)
    end = b.rfind(b"PK\x05\x06")
    struct.pack_into("<I", b, end + 16, 0xFFFFFFF0)
    z64 = b.rfind(b"PK\x06\x06")
    if z64 >= 0:
        struct.pack_into("<Q", b, z64 + 48, 1 << 40)
    return bytes(b)


# ---------------------------------------------------------------- safetensors
def safetensors(header, data=b"", header_len=None):
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(h) if header_len is None else header_len) + h + data


# ---------------------------------------------------------------- the corpus
def cases(fix):
    cfg = json.loads((fix / "config.json").read_text())
    hidden = cfg["hidden_size"]
    tok = json.loads((fix / "tokenizer.json").read_text())
    real_bin = (fix / "pytorch_model.bin").read_bytes()
    rng = random.Random(1234)
    good_head = head_pt(hidden)
    pkl = lambda body: torch_zip(body, {"0": bytes(4 * hidden), "1": bytes(4)})  # noqa: E731

    def with_config(**changes):
        c = dict(cfg)
        c.update(changes)
        return json.dumps(c).encode()

    def with_charsmap(edit):
        t = json.loads(json.dumps(tok))
        node = t["normalizer"]["normalizers"][0]
        raw = bytearray(base64.b64decode(node["precompiled_charsmap"]))
        edit(raw)
        node["precompiled_charsmap"] = base64.b64encode(bytes(raw)).decode()
        return json.dumps(t).encode()

    def with_tokenizer(edit):
        t = json.loads(json.dumps(tok))
        edit(t)
        return json.dumps(t).encode()

    def trie_units(raw):
        return struct.unpack_from("<I", raw, 0)[0] // 4

    def corrupt_offsets(raw):
        # Every trie unit's offset field set to its largest value: lookups leave the trie.
        for i in range(1, trie_units(raw)):
            u = struct.unpack_from("<I", raw, 4 + 4 * i)[0]
            struct.pack_into("<I", raw, 4 + 4 * i, u | (0x1FFFFF << 10))

    def corrupt_values(raw):
        # Every leaf unit (high bit set; the low 31 bits are its value): the value set past the strings.
        for i in range(1, trie_units(raw)):
            u = struct.unpack_from("<I", raw, 4 + 4 * i)[0]
            if u & (1 << 31):
                struct.pack_into("<I", raw, 4 + 4 * i, u | 0x7FFF0000)

    def swap_specials(t):
        v = t["model"]["vocab"]
        v[0], v[2] = v[2], v[0]

    pickle_bombs = {
        # DUP 40 times over a growing tuple: 2^40 nodes if copied instead of shared.
        "pickle-dup-bomb": PROTO + EMPTY_LIST + (DUP + TUPLE2) * 40 + STOP,
        # memo GET twice + TUPLE2 + PUT, 40 times: the same doubling through the memo.
        "pickle-memo-bomb": PROTO + EMPTY_LIST + BINPUT + b"\x00"
        + (BINGET + b"\x00" + BINGET + b"\x00" + TUPLE2 + BINPUT + b"\x00") * 40 + STOP,
        # A million nested 1-tuples: a recursive drop or walk overflows the stack.
        "pickle-deep-nesting": PROTO + EMPTY_TUPLE + TUPLE1 * 1_000_000 + STOP,
        "pickle-global-posix-system": PROTO + glob("posix", "system") + tup([text("echo pwned")]) + REDUCE + STOP,
        "pickle-global-builtins-eval": PROTO + glob("builtins", "eval") + tup([text("1+1")]) + REDUCE + STOP,
        "pickle-unknown-opcode": PROTO + b"\xfe" + STOP,
        "pickle-truncated": state_dict([("weight", tensor("0", (1, hidden), (hidden, 1)))])[:57],
        "pickle-no-stop": PROTO + EMPTY_DICT,
        "pickle-stride-2^62": state_dict([("weight", tensor("0", (1, hidden), (1 << 62, 1 << 62))),
                                          ("bias", tensor("1", (1,), (1,)))]),
        "pickle-stride-0-overlap": state_dict([("weight", tensor("0", (1, hidden), (0, 0))),
                                               ("bias", tensor("1", (1,), (1,)))]),
        "pickle-shape-2^31-squared": state_dict([("weight", tensor("0", (1 << 31, 1 << 31), (1 << 31, 1))),
                                                 ("bias", tensor("1", (1,), (1,)))]),
        "pickle-offset-past-storage": state_dict([("weight", tensor("0", (1, hidden), (hidden, 1), offset=1 << 40)),
                                                  ("bias", tensor("1", (1,), (1,)))]),
        "pickle-negative-size": state_dict([("weight", tensor("0", (1, -hidden), (hidden, 1))),
                                            ("bias", tensor("1", (1,), (1,)))]),
        "pickle-missing-storage": state_dict([("weight", tensor("7", (1, hidden), (hidden, 1))),
                                              ("bias", tensor("1", (1,), (1,)))]),
        "pickle-unknown-storage-type": state_dict([("weight", tensor("0", (1, hidden), (hidden, 1),
                                                                     storage="ComplexDoubleStorage")),
                                                   ("bias", tensor("1", (1,), (1,)))]),
        "pickle-not-a-dict": PROTO + text("just a string") + STOP,
    }

    out = {}
    # Encoder file: pytorch_model.bin (zip container).
    out["zip-empty-file"] = ("pytorch_model.bin", b"", "an empty encoder file")
    out["zip-random-bytes"] = ("pytorch_model.bin", bytes(rng.getrandbits(8) for _ in range(4096)), "noise")
    out["zip-64-count-bomb"] = ("pytorch_model.bin", zip64_count_bomb(), "zip64 record claims 2^60 entries")
    out["zip-64-extra-overrun"] = ("pytorch_model.bin", zip64_extra_overrun(good_head), "zip64 extra past its field")
    out["zip-encrypted"] = ("pytorch_model.bin", patch_central(real_bin, "pytorch_model/data.pkl", set_flag),
                            "the real file with data.pkl's encryption flag set")
    out["zip-duplicate-names"] = ("sparse_linear.pt", duplicate_storage(hidden), "storage data/0 twice")
    out["zip-cd-offset-past-end"] = ("pytorch_model.bin", cd_offset_past_end(real_bin), "central directory past EOF")
    out["zip-truncated-half"] = ("pytorch_model.bin", real_bin[: len(real_bin) // 2], "the real file cut in half")
    out["zip-legacy-pickle"] = ("pytorch_model.bin", PROTO + b"\x8a\x0a" + bytes(64), "pre-1.6 torch.save")
    out["zip-heads-as-encoder"] = ("pytorch_model.bin", good_head, "a valid checkpoint without the encoder")
    # Pickles inside a well-formed zip, as the sparse head (the encoder stays the fixture's).
    for name, body in pickle_bombs.items():
        out[name] = ("sparse_linear.pt", pkl(body), name.replace("pickle-", "data.pkl: "))
    out["head-colbert-wrong-shape"] = ("colbert_linear.pt", head_pt(hidden), "colbert_linear.pt holds [1, H]")
    # Encoder as safetensors.
    st = "model.safetensors"
    out["st-header-len-2^63"] = (st, safetensors({}, b"", header_len=1 << 63), "header length 2^63")
    out["st-header-len-past-eof"] = (st, safetensors(b"{}" + bytes(100), b"", header_len=100 << 20), "100 MB header")
    out["st-header-not-json"] = (st, safetensors(b"\xff\xfe not json"), "header is not JSON")
    out["st-header-deep-json"] = (st, safetensors(b"[" * 200_000 + b"]" * 200_000), "200k nested arrays")
    out["st-shape-2^62-no-data"] = (st, safetensors({"w": {"dtype": "F32", "shape": [1 << 62],
                                                           "data_offsets": [0, 0]}}), "2^62 elements, 0 bytes")
    out["st-offsets-past-eof"] = (st, safetensors({"w": {"dtype": "F32", "shape": [4],
                                                         "data_offsets": [0, 1 << 40]}}, bytes(16)), "1 TB offsets")
    out["st-offsets-reversed"] = (st, safetensors({"w": {"dtype": "F32", "shape": [1],
                                                         "data_offsets": [8, 4]}}, bytes(16)), "end before start")
    out["st-dtype-unknown"] = (st, safetensors({"w": {"dtype": "C64", "shape": [1],
                                                      "data_offsets": [0, 8]}}, bytes(8)), "unknown dtype")
    out["st-shape-negative"] = (st, safetensors({"w": {"dtype": "F32", "shape": [-1],
                                                       "data_offsets": [0, 4]}}, bytes(4)), "negative size")
    # config.json
    c = "config.json"
    out["config-layers-1e9"] = (c, with_config(num_hidden_layers=10**9), "a billion layers")
    out["config-hidden-0"] = (c, with_config(hidden_size=0), "hidden_size 0")
    out["config-heads-not-dividing"] = (c, with_config(num_attention_heads=5), "32 not divisible by 5")
    out["config-eps-huge"] = (c, with_config(layer_norm_eps=1e300), "layer_norm_eps 1e300")
    out["config-eps-string"] = (c, with_config(layer_norm_eps="NaN"), "layer_norm_eps a string")
    out["config-pad-outside-vocab"] = (c, with_config(pad_token_id=10**12), "pad_token_id 10^12")
    out["config-vocab-2^40"] = (c, with_config(vocab_size=1 << 40), "vocab_size 2^40")
    out["config-positions-3"] = (c, with_config(max_position_embeddings=3), "no room for a text")
    out["config-act-relu"] = (c, with_config(hidden_act="relu"), "another activation")
    out["config-not-json"] = (c, b"{ this is not json", "not JSON")
    out["config-deep-json"] = (c, b"[" * 200_000 + b"]" * 200_000, "200k nested arrays")
    out["config-empty"] = (c, b"", "empty")
    # tokenizer.json
    t = "tokenizer.json"
    out["tok-charsmap-trie-4gib"] = (t, with_charsmap(lambda r: struct.pack_into("<I", r, 0, 0xFFFFFFFC)),
                                     "precompiled_charsmap claims a 4 GiB trie")
    out["tok-charsmap-offsets"] = (t, with_charsmap(corrupt_offsets), "trie offsets out of bounds")
    out["tok-charsmap-values"] = (t, with_charsmap(corrupt_values), "trie values past the strings")
    out["tok-charsmap-not-utf8"] = (t, with_charsmap(lambda r: r.extend(b"\xff\xfe")), "strings not UTF-8")
    out["tok-charsmap-not-base64"] = (t, with_tokenizer(lambda x: x["normalizer"]["normalizers"][0].update(
        precompiled_charsmap="%%%")), "not base64")
    out["tok-model-bpe"] = (t, with_tokenizer(lambda x: x["model"].update(type="BPE")), "another model type")
    out["tok-unk-outside"] = (t, with_tokenizer(lambda x: x["model"].update(unk_id=10**9)), "unk_id 10^9")
    out["tok-vocab-empty"] = (t, with_tokenizer(lambda x: x["model"].update(vocab=[])), "no vocabulary")
    out["tok-specials-swapped"] = (t, with_tokenizer(swap_specials), "<s> and </s> swapped")
    out["tok-not-json"] = (t, b"\x00\x01not json", "not JSON")
    out["tok-deep-json"] = (t, b"[" * 200_000 + b"]" * 200_000, "200k nested arrays")
    return out


FILES = ["config.json", "tokenizer.json", "colbert_linear.pt", "sparse_linear.pt"]


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    out = Path(args[0])
    fix = Path(args[args.index("--fixture") + 1]) if "--fixture" in args else \
        Path(__file__).resolve().parent.parent.parent / "shared/fixtures/tiny-m3"
    if not (fix / "config.json").exists():
        sys.exit(f"crafted_models.py: no fixture model at {fix}")
    out.mkdir(parents=True, exist_ok=True)
    listing = {}
    for name, (file, data, what) in cases(fix).items():
        d = out / name
        d.mkdir(exist_ok=True)
        for f in FILES + ["pytorch_model.bin", "model.safetensors"]:
            if (d / f).is_symlink() or (d / f).exists():
                (d / f).unlink()
        encoder = file if file in ("pytorch_model.bin", "model.safetensors") else "pytorch_model.bin"
        for f in FILES + [encoder]:
            if f != file:
                os.symlink((fix / f).resolve(), d / f)
        (d / file).write_bytes(data)
        listing[name] = {"file": file, "what": what}
    (out / "cases.json").write_text(json.dumps(listing, indent=1))
    print(f"crafted_models.py: {len(listing)} cases in {out}")


if __name__ == "__main__":
    main()
