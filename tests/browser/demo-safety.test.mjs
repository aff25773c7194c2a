// The demo page's data safety (issue 12, point 4), on the wasm CPU backend with the tiny fixture
// model: crafted `.m3index` files are refused with a message naming the document and field, and
// the stored index is unchanged (also after a reload) and still searched quickly; a damaged store
// is restored without its damaged records; a full storage (CDP Storage.overrideQuotaForOrigin) in
// the middle of an indexing run, during an import and in the middle of a re-index leaves the index
// as it was, says so, and asks for persistent storage; the Content-Security-Policy comes as an HTTP header on the page and the
// worker (the worker's header is what blocks a download from another host); a ?model= link to
// another site asks before anything is fetched from it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { serve, launch, requireFixtures, root } from './server.mjs';
import { policy } from '../../www/csp.js';

const PAGE = '/www/?model=/fixtures/tiny-m3/&device=cpu';
const artifacts = path.join(root, 'test-results');
let main, other, open, browser, context, page, cdp, origin;
const pageErrors = [];

before(async () => {
  requireFixtures();
  fs.mkdirSync(artifacts, { recursive: true });
  main = await serve();                  // the demo server: headers on
  other = await serve({ cors: true });   // "another site" (another port: another origin) with the model files
  open = await serve({ csp: false });    // the demo without its headers (the <meta> tag only)
  browser = await launch();
  context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  // Counts the page's calls of navigator.storage.persist().
  await context.addInitScript(() => {
    window.persistCalls = 0;
    const persist = navigator.storage?.persist?.bind(navigator.storage);
    if (persist) navigator.storage.persist = () => { window.persistCalls++; return persist(); };
  });
  page = await context.newPage();
  page.on('console', m => { if (m.type() === 'error') console.log('[page]', m.text()); });
  page.on('pageerror', e => pageErrors.push(e.message));
  cdp = await context.newCDPSession(page);
  origin = new URL(main.base).origin;
});
after(async () => { await browser?.close(); for (const s of [main, other, open]) s?.server.close(); });

// ── Helpers ───────────────────────────────────────────────────────────────────────────────────
const docIds = () => page.$$eval('#docs li.doc', l => l.map(d => d.dataset.id).sort());
const msg = () => page.textContent('#index-msg');

/** What IndexedDB holds: every record key, the live generations, the fingerprint's width. */
const stored = () => page.evaluate(() => new Promise((resolve, reject) => {
  const req = indexedDB.open('bge-m3-demo');
  req.onsuccess = () => {
    const d = req.result, tx = d.transaction(['records', 'meta']);
    const out = {};
    tx.objectStore('records').getAllKeys().onsuccess = e => { out.keys = e.target.result.map(k => k.join('/')).sort(); };
    tx.objectStore('meta').get('live').onsuccess = e => { out.live = e.target.result; };
    tx.objectStore('meta').get('fingerprint').onsuccess = e => { out.hiddenSize = e.target.result?.hiddenSize ?? null; };
    tx.oncomplete = () => { d.close(); resolve(out); };
    tx.onerror = () => reject(tx.error);
  };
  req.onerror = () => reject(req.error);
}));

async function reload() {
  await page.reload();
  await page.waitForSelector('body[data-started=yes]');
  await page.waitForSelector('body[data-model=ready]', { timeout: 90_000 }); // from the cache
}

/** Imports a file through the page's Import control and returns the message shown. */
async function importFile(file) {
  await page.evaluate(() => { const m = document.querySelector('#index-msg'); m.hidden = true; m.textContent = ''; });
  const t0 = Date.now();
  await page.setInputFiles('#import', file);
  await page.waitForFunction(() => document.body.dataset.importing === 'no' && !document.querySelector('#index-msg').hidden, null, { timeout: 60_000 });
  return { text: await msg(), ms: Date.now() - t0 };
}

/** Searches and returns { hits, scoreMs, wallMs }: the page's own timing of the ranking, and
 *  the whole round trip. */
async function search(q) {
  const t0 = Date.now();
  await page.fill('#query', q);
  await page.click('#search');
  await page.waitForFunction(() => document.body.dataset.searching === 'no' && document.querySelector('#results .hit'), null, { timeout: 30_000 });
  const stats = await page.textContent('#search-stats');
  const scoreMs = +stats.match(/scored in ([\d,]+) ms/)[1].replace(/,/g, '');
  return { hits: await page.$$eval('#results .hit', l => l.length), scoreMs, wallMs: Date.now() - t0 };
}

