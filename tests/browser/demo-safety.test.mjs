// The demo page's data safety (issue 12, point 4; on the package's hybrid index, issue 13), on the
// wasm CPU backend with the tiny fixture model: crafted index files (the package's format, and the
// previous version's v1 format, which still imports) are refused with a message naming the
// document and field, and the stored index is unchanged (also after a reload) and still searched
// quickly; a damaged store is said so and can be cleared; a full storage (CDP
// Storage.overrideQuotaForOrigin, set once for three writes) in the middle of an indexing run,
// during an import and in the middle of a re-index loses nothing, says so, and asks for
// persistent storage; the previous version's IndexedDB store moves into the index (records its
// checks or the index's refuse are named); the Content-Security-Policy comes as an HTTP header on
// the page and the worker (the worker's header is what blocks a download from another host); a
// ?model= link to another site asks before anything is fetched from it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { serve, launch, requireFixtures, root } from './server.mjs';
import { policy } from '../../www/csp.js';
import { quotaAbove as lowerQuota, quotaHolds as waitQuotaHolds } from './quota.mjs';

const PAGE = '/www/?model=/fixtures/tiny-m3/&device=cpu';
const artifacts = path.join(root, 'test-results');
let main, other, open, browser, context, page, cdp, origin, baseline;
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

/** What the current index holds in IndexedDB: its name, its revision (one more per committed
 *  write) and every record key of each store. */
const stored = (p = page) => p.evaluate(() => new Promise((resolve, reject) => {
  const name = `bge-m3-index:${localStorage.getItem('bge-m3-demo:index') || 'bge-m3-demo'}`;
  const req = indexedDB.open(name);
  req.onsuccess = () => {
    const d = req.result, stores = [...d.objectStoreNames], tx = d.transaction(stores);
    const out = { name };
    for (const s of stores) tx.objectStore(s).getAllKeys().onsuccess = e => { out[s] = e.target.result.map(k => [k].flat().join('/')).sort(); };
    tx.objectStore('meta').get('rev').onsuccess = e => { out.rev = e.target.result; };
    tx.oncomplete = () => { d.close(); resolve(out); };
    tx.onerror = () => reject(tx.error);
  };
  req.onerror = () => reject(req.error);
}));
/** The demo's databases in this origin. */
const databases = (p = page) => p.evaluate(async () => (await indexedDB.databases()).map(d => d.name).filter(n => /bge-m3/.test(n)).sort());

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
const blobFile = (name, buffer) => ({ name, mimeType: 'application/octet-stream', buffer });

/** Searches and returns { hits, searchMs, wallMs }: the index's own time for the search, and the
 *  whole round trip (the query encoded too). */
async function search(q) {
  const t0 = Date.now();
  await page.fill('#query', q);
  await page.click('#search');
  await page.waitForFunction(() => document.body.dataset.searching === 'no' && document.querySelector('#results .hit'), null, { timeout: 30_000 });
  const searchMs = +(await page.getAttribute('#search-stats', 'data-total-ms'));
  return { hits: await page.$$eval('#results .hit', l => l.length), searchMs, wallMs: Date.now() - t0 };
}

/** The quota is lowered once (`quotaAbove`, the cached model included in what the origin uses) and
 *  holds for writes 31 s later (`quotaHolds`, tests/browser/quota.mjs): the suite runs two tests
 *  that write nothing in this origin meanwhile. */
let quotaLoweredAt = null;
const quotaAbove = async extra => { quotaLoweredAt = await lowerQuota(page, cdp, origin, extra); };
const quotaHolds = () => waitQuotaHolds(page, quotaLoweredAt);
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

