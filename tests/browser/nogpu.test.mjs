// A browser whose WebGPU finds no adapter (Chromium without --enable-unsafe-webgpu): asking for
// WebGPU fails with a device error before any model request, the cached model stays cached, and
// device "auto" falls back to the wasm CPU backend. Needs `bash scripts/build-wasm.sh` first.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launch, requireFixtures } from './server.mjs';

let server, requests, base, browser, page;
before(async () => {
  requireFixtures();
  ({ server, requests, base } = await serve());
  browser = await launch({ webgpu: false });
  page = await browser.newPage();
  await page.goto(`${base}/tests/browser/harness.html`);
});
after(async () => { await browser?.close(); server?.close(); });

const step = name => page.evaluate(async s => (await import('/tests/browser/pkg-harness.mjs')).noAdapterStep(s), name);
const modelRequests = () => requests.filter(u => u.startsWith('/fixtures/tiny-m3/')).length;

test('WebGPU asked for, no adapter, model cached: a device error, no model request, the cache intact; "auto" falls back to the CPU', { timeout: 300_000 }, async () => {
  const fill = await step('fill');
  assert.equal(fill.adapter, false, 'this browser has no WebGPU adapter');
  assert.equal(fill.cached, true);
  const before = modelRequests();
  const r = await step('webgpu');
  console.log(r);
  assert.equal(r.err.kind, 'device');
  assert.match(r.err.message, /WebGPU is not available/);
  assert.equal(modelRequests(), before, 'no request for a model file');
  assert.equal(r.cached, true, 'the cached model is still there');
  const auto = await step('auto');
  assert.equal(auto.backend, 'cpu');
  assert.equal(auto.dense, 32);
  assert.equal(modelRequests(), before, 'the fallback loads from the cache too');
});
