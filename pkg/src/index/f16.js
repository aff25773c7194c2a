// IEEE half precision: conversion (round to nearest even) for the index's `dense: 'f16'` records
// and the sparse postings' weights.

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
