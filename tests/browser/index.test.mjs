// The package's hybrid index on a real IndexedDB in headless Chromium, with the tiny-m3 fixture
// model's encodings: an index persists (close, reopen, a page reload: the same results); an add
// aborted before it starts or inside its IndexedDB transaction leaves nothing; a full storage
// (CDP Storage.overrideQuotaForOrigin) rejects with kind 'quota' and leaves the index as it was;
// indexes are independent by name; the fingerprint check; export / import; two instances of one
// index. Needs the wasm build (pkg/wasm) and the shared fixtures.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launch, requireFixtures } from './server.mjs';

let server, base, browser, context, page, cdp, origin;

before(async () => {
  requireFixtures();
  ({ server, base } = await serve());
  browser = await launch();
  context = await browser.newContext();
  page = await context.newPage();
  page.on('console', m => { if (m.type() === 'error') console.log('[page]', m.text()); });
  page.on('pageerror', e => console.log('[page error]', e.message));
  cdp = await context.newCDPSession(page);
  origin = new URL(base).origin;
  await page.goto(`${base}/tests/browser/harness.html`);
  const r = await run('prepare');
  console.log(`tiny-m3: ${r.windows} windows of ${r.dim} dims encoded in ${r.ms.toFixed(0)} ms (model load included)`);
  assert.ok(r.sameModel, 'the worker and the calling thread give the same model\'s fingerprint');
});
after(async () => { await browser?.close(); server?.close(); });

const run = (fn, ...args) => page.evaluate(async ([fn, args]) => (await import('/tests/browser/index-harness.mjs'))[fn](...args), [fn, args]);

test('an index persists: closed, reopened, and after a page reload the same stats and results', { timeout: 120_000 }, async () => {
  const made = await run('create', 'notes');
  console.log(`add ${made.stats.documents} documents (${made.stats.windows} windows): ${made.addMs.toFixed(0)} ms; search ${made.searchMs.toFixed(1)} ms a query`);
  assert.equal(made.stats.documents, 24);
  assert.equal(made.stats.storage, 'indexeddb');
  assert.ok(made.results.every(hits => hits.length === 8));
  assert.ok(made.results[0].every(h => h.colbert !== null && h.dense !== null && h.sparse !== null));
  const again = await run('reopen', 'notes');
  assert.deepEqual(again.results, made.results);
  assert.deepEqual(again.stats, made.stats);
  assert.deepEqual(await run('storedKeys', 'notes'), { docs: 24, texts: 24, lanes: made.stats.windows, tokens: made.stats.windows, rev: 2 });
  // A new page: the model loaded again, the index read back from IndexedDB.
  await page.reload();
  await run('prepare');
  const reloaded = await run('reopen', 'notes');
  console.log(`reopen after a reload: ${reloaded.openMs.toFixed(0)} ms`);
  assert.deepEqual(reloaded.results, made.results);
  assert.deepEqual(reloaded.stats, made.stats);
  assert.ok(reloaded.doc4.windows > 1, 'a 120-word text in windows of 64 tokens');
  assert.equal(reloaded.doc4.spans.length, 6);
});

test('abort before an add and inside its transaction: AbortError, nothing stored, the index unchanged', { timeout: 60_000 }, async () => {
  const r = await run('abortAdds', 'notes');
  assert.equal(r.beforeStart.name, 'AbortError');
  assert.equal(r.hooked, 1, 'the abort was queued when the write transaction opened');
  assert.equal(r.inTx.name, 'AbortError', JSON.stringify(r.inTx));
  assert.deepEqual(r.after, r.before);
  assert.deepEqual(r.added, { added: 24, replaced: 0 });
  assert.equal(r.finalDocs, 48);
});

test('a full storage: kind quota, the index as it was (memory and IndexedDB); with room the add goes through', { timeout: 120_000 }, async () => {
  const big = await run('createBig', 'big');
  assert.equal(big.stats.documents, 2);
  const { usage } = await page.evaluate(() => navigator.storage.estimate());
  await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: usage + 200_000 });
  assert.equal((await cdp.send('Storage.getUsageAndQuota', { origin })).overrideActive, true);
  // IndexedDB keeps the space it was last allotted for up to 30 s before it asks the quota
  // manager again (Chromium's BucketContext::kBucketSpaceCacheTimeLimit).
  await page.waitForTimeout(31_000);
  let r;
  try {
    r = await run('quotaAdd', 'big');
  } finally {
    await cdp.send('Storage.overrideQuotaForOrigin', { origin });
  }
  assert.equal(r.error.kind, 'quota', JSON.stringify(r.error));
  assert.match(r.error.message, /storage for this site is full: the write was not kept and the index is as it was/);
  assert.deepEqual(r.after, r.before);
  const ok = await run('bigAdd', 'big');
  assert.equal(ok.stats.documents, 10);
});

test('indexes by name are independent; the fingerprint is checked on open; export / import; two instances', { timeout: 60_000 }, async () => {
  const other = await run('create', 'other', { count: 5, colbert: 'pooled' });
  assert.equal(other.stats.documents, 5);
  assert.equal(other.stats.options.colbert, 'pooled');
  const notes = await run('reopen', 'notes');
  assert.equal(notes.stats.documents, 48);
  assert.equal(notes.stats.options.colbert, 'int8');
  const rm = await run('removeFrom', 'other', ['doc-0', 'doc-1'], 'notes');
  assert.deepEqual(rm.removed, { removed: 2 });
  assert.equal(rm.a.documents, 3);
  assert.equal(rm.b.documents, 48);
  const fp = await run('fingerprintChecks', 'notes');
  assert.equal(fp.other.kind, 'model', JSON.stringify(fp.other));
  assert.equal(fp.wider.kind, 'model');
  assert.equal(fp.without.name, 'none', 'an existing index opens without a fingerprint');
  assert.equal(fp.missing.kind, 'input');
  const ex = await run('exportImport', 'notes', 'copy');
  console.log(`export of ${ex.a.stats.documents} documents: ${ex.bytes} bytes`);
  assert.deepEqual(ex.imported, { added: 48, replaced: 0 });
  assert.deepEqual(ex.b.results, ex.a.results);
  assert.deepEqual({ ...ex.b.stats, name: '' }, { ...ex.a.stats, name: '' });
  const two = await run('twoInstances', 'notes');
  assert.deepEqual(two, { before: 48, afterB: 48, found: true, inHits: true, afterA: 48 });
  assert.equal(await run('remove', 'other'), true);
  assert.equal((await run('reopen', 'notes')).stats.documents, 48, 'deleting one index leaves the other');
  const gone = await page.evaluate(async () => (await indexedDB.databases()).map(d => d.name).sort());
  assert.deepEqual(gone, ['bge-m3-index:big', 'bge-m3-index:copy', 'bge-m3-index:notes']);
});
