// The demo's weights choice (www/model-panel.js, #dtype): ?dtype=int8 converts BAAI's f32 files
// while they download (the package's `dtype`), the page says which weights run, and the next visit
// takes the same weights from the browser's cache by itself (the choice is remembered with the source).
// From a folder on disk: BAAI's files converted while they are read (in memory), and a pack made by
// `m3 convert` (needs the m3 binary, as scripts/test.sh builds it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serve, launch, requireFixtures, fixtures } from './server.mjs';

const m3 = path.join(process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), '.cache/bge-m3-target'), 'release/m3');
let server, base, browser, page, tmp;
const pageErrors = [];

before(async () => {
  requireFixtures();
  ({ server, base } = await serve());
  browser = await launch();
  page = await (await browser.newContext()).newPage();
  page.on('console', m => { if (m.type() === 'error') console.log('[page]', m.text()); });
  page.on('pageerror', e => pageErrors.push(e.message));
});
after(async () => {
  await browser?.close();
  server?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

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

/** A page of its own (nothing remembered, an empty cache), `folder` picked as the source, `dtype`
 *  chosen, loaded `times` times: after each load, the paths it asked the server for under
 *  /fixtures/, and its file rows. */
async function loadFolder(folder, dtype, times = 1) {
  const p = await (await browser.newContext()).newPage();
  const errors = [];
  p.on('pageerror', e => errors.push(e.message));
  const urls = [];
  p.on('request', r => urls.push(new URL(r.url()).pathname));
  await p.goto(`${base}/www/?device=cpu`);
  await p.waitForSelector('body[data-started=yes]');
  await p.setInputFiles('#source-folder', folder);
  await p.selectOption('#dtype', dtype);
  const loads = [];
  for (let i = 0; i < times; i++) {
    await p.evaluate(() => { document.body.dataset.model = ''; });
    await p.click('#load');
    await p.waitForFunction(() => document.body.dataset.model === 'ready' || document.querySelector('#model-msg.error'), null, { timeout: 90_000 });
    loads.push({
      msg: await p.textContent('#model-msg'),
      dtype: await p.getAttribute('#backend', 'data-dtype'),
      rows: await p.$$eval('#files .file', l => Object.fromEntries(l.map(f => [f.dataset.file, [f.dataset.phase, f.querySelector('.file-info').textContent]]))),
      requested: urls.splice(0).filter(u => u.startsWith('/fixtures/')),
      errors: errors.splice(0),
    });
  }
  await p.context().close();
  return times === 1 ? loads[0] : loads;
}

test('a folder of BAAI\'s files with int8 weights: converted while read, nothing downloaded; loaded again, from the cache', { timeout: 120_000 }, async () => {
  const [r, again] = await loadFolder(path.join(fixtures, 'tiny-m3'), 'int8', 2);
  assert.match(r.msg, /Ready: 32-dimensional.*folder “tiny-m3” on this computer/);
  assert.equal(r.dtype, 'int8');
  assert.equal(r.rows['pytorch_model.bin']?.[0], 'convert', JSON.stringify(r.rows));
  assert.match(r.rows['pytorch_model.bin'][1], /read, converted to int8$/);
  assert.deepEqual(r.requested, []);
  assert.deepEqual(r.errors, []);
  // The same folder again: the converted pack from the browser's cache.
  assert.equal(again.dtype, 'int8');
  assert.equal(again.rows['model.safetensors']?.[0], 'cache', JSON.stringify(again.rows));
  assert.deepEqual(again.requested, []);
  assert.deepEqual(again.errors, []);
});

test('a folder holding a pack (m3 convert\'s) loads as the pack, its files checked', { timeout: 120_000 }, async () => {
  assert.ok(fs.existsSync(m3), `${m3} is missing: build it with cargo build --release --bin m3`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'm3-demo-pack-'));
  const pack = path.join(tmp, 'tiny-f16');
  const run = spawnSync(m3, ['convert', '--model', path.join(fixtures, 'tiny-m3'), '--out', pack, '--dtype', 'f16'], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const r = await loadFolder(pack, '');
  assert.match(r.msg, /Ready: 32-dimensional.*folder “tiny-f16” on this computer/);
  assert.equal(r.dtype, 'f16');
  assert.equal(r.rows['model.safetensors']?.[0], 'verify', JSON.stringify(r.rows));
  assert.match(r.rows['model.safetensors'][1], /read and checked$/);
  assert.deepEqual(r.requested, []);
  assert.deepEqual(r.errors, []);
});
