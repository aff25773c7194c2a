// IEEE half precision for the index's `dense: 'f16'` option: conversion (round to nearest even)
// and a dense lane over f16 codes with the DenseLane interface of kernels.js (push / scores /
// bytes; no per-vector scale). Also the sparse postings' weights are f16. A plain typed-array
// kernel of this index's own (kernels.js is int8 only).

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The f16 bits nearest to `x` (ties to even; overflow to ±Infinity; NaN stays NaN). */
export function toF16(x) {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // f16 exponent (bias 15)
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1), halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++; // a carry rounds up into the exponent
  return sign | half;
}

/** f16 bits -> value, for all 65536 bit patterns (256 KB, built on first use). */
let table = null;
export function f16Table() {
  if (table) return table;
  table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const e = (h >>> 10) & 0x1f, m = h & 0x3ff;
    const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15);
    table[h] = h & 0x8000 ? -v : v;
  }
  return table;
}

/** Float32Array -> Uint16Array of f16 bits. */
export function encodeF16(src) {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = toF16(src[i]);
  return out;
}

/** Uint16Array of f16 bits -> Float32Array. */
export function decodeF16(src) {
  const t = f16Table(), out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]];
  return out;
}

/** Whether f16 bits are a finite value (not ±Infinity, not NaN). */
export const finiteF16 = h => (h & 0x7c00) !== 0x7c00;

/** The dense lane in f16: `count` vectors of `dim` f16 codes in slots 0..count-1 (2 bytes a value). */
export class F16Lane {
  constructor(dim, capacity = 1024) {
    this.dim = dim;
    this.count = 0;
    this.codes = new Uint16Array(capacity * dim);
  }
  /** Appends a vector (codes: Uint16Array [dim]); returns its slot. */
  push(codes) {
    if (this.count * this.dim === this.codes.length) this.grow(Math.max(1, this.count * 2));
    this.codes.set(codes, this.count * this.dim);
    return this.count++;
  }
  grow(capacity) {
    const codes = new Uint16Array(capacity * this.dim);
    codes.set(this.codes.subarray(0, this.count * this.dim));
    this.codes = codes;
  }
  /** out[slot] = q · vector(slot) for every slot (q: Float32Array [dim]). */
  scores(q, out) {
    const { dim, codes } = this, t = f16Table();
    for (let s = 0; s < this.count; s++) {
      let acc = 0;
      const o = s * dim;
      for (let k = 0; k < dim; k++) acc += q[k] * t[codes[o + k]];
      out[s] = acc;
    }
    return out;
  }
  /** q · vector(slot). */
  dot(slot, q) {
    const { dim, codes } = this, t = f16Table(), o = slot * dim;
    let acc = 0;
    for (let k = 0; k < dim; k++) acc += q[k] * t[codes[o + k]];
    return acc;
  }
  get bytes() {
    return this.codes.byteLength;
  }
}