/** Sets this origin's quota `extra` bytes above what it uses now (the cached model included), and
 *  waits until IndexedDB asks for it: IndexedDB keeps the space it was last allotted for up to
 *  30 s before it asks the quota manager again (Chromium's
 *  BucketContext::kBucketSpaceCacheTimeLimit). */
async function quotaAbove(extra) {
  const { usage } = await page.evaluate(() => navigator.storage.estimate());
  await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: usage + extra });
  assert.equal((await cdp.send('Storage.getUsageAndQuota', { origin })).overrideActive, true);
  await page.waitForTimeout(31_000);
}
const resetQuota = () => cdp.send('Storage.overrideQuotaForOrigin', { origin });

/** Deterministic texts: `n` words from a small vocabulary. */
function text(seed, n) {
  const words = 'garden bees honey river stone bread winter harbour ferry library tea olive compost mountain trail lake ice starter dough flour salt water light map bridge market'.split(' ');
  let x = seed * 2654435761 % 2 ** 32;
  const out = [];
  for (let i = 0; i < n; i++) { x = (x * 1664525 + 1013904223) % 2 ** 32; out.push(words[x % words.length]); }
  return out.join(' ') + '.';
}
const txt = (name, body) => ({ name, mimeType: 'text/plain', buffer: Buffer.from(body) });

/** Adds text files through the page and waits for the indexing run to end, one way or another. */
async function addFiles(files) {
  await page.evaluate(() => { document.querySelector('#indexing-label').textContent = ''; });
  await page.setInputFiles('#pick', files);
  await page.waitForFunction(() => document.body.dataset.indexing === 'no' && /^(Indexed|Cancelled|Indexing stopped)/.test(document.querySelector('#indexing-label').textContent), null, { timeout: 150_000 })
    .catch(async e => { throw new Error(`${e.message}\nlabel: ${await page.textContent('#indexing-label')}\nmessage: ${await msg()}`); });
}

// The index file layout (www/index-file.js): magic, u32 header length, header JSON, padding to 8,
// data. `craft` edits a parsed copy of the baseline export and writes it back.
let baseline;
function parse(buf) {
  const len = buf.readUInt32LE(8);
  const base = 12 + len + ((8 - ((12 + len) % 8)) % 8);
  return { header: JSON.parse(buf.subarray(12, 12 + len).toString()), data: Buffer.from(buf.subarray(base)) };
}
function build(header, data) {
  const json = Buffer.from(JSON.stringify(header));
  const head = Buffer.alloc(12);
  head.write('BGEM3IDX');
  head.writeUInt32LE(json.length, 8);
  return Buffer.concat([head, json, Buffer.alloc((8 - ((12 + json.length) % 8)) % 8), data]);
}
function craft(edit) {
  const { header, data } = parse(baseline);
  edit(header, data);
  return build(header, data);
}

// ── Tests ─────────────────────────────────────────────────────────────────────────────────────
test('the policy comes as an HTTP header on the page and the worker, and the <meta> tag agrees', async () => {
  const page = await fetch(`${main.base}/www/`);
  assert.equal(page.headers.get('content-security-policy'), policy());
  assert.match(policy(), /connect-src 'self' https:\/\/huggingface\.co https:\/\/\*\.huggingface\.co https:\/\/\*\.hf\.co;/);
  assert.match(policy(), /frame-ancestors 'none'/);
  assert.equal(page.headers.get('referrer-policy'), 'same-origin');
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  // The worker script as the demo page asks for it (a dedicated worker's policy is its own
  // response's header: the page's <meta> tag does not reach it).
  const worker = await fetch(`${main.base}/pkg/src/worker.js`, { headers: { referer: `${main.base}/www/` } });
  assert.equal(worker.headers.get('content-security-policy'), policy());
  assert.match(worker.headers.get('content-type'), /javascript/);
  const wasm = await fetch(`${main.base}/pkg/wasm/bge_m3_web_bg.wasm`, { method: 'HEAD', headers: { referer: `${main.base}/www/` } });
  assert.equal(wasm.headers.get('content-type'), 'application/wasm');
  // The package's own test pages get a worker without the demo's policy.
  const pkgWorker = await fetch(`${main.base}/pkg/src/worker.js`, { headers: { referer: `${main.base}/tests/browser/harness.html` } });
  assert.equal(pkgWorker.headers.get('content-security-policy'), null);
  // The <meta> tag of index.html is the same policy, less what only a header can carry.
  const html = fs.readFileSync(path.join(root, 'www/index.html'), 'utf8');
  const meta = html.match(/<meta http-equiv="Content-Security-Policy" content="([^"]*)">/);
  assert.ok(meta, 'index.html has a CSP <meta> tag');
  assert.equal(meta[1], policy({ meta: true }));
  assert.ok(!meta[1].includes('frame-ancestors'));
  // docs/deploy.md gives deployers the same header (in its text and its nginx example).
  assert.equal(fs.readFileSync(path.join(root, 'docs/deploy.md'), 'utf8').split(policy()).length - 1, 2, 'docs/deploy.md quotes the policy twice');
});

