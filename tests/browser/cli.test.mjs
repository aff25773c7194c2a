// `m3 encode` (native, CPU backend) and the npm package (wasm CPU backend, in Chromium) cut a
// 20,000-token text into the same windows with the same spans, and agree on every output within
// 1e-5. Needs the wasm build and the m3 binary (both made by scripts/test.sh).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serve, launch, requireFixtures, fixtures } from './server.mjs';

const m3 = path.join(process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), '.cache/bge-m3-target'), 'release/m3');
const TOL = 1e-5;

let server, base, browser, page;
before(async () => {
  requireFixtures();
  assert.ok(fs.existsSync(m3), `${m3} is missing: build it with cargo build --release --bin m3`);
  ({ server, base } = await serve());
  browser = await launch();
  page = await browser.newPage();
  await page.goto(`${base}/tests/browser/harness.html`);
});
after(async () => { await browser?.close(); server?.close(); });

const maxDiff = (a, b) => {
  assert.equal(a.length, b.length, 'lengths differ');
  return a.reduce((d, x, i) => Math.max(d, Math.abs(x - b[i])), 0);
};
const sparseDiff = (a, b) => {
  assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort(), 'the same sparse ids');
  return Math.max(0, ...Object.keys(a).map(k => Math.abs(a[k] - b[k])));
};

test('m3 encode and the package agree on a 20,000-token text: windows, spans, outputs', { timeout: 600_000 }, async () => {
  const pkg = await page.evaluate(async () => (await import('/tests/browser/pkg-harness.mjs')).longTextOutputs());
  const run = spawnSync(m3, ['encode', '--model', path.join(fixtures, 'tiny-m3'), '--window-vectors'],
    { input: JSON.stringify({ text: pkg.text }) + '\n', encoding: 'utf8', maxBuffer: 1 << 30 });
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout.trim().split('\n');
  assert.equal(lines.length, 1);
  const cli = JSON.parse(lines[0]);
  assert.ok(pkg.inputIds.length >= 20000);
  assert.deepEqual(cli.input_ids, pkg.inputIds);
  assert.equal(cli.truncated, false);
  assert.ok(pkg.windows.length >= 3, `${pkg.windows.length} windows`);
  assert.equal(cli.windows.length, pkg.windows.length);
  // The CLI counts characters (code points), the package UTF-16 units: map one onto the other.
  const codePointAt = new Map();
  let cp = 0, u = 0;
  for (const ch of pkg.text) { codePointAt.set(u, cp); u += ch.length; cp++; }
  codePointAt.set(u, cp);
  const worst = { dense: 0, sparse: 0 };
  pkg.windows.forEach((w, k) => {
    const c = cli.windows[k];
    assert.deepEqual(c.tokens, w.tokens, `window ${k}: tokens`);
    assert.deepEqual(c.span, [codePointAt.get(w.start), codePointAt.get(w.end)], `window ${k}: span`);
    worst.dense = Math.max(worst.dense, maxDiff(c.dense, w.dense));
    worst.sparse = Math.max(worst.sparse, sparseDiff(c.sparse, w.sparse));
    assert.equal(c.colbert.length, w.colbertRows, `window ${k}: colbert rows`);
  });
  worst.docDense = maxDiff(cli.dense, pkg.dense);
  worst.docSparse = sparseDiff(cli.sparse, pkg.sparse);
  worst.docColbert = maxDiff(cli.colbert.flat(), pkg.colbert);
  console.log(`${pkg.inputIds.length} tokens, ${pkg.windows.length} windows; largest differences`, worst);
  for (const [what, d] of Object.entries(worst)) assert.ok(d <= TOL, `${what} differs by ${d}`);
});
