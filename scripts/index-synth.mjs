// Synthetic BGE-M3-shaped window embeddings for the index's tests and benchmark (no model needed):
// deterministic from a seed, every window's data computed on demand from (seed, window), so a
// corpus of 100,000 windows costs nothing until asked and ColBERT rows need never all be held.
// Plain ES module: imported by Node tests and by pages in Chromium (scripts/bench-index.mjs).
//
// The model of the data (what makes nearest neighbours mean something):
// - windows belong to documents (WINDOWS_PER_DOC consecutive windows), documents to topics;
// - dense: unit(a·g + b·topic + c·doc + d·noise), g one shared direction (BGE-M3's vectors are
//   anisotropic: unrelated texts score ~0.3), so cosines are ~0.3 unrelated, ~0.55 same topic,
//   ~0.7 same document;
// - sparse: ~150 distinct ids per 512-token window, from a Zipf law over the vocabulary (ids
//   0-3, the special tokens, never), a topic's own Zipf-ranked ids and a document's rare ids;
//   weights in (0, 0.35], skewed low, higher for rarer ids (as BGE-M3's lexical weights are);
// - ColBERT: one unit row per token, unit(α·dense + β·token(id) + γ·noise), the token's id drawn
//   from the window's sparse ids or the Zipf law: rows of the same id share a direction, so a
//   query token matches the window tokens of the same id;
// - a query is planted on a target window: dense = unit(e·target + f·noise) (cosine ~0.75), ~10
//   sparse ids mostly from the target's (weighted by their weights), ~16 ColBERT rows for its ids
//   and a few frequent tokens, built like the windows' rows around the query's dense vector.
// Gaussian directions come from one seeded pool of normals, read with a per-vector offset and odd
// stride (distinct vectors share no pattern), which keeps generation to a few reads per value.

export const BGE_M3 = Object.freeze({ dim: 1024, vocab: 250002, tokens: 512 });

/** BGE-M3 (XLM-R) ids below this are the special tokens <s>, <pad>, </s>, <unk>: never sparse. */
const FIRST_ID = 4;
const EOS = 2; // </s>
export const WINDOWS_PER_DOC = 4;
const POOL_BITS = 20, POOL_MASK = (1 << POOL_BITS) - 1;
const ZIPF_Q = 2.7; // Zipf–Mandelbrot offset: rank r has probability ∝ 1 / (r + q)