// Index files: magic (8 bytes), u32 header length, header JSON, padding to 8, data. The package's
// format ("BGEM3HIX", pkg/src/index/format.js: array references { $a: i8|u8|u16|u32|f32, o, n })
// and the previous version's ("BGEM3IDX", www/index-file.js: { $a: f32|u32, o, n }). `craft`
// edits a parsed copy of a file and writes it back.
function parse(buf) {
  const len = buf.readUInt32LE(8);
  const base = 12 + len + ((8 - ((12 + len) % 8)) % 8);
  return { magic: buf.subarray(0, 8).toString(), header: JSON.parse(buf.subarray(12, 12 + len).toString()), data: Buffer.from(buf.subarray(base)) };
}
function build(magic, header, data) {
  const json = Buffer.from(JSON.stringify(header));
  const head = Buffer.alloc(12);
  head.write(magic);
  head.writeUInt32LE(json.length, 8);
  return Buffer.concat([head, json, Buffer.alloc((8 - ((12 + json.length) % 8)) % 8), data]);
}
function craft(file, edit) {
  const { magic, header, data } = parse(file);
  edit(header, data);
  return build(magic, header, data);
}
/** The package's file with its documents `copies` times, under new ids (each copy its own bytes). */
function copies(file, n) {
  const { magic, header, data } = parse(file);
  const shift = (v, by) => (Array.isArray(v) ? v.map(x => shift(x, by)) : v && typeof v === 'object' ? ('$a' in v ? { ...v, o: v.o + by } : Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shift(x, by)]))) : v);
  const docs = [];
  for (let c = 0; c < n; c++) docs.push(...header.docs.map(d => ({ ...shift(d, c * data.length), id: `copy-${c}-${d.id}`, meta: { ...d.meta, name: `copy ${c + 1} of ${d.meta.name}` } })));
  return build(magic, { ...header, docs }, Buffer.concat(Array(n).fill(data)));
}
const f32 = (data, ref, i, v) => data.writeFloatLE(v, ref.o + 4 * i);

/** In a page (any origin): records of `texts` as the previous version of the page stored them
 *  (f32 vectors of the tiny model, its fingerprint as that page wrote it), kept in
 *  `window.oldStore`; returns the v1 `.m3index` file of them (base64). */
async function oldRecords(p, texts) {
  return p.evaluate(async texts => {
    const { load, PROBE_TEXT } = await import('/pkg/src/index.js');
    const m = await load('/fixtures/tiny-m3/', { device: 'cpu', worker: false });
    const probe = (await m.encode(PROBE_TEXT, { sparse: false, colbert: false })).dense;
    const embs = await m.encode(texts, { colbertSpans: true });
    const fingerprint = { hiddenSize: m.hiddenSize, probe, source: '/fixtures/tiny-m3/', probeText: PROBE_TEXT, createdAt: 1 };
    await m.dispose();
    const docs = embs.map((e, i) => ({
      id: `old-${i + 1}`, name: `Old note ${i + 1}`, lang: 'en', origin: 'paste', text: texts[i], tokens: e.inputIds.length - 2, addedAt: 1000 + i,
      windows: e.windows.map(w => ({ start: w.start, end: w.end, tokenStart: w.tokenStart, tokenEnd: w.tokenEnd, inputIds: w.inputIds, dense: w.dense, sparse: { ids: w.sparse.ids, weights: w.sparse.weights }, colbert: { data: w.colbert.data, rows: w.colbert.rows, dim: w.colbert.dim }, colbertSpans: w.colbertSpans })),
    }));
    window.oldStore = { docs, fingerprint };
    // The previous version's export (its index-file.js exportIndex).
    const chunks = [];
    let offset = 0;
    const pack = v => {
      if (v instanceof Float32Array || v instanceof Uint32Array) {
        const bytes = new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
        const ref = { $a: v instanceof Float32Array ? 'f32' : 'u32', o: offset, n: v.length };
        const pad = (8 - (bytes.byteLength % 8)) % 8;
        chunks.push(bytes, new Uint8Array(pad));
        offset += bytes.byteLength + pad;
        return ref;
      }
      if (Array.isArray(v)) return v.map(pack);
      if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, pack(x)]));
      return v;
    };
    const header = pack({ format: 1, app: 'bge-m3-web demo', exportedAt: new Date().toISOString(), fingerprint, docs });
    const json = new TextEncoder().encode(JSON.stringify(header));
    const head = new Uint8Array(12);
    head.set(new TextEncoder().encode('BGEM3IDX'));
    new DataView(head.buffer).setUint32(8, json.byteLength, true);
    const bytes = new Uint8Array(await new Blob([head, json, new Uint8Array((8 - ((12 + json.byteLength) % 8)) % 8), ...chunks]).arrayBuffer());
    let bin = '';
    for (let i = 0; i < bytes.length; i += 8192) bin += String.fromCharCode(...bytes.subarray(i, i + 8192));
    return btoa(bin);
  }, texts);
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
  assert.equal(parse(baseline).magic, 'BGEM3HIX');
  assert.equal(parse(baseline).header.docs.length, 8);
});

