// Hierarchical pooling of a window's ColBERT rows (the index's `colbert: 'pooled'`): rows ->
// ceil(rows / factor) by repeatedly merging the two most similar clusters (cosine of their
// means: centroid linkage), each cluster's mean re-normalised to unit length. Windows longer than
// CHUNK rows are pooled CHUNK consecutive rows at a time (the similarity matrix is CHUNK² floats).

/** Rows pooled together at most (a multiple of the factor is used): 16 MB of similarities. */
const CHUNK = 2048;

/** data: Float32Array [rows, dim] (unit rows) -> { data: Float32Array [out, dim] (unit rows),
 *  rows: out = ceil(rows / factor), assign: Uint16Array [rows] (the pooled row of each input
 *  row) }. Pooled rows come in the order of their first input row. */
export function poolRows(data, rows, dim, factor) {
  const chunk = Math.max(factor, factor * Math.floor(CHUNK / factor));
  const out = new Float32Array(Math.ceil(rows / factor) * dim);
  const assign = new Uint16Array(rows);
  let outRows = 0;
  for (let r0 = 0; r0 < rows; r0 += chunk) {
    const n = Math.min(chunk, rows - r0);
    const cluster = clusterRows(data, r0, n, dim, Math.ceil(n / factor));
    // Cluster ids in order of first row; sums, then unit means.
    const ids = new Int32Array(n).fill(-1);
    let k = 0;
    for (let i = 0; i < n; i++) {
      const root = cluster[i];
      if (ids[root] < 0) ids[root] = k++;
      const c = outRows + ids[root];
      assign[r0 + i] = c;
      const src = (r0 + i) * dim, dst = c * dim;
      for (let d = 0; d < dim; d++) out[dst + d] += data[src + d];
    }
    for (let c = outRows; c < outRows + k; c++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += out[c * dim + d] ** 2;
      const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
      for (let d = 0; d < dim; d++) out[c * dim + d] *= inv;
    }
    outRows += k;
  }
  return { data: out, rows: outRows, assign };
}

/** Agglomerative clustering of rows r0..r0+n-1 into `target` clusters: returns for each row the
 *  index (0..n-1) of its cluster's representative row. G holds the dot products of the clusters'
 *  sums, so a merge costs O(n), not O(n * dim). */
function clusterRows(data, r0, n, dim, target) {
  const G = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    const a = (r0 + i) * dim;
    for (let j = i; j < n; j++) {
      const b = (r0 + j) * dim;
      let s = 0;
      for (let d = 0; d < dim; d++) s += data[a + d] * data[b + d];
      G[i * n + j] = s;
      G[j * n + i] = s;
    }
  }
  const parent = new Int32Array(n);
  for (let i = 0; i < n; i++) parent[i] = i;
  const active = new Uint8Array(n).fill(1);
  const sim = (a, b) => G[a * n + b] / Math.sqrt(Math.max(G[a * n + a] * G[b * n + b], 1e-30));
  const best = new Int32Array(n).fill(-1), bestSim = new Float64Array(n).fill(-Infinity);
  const refresh = a => {
    best[a] = -1; bestSim[a] = -Infinity;
    for (let x = 0; x < n; x++) {
      if (x === a || !active[x]) continue;
      const s = sim(a, x);
      if (s > bestSim[a]) { bestSim[a] = s; best[a] = x; }
    }
  };
  for (let i = 0; i < n; i++) refresh(i);
  for (let left = n; left > target; left--) {
    let a = -1;
    for (let i = 0; i < n; i++) if (active[i] && best[i] >= 0 && (a < 0 || bestSim[i] > bestSim[a])) a = i;
    const b = best[a];
    // Merge b into a: the sum of a grows by the sum of b.
    const gaa = G[a * n + a] + 2 * G[a * n + b] + G[b * n + b];
    for (let x = 0; x < n; x++) {
      if (!active[x]) continue;
      const v = G[a * n + x] + G[b * n + x];
      G[a * n + x] = v;
      G[x * n + a] = v;
    }
    G[a * n + a] = gaa;
    active[b] = 0;
    parent[b] = a;
    refresh(a);
    for (let x = 0; x < n; x++) {
      if (!active[x] || x === a) continue;
      if (best[x] === a || best[x] === b) refresh(x);
      else {
        const s = sim(x, a);
        if (s > bestSim[x]) { bestSim[x] = s; best[x] = a; }
      }
    }
  }
  // Follow merges to each row's representative.
  const root = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let r = i;
    while (parent[r] !== r) r = parent[r];
    root[i] = r;
  }
  return root;
}
