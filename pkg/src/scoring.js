// FlagEmbedding's BGE-M3 scores over the outputs of encode(), plus reciprocal-rank fusion.

/** FlagEmbedding's default weights of `compute_score` (the JS owner of this rule; Rust's is
 *  `ScoreWeights::default()`, and the browser tests check that the two agree). */
export const DEFAULT_WEIGHTS = Object.freeze({ dense: 0.4, sparse: 0.2, colbert: 0.4 });

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

/** compute_score's weighted sum of the modes that `weights` names, divided by the sum of their
 *  weights: `{ dense, sparse }` gives 'sparse+dense', all three 'colbert+sparse+dense'. */
export function weightedScore(scores, weights = DEFAULT_WEIGHTS) {
  let sum = 0, total = 0;
  for (const mode of ['dense', 'sparse', 'colbert']) {
    const w = weights[mode];
    if (w === undefined) continue;
    sum += w * scores[mode];
    total += w;
  }
  return sum / total;
}

/** The five scores of compute_score for one query/passage pair of encode() results. */
export function hybridScores(q, p, weights = DEFAULT_WEIGHTS) {
  const dim = q.dense.length;
  const s = {
    dense: denseScore(q.dense, p.dense),
    sparse: lexicalScore(q.sparse, p.sparse),
    colbert: colbertScore(q.colbert.data, p.colbert.data, dim),
  };
  return {
    ...s,
    'sparse+dense': weightedScore(s, { dense: weights.dense, sparse: weights.sparse }),
    'colbert+sparse+dense': weightedScore(s, weights),
  };
}

/** The k of reciprocal-rank fusion (Cormack et al.'s 60). */
export const RRF_K = 60;

/** Reciprocal-rank fusion: `rankings` is an array of arrays of candidate keys, best first.
 *  Returns [key, score] pairs, best first; score = sum over rankings of 1 / (k + rank). */
export function reciprocalRankFusion(rankings, k = RRF_K) {
  const scores = new Map();
  for (const ranking of rankings) {
    ranking.forEach((key, rank) => scores.set(key, (scores.get(key) ?? 0) + 1 / (k + rank + 1)));
  }
  return [...scores].sort((a, b) => b[1] - a[1]);
}
