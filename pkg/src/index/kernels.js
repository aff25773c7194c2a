// The index's number crunching, in one place: the dense lane (every window's dense vector, int8
// with a per-vector scale, scanned exhaustively for each query) and ColBERT MaxSim over int8 rows.
// Two implementations with one interface: WebAssembly SIMD128 (kernels-simd.js, from
// kernels.wat) where it compiles, else plain JS (kernels-js.js, also the tests' reference).
// The SIMD scores differ from the JS ones only by the query's i16 rounding (< 1e-5 on unit
// vectors of 1024; tests/js/kernels.test.mjs).
//
// Shapes: dim = the model's hidden size (1024 for BAAI/bge-m3); a "row" is one vector of dim
// values. int8 rows are symmetric: value ≈ code * scale, scale = max|row| / 127 (quantizeRows).
import { DenseLaneJS, maxSimInt8JS } from './kernels-js.js';
import { DenseLaneSimd, maxSimInt8Simd, kernelsModule } from './kernels-simd.js';

export { quantizeRows, dequantizeRows, kernelError, DenseLaneJS, maxSimInt8JS } from './kernels-js.js';
export { DenseLaneSimd, maxSimInt8Simd } from './kernels-simd.js';

/** Which kernels DenseLane and maxSimInt8 are: 'wasm-simd' or 'js'. */
export const KERNELS = kernelsModule ? 'wasm-simd' : 'js';

/** The dense lane (see DenseLaneJS for the interface). */
export const DenseLane = kernelsModule ? DenseLaneSimd : DenseLaneJS;

/** ColBERT MaxSim over int8 rows: (q: Float32Array [qRows, dim], codes: Int8Array [rows, dim],
 *  scales: Float32Array [rows], dim) -> mean over q's rows of the best scaled dot product. */
export const maxSimInt8 = kernelsModule ? maxSimInt8Simd : maxSimInt8JS;
