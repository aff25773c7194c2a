// The demo's weights choice (www/model-panel.js, #dtype): ?dtype=int8 converts BAAI's f32 files
// while they download (the package's `dtype`), the page says which weights run, and the next visit
// takes the same weights from the browser's cache by itself (the choice is remembered with the source).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launch, requireFixtures } from './server.mjs';

let server, base, browser, page;
const pageErrors = [];

before(async () => {
  requireFixtures();
  ({ server, base } = await serve());
  browser = await launch();
  page = await (await browser.newContext()).newPage();
  page.on('console', m => { if (m.type() === 'error') console.log('[page]', m.text()); });
  page.on('pageerror', e => pageErrors.push(e.message));
});
after(async () => { await browser?.close(); server?.close(); });

const files = () => page.$$eval('#files .file', l => l.map(f => [f.dataset.file, f.dataset.phase]));

test('?dtype=int8: BAAI-layout files converted while they download; int8 weights shown', { timeout: 120_000 }, async () => {
  await page.goto(`${base}/www/?model=/fixtures/tiny-m3/&device=cpu&dtype=int8`);
  await page.waitForSelector('body[data-started=yes]');
  assert.equal(await page.inputValue('#dtype'), 'int8');
  await page.click('#load');
  await page.waitForSelector('body[data-model=ready]', { timeout: 90_000 });
  assert.equal(await page.getAttribute('#backend', 'data-dtype'), 'int8');
  assert.match(await page.textContent('#backend'), /int8 weights/);
  const rows = await files();
  assert.ok(rows.some(([f, phase]) => f === 'pytorch_model.bin' && phase === 'convert'), `the f32 checkpoint converted as it downloaded: ${rows}`);
  const info = await page.$eval('#files .file[data-file="pytorch_model.bin"] .file-info', i => i.textContent);
  assert.match(info, /downloaded, converted to int8/);
  assert.match(await page.textContent('#model-msg'), /Ready: 32-dimensional/);
});

test('the next visit keeps int8 and loads it from the cache by itself; f32 is asked for again', { timeout: 120_000 }, async () => {
  await page.goto(`${base}/www/`);
  await page.waitForSelector('body[data-model=ready]', { timeout: 90_000 });
  assert.equal(await page.inputValue('#dtype'), 'int8');
  assert.equal(await page.getAttribute('#backend', 'data-dtype'), 'int8');
  const rows = await files();
  assert.ok(rows.length > 0 && rows.every(([f, phase]) => phase === 'cache' || f === 'model'), `from the cache, no download: ${rows}`);
  // Choosing the published weights loads f32 (not the cached int8 form).
  await page.selectOption('#dtype', '');
  await page.click('#load');
  await page.waitForFunction(() => document.body.dataset.model === 'ready' && document.querySelector('#backend').dataset.dtype === 'f32', null, { timeout: 90_000 });
  assert.match(await page.textContent('#backend'), /f32 weights/);
  assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
});
