// The index's kernels on WebAssembly SIMD128 (kernels.wat, assembled into kernels-wasm.js): the
// same classes and functions as kernels-js.js, with the same checks and results up to the
// query's i16 rounding (see qmaxFor below). kernels.js picks these when the module compiles.
//
// Each DenseLaneSimd owns a wasm instance whose memory holds the lane:
//   codes  i8  [capacity, dimP] at 0     (dimP = dim rounded up to 16, zeros past dim)
//   scales f32 [capacity]                 moved up when the lane grows (codes stay in place)
//   out    f32 [capacity]                 the scan's scores, copied to the caller's array
//   qf     f32 [dim], qi i16 [dimP], qs f32 the query, its i16 codes and scale
// so a scan reads the codes where push() put them. MaxSim has one shared instance whose memory
// is scratch: each call copies the query and the candidate's rows in.
import { KERNELS_WASM_BASE64 } from './kernels-wasm.js';
import {
  checkDim, checkCapacity, checkPush, checkSlot, checkScores, checkMaxSim, grownCapacity, kernelError,
} from './kernels-js.js';

const PAGE = 65536;
const align16 = n => Math.ceil(n / 16) * 16; // arithmetic, not bitwise: offsets pass 2^31
const roundUp4 = n => Math.ceil(n / 4) * 4;

/** dim rounded up to 16: the stride of every row the kernels read. */
export const padDim = dim => align16(dim);

/** The largest i16 code of a quantized query row for rows of stride dimP, so that no i32 lane of
 *  a dot product can overflow (each lane sums dimP/4 products |q * code| <= qmax * 128). The
 *  error of a score is then at most max|q| / (2 * qmax) * sum|passage row| (~1e-6 on BGE-M3
 *  vectors, see tests/js/kernels.test.mjs). */
export const qmaxFor = dimP => Math.min(32767, Math.floor(0x7fffffff / (dimP * 32)));