test('set-up: the fixture model, eight documents, an export (the baseline for crafted files)', { timeout: 180_000 }, async () => {
  await page.goto(main.base + PAGE);
  await page.waitForSelector('body[data-started=yes]');
  assert.equal(await page.isHidden('#source-ask'), true, 'a same-origin ?model= is not asked about');
  await page.click('#load');
  await page.waitForSelector('body[data-model=ready]', { timeout: 90_000 });
  await addFiles(Array.from({ length: 8 }, (_, i) => txt(`note-${i + 1}.txt`, `Note ${i + 1}. ${text(i + 1, 150)}`)));
  assert.equal((await docIds()).length, 8);
  await page.waitForFunction(() => window.persistCalls >= 1 && /persistent/i.test(document.querySelector('#storage').textContent));
  assert.equal(await page.evaluate(() => window.persistCalls), 1, 'persistent storage is asked for once, when the index is first written');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  const file = path.join(artifacts, 'safety-baseline.m3index');
  await download.saveAs(file);
  baseline = fs.readFileSync(file);
  assert.equal(parse(baseline).header.docs.length, 8);
});

test('crafted index files: refused whole, naming the document and field; the store is unchanged and search stays fast', { timeout: 240_000 }, async () => {
  const ids = await docIds();
  const before = await stored();
  assert.equal(before.keys.length, 8);
  const f32 = (data, ref, i, v) => data.writeFloatLE(v, ref.o + 4 * i);
  const half = 4; // the 5th of 8 documents
  const cases = [
    ['docs-one', craft(h => { h.docs = [1]; }), /document 1 is not a document record \(it is 1\)/],
    ['rows', craft(h => { h.docs[0].windows[0].colbert.rows = 1e15; }), /document 1 \(“note-1\.txt”\): windows\[0\]\.colbert\.rows must be \d+, one row per token after <s> \(it is 1000000000000000\)/],
    ['nan', craft((h, d) => f32(d, h.docs[1].windows[0].colbert.data, 5, NaN)), /document 2 \(“note-2\.txt”\): windows\[0\]\.colbert\.data holds NaN at \[5\], not a finite number/],
    ['infinity', craft((h, d) => f32(d, h.docs[2].windows[0].dense, 0, Infinity)), /document 3 \(“note-3\.txt”\): windows\[0\]\.dense holds Infinity at \[0\]/],
    ['huge-value', craft((h, d) => f32(d, h.docs[0].windows[0].colbert.data, 0, 1e30)), /windows\[0\]\.colbert\.data holds 1\.00000001504\d*e\+30 at \[0\]; values are at most 1\.001 in size/],
    ['wrong-dim', craft(h => { h.docs[0].windows[0].dense.n = 16; }), /document 1 \(“note-1\.txt”\): windows\[0\]\.dense holds 16 values; it must hold 32/],
    ['colbert-dim', craft(h => { h.docs[0].windows[0].colbert.dim = 64; }), /windows\[0\]\.colbert\.dim must be 32, the width of the model's vectors \(it is 64\)/],
    ['half-way', craft((h, d) => d.writeUInt32LE(300000, h.docs[half].windows[0].sparse.ids.o)), /document 5 \(“note-5\.txt”\): windows\[0\]\.sparse\.ids holds 300000 at \[0\]; values are below 250002/],
    ['negative-weight', craft((h, d) => f32(d, h.docs[0].windows[0].sparse.weights, 0, -1)), /windows\[0\]\.sparse\.weights\[0\] must be above 0 \(it is -1\)/],
    ['duplicate-id', craft(h => { h.docs[7].id = h.docs[0].id; }), /document 8 \(“note-8\.txt”\): id repeats the id of an earlier document/],
    ['tokens-text', craft(h => { h.docs[0].tokens = '12'; }), /document 1 \(“note-1\.txt”\): tokens must be a whole number from 0 to \d+ \(it is "12"\)/],
    ['text-number', craft(h => { h.docs[0].text = 42; }), /document 1 \(“note-1\.txt”\): text must be text \(it is 42\)/],
    ['span', craft((h, d) => d.writeUInt32LE(1e9, h.docs[0].windows[0].colbertSpans.o)), /windows\[0\]\.colbertSpans holds 1000000000 at \[0\]; values are below \d+/],
    ['fingerprint', craft(h => { h.fingerprint.hiddenSize = 1e9; }), /the model fingerprint: hiddenSize must be a whole number from 1 to 8192 \(it is 1000000000\)/],
    ['format', craft(h => { h.format = 2; }), /the index file has format 2; this page reads format 1/],
    // Every copy points at the first document's arrays: the file claims more bytes than it holds.
    ['overlap', craft(h => { for (let i = 0; i < 6; i++) h.docs.push({ ...h.docs[0], id: `copy-${i}` }); }), /the arrays before it claim more bytes than the file holds \(overlapping arrays\)/],
    ['truncated', baseline.subarray(0, baseline.length - 1000), /reaches past the end of the file/],
    ['not-json', Buffer.concat([Buffer.from('BGEM3IDX'), Buffer.from([20, 0, 0, 0]), Buffer.from('{not json at all!!!!')]), /the index file is damaged \(its header is not JSON\)/],
    ['not-an-index', Buffer.from('hello, world'), /this file is not an index exported from this page/],
  ];
  for (const [name, buffer, want] of cases) {
    const { text } = await importFile({ name: `${name}.m3index`, mimeType: 'application/octet-stream', buffer });
    assert.match(text, new RegExp(`“${name}\\.m3index” could not be imported: `), name);
    assert.match(text, want, `${name}: ${text}`);
    assert.match(text, /Nothing was stored; the index is as it was \(8 documents\)\./, name);
    assert.equal(await page.getAttribute('#index-msg', 'class'), 'msg error', name);
  }
  // A file over the size limit is refused before it is read: a sparse file of 1.1 GiB.
  const huge = path.join(artifacts, 'safety-huge.m3index');
  const fd = fs.openSync(huge, 'w');
  fs.writeSync(fd, Buffer.from('BGEM3IDX'));
  fs.ftruncateSync(fd, Math.round(1.1 * 1024 ** 3));
  fs.closeSync(fd);
  try {
    const { text, ms } = await importFile(huge);
    assert.match(text, /“safety-huge\.m3index” could not be imported: the file is 1\.1 GiB; index files up to 1\.0 GiB can be imported/);
    assert.ok(ms < 10_000, `refused without reading it (${ms} ms)`);
  } finally { fs.rmSync(huge, { force: true }); }
  // Nothing was written, then or after a reload; the index is searched, quickly.
  assert.deepEqual(await docIds(), ids);
  assert.deepEqual(await stored(), before);
  await reload();
  assert.deepEqual(await docIds(), ids);
  assert.deepEqual(await stored(), before);
  assert.equal(await page.isHidden('#damaged'), true);
  const s = await search('bees and honey in the garden');
  assert.equal(s.hits, 8);
  assert.ok(s.scoreMs < 500 && s.wallMs < 15_000, `search: ranked in ${s.scoreMs} ms, ${s.wallMs} ms in all`);
  // The untouched file still imports (the checks do not refuse a good file).
  const ok = await importFile({ name: 'baseline.m3index', mimeType: 'application/octet-stream', buffer: baseline });
  assert.match(ok.text, /Imported 8 documents from “baseline\.m3index”/);
  assert.deepEqual(await docIds(), ids);
  assert.equal((await stored()).keys.length, 8, 'the same documents, replaced');
  assert.deepEqual(pageErrors, []);
});

test('a damaged store: damaged records are left out and named, the rest is searched; remove, or clear', { timeout: 180_000 }, async () => {
  const ids = await docIds();
  // Two bad records beside the good ones, in the live generation: "windows: 1", and 1e15 ColBERT
  // rows (which, searched, would never finish). And a good record of a generation that was never
  // committed (what a run that died half-way leaves): never shown, deleted on the next start.
  await page.evaluate(() => new Promise((resolve, reject) => {
    const req = indexedDB.open('bge-m3-demo');
    req.onsuccess = () => {
      const d = req.result, tx = d.transaction('records', 'readwrite'), records = tx.objectStore('records');
      records.getAll().onsuccess = e => {
        const good = e.target.result[0];
        records.put({ gen: good.gen, id: 'crafted-windows', name: 'Crafted windows', windows: 1 });
        records.put({ ...good, id: 'crafted-rows', name: 'Crafted rows', windows: good.windows.map(w => ({ ...w, colbert: { ...w.colbert, rows: 1e15 } })) });
        records.put({ ...good, gen: good.gen + 1000, id: 'left-over', name: 'Left over' });
      };
      tx.oncomplete = () => { d.close(); resolve(); };
      tx.onerror = () => reject(tx.error);
    };
  }));
  await reload();
  await page.waitForSelector('#damaged:not([hidden])');
  const text = await page.textContent('#damaged-text');
  assert.match(text, /^2 stored documents are damaged and left out of the index: /);
  assert.match(text, /“Crafted windows”\): text must be text \(it is missing\)/);
  assert.match(text, /“Crafted rows”\): windows\[0\]\.colbert\.rows must be \d+/);
  assert.deepEqual(await docIds(), ids, 'the good documents are restored, and nothing that was never committed');
  for (let i = 0; (await stored()).keys.some(k => k.endsWith('/left-over')); i++) {
    assert.ok(i < 50, 'the left-over record of an uncommitted generation is deleted');
    await page.waitForTimeout(100);
  }
  assert.equal((await stored()).keys.length, 10, 'eight good records and the two damaged ones');
  const s = await search('bees and honey in the garden');
  assert.equal(s.hits, 8);
  assert.ok(s.scoreMs < 500, `ranked in ${s.scoreMs} ms`);
  await page.click('#damaged-remove');
  await page.waitForSelector('#damaged', { state: 'hidden' });
  assert.match(await msg(), /Removed 2 damaged records/);
  assert.equal((await stored()).keys.length, 8);
  await reload();
  assert.equal(await page.isHidden('#damaged'), true);
  assert.deepEqual(await docIds(), ids);
  // A damaged fingerprint: nothing can be checked; the page offers to clear (and stays usable).
  await page.evaluate(() => new Promise((resolve, reject) => {
    const req = indexedDB.open('bge-m3-demo');
    req.onsuccess = () => {
      const d = req.result, tx = d.transaction('meta', 'readwrite');
      tx.objectStore('meta').put('garbage', 'fingerprint');
      tx.oncomplete = () => { d.close(); resolve(); };
      tx.onerror = () => reject(tx.error);
    };
  }));
  await reload();
  await page.waitForSelector('#damaged:not([hidden])');
  assert.match(await page.textContent('#damaged-text'), /The stored index is damaged: its model fingerprint is missing or not an object \(it is "garbage"\)\. Its 8 documents cannot be checked or searched\./);
  assert.equal(await page.isHidden('#damaged-remove'), true);
  assert.deepEqual(await docIds(), []);
  await page.click('#damaged-clear');
  await page.waitForSelector('#damaged', { state: 'hidden' });
  assert.deepEqual((await stored()).keys, []);
  // An export brings it back.
  assert.match((await importFile({ name: 'baseline.m3index', mimeType: 'application/octet-stream', buffer: baseline })).text, /Imported 8 documents/);
  assert.deepEqual(await docIds(), ids);
  assert.deepEqual(pageErrors, []);
});