/** A 32-bit mix (murmur3's finalizer) of a list of integers. */
export function hash(...xs) {
  let h = 0x9e3779b9;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** mulberry32: a seeded uniform in [0, 1). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KIND = { global: 1, topic: 2, doc: 3, dense: 4, sparse: 5, colbert: 6, token: 7, query: 8, perm: 9 };

/** Corpus of `windows` windows. Options: seed, dim, vocab, tokens (a window's tokens with <s> and
 *  </s>; its ColBERT rows are tokens - 1), sparse (mean distinct sparse ids per window), topics
 *  (default: one per 100 documents, at least 8). */
export function makeCorpus({ seed = 1, windows, dim = BGE_M3.dim, vocab = BGE_M3.vocab, tokens = BGE_M3.tokens,
  sparse = 150, topics } = {}) {
  if (!(Number.isInteger(windows) && windows > 0)) throw new Error(`windows must be a positive integer, got ${windows}`);
  if (!(vocab > FIRST_ID + 1000)) throw new Error(`vocab must be above ${FIRST_ID + 1000}`);
  const docs = Math.ceil(windows / WINDOWS_PER_DOC);
  topics ??= Math.max(8, Math.round(docs / 100));

  // the pool of normals, and a gaussian direction (|v| ≈ 1) as a strided read of it
  const pool = new Float32Array(1 << POOL_BITS);
  const r0 = rng(hash(seed, KIND.global));
  for (let i = 0; i < pool.length; i += 2) {
    const u = 1 - r0(), v = r0(), m = Math.sqrt(-2 * Math.log(u));
    pool[i] = m * Math.cos(2 * Math.PI * v);
    pool[i + 1] = m * Math.sin(2 * Math.PI * v);
  }
  const norm = 1 / Math.sqrt(dim);
  /** out += w · direction(h) */
  const addDirection = (out, w, h) => {
    const s = ((hash(h, 0x5bd1e995) << 1) | 1) & POOL_MASK;
    let at = h & POOL_MASK;
    const f = w * norm;
    for (let k = 0; k < dim; k++, at = (at + s) & POOL_MASK) out[k] += f * pool[at];
  };
  const unit = (a, from = 0, n = dim) => {
    let s = 0;
    for (let k = from; k < from + n; k++) s += a[k] * a[k];
    const inv = 1 / Math.sqrt(s);
    for (let k = from; k < from + n; k++) a[k] *= inv;
    return a;
  };

  // Zipf ranks over the non-special ids, mapped to ids by an affine bijection (frequent ids spread
  // over the vocabulary, as in a real tokenizer's)
  const span = vocab - FIRST_ID;
  const gcd = (a, b) => (b ? gcd(b, a % b) : a);
  let mult = 7919 + (hash(seed, KIND.perm) % 100000);
  while (gcd(mult, span) !== 1) mult++;
  const shift = hash(seed, KIND.perm, 1) % span;
  const idOfRank = r => FIRST_ID + (mult * r + shift) % span;
  const zipfLog = Math.log((span + ZIPF_Q) / ZIPF_Q);
  /** A Zipf rank in [0, n) from u in [0, 1) (the continuous law's inverse). */
  const zipfRank = (u, n) => Math.min(n - 1, Math.floor(ZIPF_Q * Math.exp(u * Math.log((n + ZIPF_Q) / ZIPF_Q)) - ZIPF_Q));
  /** How rare rank r is: 0 for the most frequent id, 1 for the rarest. */
  const rarity = r => Math.log(1 + r / ZIPF_Q) / zipfLog;
  const TOPIC_IDS = 4000, DOC_IDS = 400;
  // a topic's (document's) own ids: its Zipf-ranked list of ids, a stretch of the rarer half
  const topicRank = (t, u) => (hash(seed, KIND.topic, t, zipfRank(u, TOPIC_IDS)) % (span >> 1)) + (span >> 2);
  const docRank = (d, u) => (hash(seed, KIND.doc, d, Math.floor(u * DOC_IDS)) % (span >> 1)) + (span >> 1) - 1;
  /** A lexical weight in (0, 0.35] for rank r, skewed low, higher for rarer ids. */
  const weightOf = (r, u) => 0.001 + 0.33 * u ** (2.8 - 1.8 * rarity(r));

  const docOf = w => Math.floor(w / WINDOWS_PER_DOC);
  const docId = d => `doc-${d}`;
  const topicOf = w => hash(seed, KIND.topic, docOf(w)) % topics;
  const G = 0.3, T = 0.25, D = 0.15, N = 0.3; // squared weights of the dense parts (sum 1)

  /** The window's dense vector (unit). */
  function dense(w, out = new Float32Array(dim)) {
    out.fill(0);
    addDirection(out, Math.sqrt(G), hash(seed, KIND.global, 7));
    addDirection(out, Math.sqrt(T), hash(seed, KIND.topic, topicOf(w), 7));
    addDirection(out, Math.sqrt(D), hash(seed, KIND.doc, docOf(w), 7));
    addDirection(out, Math.sqrt(N), hash(seed, KIND.dense, w));
    return unit(out);
  }

  /** The window's lexical weights: { ids: Uint32Array (ascending), weights: Float32Array, ranks }. */
  function sparseOf(w) {
    const r = rng(hash(seed, KIND.sparse, w));
    const n = Math.max(1, Math.round(sparse * (0.85 + 0.3 * r())));
    const t = topicOf(w), d = docOf(w);
    // distinct ids by open addressing (table of 4n slots, 0 = empty: ids are >= FIRST_ID)
    const size = 1 << Math.ceil(Math.log2(4 * n)), table = new Uint32Array(size), rankOf = new Uint32Array(size);
    let count = 0;
    for (let tries = 0; count < n && tries < 20 * n; tries++) {
      const u = r(), v = r();
      const rank = u < 0.3 ? topicRank(t, v) : u < 0.4 ? docRank(d, v) : zipfRank(v, span);
      const id = idOfRank(rank);
      let at = Math.imul(id, 0x9e3779b1) >>> (32 - Math.log2(size));
      while (table[at] !== 0 && table[at] !== id) at = (at + 1) & (size - 1);
      if (table[at] === 0) { table[at] = id; rankOf[at] = rank; count++; }
    }
    const order = [];
    for (let at = 0; at < size; at++) if (table[at] !== 0) order.push(at);
    order.sort((a, b) => table[a] - table[b]);
    const ids = new Uint32Array(count), weights = new Float32Array(count), ranks = new Uint32Array(count);
    order.forEach((at, i) => {
      ids[i] = table[at];
      ranks[i] = rankOf[at];
      weights[i] = weightOf(ranks[i], r());
    });
    return { ids, weights, ranks };
  }

  /** Rows of unit(α·base + β·token(id) + γ·noise) for token ids `ids`, noise keyed by `key`. */
  function rowsFor(base, ids, key) {
    const rows = ids.length, data = new Float32Array(rows * dim);
    const a = Math.sqrt(0.3), b = Math.sqrt(0.45), c = Math.sqrt(0.25);
    for (let i = 0; i < rows; i++) {
      const row = data.subarray(i * dim, (i + 1) * dim);
      for (let k = 0; k < dim; k++) row[k] = a * base[k];
      addDirection(row, b, hash(seed, KIND.token, ids[i]));
      addDirection(row, c, hash(seed, key, i));
      unit(row);
    }
    return { data, rows, dim };
  }

  /** The window's text tokens (no <s>, </s>): `n` ids, 60% of them its sparse ids (by weight),
   *  the rest from the Zipf law. */
  function tokensOf(w, n) {
    const r = rng(hash(seed, KIND.colbert, w));
    const sp = sparseOf(w);
    const cum = new Float32Array(sp.ids.length);
    sp.weights.reduce((s, x, i) => (cum[i] = s + x), 0);
    const total = cum[cum.length - 1];
    const ids = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      if (r() < 0.6) {
        const x = r() * total;
        let lo = 0, hi = cum.length - 1;
        while (lo < hi) { const m = (lo + hi) >> 1; if (cum[m] < x) lo = m + 1; else hi = m; }
        ids[i] = sp.ids[lo];
      } else ids[i] = idOfRank(zipfRank(r(), span));
    }
    return ids;
  }

  /** The window's ColBERT rows: { data: Float32Array [rows, dim] (unit rows), rows, dim, ids }:
   *  one per token after <s>: rows - 1 text tokens (tokensOf) and </s>. */
  function colbert(w, rows = tokens - 1) {
    const ids = new Uint32Array(rows);
    ids.set(tokensOf(w, rows - 1));
    ids[rows - 1] = EOS;
    return { ...rowsFor(dense(w), ids, hash(KIND.colbert, w)), ids };
  }

  /** A pseudo-word for token `id` (2 to 7 letters): the document text the spans point into. */
  const words = new Map();
  const word = id => {
    let x = words.get(id);
    if (x === undefined) {
      const h = hash(seed, KIND.token, id, 1);
      x = '';
      for (let i = 0, n = 2 + (h % 6); i < n; i++) x += String.fromCharCode(97 + (hash(h, i) % 26));
      if (words.size < 100_000) words.set(id, x);
    }
    return x;
  };

  /** Document `d` as add() takes it: { id, text, meta, embedding: { windows } }, its windows
   *  consecutive (no overlap), each of `windowTokens` tokens with <s> and </s>; ColBERT rows and
   *  their spans unless `colbert` is false. */
  function documentOf(d, { windowTokens = tokens, colbert: withColbert = true } = {}) {
    const first = d * WINDOWS_PER_DOC, last = Math.min(windows, first + WINDOWS_PER_DOC);
    if (!(first < last)) throw new Error(`document ${d} is not one of the corpus's ${docs}`);
    const n = windowTokens - 2, pieces = [], out = [];
    let at = 0;
    for (let w = first; w < last; w++) {
      const toks = tokensOf(w, n);
      const spans = new Uint32Array(2 * (n + 1));
      const start = at;
      for (let i = 0; i < n; i++) {
        const x = word(toks[i]);
        pieces.push(x);
        spans[2 * i] = at;
        spans[2 * i + 1] = at + x.length;
        at += x.length + 1;
      }
      spans[2 * n] = spans[2 * n + 1] = at - 1; // </s>: an empty span at the window's end
      const inputIds = new Uint32Array(n + 2);
      inputIds.set(toks, 1);
      inputIds[n + 1] = EOS;
      const sp = sparseOf(w);
      const win = {
        start, end: at - 1, tokenStart: (w - first) * n, tokenEnd: (w - first + 1) * n, inputIds,
        dense: dense(w), sparse: { ids: sp.ids, weights: sp.weights },
      };
      if (withColbert) {
        const ids = new Uint32Array(n + 1);
        ids.set(toks);
        ids[n] = EOS;
        win.colbert = rowsFor(win.dense, ids, hash(KIND.colbert, w));
        win.colbertSpans = spans;
      }
      out.push(win);
    }
    return { id: docId(d), text: pieces.join(' '), meta: { doc: d, topic: topicOf(first) }, embedding: { windows: out } };
  }

  /** Query `i`: planted on window `target` (of document `targetDoc`): { target, targetDoc,
   *  dense, sparse: { ids, weights }, colbert: { data, rows, dim } }; `rows` ColBERT rows
   *  (default 14 to 18). */
  function query(i, { rows: qRows } = {}) {
    const r = rng(hash(seed, KIND.query, i));
    const target = hash(seed, KIND.query, i, 1) % windows;
    const qd = dense(target);
    for (let k = 0; k < dim; k++) qd[k] *= Math.sqrt(0.56);
    addDirection(qd, Math.sqrt(0.44), hash(seed, KIND.query, i, 2));
    unit(qd);
    // sparse: ~6 of the target's ids (by weight) and ~4 others (its topic, or frequent ids)
    const sp = sparseOf(target);
    const n = 8 + Math.floor(r() * 5), fromTarget = Math.round(n * 0.6);
    const chosen = new Map();
    const total = sp.weights.reduce((s, x) => s + x, 0);
    for (let tries = 0; chosen.size < fromTarget && tries < 200; tries++) {
      let x = r() * total, j = 0;
      while (j < sp.ids.length - 1 && (x -= sp.weights[j]) > 0) j++;
      chosen.set(sp.ids[j], sp.ranks[j]);
    }
    for (let tries = 0; chosen.size < n && tries < 200; tries++) {
      const rank = r() < 0.5 ? topicRank(topicOf(target), r()) : zipfRank(r(), span);
      chosen.set(idOfRank(rank), rank);
    }
    const ids = Uint32Array.from(chosen.keys()).sort();
    const weights = Float32Array.from(ids, id => 0.05 + 0.25 * r() ** (1.6 - rarity(chosen.get(id))));
    // ColBERT: the sparse ids in a shuffled order, then frequent tokens up to 14-18 rows
    const rows = qRows ?? 14 + Math.floor(r() * 5);
    const tok = new Uint32Array(rows);
    for (let j = 0; j < rows; j++) tok[j] = j < ids.length ? ids[(j * 7) % ids.length] : idOfRank(zipfRank(r() * 0.3, span));
    return { target, targetDoc: docId(docOf(target)), dense: qd, sparse: { ids, weights }, colbert: rowsFor(qd, tok, hash(KIND.query, i, 3)) };
  }

  return {
    seed, windows, docs, topics, dim, vocab, tokens, docOf, docId, topicOf,
    dense, sparse: sparseOf, tokenIds: tokensOf, colbert, document: documentOf, query,
  };
}

/** Pools ColBERT rows by averaging consecutive pairs (unit again): [rows, dim] -> [ceil(rows/2),
 *  dim]. The shape of the index's pooled layout for kernel timings; the index's own pooling
 *  (pkg/src/index/pool.js, clustering) is what its search uses. */
export function pairPool({ data, rows, dim }) {
  const out = new Float32Array(Math.ceil(rows / 2) * dim);
  for (let r = 0; r < rows; r += 2) {
    const o = (r >> 1) * dim;
    let s = 0;
    for (let k = 0; k < dim; k++) {
      const v = data[r * dim + k] + (r + 1 < rows ? data[(r + 1) * dim + k] : 0);
      out[o + k] = v;
      s += v * v;
    }
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let k = 0; k < dim; k++) out[o + k] *= inv;
  }
  return { data: out, rows: Math.ceil(rows / 2), dim };
}
