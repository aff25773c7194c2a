// The wasm build in headless Chromium: FlagEmbedding parity on WebGPU (SwiftShader) and on the
// wasm CPU backend, and bad input. Needs `bash scripts/build-wasm.sh` first.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launch, requireFixtures } from './server.mjs';

let server, base, browser, page;
before(async () => {
  requireFixtures();
  ({ server, base } = await serve());
  browser = await launch();
  page = await browser.newPage();
  page.on('console', m => { if (m.type() === 'error') console.log('[page]', m.text()); });
  await page.goto(`${base}/tests/browser/harness.html`);
});
after(async () => { await browser?.close(); server?.close(); });

const run = (fn, ...args) => page.evaluate(async ([fn, args]) => (await import('/tests/browser/harness.mjs'))[fn](...args), [fn, args]);

for (const device of ['webgpu', 'cpu']) {
  test(`fixture parity on ${device} (14 texts incl. 3474 and 8192 tokens, scores)`, { timeout: 2_700_000 }, async () => {
    const r = await run('parity', device);
    console.log(`${device}: ${r.adapter}; load ${r.loadMs.toFixed(0)} ms, encode ${r.encodeMs.toFixed(0)} ms; worst`, r.worst);
    assert.equal(r.backend, device);
    assert.equal(r.texts, 14);
    assert.deepEqual(r.failures, []);
  });
}

test('bad input rejects with clear errors and the model keeps working', { timeout: 300_000 }, async () => {
  const r = await run('badInputs', 'webgpu');
  console.log(r.msgs);
  const m = r.msgs;
  assert.match(m.truncatedEncoder, /truncated/);
  assert.match(m.foreignEncoder, /bad model file/);
  assert.match(m.missingFile, /files\.sparse is missing/);
  assert.match(m.wrongShape, /encoder\.layer\.0\.intermediate\.dense\.weight.*\[64, 32\].*\[80, 32\]/);
  assert.match(m.badDevice, /unknown device/);
  assert.match(m.notAnArray, /array of strings/);
  assert.match(m.nonString, /texts\[1\] is not a string/);
  assert.match(m.badMaxLength, /max_length must be between 2 and 8192/);
  assert.match(m.badOption, /options\.dense must be a boolean/);
  for (const msg of Object.values(m)) assert.doesNotMatch(msg, /NOT AN ERROR|no error/);
  assert.equal(r.emptyLength, 0);
  assert.equal(r.afterDense, 32);
  assert.equal(r.afterHasSparse, false);
});