test('storage full in the middle of an indexing run: nothing of the run is kept, the message says so', { timeout: 240_000 }, async () => {
  await reload(); // a fresh page: persistent storage not asked for yet
  assert.equal(await page.evaluate(() => window.persistCalls), 0);
  const ids = await docIds();
  const before = await stored();
  // 32 short documents (the first save group, ~0.3 MB) fit; the 8 long ones after them (~1.2 MB)
  // do not.
  await quotaAbove(600_000);
  try {
    const files = [
      ...Array.from({ length: 32 }, (_, i) => txt(`short-${i + 1}.txt`, text(100 + i, 30))),
      ...Array.from({ length: 8 }, (_, i) => txt(`long-${i + 1}.txt`, text(200 + i, 800))),
    ];
    await addFiles(files);
    assert.match(await page.textContent('#indexing-label'), /^Indexing stopped after 32 of 40 documents\.$/, `the first save group was written, the second failed: ${await msg()}`);
    assert.match(await page.textContent('#indexing-stats'), /None of the 40 documents were added; the index is as it was before\./);
    const text1 = await msg();
    assert.match(text1, /This browser.s storage for this site is full \(the browser reports [\d.]+ [KMG]?B used of the [\d.]+ [KMG]?B it allows this site\)\. Indexing 40 documents stopped: nothing of it was kept; the index is as it was before \(8 documents\)\./);
    assert.match(text1, /Free space by removing documents or the downloaded model/);
    assert.deepEqual(await docIds(), ids);
    assert.deepEqual(await stored(), before, 'the staged save group was deleted');
    assert.equal(await page.evaluate(() => window.persistCalls), 1, 'persistent storage asked for once');
    assert.match(await page.textContent('#storage'), /persistent/i);
  } finally {
    await resetQuota();
  }
  await reload();
  assert.deepEqual(await docIds(), ids);
  assert.deepEqual(await stored(), before);
  assert.ok((await search('winter ferry harbour')).hits === 8);
});

