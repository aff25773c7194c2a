// The bounds a pack's outputs must keep against FlagEmbedding's f32 reference (issue 11): the
// cosine of each text's dense vector, and the smallest cosine of a ColBERT row with its reference
// row. For the tests of packs however they are made (`m3 convert`, or converted while downloading).
export const FLOOR = { f16: { dense: 0.9999, colbert: 0.999 }, int8: { dense: 0.995, colbert: 0.99 } };

export const cosine = (a, b) => {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
  return ab / Math.sqrt(aa * bb);
};

/** Each encoded text `out[n]` against its reference item `items[n]` (FlagEmbedding's f32 output):
 *  the dense cosine, the smallest ColBERT row cosine, the largest sparse weight difference. */
export function againstReference(items, out) {
  return items.map((want, n) => {
    const got = out[n];
    const rows = want.colbert.length, dim = want.dense.length;
    let colbert = Infinity;
    for (let r = 0; r < rows; r++) colbert = Math.min(colbert, cosine(got.colbert.data.subarray(r * dim, (r + 1) * dim), want.colbert[r]));
    let sparse = 0;
    const weights = new Map([...got.sparse.ids].map((id, i) => [String(id), got.sparse.weights[i]]));
    for (const [id, w] of Object.entries(want.sparse)) sparse = Math.max(sparse, Math.abs((weights.get(id) ?? 0) - w));
    return { tokens: want.input_ids.length, sameIds: JSON.stringify([...got.inputIds]) === JSON.stringify(want.input_ids),
      rows: got.colbert.rows, wantRows: rows, dense: cosine(got.dense, want.dense), colbert, sparse };
  });
}
