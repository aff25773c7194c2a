#!/usr/bin/env python3
"""Benchmark texts of exact token counts for the side-by-side benchmark (scripts/bench.mjs).

    python3 scripts/bench_texts.py --tokenizer tokenizer.json --out texts.json

Writes one JSON file that every side (ours in the browser, transformers.js, `m3 encode`,
FlagEmbedding) reads, so all of them get the same strings. Each text, tokenized with the
XLM-R tokenizer (`<s> ... </s>` included), has exactly the length its cell names:

- cells "16", "512", "2048", "8192": one text of that many tokens, encoded at batch 1;
- cell "mixed32": 32 texts from 16 to 512 tokens (geometric steps), encoded as one call
  with batch size 32.

Needs the `tokenizers` package (a dependency of transformers).
"""
import argparse
import json
import random

from tokenizers import Tokenizer

SENTENCES = [
    "The model reads long documents and finds what matters in every part of them.",
    "Dense retrieval maps a query and a passage to vectors and compares them with a dot product.",
    "BM25 ranks documents by the query terms that appear in each of them.",
    "Multi-vector retrieval keeps one vector per token and scores with late interaction.",
    "검색 모델은 긴 문서를 읽고 중요한 부분을 찾는다.",
    "한국어 문장도 검색할 수 있나요? 네, 다국어 검색을 지원합니다.",
    "模型阅读长文档并找到每个部分的重要内容。",
    "北京是中华人民共和国的首都，也是全国的政治和文化中心。",
    "Le modèle lit de longs documents et trouve ce qui compte dans chacun d'eux.",
    "Das Modell liest lange Dokumente und findet das Wichtige in jedem Abschnitt.",
    "El modelo lee documentos largos y encuentra lo que importa en cada parte.",
    "نموذج يقرأ مستندات طويلة ويجد ما يهم في كل جزء منها.",
    "Модель читает длинные документы и находит в них главное.",
    "モデルは長い文書を読み、各部分の重要な内容を見つけます。",
    "Numbers such as 3.14159, 2026-11-27 and 42 km/h appear in technical text too.",
    "Emoji 🚀🔥 and symbols ∑∫√ show up in chat logs and forum posts.",
]

LENGTHS = [16, 512, 2048, 8192]
MIXED = 32
MIXED_RANGE = (16, 512)


def count(tok, text):
    return len(tok.encode(text).ids)  # with <s> and </s>


def exact_text(tok, n, seed):
    """A text whose tokenization is exactly n tokens long (n >= 3)."""
    rng = random.Random(seed)
    words = []
    while len(words) < 2 * n:
        words.extend(rng.choice(SENTENCES).split(" "))
    lo, hi = 0, len(words)  # largest k with count(first k words) <= n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(tok, " ".join(words[:mid])) <= n:
            lo = mid
        else:
            hi = mid - 1
    text = " ".join(words[:lo])
    # Top up with one-token words until the length is exact.
    for filler in (" a", " x", " 1"):
        t = text
        while count(tok, t) < n:
            t = (t + filler) if t else filler.strip()
        if count(tok, t) == n:
            return t
    raise RuntimeError(f"could not make a text of exactly {n} tokens")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    tok = Tokenizer.from_file(a.tokenizer)
    tok.no_truncation()
    tok.no_padding()
    cells = []
    for n in LENGTHS:
        t = exact_text(tok, n, seed=n)
        cells.append({"name": str(n), "batch": 1, "texts": [t], "lengths": [count(tok, t)]})
    lo, hi = MIXED_RANGE
    lengths = [round(lo * (hi / lo) ** (i / (MIXED - 1))) for i in range(MIXED)]
    order = list(range(MIXED))
    random.Random(7).shuffle(order)  # not sorted: each library batches them its own way
    mixed = [exact_text(tok, lengths[i], seed=1000 + i) for i in order]
    cells.append({"name": "mixed32", "batch": MIXED, "texts": mixed, "lengths": [count(tok, t) for t in mixed]})
    for c in cells:
        if c["name"] != "mixed32":
            assert c["lengths"] == [int(c["name"])], c["lengths"]
    with open(a.out, "w") as f:
        json.dump({"about": "scripts/bench_texts.py: exact token counts with <s> and </s>", "cells": cells}, f, ensure_ascii=False)
    print(json.dumps({c["name"]: sum(c["lengths"]) for c in cells}))


if __name__ == "__main__":
    main()