test('storage full during an import: nothing of the file is kept; with room, the same file imports', { timeout: 120_000 }, async () => {
  const ids = await docIds();
  const before = await stored();
  // The baseline's documents under new ids: eight additions.
  const fresh = craft(h => { h.docs.forEach((d, i) => { d.id = `imported-${i}`; d.name = `imported ${d.name}`; }); });
  await quotaAbove(50_000);
  try {
    const { text } = await importFile({ name: 'fresh.m3index', mimeType: 'application/octet-stream', buffer: fresh });
    assert.match(text, /storage for this site is full .*The import of “fresh\.m3index” \(8 documents\) stopped: nothing of it was kept; the index is as it was before \(8 documents\)\./);
    assert.deepEqual(await docIds(), ids);
    assert.deepEqual(await stored(), before);
  } finally {
    await resetQuota();
  }
  await reload();
  assert.deepEqual(await stored(), before, 'unchanged after a reload');
  const { text } = await importFile({ name: 'fresh.m3index', mimeType: 'application/octet-stream', buffer: fresh });
  assert.match(text, /Imported 8 documents from “fresh\.m3index”/);
  assert.equal((await docIds()).length, 16);
  assert.equal((await stored()).keys.length, 16);
  assert.deepEqual(pageErrors, []);
});

