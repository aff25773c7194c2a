// The index's number crunching, in one place: the dense lane (every window's dense vector, int8
// with a per-vector scale, scanned exhaustively for each query) and ColBERT MaxSim over int8 rows.
// This file is the plain typed-array version, the reference the accelerated one is tested against.
//
// Shapes: dim = the model's hidden size (1024 for BAAI/bge-m3); a "row" is one vector of dim
// values. int8 rows are symmetric: value ≈ code * scale, scale = max|row| / 127 (quantizeRows).

/** Per-row symmetric int8: `data` f32 [rows, dim] -> { codes: Int8Array [rows, dim], scales:
 *  Float32Array [rows] } with data[r][k] ≈ codes[r][k] * scales[r]. A zero row gets scale 0. */
export function quantizeRows(data, dim) {
  const rows = data.length / dim;
  const codes = new Int8Array(rows * dim), scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let k = 0; k < dim; k++) m = Math.max(m, Math.abs(data[r * dim + k]));
    const scale = m / 127;
    scales[r] = scale;
    if (scale === 0) continue;
    const inv = 1 / scale;
    for (let k = 0; k < dim; k++) codes[r * dim + k] = Math.round(data[r * dim + k] * inv);
  }
  return { codes, scales };
}

/** codes [rows, dim] * scales [rows] -> f32 [rows, dim]. */
export function dequantizeRows(codes, scales, dim) {
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = codes[i] * scales[(i / dim) | 0];
  return out;
}

/** The dense lane: `count` int8 vectors of `dim` with their scales, in slots 0..count-1. The
 *  index maps slots to windows; `remove` moves the last slot into the freed one and says so. */
export class DenseLane {
  constructor(dim, capacity = 1024) {
    this.dim = dim;
    this.count = 0;
    this.codes = new Int8Array(capacity * dim);
    this.scales = new Float32Array(capacity);
  }
  /** Appends a vector (codes: Int8Array [dim], scale); returns its slot. */
  push(codes, scale) {
    if (this.count === this.scales.length) this.grow(this.count * 2);
    this.codes.set(codes, this.count * this.dim);
    this.scales[this.count] = scale;
    return this.count++;
  }
  /** Frees `slot`: the last slot's vector moves into it. Returns the slot that moved (its old
   *  number), or -1 when `slot` was the last. */
  remove(slot) {
    const last = --this.count;
    if (slot === last) return -1;
    this.codes.copyWithin(slot * this.dim, last * this.dim, (last + 1) * this.dim);
    this.scales[slot] = this.scales[last];
    return last;
  }
  grow(capacity) {
    const codes = new Int8Array(capacity * this.dim), scales = new Float32Array(capacity);
    codes.set(this.codes.subarray(0, this.count * this.dim));
    scales.set(this.scales.subarray(0, this.count));
    this.codes = codes;
    this.scales = scales;
  }
  /** out[slot] = q · vector(slot) for every slot (q: Float32Array [dim]); out: Float32Array of at
   *  least `count`. */
  scores(q, out) {
    const { dim, codes, scales } = this;
    for (let s = 0; s < this.count; s++) {
      let acc = 0;
      const o = s * dim;
      for (let k = 0; k < dim; k++) acc += q[k] * codes[o + k];
      out[s] = acc * scales[s];
    }
    return out;
  }
  /** Bytes this lane holds in memory (its capacity). */
  get bytes() {
    return this.codes.byteLength + this.scales.byteLength;
  }
}

/** ColBERT MaxSim: mean over the query's rows of the best dot product with a passage row.
 *  q: Float32Array [qRows, dim]; codes: Int8Array [rows, dim]; scales: Float32Array [rows]. */
export function maxSimInt8(q, codes, scales, dim) {
  const qRows = q.length / dim, rows = scales.length;
  if (qRows === 0 || rows === 0) return 0;
  let total = 0;
  for (let i = 0; i < qRows; i++) {
    let best = -Infinity;
    for (let j = 0; j < rows; j++) {
      let s = 0;
      const o = j * dim;
      for (let k = 0; k < dim; k++) s += q[i * dim + k] * codes[o + k];
      s *= scales[j];
      if (s > best) best = s;
    }
    total += best;
  }
  return total / qRows;
}