function decode(b64) {
  const text = atob(b64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

export const KERNELS_WASM = decode(KERNELS_WASM_BASE64);

/** The compiled kernels, or null where WebAssembly SIMD is missing (`WebAssembly.validate`
 *  refuses the bytes) or compiling is forbidden (a Content-Security-Policy without
 *  'wasm-unsafe-eval'). Compiled synchronously: the module is under the 4 KB that browsers allow
 *  on the main thread. */
export function compileKernels(bytes = KERNELS_WASM) {
  try {
    if (typeof WebAssembly !== 'object' || !WebAssembly.validate(bytes)) return null;
    return new WebAssembly.Module(bytes);
  } catch {
    return null;
  }
}

export const kernelsModule = compileKernels();

function instance() {
  if (!kernelsModule) throw kernelError('input', 'the WebAssembly SIMD kernels are not available here (use the JS kernels)');
  return new WebAssembly.Instance(kernelsModule).exports;
}

/** Grows `memory` to hold `bytes`; an allocation the browser refuses is a 'range' error. */
function reserve(memory, bytes) {
  const have = memory.buffer.byteLength;
  if (bytes <= have) return;
  try {
    memory.grow(Math.ceil((bytes - have) / PAGE));
  } catch (e) {
    throw kernelError('range', `the index kernels could not grow their memory to ${bytes} bytes: ${e.message}`);
  }
}

/** DenseLane (see kernels-js.js) with its codes in its own WebAssembly.Memory. */
export class DenseLaneSimd {
  constructor(dim, capacity = 1024) {
    checkDim(dim);
    checkCapacity(capacity);
    this.dim = dim;
    this.dimP = padDim(dim);
    this.qmax = qmaxFor(this.dimP);
    this.count = 0;
    this.capacity = 0;
    this.scalesAt = 0;
    this.version = 0; // bumped by every change of the codes (the codes getter's copy)
    this.wasm = instance();
    this.layout(roundUp4(capacity));
  }
  /** Places the regions for `capacity` (a multiple of 4: the scan takes 4 slots at a time). */
  layout(capacity) {
    const { dim, dimP } = this;
    const scalesAt = align16(capacity * dimP), outAt = scalesAt + capacity * 4, qfAt = outAt + capacity * 4;
    const qiAt = align16(qfAt + dim * 4), qsAt = qiAt + dimP * 2;
    if (qsAt + 16 > 2 ** 32) throw kernelError('range', `a dense lane of ${capacity} vectors of ${dim} does not fit in 4 GiB of wasm memory`);
    reserve(this.wasm.memory, qsAt + 16);
    // the scales move (memmove); slot codes stay where they are
    new Uint8Array(this.wasm.memory.buffer).copyWithin(scalesAt, this.scalesAt, this.scalesAt + this.count * 4);
    Object.assign(this, { capacity, scalesAt, outAt, qfAt, qiAt, qsAt });
    this.version++;
  }
  /** Appends a vector (codes: Int8Array [dim], scale); returns its slot. */
  push(codes, scale) {
    checkPush(codes, scale, this.dim);
    if (this.count === this.capacity) this.grow(grownCapacity(this.count));
    const buf = this.wasm.memory.buffer, at = this.count * this.dimP;
    const row = new Int8Array(buf, at, this.dimP);
    row.set(codes);
    if (this.dimP > this.dim) row.fill(0, this.dim);
    new Float32Array(buf, this.scalesAt, this.capacity)[this.count] = scale;
    this.version++;
    return this.count++;
  }
  /** Frees `slot`: the last slot's vector moves into it. Returns the slot that moved (its old
   *  number), or -1 when `slot` was the last. */
  remove(slot) {
    checkSlot(slot, this.count);
    const last = --this.count;
    this.version++;
    if (slot === last) return -1;
    const buf = this.wasm.memory.buffer, { dimP } = this;
    new Int8Array(buf).copyWithin(slot * dimP, last * dimP, (last + 1) * dimP);
    const scales = new Float32Array(buf, this.scalesAt, this.capacity);
    scales[slot] = scales[last];
    return last;
  }
  /** Room for `capacity` vectors (>= count); wasm memory only grows, so a smaller capacity keeps
   *  the bytes already held. */
  grow(capacity) {
    checkCapacity(capacity, this.count);
    this.layout(roundUp4(capacity));
  }
  /** out[slot] = q · vector(slot) for every slot (q: Float32Array [dim]); out: Float32Array of at
   *  least `count`. q is rounded to i16 with one scale (the only difference from the JS lane). */
  scores(q, out) {
    checkScores(q, out, this.dim, this.count);
    if (this.count === 0) return out;
    const x = this.wasm, buf = x.memory.buffer;
    new Float32Array(buf, this.qfAt, this.dim).set(q);
    x.quant_rows_i16(this.qfAt, this.qiAt, this.qsAt, 1, this.dim, this.dimP, this.qmax);
    const qscale = new Float32Array(buf, this.qsAt, 1)[0];
    x.dense_scores(this.qiAt, qscale, 0, this.scalesAt, this.outAt, roundUp4(this.count), this.dimP);
    out.set(new Float32Array(buf, this.outAt, this.count));
    return out;
  }
  /** The codes, Int8Array [capacity, dim], to read: a view of the wasm memory when dim is a
   *  multiple of 16 (valid until the lane grows), else a copy (rows are stored 16-aligned) made
   *  once per change of the lane. */
  get codes() {
    const buf = this.wasm.memory.buffer, { dim, dimP, capacity } = this;
    if (dim === dimP) return new Int8Array(buf, 0, capacity * dim);
    if (this.copy?.version !== this.version) {
      const out = new Int8Array(capacity * dim);
      for (let s = 0; s < this.count; s++) out.set(new Int8Array(buf, s * dimP, dim), s * dim);
      this.copy = { version: this.version, codes: out };
    }
    return this.copy.codes;
  }
  /** The scales, Float32Array [capacity]: a view, valid until the lane grows. */
  get scales() {
    return new Float32Array(this.wasm.memory.buffer, this.scalesAt, this.capacity);
  }
  /** Bytes this lane holds in memory (its wasm memory: capacity, scratch, page rounding). */
  get bytes() {
    return this.wasm.memory.buffer.byteLength;
  }
}

let scratch = null; // MaxSim's instance, made on first use

/** ColBERT MaxSim (see maxSimInt8JS) on SIMD: q's rows are rounded to i16, one scale per row. */
export function maxSimInt8Simd(q, codes, scales, dim) {
  checkMaxSim(q, codes, scales, dim);
  const qRows = q.length / dim, rows = scales.length;
  if (qRows === 0 || rows === 0) return 0;
  const x = scratch ??= instance();
  const dimP = padDim(dim), qRowsP = roundUp4(qRows), rowsP = rows + (rows % 2);
  // scratch layout: qf f32 [qRowsP, dim] | qi i16 [qRowsP, dimP] | qscales f32 [qRowsP] |
  // best f64 [qRowsP] | scales f32 [rowsP] | codes i8 [rowsP, dimP]
  const qiAt = align16(qRowsP * dim * 4), qsAt = qiAt + qRowsP * dimP * 2, bestAt = align16(qsAt + qRowsP * 4);
  const scalesAt = bestAt + qRowsP * 8, codesAt = align16(scalesAt + rowsP * 4), end = codesAt + rowsP * dimP;
  if (end > 2 ** 32) throw kernelError('range', `maxSim: ${rows} rows of ${dim} do not fit in 4 GiB of wasm memory`);
  reserve(x.memory, end);
  const buf = x.memory.buffer;
  const qf = new Float32Array(buf, 0, qRowsP * dim);
  qf.set(q);
  qf.fill(0, q.length); // padding query rows: scale 0, ignored by the mean
  x.quant_rows_i16(0, qiAt, qsAt, qRowsP, dim, dimP, qmaxFor(dimP));
  const sc = new Float32Array(buf, scalesAt, rowsP);
  sc.set(scales);
  const cd = new Int8Array(buf, codesAt, rowsP * dimP);
  if (dimP === dim) cd.set(codes);
  else for (let r = 0; r < rows; r++) {
    cd.set(codes.subarray(r * dim, (r + 1) * dim), r * dimP);
    cd.fill(0, r * dimP + dim, (r + 1) * dimP);
  }
  if (rowsP > rows) { // an odd row count: the last row twice (the max is unchanged)
    cd.copyWithin(rows * dimP, (rows - 1) * dimP, rows * dimP);
    sc[rows] = sc[rows - 1];
  }
  return x.maxsim(qiAt, qsAt, qRows, qRowsP, codesAt, scalesAt, rowsP, dimP, bestAt);
}