test('storage full in the middle of a re-index: the old index stays whole, never two models under one fingerprint', { timeout: 300_000 }, async () => {
  await page.click('#clear-index');
  await page.waitForFunction(() => document.body.dataset.docs === '0');
  // 32 short documents, then 8 long ones (re-indexed in this order: two save groups).
  await addFiles(Array.from({ length: 32 }, (_, i) => txt(`short-${i + 1}.txt`, text(300 + i, 30))));
  await addFiles(Array.from({ length: 8 }, (_, i) => txt(`long-${i + 1}.txt`, text(400 + i, 800))));
  assert.equal((await docIds()).length, 40);
  // The index is made to look like one of a 1024-wide model (fingerprint and every vector).
  await page.evaluate(() => new Promise((resolve, reject) => {
    const req = indexedDB.open('bge-m3-demo');
    req.onsuccess = () => {
      const d = req.result, tx = d.transaction(['meta', 'records'], 'readwrite');
      const unit = (rows, dim) => { const a = new Float32Array(rows * dim); for (let r = 0; r < rows; r++) a[r * dim] = 1; return a; };
      tx.objectStore('records').openCursor().onsuccess = e => {
        const c = e.target.result;
        if (!c) return;
        const doc = c.value;
        for (const w of doc.windows) { w.dense = unit(1, 1024); w.colbert = { data: unit(w.colbert.rows, 1024), rows: w.colbert.rows, dim: 1024 }; }
        c.update(doc);
        c.continue();
      };
      tx.objectStore('meta').put({ hiddenSize: 1024, probe: new Float32Array(1024).fill(1 / 32), source: 'another model', createdAt: 0 }, 'fingerprint');
      tx.oncomplete = () => { d.close(); resolve(); };
      tx.onerror = () => reject(tx.error);
    };
  }));
  await reload();
  await page.waitForSelector('#mismatch:not([hidden])');
  const before = await stored();
  assert.equal(before.hiddenSize, 1024);
  const widths = () => page.evaluate(() => new Promise(resolve => {
    const req = indexedDB.open('bge-m3-demo');
    req.onsuccess = () => {
      const d = req.result;
      d.transaction('records').objectStore('records').getAll().onsuccess = e => { d.close(); resolve([...new Set(e.target.result.flatMap(r => r.windows.map(w => w.dense.length)))]); };
    };
  }));
  assert.deepEqual(await widths(), [1024]);
  await quotaAbove(600_000);
  try {
    await page.evaluate(() => { document.querySelector('#indexing-label').textContent = ''; });
    await page.click('#reindex');
    await page.waitForFunction(() => document.body.dataset.indexing === 'no' && /stopped|Re-indexed/.test(document.querySelector('#indexing-label').textContent), null, { timeout: 150_000 });
    assert.match(await page.textContent('#indexing-label'), /^Re-indexing stopped after 32 of 40 documents\.$/, await msg());
    assert.match(await page.textContent('#indexing-stats'), /The index keeps its 40 documents as they were \(made with the other model\): re-index again to search\./);
    assert.match(await msg(), /storage for this site is full .*Re-indexing 40 documents stopped: nothing of it was kept; the index is as it was before \(40 documents\)\./);
    assert.deepEqual(await stored(), before, 'the same records and the old fingerprint');
    assert.deepEqual(await widths(), [1024], 'no vector of the new model under the old fingerprint');
    assert.equal(await page.isVisible('#mismatch'), true, 'search stays off: the index is still the other model\'s');
  } finally {
    await resetQuota();
  }
  await reload();
  assert.deepEqual(await stored(), before);
  await page.waitForSelector('#mismatch:not([hidden])');
  // With room, the re-index completes and replaces the whole index at once.
  await page.click('#reindex');
  await page.waitForFunction(() => document.body.dataset.mismatch === 'no' && document.body.dataset.indexing === 'no', null, { timeout: 150_000 });
  assert.match(await page.textContent('#indexing-label'), /^Re-indexed 40 documents/);
  assert.deepEqual(await widths(), [32]);
  const after = await stored();
  assert.equal(after.hiddenSize, 32);
  assert.equal(after.keys.length, 40);
  assert.equal(after.live.length, 1, 'one generation: the old one is gone');
  assert.equal((await search('winter ferry harbour')).hits, 10);
  assert.deepEqual(pageErrors, []);
});

