// `npm pack` of pkg/ installs into a fresh Vite app, which builds and runs in headless Chromium
// (worker and wasm picked up by Vite from `new URL(..., import.meta.url)`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serve, launch, requireFixtures, root, fixtures } from './server.mjs';
import { matchesReference } from './pack-bounds.mjs';

let app, server, base, browser;
before(() => requireFixtures());
after(async () => { await browser?.close(); server?.close(); if (app) fs.rmSync(app, { recursive: true, force: true }); });

test('npm pack -> fresh Vite app -> vite build -> works in Chromium', { timeout: 600_000 }, async () => {
  app = fs.mkdtempSync(path.join(os.tmpdir(), 'm3-vite-app-'));
  const sh = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const packed = JSON.parse(sh('npm', ['pack', '--json', '--pack-destination', app], path.join(root, 'pkg')))[0];
  const names = packed.files.map(f => f.path);
  console.log(`packed ${packed.filename}: ${packed.files.length} files, ${(packed.size / 1e6).toFixed(1)} MB`);
  for (const f of ['index.d.ts', 'src/index.js', 'src/worker.js', 'src/engine.js', 'wasm/bge_m3_web.js', 'wasm/bge_m3_web_bg.wasm', 'README.md', 'package.json']) {
    assert.ok(names.includes(f), `${f} missing from the tarball`);
  }
  for (const f of ['index.html', 'main.js', 'package.json']) fs.copyFileSync(path.join(root, 'tests/vite-app', f), path.join(app, f));
  sh('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', path.join(app, packed.filename)], app);
  sh(process.execPath, [path.join(root, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn'], app);
  const assets = fs.readdirSync(path.join(app, 'dist/assets'));
  console.log('dist/assets:', assets.join(' '));
  assert.ok(assets.some(f => f.endsWith('.wasm')), 'the wasm file is emitted');
  assert.ok(assets.some(f => /worker/.test(f)), 'the worker is emitted');

  ({ server, base } = await serve({ root: path.join(app, 'dist') }));
  browser = await launch();
  const page = await browser.newPage();
  page.on('console', m => { if (m.type() === 'error') console.log('[page]', m.text()); });
  await page.goto(`${base}/`);
  await page.waitForFunction(() => window.result, null, { timeout: 300_000 });
  const r = await page.evaluate(() => window.result);
  assert.equal(r.error, undefined);
  const ref = JSON.parse(fs.readFileSync(path.join(fixtures, 'tiny-m3-reference.json'), 'utf8'));
  assert.deepEqual(r.ids, ref.items[0].input_ids);
  r.dense.forEach((v, i) => assert.ok(Math.abs(v - ref.items[0].dense[i]) < 1e-4));
  const want = ref.scores.result['colbert+sparse+dense'][0];
  assert.ok(matchesReference(Math.abs(r.scores['colbert+sparse+dense'] - want), want, 1e-4));
});
