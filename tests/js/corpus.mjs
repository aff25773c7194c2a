// Synthetic embeddings for the index's Node tests, shaped as model.encode() returns them (windows
// with spans, inputIds, unit dense, sparse { ids, weights }, unit ColBERT rows, colbertSpans), and
// a corpus with planted relevant windows for ranking agreement. Deterministic (seeded).

/** A seeded PRNG (mulberry32): () -> [0, 1). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal sample (Box–Muller). */
export function gauss(r) {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

export function normalize(v, o = 0, n = v.length - o) {
  let s = 0;
  for (let i = o; i < o + n; i++) s += v[i] * v[i];
  const inv = 1 / Math.sqrt(s);
  for (let i = o; i < o + n; i++) v[i] *= inv;
  return v;
}

export function randomUnit(r, dim) {
  const v = new Float32Array(dim);
  for (let i = 0; i < dim; i++) v[i] = gauss(r);
  return normalize(v);
}

/** sum of a_i * v_i + noise * N(0, 1/dim) per component, normalised. */
export function mix(r, dim, parts, noise) {
  const v = new Float32Array(dim);
  for (const [a, u] of parts) for (let i = 0; i < dim; i++) v[i] += a * u[i];
  const sd = noise / Math.sqrt(dim);
  for (let i = 0; i < dim; i++) v[i] += sd * gauss(r);
  return normalize(v);
}

/** A Zipf-like token id (log-uniform rank over the vocabulary, scattered). */
export function zipfId(r) {
  const rank = Math.floor(Math.exp(r() * Math.log(250_000)));
  return (rank * 2654435761) % 250_000 + 2;
}

/** One window of `rows` tokens over text[start, end): inputIds <s> ... </s>, colbertSpans
 *  inside the span, the given dense, ColBERT rows and sparse entries (Map id -> weight). */
export function makeWindow({ start, end, tokenStart, rows, dense, colbert, sparse, r }) {
  const T = rows + 1;
  const inputIds = new Uint32Array(T);
  inputIds[T - 1] = 2;
  for (let i = 1; i < T - 1; i++) inputIds[i] = 3 + Math.floor(r() * 249_999);
  const spans = new Uint32Array(2 * rows);
  const step = Math.max(1, Math.floor((end - start) / rows));
  for (let i = 0; i < rows - 1; i++) {
    spans[2 * i] = Math.min(end, start + i * step);
    spans[2 * i + 1] = Math.min(end, start + i * step + Math.max(1, step - 1));
  }
  spans[2 * rows - 2] = end; // </s>: an empty span at the window's end
  spans[2 * rows - 1] = end;
  return {
    start, end, tokenStart, tokenEnd: tokenStart + T - 2, inputIds, dense,
    sparse: { ids: Uint32Array.from(sparse.keys()), weights: Float32Array.from(sparse.values()) },
    colbert: { data: colbert, rows, dim: dense.length }, colbertSpans: spans,
  };
}

/** ColBERT rows: each row normalize(anchor * a + noise). */
export function rowsNear(r, dim, rows, anchors, noise) {
  const data = new Float32Array(rows * dim);
  for (let i = 0; i < rows; i++) {
    const v = mix(r, dim, anchors(i), noise);
    data.set(v, i * dim);
  }
  return data;
}

/** Background lexical entries: ~n Zipf-like ids, weights in (0, 0.4]. */
export function zipfSparse(r, n) {
  const m = new Map();
  while (m.size < n) m.set(zipfId(r), Math.max(0.001, 0.4 * r() * r()));
  return m;
}

/** A simple document of `windows` windows of `rows` tokens: random vectors (for API tests). */
export function simpleDoc(r, id, { dim, windows = 1, rows = 6, sparseIds = 8, text } = {}) {
  text ??= `${id}: ${'lorem ipsum dolor sit amet '.repeat(windows * 2)}`;
  const per = Math.floor(text.length / windows);
  const ws = [];
  for (let k = 0; k < windows; k++) {
    const start = k * per, end = k === windows - 1 ? text.length : (k + 1) * per;
    const dense = randomUnit(r, dim);
    ws.push(makeWindow({ start, end, tokenStart: k * (rows - 1), rows, dense, colbert: rowsNear(r, dim, rows, () => [[1, dense]], 2), sparse: zipfSparse(r, sparseIds), r }));
  }
  return { id, text, meta: { title: `Document ${id}`, n: windows }, embedding: { windows: ws } };
}

/** The agreement corpus: `docs` documents of 2 windows of `rows` tokens, dim `dim`, ~150 lexical
 *  ids a window; `queries` queries, each with `planted` documents made relevant to it (graded:
 *  some mostly by meaning, some mostly by shared words). Background windows lean on one of
 *  `topics` topics, and the queries too, so that background scores are correlated across modes
 *  and the ranks after the planted ones are decided by small margins. */
export function agreementCorpus({ seed = 7, dim = 1024, docs = 1000, rows = 16, queries = 24, planted = 10, topics = 12, sparseIds = 150 } = {}) {
  const r = rng(seed);
  const topicVecs = Array.from({ length: topics }, () => randomUnit(r, dim));
  const qs = Array.from({ length: queries }, (_, j) => {
    const topic = topicVecs[j % topics];
    const dense = mix(r, dim, [[1, topic]], 1.2);
    const qRows = 8;
    const colbert = rowsNear(r, dim, qRows, () => [[0.8, dense]], 1);
    const sparse = new Map();
    while (sparse.size < 6) sparse.set(sparse.size < 2 ? zipfId(r) : 2 + Math.floor(r() * 200), 0.1 + 0.2 * r());
    return { dense, colbert: { data: colbert, rows: qRows, dim }, sparse: { ids: Uint32Array.from(sparse.keys()), weights: Float32Array.from(sparse.values()) }, sparseMap: sparse };
  });
  // Which document is planted for which query, and how strongly.
  const plantedBy = new Map();
  let next = 0;
  for (let j = 0; j < queries; j++) {
    for (let p = 0; p < planted; p++) {
      const d = (next++ * 7919) % docs;
      plantedBy.set(d, { j, strength: 0.3 + 0.5 * (p / planted), lexical: p % 3 === 0 });
    }
  }
  const items = [];
  for (let d = 0; d < docs; d++) {
    const id = `doc-${String(d).padStart(4, '0')}`;
    const words = Array.from({ length: 2 * rows }, (_, i) => `w${d}_${i}`).join(' ');
    const text = `${id} ${words} ${words}`;
    const half = Math.floor(text.length / 2);
    const windows = [];
    for (let k = 0; k < 2; k++) {
      const topic = topicVecs[Math.floor(r() * topics)];
      let dense = mix(r, dim, [[1, topic]], 1.5);
      let colbert = rowsNear(r, dim, rows, () => [[0.8, dense]], 1.2);
      const sparse = zipfSparse(r, sparseIds);
      const plant = plantedBy.get(d);
      if (plant && k === d % 2) {
        const q = qs[plant.j], g = plant.strength;
        const gd = plant.lexical ? g * 0.5 : g;
        dense = mix(r, dim, [[gd, q.dense], [1 - gd, dense]], 0.3);
        colbert = rowsNear(r, dim, rows, i => (i < q.colbert.rows ? [[gd, q.colbert.data.subarray(i * dim, (i + 1) * dim)], [1 - gd, dense]] : [[1, dense]]), 0.5);
        for (const [id] of q.sparseMap) sparse.set(id, Math.min(0.4, (plant.lexical ? 0.45 : 0.2) * g + 0.05 * r()));
      }
      windows.push(makeWindow({ start: k ? half : 0, end: k ? text.length : half, tokenStart: k * (rows - 1), rows, dense, colbert, sparse, r }));
    }
    items.push({ id, text, meta: { d }, embedding: { windows } });
  }
  return { items, queries: qs };
}
