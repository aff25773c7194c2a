// The index's kernels in Chromium: the SIMD kernels compile under the demo's
// Content-Security-Policy (script-src 'self' 'wasm-unsafe-eval'), agree with the JS reference in
// Chromium's engine, and where a policy forbids compiling WebAssembly the package falls back to
// the JS kernels (same results, no error). node --test tests/browser/index-kernels.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launch, DEMO_HEADERS } from './server.mjs';

let server, base, browser;
before(async () => {
  ({ server, base } = await serve());
  browser = await launch({ webgpu: false });
});
after(async () => {
  await browser?.close();
  server?.close();
});

/** A page served with Content-Security-Policy `csp`; returns what the kernels do there. */
async function kernelsUnder(csp) {
  const page = await browser.newPage();
  try {
    await page.route('**/tests/browser/harness.html', async route => {
      const response = await route.fetch();
      await route.fulfill({ response, headers: { ...response.headers(), 'content-security-policy': csp } });
    });
    await page.goto(`${base}/tests/browser/harness.html`);
    return await page.evaluate(async () => {
      const violations = [];
      document.addEventListener('securitypolicyviolation', e => violations.push(`${e.effectiveDirective} ${e.blockedURI}`));
      const K = await import('/pkg/src/index/kernels.js');
      await new Promise(r => setTimeout(r, 50)); // violation events are queued
      // seeded data: 300 int8 vectors of 100 (not a multiple of 16), a query, 16 x 40 MaxSim
      let a = 7;
      const rand = () => ((a = (Math.imul(a, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
      const dim = 100, data = Float32Array.from({ length: 300 * dim }, rand);
      const { codes, scales } = K.quantizeRows(data, dim);
      const lane = new K.DenseLane(dim, 8), ref = new K.DenseLaneJS(dim, 8);
      for (let s = 0; s < 300; s++) {
        lane.push(codes.subarray(s * dim, (s + 1) * dim), scales[s]);
        ref.push(codes.subarray(s * dim, (s + 1) * dim), scales[s]);
      }
      lane.remove(17); ref.remove(17);
      const q = Float32Array.from({ length: dim }, rand);
      const x = lane.scores(q, new Float32Array(299)), y = ref.scores(q, new Float32Array(299));
      let dense = 0;
      for (let s = 0; s < 299; s++) dense = Math.max(dense, Math.abs(x[s] - y[s]));
      const qc = Float32Array.from({ length: 16 * dim }, rand), p = K.quantizeRows(Float32Array.from({ length: 40 * dim }, rand), dim);
      const colbert = Math.abs(K.maxSimInt8(qc, p.codes, p.scales, dim) - K.maxSimInt8JS(qc, p.codes, p.scales, dim));
      return { kernels: K.KERNELS, laneIsSimd: K.DenseLane === K.DenseLaneSimd, dense, colbert, max: Math.max(...y), violations };
    });
  } finally {
    await page.close();
  }
}

test("the demo's policy (script-src 'self' 'wasm-unsafe-eval') runs the SIMD kernels, with the JS kernels' results", async () => {
  assert.match(DEMO_HEADERS['content-security-policy'], /script-src 'self' 'wasm-unsafe-eval'/);
  const r = await kernelsUnder(DEMO_HEADERS['content-security-policy']);
  assert.equal(r.kernels, 'wasm-simd');
  assert.ok(r.laneIsSimd);
  assert.ok(r.max > 1, 'the scores are not all tiny');
  assert.ok(r.dense < 1e-4 * r.max, `dense lane: SIMD vs JS differ by ${r.dense}`);
  assert.ok(r.colbert < 1e-4, `MaxSim: SIMD vs JS differ by ${r.colbert}`);
  assert.deepEqual(r.violations, []);
});

test("a policy without 'wasm-unsafe-eval' gets the JS kernels, not an error", async () => {
  const r = await kernelsUnder("default-src 'self'; script-src 'self'");
  assert.equal(r.kernels, 'js');
  assert.equal(r.laneIsSimd, false);
  assert.equal(r.dense, 0);
  assert.equal(r.colbert, 0);
  assert.deepEqual(r.violations, ['script-src wasm-eval'], 'Chromium refused the compile (the fallback was really taken)');
});