test('a ?model= link to another site asks first; the worker\'s header policy blocks the download; without the header the worker fetches', { timeout: 180_000 }, async () => {
  const foreign = `${other.base}/fixtures/tiny-m3/`;
  const link = `/www/?model=${encodeURIComponent(foreign)}&device=cpu`;
  const p2 = await context.newPage();
  const errors = [];
  p2.on('pageerror', e => errors.push(e.message));
  await p2.goto(main.base + link);
  await p2.waitForSelector('body[data-started=yes]');
  await p2.waitForSelector('#source-ask:not([hidden])');
  const ask = await p2.textContent('#source-ask-text');
  assert.ok(ask.includes(foreign), ask);
  assert.match(ask, /not from this site, and not BAAI\/bge-m3 on Hugging Face/);
  assert.match(ask, /only allows downloads from this site, huggingface\.co, \*\.huggingface\.co, \*\.hf\.co, so the browser will block 127\.0\.0\.1:\d+/);
  assert.equal(await p2.textContent('#source-ask-yes'), `Load from ${new URL(other.base).host}`);
  assert.notEqual(await p2.inputValue('#source-url'), foreign, 'the link does not choose the source by itself');
  // The fixture model is cached and was the last one loaded, yet nothing loads while the page asks.
  await p2.waitForTimeout(1500);
  assert.equal(await p2.getAttribute('body', 'data-model'), 'none');
  assert.deepEqual(other.requests, [], 'nothing fetched from the other site before an answer');
  // No: nothing is loaded.
  await p2.click('#source-ask-no');
  assert.match(await p2.textContent('#model-msg'), /Not loaded from/);
  assert.equal(await p2.isHidden('#source-ask'), true);
  // Yes: the worker tries, and its policy (the header on its script) blocks the request.
  await p2.reload();
  await p2.waitForSelector('#source-ask:not([hidden])');
  await p2.click('#source-ask-yes');
  await p2.waitForSelector('#model-msg.error', { timeout: 60_000 });
  assert.match(await p2.textContent('#model-msg'), /The browser blocked the download: this page's Content-Security-Policy allows model downloads only from this site, huggingface\.co, \*\.huggingface\.co, \*\.hf\.co, and 127\.0\.0\.1:\d+ is none of them/);
  assert.deepEqual(other.requests, [], 'the worker sent no request to the other site');
  await p2.close();
  // The same page served without the header: the <meta> tag does not govern the worker, so the
  // worker downloads from the other site. (What the header changes; and proof that the check
  // above can fail.)
  const p3 = await context.newPage();
  await p3.goto(open.base + link);
  await p3.waitForSelector('#source-ask:not([hidden])');
  await p3.click('#source-ask-yes');
  await p3.waitForSelector('body[data-model=ready]', { timeout: 90_000 });
  assert.ok(other.requests.includes('/fixtures/tiny-m3/config.json'), `the worker fetched from the other site: ${other.requests}`);
  await p3.close();
  // Hugging Face's BAAI/bge-m3 (?model=hf) is not asked about.
  const p4 = await context.newPage();
  await p4.goto(`${main.base}/www/?model=hf&device=cpu`);
  await p4.waitForSelector('body[data-started=yes]');
  assert.equal(await p4.isHidden('#source-ask'), true);
  assert.ok(await p4.isChecked('input[name=source][value=hf]'));
  await p4.close();
  assert.deepEqual(errors, []);
});

test('an index stored by the previous version of the page (one store keyed by id) is kept, in generation 0', { timeout: 60_000 }, async () => {
  // Another origin (the server without headers), whose database is deleted first.
  const p = await context.newPage();
  await p.goto(`${open.base}/www/favicon.svg`);
  await p.evaluate(async b64 => {
    await new Promise((resolve, reject) => { const req = indexedDB.deleteDatabase('bge-m3-demo'); req.onsuccess = resolve; req.onerror = () => reject(req.error); req.onblocked = () => reject(new Error('blocked')); });
    const { readIndexFile } = await import('/www/index-file.js');
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    const { fingerprint, docs } = await readIndexFile(new Blob([bytes]));
    await new Promise((resolve, reject) => {
      const req = indexedDB.open('bge-m3-demo', 1);
      req.onupgradeneeded = () => { req.result.createObjectStore('docs', { keyPath: 'id' }); req.result.createObjectStore('meta'); };
      req.onsuccess = () => {
        const d = req.result, tx = d.transaction(['docs', 'meta'], 'readwrite');
        for (const doc of docs) tx.objectStore('docs').put(doc);
        tx.objectStore('meta').put(fingerprint, 'fingerprint');
        tx.oncomplete = () => { d.close(); resolve(); };
        tx.onerror = () => reject(tx.error);
      };
      req.onerror = () => reject(req.error);
    });
  }, baseline.toString('base64'));
  await p.goto(`${open.base}/www/?device=cpu`);
  await p.waitForSelector('body[data-started=yes]');
  assert.equal(await p.$$eval('#docs li.doc', l => l.length), 8);
  assert.match(await p.textContent('#index-msg'), /8 documents restored/);
  const { keys, live, version } = await p.evaluate(() => new Promise(resolve => {
    const req = indexedDB.open('bge-m3-demo');
    req.onsuccess = () => {
      const d = req.result, tx = d.transaction(['records', 'meta']);
      const out = { version: d.version, stores: [...d.objectStoreNames] };
      tx.objectStore('records').getAllKeys().onsuccess = e => { out.keys = e.target.result; };
      tx.objectStore('meta').get('live').onsuccess = e => { out.live = e.target.result; };
      tx.oncomplete = () => { d.close(); resolve(out); };
    };
  }));
  assert.equal(version, 2);
  assert.deepEqual(live, [0]);
  assert.equal(keys.length, 8);
  assert.ok(keys.every(k => k[0] === 0));
  await p.close();
});
