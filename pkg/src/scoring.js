// FlagEmbedding's BGE-M3 scores over the outputs of encode(), plus reciprocal-rank fusion.

/** Dot product of two dense vectors (unit length: cosine similarity). */
export function denseScore(q, p) {
  let s = 0;
  for (let i = 0; i < q.length; i++) s += q[i] * p[i];
  return s;
}

/** Lexical matching: sum over the token ids both texts share of w_q * w_p.
 *  `q`, `p`: Map<id, weight> or { ids: Uint32Array, weights: Float32Array }. */
export function lexicalScore(q, p) {
  const qm = asMap(q), pm = asMap(p);
  let s = 0;
  for (const [id, w] of qm) {
    const wp = pm.get(id);
    if (wp !== undefined) s += w * wp;
  }
  return s;
}

function asMap(x) {
  if (x instanceof Map) return x;
  const m = new Map();
  for (let i = 0; i < x.ids.length; i++) m.set(x.ids[i], x.weights[i]);
  return m;
}

/** ColBERT late interaction: mean over query vectors of the best dot product with a passage
 *  vector. `q`, `p`: Float32Array of rows x dim. */
export function colbertScore(q, p, dim) {
  const qRows = q.length / dim, pRows = p.length / dim;
  if (qRows === 0 || pRows === 0) return 0;
  let total = 0;
  for (let i = 0; i < qRows; i++) {
    let best = -Infinity;
    for (let j = 0; j < pRows; j++) {
      let s = 0;
      for (let k = 0; k < dim; k++) s += q[i * dim + k] * p[j * dim + k];
      if (s > best) best = s;
    }
    total += best;
  }
  return total / qRows;
}

/** The five scores of compute_score for one query/passage pair of encode() results. */
export function hybridScores(q, p, weights = { dense: 0.4, sparse: 0.2, colbert: 0.4 }) {
  const dim = q.dense.length;
  const dense = denseScore(q.dense, p.dense);
  const sparse = lexicalScore(q.sparse, p.sparse);
  const colbert = colbertScore(q.colbert.data, p.colbert.data, dim);
  const { dense: wd, sparse: ws, colbert: wc } = weights;
  return {
    dense, sparse, colbert,
    'sparse+dense': (ws * sparse + wd * dense) / (ws + wd),
    'colbert+sparse+dense': (wc * colbert + ws * sparse + wd * dense) / (wc + ws + wd),
  };
}

/** Reciprocal-rank fusion: `rankings` is an array of arrays of candidate keys, best first.
 *  Returns [key, score] pairs, best first; score = sum over rankings of 1 / (k + rank). */
export function reciprocalRankFusion(rankings, k = 60) {
  const scores = new Map();
  for (const ranking of rankings) {
    ranking.forEach((key, rank) => scores.set(key, (scores.get(key) ?? 0) + 1 / (k + rank + 1)));
  }
  return [...scores].sort((a, b) => b[1] - a[1]);
}
