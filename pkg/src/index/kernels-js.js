// The index's kernels in plain typed-array JavaScript: the reference the SIMD kernels
// (kernels-simd.js) are tested against, and the fallback where WebAssembly SIMD is missing or a
// Content-Security-Policy forbids compiling WebAssembly. The index imports kernels.js, which
// picks one of the two; the shape checks and the growth rule here are shared by both.
//
// Shapes: dim = the model's hidden size (1024 for BAAI/bge-m3); a "row" is one vector of dim
// values. int8 rows are symmetric: value ≈ code * scale, scale = max|row| / 127 (quantizeRows).

/** An error the index decides on by `kind` ('input': a wrong shape; 'range': a slot or capacity
 *  out of range, a RangeError). */
export function kernelError(kind, message) {
  return Object.assign(kind === 'range' ? new RangeError(message) : new Error(message), { kind });
}

export function checkDim(dim) {
  if (!Number.isInteger(dim) || dim < 1) throw kernelError('input', `dim must be a positive integer, got ${dim}`);
}

export function checkCapacity(capacity, count = 0) {
  if (!Number.isInteger(capacity) || capacity < count) {
    throw kernelError('range', `capacity must be an integer >= ${count} (the vectors held), got ${capacity}`);
  }
}

/** The lane's capacity after it fills up (push): doubles, at least 4. */
export function grownCapacity(capacity) {
  return Math.max(4, capacity * 2);
}

/** Checks a push: `codes` [dim] and a finite scale >= 0. */
export function checkPush(codes, scale, dim) {
  if (codes?.length !== dim) throw kernelError('input', `push: codes must hold dim = ${dim} values, got ${codes?.length}`);
  if (!(scale >= 0 && scale < Infinity)) throw kernelError('input', `push: scale must be a finite number >= 0, got ${scale}`);
}

export function checkSlot(slot, count) {
  if (!Number.isInteger(slot) || slot < 0 || slot >= count) {
    throw kernelError('range', `slot ${slot} is not one of the lane's ${count} slots`);
  }
}

export function checkScores(q, out, dim, count) {
  if (q?.length !== dim) throw kernelError('input', `scores: the query must hold dim = ${dim} values, got ${q?.length}`);
  if (!(out?.length >= count)) throw kernelError('input', `scores: out must hold at least ${count} values (one per slot), got ${out?.length}`);
}

/** Checks MaxSim's shapes: q [qRows, dim], codes [rows, dim], scales [rows]. */
export function checkMaxSim(q, codes, scales, dim) {
  checkDim(dim);
  if (q?.length % dim !== 0) throw kernelError('input', `maxSim: the query's ${q?.length} values are not whole rows of dim = ${dim}`);
  if (codes?.length !== scales?.length * dim) {
    throw kernelError('input', `maxSim: codes hold ${codes?.length} values, scales ${scales?.length} rows of dim = ${dim}`);
  }
}

/** Per-row symmetric int8: `data` f32 [rows, dim] -> { codes: Int8Array [rows, dim], scales:
 *  Float32Array [rows] } with data[r][k] ≈ codes[r][k] * scales[r]. A zero row gets scale 0. */
export function quantizeRows(data, dim) {
  checkDim(dim);
  if (data?.length % dim !== 0) throw kernelError('input', `quantizeRows: ${data?.length} values are not whole rows of dim = ${dim}`);
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
export class DenseLaneJS {
  constructor(dim, capacity = 1024) {
    checkDim(dim);
    checkCapacity(capacity);
    this.dim = dim;
    this.count = 0;
    this.codes = new Int8Array(capacity * dim);
    this.scales = new Float32Array(capacity);
  }
  /** Appends a vector (codes: Int8Array [dim], scale); returns its slot. */
  push(codes, scale) {
    checkPush(codes, scale, this.dim);
    if (this.count === this.scales.length) this.grow(grownCapacity(this.count));
    this.codes.set(codes, this.count * this.dim);
    this.scales[this.count] = scale;
    return this.count++;
  }
  /** Frees `slot`: the last slot's vector moves into it. Returns the slot that moved (its old
   *  number), or -1 when `slot` was the last. */
  remove(slot) {
    checkSlot(slot, this.count);
    const last = --this.count;
    if (slot === last) return -1;
    this.codes.copyWithin(slot * this.dim, last * this.dim, (last + 1) * this.dim);
    this.scales[slot] = this.scales[last];
    return last;
  }
  /** Room for `capacity` vectors (>= count). */
  grow(capacity) {
    checkCapacity(capacity, this.count);
    const codes = new Int8Array(capacity * this.dim), scales = new Float32Array(capacity);
    codes.set(this.codes.subarray(0, this.count * this.dim));
    scales.set(this.scales.subarray(0, this.count));
    this.codes = codes;
    this.scales = scales;
  }
  /** out[slot] = q · vector(slot) for every slot (q: Float32Array [dim]); out: Float32Array of at
   *  least `count`. */
  scores(q, out) {
    checkScores(q, out, this.dim, this.count);
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
export function maxSimInt8JS(q, codes, scales, dim) {
  checkMaxSim(q, codes, scales, dim);
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
