// The index's kernels: the WebAssembly SIMD ones (kernels-simd.js) against the plain-JS reference
// (kernels-js.js) on seeded random data, the committed wasm bytes against kernels.wat, the
// quantization round trip, and the errors callers decide on. Node only:
//   node --test tests/js/kernels.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { assemble, OUT } from '../../scripts/build-index-kernels.mjs';
import * as K from '../../pkg/src/index/kernels.js';
import { KERNELS_WASM, compileKernels, padDim, qmaxFor } from '../../pkg/src/index/kernels-simd.js';
import { rng } from '../../scripts/index-synth.mjs';

/** rows x dim values in [-1, 1), each row scaled to unit length when `unit`. */
function randomRows(rand, rows, dim, unit = true) {
  const a = new Float32Array(rows * dim);
  for (let i = 0; i < a.length; i++) a[i] = rand() * 2 - 1;
  if (unit) {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let k = 0; k < dim; k++) s += a[r * dim + k] ** 2;
      const inv = 1 / Math.sqrt(s);
      for (let k = 0; k < dim; k++) a[r * dim + k] *= inv;
    }
  }
  return a;
}

const maxAbs = (a, from = 0, to = a.length) => {
  let m = 0;
  for (let i = from; i < to; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
};

/** The SIMD kernels' bound for one query row against one int8 row: the query's i16 rounding
 *  (half a step of max|q| / qmax, a little more for f32 arithmetic) times the row's L1 norm. */
function bound(q, qFrom, dim, codes, cFrom, scale) {
  const step = maxAbs(q, qFrom, qFrom + dim) / qmaxFor(padDim(dim));
  let l1 = 0;
  for (let k = 0; k < dim; k++) l1 += Math.abs(codes[cFrom + k]);
  return 0.51 * step * l1 * scale;
}

const close = (a, b, tol, what) => {
  const slack = tol + 4 * 2 ** -23 * Math.max(Math.abs(a), Math.abs(b)); // f32 results
  assert.ok(Math.abs(a - b) <= slack, `${what}: ${a} vs ${b} (|diff| ${Math.abs(a - b)} > ${slack})`);
};

test('the committed kernels-wasm.js is what kernels.wat assembles to, and small enough to compile on a main thread', () => {
  assert.equal(fs.readFileSync(OUT, 'utf8'), assemble(), 'run node scripts/build-index-kernels.mjs');
  assert.ok(KERNELS_WASM.length <= 4096, `${KERNELS_WASM.length} bytes: browsers refuse synchronous compiles over 4 KB on the main thread`);
  assert.ok(WebAssembly.validate(KERNELS_WASM));
});

test('kernels.js picks the SIMD kernels where they compile, and compileKernels says null for bytes that do not validate', () => {
  assert.equal(K.KERNELS, 'wasm-simd');
  assert.equal(K.DenseLane, K.DenseLaneSimd);
  assert.equal(K.maxSimInt8, K.maxSimInt8Simd);
  const broken = KERNELS_WASM.slice();
  broken[broken.length >> 1] ^= 0xff;
  assert.equal(compileKernels(broken), null);
  assert.equal(compileKernels(new Uint8Array([0, 97, 115, 109, 2, 0, 0, 0])), null);
});

test('quantizeRows / dequantizeRows: every value within half a step (max|row| / 254), zero rows stay zero', () => {
  const rand = rng(1);
  for (const [rows, dim] of [[0, 8], [1, 1], [3, 7], [17, 1024], [5, 1030]]) {
    const data = randomRows(rand, rows, dim);
    if (rows > 1) data.fill(0, dim, 2 * dim); // row 1 is zero
    const { codes, scales } = K.quantizeRows(data, dim);
    assert.equal(codes.length, rows * dim);
    assert.equal(scales.length, rows);
    const back = K.dequantizeRows(codes, scales, dim);
    for (let r = 0; r < rows; r++) {
      const half = maxAbs(data, r * dim, (r + 1) * dim) / 254;
      for (let k = 0; k < dim; k++) {
        const i = r * dim + k;
        assert.ok(Math.abs(back[i] - data[i]) <= half * (1 + 1e-6) + 1e-12, `row ${r} k ${k}: ${back[i]} vs ${data[i]}`);
        assert.ok(codes[i] >= -127 && codes[i] <= 127);
      }
    }
    if (rows > 1) {
      assert.equal(scales[1], 0);
      assert.ok(codes.subarray(dim, 2 * dim).every(c => c === 0));
    }
  }
  // a unit vector of 1024: the dot product error of the round trip on BGE-M3-sized vectors
  const [a, b] = [randomRows(rand, 1, 1024), randomRows(rand, 1, 1024)];
  const qa = K.quantizeRows(a, 1024), back = K.dequantizeRows(qa.codes, qa.scales, 1024);
  let exact = 0, approx = 0;
  for (let k = 0; k < 1024; k++) { exact += a[k] * b[k]; approx += back[k] * b[k]; }
  assert.ok(Math.abs(exact - approx) < 2e-3, `int8 round trip moved a dot product by ${Math.abs(exact - approx)}`);
});

/** Pushes the same vectors into a JS and a SIMD lane, removes some, and compares everything. */
function laneAgainstReference(rand, dim, count, capacity) {
  const data = randomRows(rand, count, dim);
  const { codes, scales } = K.quantizeRows(data, dim);
  const js = new K.DenseLaneJS(dim, capacity), simd = new K.DenseLaneSimd(dim, capacity);
  for (let s = 0; s < count; s++) {
    const row = codes.subarray(s * dim, (s + 1) * dim);
    assert.equal(simd.push(row, scales[s]), js.push(row, scales[s]));
  }
  // remove: a middle slot, the last slot, slot 0 (the last slot moves into each freed one)
  for (const pick of [c => c >> 1, c => c - 1, () => 0]) {
    if (js.count === 0) break;
    const slot = pick(js.count);
    assert.equal(simd.remove(slot), js.remove(slot));
  }
  // push one more after removing (reuses a freed slot number, on a grown lane)
  if (count > 0) {
    const extra = K.quantizeRows(randomRows(rand, 1, dim), dim);
    assert.equal(simd.push(extra.codes, extra.scales[0]), js.push(extra.codes, extra.scales[0]));
  }
  assert.equal(simd.count, js.count);
  assert.deepEqual(simd.codes.subarray(0, js.count * dim), js.codes.subarray(0, js.count * dim));
  assert.deepEqual(simd.scales.subarray(0, js.count), js.scales.subarray(0, js.count));
  for (let t = 0; t < 3; t++) {
    const q = randomRows(rand, 1, dim, t !== 2); // the last query not unit length
    const a = js.scores(q, new Float32Array(js.count)), b = simd.scores(q, new Float32Array(js.count + 3));
    for (let s = 0; s < js.count; s++) {
      close(b[s], a[s], bound(q, 0, dim, js.codes, s * dim, js.scales[s]), `dim ${dim} count ${count} slot ${s}`);
    }
    assert.ok(b.subarray(js.count).every(v => v === 0), 'scores writes only count values');
  }
  assert.ok(simd.bytes >= simd.capacity * dim + simd.capacity * 4);
  return { js, simd };
}

test('DenseLaneSimd matches DenseLaneJS: many dims (also not multiples of 16), 0 rows, growth past capacity, remove/swap', () => {
  const rand = rng(2);
  for (const dim of [1, 7, 16, 100, 1024, 1030]) {
    for (const [count, capacity] of [[0, 0], [0, 4], [1, 1], [3, 1], [5, 4], [17, 2], [300, 7]]) {
      laneAgainstReference(rand, dim, count, capacity);
    }
  }
  // growth many times over from the default, with dim 1024
  const { simd } = laneAgainstReference(rand, 1024, 2500, 1024);
  assert.equal(simd.capacity, 4096);
});

test('scores on an empty lane and after removing every vector write nothing', () => {
  for (const Lane of [K.DenseLaneJS, K.DenseLaneSimd]) {
    const lane = new Lane(16, 2);
    const out = new Float32Array(2).fill(7);
    assert.equal(lane.scores(new Float32Array(16).fill(1), out), out);
    assert.deepEqual([...out], [7, 7]);
    lane.push(new Int8Array(16).fill(1), 0.5);
    lane.push(new Int8Array(16).fill(2), 0.5);
    assert.equal(lane.remove(0), 1);
    assert.equal(lane.remove(0), -1);
    lane.scores(new Float32Array(16).fill(1), out);
    assert.deepEqual([...out], [7, 7]);
  }
});

test('DenseLaneSimd.codes follows every change (a view for dims of 16s, a copy remade after a change otherwise)', () => {
  for (const dim of [7, 32]) {
    const lane = new K.DenseLaneSimd(dim, 1);
    const row = v => new Int8Array(dim).fill(v);
    lane.push(row(1), 1);
    assert.deepEqual(lane.codes.subarray(0, dim), row(1));
    lane.push(row(2), 1); // grows
    assert.deepEqual(lane.codes.subarray(0, 2 * dim), Int8Array.from([...row(1), ...row(2)]));
    assert.equal(lane.remove(0), 1);
    assert.deepEqual(lane.codes.subarray(0, dim), row(2));
    if (dim % 16) assert.equal(lane.codes, lane.codes, 'one copy between changes');
  }
});

test('maxSimInt8Simd matches maxSimInt8JS: query and passage row counts around the tile sizes, odd dims', () => {
  const rand = rng(3);
  for (const dim of [1, 9, 16, 128, 1024, 1040]) {
    for (const qRows of [0, 1, 3, 4, 5, 16, 17]) {
      for (const rows of [0, 1, 2, 3, 8, 33]) {
        const q = randomRows(rand, qRows, dim);
        const { codes, scales } = K.quantizeRows(randomRows(rand, rows, dim), dim);
        const a = K.maxSimInt8JS(q, codes, scales, dim), b = K.maxSimInt8Simd(q, codes, scales, dim);
        let tol = 0;
        for (let i = 0; i < qRows; i++) {
          for (let j = 0; j < rows; j++) tol = Math.max(tol, bound(q, i * dim, dim, codes, j * dim, scales[j]));
        }
        close(b, a, tol, `dim ${dim} qRows ${qRows} rows ${rows}`);
      }
    }
  }
});

test('maxSim: the best passage row wins even when every score is negative (padding never adds a row)', () => {
  const dim = 24;
  const q = new Float32Array(3 * dim).fill(0.2);
  const codes = new Int8Array(3 * dim).fill(-100); // three rows, all pointing away from q
  codes.fill(-50, 2 * dim);                         // the third row less so
  const scales = new Float32Array([0.01, 0.01, 0.01]);
  const expected = 0.2 * -50 * dim * 0.01;
  close(K.maxSimInt8JS(q, codes, scales, dim), expected, 1e-9, 'js');
  close(K.maxSimInt8Simd(q, codes, scales, dim), expected, 1e-4, 'simd');
});

test('no i32 overflow: extreme codes (-128, 127) against a constant query, dims up to 4096', () => {
  for (const dim of [1024, 2048, 2050, 4096]) {
    const q = new Float32Array(dim).fill(-1);
    for (const code of [-128, 127]) {
      const codes = new Int8Array(dim).fill(code);
      const exact = -code * dim; // scale 1
      const lane = new K.DenseLaneSimd(dim, 4);
      lane.push(codes, 1);
      const out = lane.scores(q, new Float32Array(1));
      close(out[0], exact, 0, `dense dim ${dim} code ${code}`);
      close(K.maxSimInt8Simd(q, codes, new Float32Array([1]), dim), exact, 0, `maxSim dim ${dim} code ${code}`);
    }
  }
});

test('the SIMD kernels on BGE-M3-shaped vectors: 1024 dims, unit length; the figure of their error', (t) => {
  const rand = rng(4), dim = 1024, count = 4000;
  const { codes, scales } = K.quantizeRows(randomRows(rand, count, dim), dim);
  const js = new K.DenseLaneJS(dim), simd = new K.DenseLaneSimd(dim);
  for (let s = 0; s < count; s++) {
    const row = codes.subarray(s * dim, (s + 1) * dim);
    js.push(row, scales[s]);
    simd.push(row, scales[s]);
  }
  let dense = 0;
  for (let t = 0; t < 5; t++) {
    const q = randomRows(rand, 1, dim);
    const a = js.scores(q, new Float32Array(count)), b = simd.scores(q, new Float32Array(count));
    for (let s = 0; s < count; s++) dense = Math.max(dense, Math.abs(a[s] - b[s]));
  }
  let colbert = 0;
  for (let t = 0; t < 5; t++) {
    const q = randomRows(rand, 16, dim);
    const p = K.quantizeRows(randomRows(rand, 256, dim), dim);
    colbert = Math.max(colbert, Math.abs(K.maxSimInt8JS(q, p.codes, p.scales, dim) - K.maxSimInt8Simd(q, p.codes, p.scales, dim)));
  }
  t.diagnostic(`max |SIMD - f32 dot of the dequantized vectors|: dense ${dense.toExponential(2)}, MaxSim ${colbert.toExponential(2)}`);
  assert.ok(dense < 1e-5, `dense error ${dense}`);
  assert.ok(colbert < 1e-5, `MaxSim error ${colbert}`);
});

test('bad input: errors with kind, for both implementations; nothing changes on a refused call', () => {
  const kind = k => e => e.kind === k;
  for (const [Lane, maxSim] of [[K.DenseLaneJS, K.maxSimInt8JS], [K.DenseLaneSimd, K.maxSimInt8Simd]]) {
    assert.throws(() => new Lane(0), kind('input'));
    assert.throws(() => new Lane(1.5), kind('input'));
    assert.throws(() => new Lane(8, -1), kind('range'));
    const lane = new Lane(8, 2);
    assert.throws(() => lane.push(new Int8Array(7), 1), kind('input'));
    assert.throws(() => lane.push(new Int8Array(8), NaN), kind('input'));
    assert.throws(() => lane.push(new Int8Array(8), -1), kind('input'));
    assert.equal(lane.count, 0);
    lane.push(new Int8Array(8).fill(3), 1);
    assert.throws(() => lane.remove(1), kind('range'));
    assert.throws(() => lane.remove(-1), kind('range'));
    assert.throws(() => lane.remove(0.5), kind('range'));
    assert.throws(() => lane.grow(0), kind('range'));
    assert.throws(() => lane.scores(new Float32Array(7), new Float32Array(1)), kind('input'));
    assert.throws(() => lane.scores(new Float32Array(8), new Float32Array(0)), kind('input'));
    assert.equal(lane.count, 1);
    assert.equal(lane.scores(new Float32Array(8).fill(1), new Float32Array(1))[0], 24);
    assert.throws(() => maxSim(new Float32Array(9), new Int8Array(8), new Float32Array(1), 8), kind('input'));
    assert.throws(() => maxSim(new Float32Array(8), new Int8Array(9), new Float32Array(1), 8), kind('input'));
    assert.throws(() => maxSim(new Float32Array(8), new Int8Array(8), new Float32Array(1), 0), kind('input'));
  }
  assert.throws(() => K.quantizeRows(new Float32Array(9), 8), kind('input'));
  // a SIMD lane past wasm32's 4 GiB: refused before any memory is asked for; the lane still works
  assert.throws(() => new K.DenseLaneSimd(1024, 5_000_000), kind('range'));
  const lane = new K.DenseLaneSimd(1024, 4);
  lane.push(new Int8Array(1024).fill(1), 0.5);
  assert.throws(() => lane.grow(5_000_000), kind('range'));
  assert.equal(lane.scores(new Float32Array(1024).fill(1), new Float32Array(1))[0], 512);
});
