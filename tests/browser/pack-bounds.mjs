// Outputs against FlagEmbedding's reference: f32 parity, and packs (issue 11) however they are made
// (`m3 convert`, or converted while downloading); imported by the test pages and by Node.

/** The floors of tests/pack-bounds.json (the bounds' one owner), in Node: `{ f16: { dense,
 *  colbert }, int8: ... }`, the least dense cosine per text and ColBERT row cosine. */
export async function packFloors() {
  const fs = await import('node:fs');
  const bounds = JSON.parse(fs.readFileSync(new URL('../pack-bounds.json', import.meta.url), 'utf8'));
  return Object.fromEntries(['f16', 'int8'].map(d => [d, { dense: bounds[d].dense_cos, colbert: bounds[d].colbert_row_cos }]));
}

/** Whether a difference `d` from the reference value `want` is within `tol`: the reference files
 *  hold 7 significant digits, so a value is known to one unit of its 7th digit (at most 1e-6 of
 *  it), which is added (the same rule as tests/common/reference_tolerance.rs). */
export const matchesReference = (d, want, tol) => d <= tol + 1e-6 * Math.abs(want);

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