test('crafted index files: refused whole, naming the document and field; the store is unchanged and search stays fast', { timeout: 240_000 }, async () => {
  const ids = await docIds();
  const before = await stored();
  assert.equal(before.docs.length, 8);
  const d = i => `document ${i} \\(id “[0-9a-f-]{36}”\\)`; // the file's documents are in id order
  const half = 4; // the 5th of 8 documents
  const cases = [
    ['docs-one', craft(baseline, h => { h.docs = [1]; }), /document 1 is not a document \(it is 1\)/],
    ['lanes', craft(baseline, h => { h.docs[0].tokens = []; }), new RegExp(`${d(1)}: lanes and tokens must be lists of the same length`)],
    ['scale', craft(baseline, h => { h.docs[1].lanes[0].scale = -1; }), new RegExp(`${d(2)}: windows\\[0\\]\\.scale must be a finite number from 0 \\(it is -1\\)`)],
    ['colbert-nan', craft(baseline, (h, data) => f32(data, h.docs[2].tokens[0].scales, 5, NaN)), new RegExp(`${d(3)}: windows\\[0\\]\\.colbertScales\\[5\\] must be a finite number from 0 \\(it is NaN\\)`)],
    ['wrong-dim', craft(baseline, h => { h.docs[0].lanes[0].dense.n = 16; }), new RegExp(`${d(1)}: windows\\[0\\]\\.dense holds 16 values; it must hold 32`)],
    ['not-unit', craft(baseline, (h, data) => data.fill(127, h.docs[0].lanes[0].dense.o, h.docs[0].lanes[0].dense.o + 32)), new RegExp(`${d(1)}: windows\\[0\\]\\.dense has length [\\d.]+; it must be a unit vector \\(within 0\\.02\\)`)],
    ['half-way', craft(baseline, (h, data) => data.writeUInt32LE(300000, h.docs[half].lanes[0].ids.o)), new RegExp(`${d(5)}: windows\\[0\\]\\.sparse\\.ids holds 300000 at \\[0\\]; values are below 250002`)],
    ['negative-weight', craft(baseline, (h, data) => f32(data, h.docs[0].lanes[0].weights, 0, -1)), /windows\[0\]\.sparse\.weights holds -1 at \[0\]; weights are above 0 and at most 10000/],
    ['duplicate-id', craft(baseline, h => { h.docs[7].id = h.docs[0].id; }), new RegExp(`${d(8)}: id repeats the id of an earlier document`)],
    ['text-number', craft(baseline, h => { h.docs[0].text = 42; }), new RegExp(`${d(1)}: text must be an array reference \\(it is 42\\)`)],
    ['spans', craft(baseline, (h, data) => data.fill(0xff, h.docs[0].tokens[0].spans.o, h.docs[0].tokens[0].spans.o + h.docs[0].tokens[0].spans.n)), /windows\[0\]\.spans is not \d+ coded spans/],
    ['fingerprint', craft(baseline, h => { h.fingerprint.dim = 1e9; }), /the index file: fingerprint\.dim must be a whole number from 1 to 8192 \(it is 1000000000\)/],
    ['version', craft(baseline, h => { h.version = 2; }), /the index file: version is 2; this package reads version 1/],
    ['options', craft(baseline, h => { h.options.colbert = 'fancy'; }), /the index file: options\.colbert must be int8, pooled, none \(it is "fancy"\)/],
    // Every copy points at the first document's arrays: the file claims more bytes than it holds.
    ['overlap', craft(baseline, h => { for (let i = 0; i < 6; i++) h.docs.push({ ...h.docs[0], id: `copy-${i}` }); }), /the arrays before it claim more bytes than the file holds \(overlapping arrays\)/],
    ['truncated', baseline.subarray(0, baseline.length - 1000), /reaches past the end of the file/],
    ['not-json', Buffer.concat([Buffer.from('BGEM3HIX'), Buffer.from([20, 0, 0, 0]), Buffer.from('{not json at all!!!!')]), /the file is damaged \(its header is not JSON\)/],
    ['not-an-index', Buffer.from('hello, world'), /this is not an index file \(its first bytes are neither "BGEM3HIX" nor the previous version's "BGEM3IDX"\)/],
  ];
  for (const [name, buffer, want] of cases) {
    const { text } = await importFile(blobFile(`${name}.m3index`, buffer));
    assert.match(text, new RegExp(`“${name}\\.m3index” could not be imported: `), name);
    assert.match(text, want, `${name}: ${text}`);
    assert.match(text, /Nothing was stored; the index is as it was \(8 documents\)\./, name);
    assert.equal(await page.getAttribute('#index-msg', 'class'), 'msg error', name);
  }
  // Another model's file (a different probe vector): refused as such.
  const otherModel = craft(baseline, (h, data) => { for (let i = 0; i < 32; i++) f32(data, h.fingerprint.probe, i, i === 3 ? 1 : 0); });
  const om = await importFile(blobFile('other-model.m3index', otherModel));
  assert.match(om.text, /“other-model\.m3index” was made with a different model than your current index: the file's vectors were made by another model .* Nothing was stored; the index is as it was \(8 documents\)\. Clear the index first to import it\./);
  // A file over the size limit is refused before it is read: a sparse file of 2.1 GiB.
  const huge = path.join(artifacts, 'safety-huge.m3index');
  const fd = fs.openSync(huge, 'w');
  fs.writeSync(fd, Buffer.from('BGEM3HIX'));
  fs.ftruncateSync(fd, Math.round(2.1 * 1024 ** 3));
  fs.closeSync(fd);
  try {
    const { text, ms } = await importFile(huge);
    assert.match(text, /“safety-huge\.m3index” could not be imported: the file is \d+ bytes; index files of up to 2147483647 bytes can be imported/);
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
  assert.ok(s.searchMs < 500 && s.wallMs < 15_000, `search: ${s.searchMs} ms in the index, ${s.wallMs} ms in all`);
  // The untouched file still imports (the checks do not refuse a good file): the same documents.
  const ok = await importFile(blobFile('baseline.m3index', baseline));
  assert.match(ok.text, /Imported 8 documents from “baseline\.m3index”/);
  assert.deepEqual(await docIds(), ids);
  assert.deepEqual((await stored()).docs, before.docs, 'the same documents, replaced');
  assert.deepEqual(pageErrors, []);
});

test('an index file of the previous version (v1) is converted on import; a crafted one is refused whole', { timeout: 120_000 }, async () => {
  const ids = await docIds();
  const v1 = Buffer.from(await oldRecords(page, [text(501, 60), text(502, 60), text(503, 60)]), 'base64');
  assert.equal(parse(v1).magic, 'BGEM3IDX');
  const before = await stored();
  // Its own checks (www/index-file.js), naming the document and field ...
  const nan = craft(v1, (h, data) => f32(data, h.docs[1].windows[0].colbert.data, 5, NaN));
  let r = await importFile(blobFile('old-nan.m3index', nan));
  assert.match(r.text, /“old-nan\.m3index” could not be imported: document 2 \(“Old note 2”\): windows\[0\]\.colbert\.data holds NaN at \[5\], not a finite number\. Nothing was stored; the index is as it was \(8 documents\)\./);
  // ... and the index's (a dense vector of half length passes the old checks, not the index's).
  const halfLength = craft(v1, (h, data) => { const ref = h.docs[2].windows[0].dense; for (let i = 0; i < ref.n; i++) f32(data, ref, i, data.readFloatLE(ref.o + 4 * i) / 2); });
  r = await importFile(blobFile('old-half.m3index', halfLength));
  assert.match(r.text, /“old-half\.m3index” could not be imported: items\[2\] \(id “old-3”\): embedding\.windows\[0\]\.dense has length 0\.\d+; it must be a unit vector \(within 0\.001\)\. Nothing was stored; the index is as it was \(8 documents\)\./);
  assert.deepEqual(await stored(), before);
  r = await importFile(blobFile('old.m3index', v1));
  assert.match(r.text, /Imported 3 documents from “old\.m3index” \(an index file of the previous version of this page, converted\)\./);
  assert.deepEqual(await docIds(), [...ids, 'old-1', 'old-2', 'old-3'].sort());
  assert.ok((await page.$$eval('#docs .doc-name', l => l.map(x => x.textContent))).includes('Old note 2'));
  // Searched like the others; then removed again.
  assert.equal((await search('garden bees honey')).hits, 10);
  for (const id of ['old-1', 'old-2', 'old-3']) {
    await page.click(`#docs li.doc[data-id="${id}"] .remove`);
    await page.waitForFunction(id => !document.querySelector(`#docs li.doc[data-id="${id}"]`), id);
  }
  assert.deepEqual(await docIds(), ids);
});

test('a damaged store: said so, the page stays usable; clear, and an export brings it back', { timeout: 120_000 }, async () => {
  const ids = await docIds();
  // One window's lexical record of the stored index is made unreadable.
  await page.evaluate(() => new Promise((resolve, reject) => {
    const req = indexedDB.open(`bge-m3-index:${localStorage.getItem('bge-m3-demo:index') || 'bge-m3-demo'}`);
    req.onsuccess = () => {
      const d = req.result, tx = d.transaction('lanes', 'readwrite'), lanes = tx.objectStore('lanes');
      lanes.getAllKeys().onsuccess = e => { lanes.put({ dense: 'garbage' }, e.target.result[0]); };
      tx.oncomplete = () => { d.close(); resolve(); };
      tx.onerror = () => reject(tx.error);
    };
  }));
  await reload();
  await page.waitForSelector('#damaged:not([hidden])');
  assert.match(await page.textContent('#damaged-text'), /^The stored index could not be opened: the stored index "[^"]+": document “[0-9a-f-]+” window 0 is damaged\. Its documents cannot be searched\. Clear the index/);
  assert.deepEqual(await docIds(), []);
  await page.fill('#query', 'bees');
  await page.click('#search');
  assert.match(await page.textContent('#search-msg'), /The index is empty/);
  assert.equal(await page.isDisabled('#sample'), true, 'no indexing into a damaged store');
  await page.click('#damaged-clear');
  await page.waitForSelector('#damaged', { state: 'hidden' });
  assert.match(await msg(), /The index is empty/);
  assert.deepEqual(await databases(), []);
  // An export brings it back (into a new index for the loaded model).
  assert.match((await importFile(blobFile('baseline.m3index', baseline))).text, /Imported 8 documents/);
  assert.deepEqual(await docIds(), ids);
  assert.equal((await search('bees and honey in the garden')).hits, 8);
  assert.deepEqual(pageErrors, []);
});

test('storage full, 1 of 2: the quota is lowered (it holds 31 s later: the next two tests write nothing in this origin)', async () => {
  await reload(); // a fresh page: persistent storage not asked for yet
  assert.equal(await page.evaluate(() => window.persistCalls), 0);
  // 32 short documents (the first save group) fit; the 8 long ones after them do not. The
  // import (the baseline's documents five times, under new ids) and the re-index do not either.
  await quotaAbove(250_000);
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


test('the previous versions\' stores (IndexedDB: generations; one store) move into the index once; refused records are named', { timeout: 120_000 }, async () => {
  // Another origin (the server without headers), whose databases are deleted first.
  const p = await context.newPage();
  const errors = [];
  p.on('pageerror', e => errors.push(e.message));
  await p.goto(`${open.base}/www/favicon.svg`);
  await p.evaluate(async () => {
    for (const { name } of await indexedDB.databases()) await new Promise((resolve, reject) => { const req = indexedDB.deleteDatabase(name); req.onsuccess = resolve; req.onerror = () => reject(req.error); });
  });
  const v1 = await oldRecords(p, [text(601, 60), text(602, 60), text(603, 60)]);
  // The previous version's database (db.js, version 2): the records of generation 3 are live; a
  // record of generation 7 was never committed; one record is damaged; one has a dense vector of
  // half length (its checks passed it, the index's do not).
  await p.evaluate(() => new Promise((resolve, reject) => {
    const { docs, fingerprint } = window.oldStore;
    docs[2].windows[0].dense = docs[2].windows[0].dense.map(x => x / 2);
    const req = indexedDB.open('bge-m3-demo', 2);
    req.onupgradeneeded = () => { req.result.createObjectStore('meta'); req.result.createObjectStore('records', { keyPath: ['gen', 'id'] }); };
    req.onsuccess = () => {
      const d = req.result, tx = d.transaction(['meta', 'records'], 'readwrite'), records = tx.objectStore('records'), meta = tx.objectStore('meta');
      for (const doc of docs) records.put({ ...doc, gen: 3 });
      records.put({ ...docs[0], id: 'uncommitted', name: 'Never committed', gen: 7 });
      records.put({ gen: 3, id: 'damaged', name: 'Damaged record', windows: 1 });
      meta.put([3], 'live');
      meta.put(8, 'nextGen');
      meta.put(fingerprint, 'fingerprint');
      tx.oncomplete = () => { d.close(); resolve(); };
      tx.onerror = () => reject(tx.error);
    };
    req.onerror = () => reject(req.error);
  }));
  await p.goto(`${open.base}${PAGE}`);
  await p.waitForSelector('body[data-started=yes]');
  const shown = await p.textContent('#index-msg');
  assert.match(shown, /^2 documents of the previous version of this page were moved into the new index; 2 damaged records could not be: document 1 \(“Damaged record”\): text must be text \(it is missing\); Old note 3 \(old-3\): items\[0\] \(id “old-3”\): embedding\.windows\[0\]\.dense has length 0\.\d+; it must be a unit vector/);
  assert.deepEqual(await p.$$eval('#docs li.doc', l => l.map(d => d.dataset.id)), ['old-1', 'old-2']);
  assert.deepEqual(await databases(p), ['bge-m3-index:bge-m3-demo'], 'the old database is deleted, after the add');
  // The vectors are the stored ones (int8 now): the lexical weights exactly, dense within the int8 bound.
  await p.waitForSelector('body[data-model=ready]', { timeout: 90_000 }); // the cached model loads by itself
  assert.equal(await p.getAttribute('body', 'data-mismatch'), 'no', 'the same model: the fingerprints agree');
  const check = await p.evaluate(async t => {
    const { load, openIndex } = await import('/pkg/src/index.js');
    const m = await load('/fixtures/tiny-m3/', { device: 'cpu', worker: false });
    const e = await m.encode(t, { colbertSpans: true });
    await m.dispose();
    const ix = await openIndex('bge-m3-demo', { storage: 'indexeddb' });
    const w = (await ix.getWindow('old-1', 0)).window;
    ix.close();
    let dot = 0, err = 0;
    for (let i = 0; i < w.dense.length; i++) { dot += w.dense[i] * e.dense[i]; err = Math.max(err, Math.abs(w.dense[i] - e.dense[i])); }
    return { sameSparse: JSON.stringify([...w.sparse.ids, ...w.sparse.weights]) === JSON.stringify([...e.windows[0].sparse.ids, ...e.windows[0].sparse.weights]), dot, err, spans: w.colbertSpans.length === e.windows[0].colbertSpans.length };
  }, text(601, 60));
  assert.ok(check.sameSparse && check.spans, JSON.stringify(check));
  assert.ok(check.err < 0.01 && check.dot > 0.999, `dense as stored, within int8: ${JSON.stringify(check)}`);
  await p.fill('#query', 'garden bees');
  await p.click('#search');
  await p.waitForFunction(() => document.querySelectorAll('#results .hit').length === 2);
  // Once: a reload finds nothing more to move.
  await p.reload();
  await p.waitForSelector('body[data-started=yes]');
  assert.match(await p.textContent('#index-msg'), /^2 documents restored/);
  assert.deepEqual(await databases(p), ['bge-m3-index:bge-m3-demo']);
  await p.close();
  // The first version's database (one store 'docs', all of it live), in a third origin: the
  // records from the v1 file of the same documents.
  const p3 = await context.newPage();
  p3.on('pageerror', e => errors.push(e.message));
  await p3.goto(`${other.base}/www/favicon.svg`);
  await p3.evaluate(async b64 => {
    const { readIndexFile } = await import('/www/index-file.js');
    const { fingerprint, docs } = await readIndexFile(new Blob([Uint8Array.from(atob(b64), c => c.charCodeAt(0))]));
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
  }, v1);
  await p3.goto(`${other.base}/www/?device=cpu`);
  await p3.waitForSelector('body[data-started=yes]');
  assert.match(await p3.textContent('#index-msg'), /^3 documents of the previous version of this page were moved into the new index\.$/);
  assert.deepEqual(await p3.$$eval('#docs li.doc', l => l.map(d => d.dataset.id)), ['old-1', 'old-2', 'old-3']);
  assert.deepEqual(await databases(p3), ['bge-m3-index:bge-m3-demo']);
  await p3.close();
  assert.deepEqual(errors, []);
});

test('storage full, 2 of 2: an indexing run keeps its stored save group, an import and a re-index keep nothing; the index is never lost', { timeout: 420_000 }, async () => {
  await quotaHolds();
  const before = await stored();
  const big = copies(baseline, 5);
  let afterRun;
  try {
    // 1. An indexing run: its first save group is added (one add, whole), the second is not.
    const files = [
      ...Array.from({ length: 32 }, (_, i) => txt(`short-${i + 1}.txt`, text(100 + i, 30))),
      ...Array.from({ length: 8 }, (_, i) => txt(`long-${i + 1}.txt`, text(200 + i, 800))),
    ];
    await addFiles(files);
    assert.match(await page.textContent('#indexing-label'), /^Indexing stopped after 32 of 40 documents\.$/, `the first save group was added, the second failed: ${await msg()}`);
    assert.match(await page.textContent('#indexing-stats'), /^The first 32 documents were added \(each save group is stored whole\); the other 8 were not\.$/);
    const text1 = await msg();
    assert.match(text1, /^This browser.s storage for this site is full \(the browser reports [\d.]+ [KMG]?B used of the [\d.]+ [KMG]?B it allows this site\)\. Indexing the other 8 documents stopped: nothing of it was kept; the 32 documents added before it stay in the index \(40 documents in all\)\./);
    assert.match(text1, /Free space by removing documents or the downloaded model/);
    afterRun = await stored();
    assert.equal(afterRun.rev, before.rev + 1, 'one write committed: the first save group');
    assert.equal(afterRun.docs.length, 40);
    assert.ok(before.docs.every(id => afterRun.docs.includes(id)), 'nothing of the index before was lost');
    assert.equal((await docIds()).length, 40);
    assert.equal(await page.evaluate(() => window.persistCalls), 1, 'persistent storage asked for once');
    assert.match(await page.textContent('#storage'), /persistent/i);
    // 2. An import: refused whole.
    const refusedImport = await importFile(blobFile('big.m3index', big));
    assert.match(refusedImport.text, /storage for this site is full .*The import of “big\.m3index” stopped: nothing of it was kept; the index is as it was \(40 documents\)\./);
    assert.deepEqual(await stored(), afterRun);
    // 3. A re-index (another ColBERT option): into a staging index, deleted when it fails; the
    // index stays as it was.
    await page.selectOption('#colbert-option', 'pooled');
    await page.evaluate(() => { document.querySelector('#indexing-label').textContent = ''; });
    await page.click('#colbert-reindex');
    await page.waitForFunction(() => document.body.dataset.indexing === 'no' && /stopped|Re-indexed/.test(document.querySelector('#indexing-label').textContent), null, { timeout: 150_000 });
    assert.match(await page.textContent('#indexing-label'), /^Re-indexing stopped after \d+ of 40 documents\.$/, await msg());
    console.log(`under the lowered quota: ${await page.textContent('#indexing-label')} (${await page.textContent('#storage')})`);
    assert.match(await page.textContent('#indexing-stats'), /^The index keeps its 40 documents as they were \(with ColBERT “int8”\): re-index again to change it\.$/);
    assert.match(await msg(), /storage for this site is full .*Re-indexing 40 documents stopped: nothing of it was kept; the index is as it was before \(40 documents\)\./);
    assert.deepEqual(await stored(), afterRun);
    assert.equal(await page.getAttribute('body', 'data-colbert'), 'int8');
    assert.deepEqual(await databases(), [afterRun.name], 'the staging index was deleted');
  } finally {
    await resetQuota();
  }
  await reload();
  assert.equal((await docIds()).length, 40);
  assert.deepEqual(await stored(), afterRun, 'unchanged after a reload');
  assert.equal((await search('winter ferry harbour')).hits, 10);
  // With room, the same file imports.
  const imported = await importFile(blobFile('big.m3index', big));
  assert.match(imported.text, /Imported 40 documents from “big\.m3index”/);
  assert.equal((await docIds()).length, 80);
  assert.deepEqual(pageErrors, []);
});


