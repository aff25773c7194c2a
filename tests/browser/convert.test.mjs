// BAAI's f32 files converted to a pack while they download (issue 11, point 3): `load(url,
// { dtype: 'f16' | 'int8' })` on a base URL without m3-pack.json, in headless Chromium on the wasm
// CPU backend. Fidelity (packs.test.mjs's bounds against FlagEmbedding's reference, and the same
// tensors and vectors as `m3 convert`'s pack of the fixture), the Cache API (the pack kept, never
// the f32 files; the second load asks for nothing; isCached), and the bad cases: a flipped byte,
// a file cut short, a dropped connection, an abort, a damaged cached file, `cache: false`, the
// Cache API refusing (quota). Needs the wasm build and the m3 binary (scripts/test.sh makes both).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { serve, launch, requireFixtures, fixtures } from './server.mjs';
import { packFloors } from './pack-bounds.mjs';
import { quotaAbove } from './quota.mjs';

const FLOOR = await packFloors();

const m3 = path.join(process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), '.cache/bge-m3-target'), 'release/m3');
const PACK_FILES = ['config.json', 'tokenizer.json', 'model.safetensors', 'colbert_linear.safetensors', 'sparse_linear.safetensors'];
const SOURCES = ['config.json', 'tokenizer.json', 'pytorch_model.bin', 'colbert_linear.pt', 'sparse_linear.pt'];
const tiny = path.join(fixtures, 'tiny-m3');
const BIN = fs.statSync(path.join(tiny, 'pytorch_model.bin')).size;
/** Texts of the reference up to this many tokens in the fidelity test (all but the 3474- and
 *  8192-token ones: those take minutes on the CPU backend; packs.test.mjs runs them on packs). */
const MAX_TOKENS = 1000;

let tmp, server, requests, mounts, base, browser, page, dropper, dropperBase;
const sha = file => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** A folder in BAAI's layout: links to tiny-m3's files, pytorch_model.bin replaced by `bin`. */
function baai(name, bin) {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  for (const f of SOURCES) {
    if (f === 'pytorch_model.bin' && bin) fs.writeFileSync(path.join(dir, f), bin);
    else fs.symlinkSync(path.join(tiny, f), path.join(dir, f));
  }
  return dir;
}

/** A server on another origin (CORS open) with tiny-m3's files whose pytorch_model.bin answers
 *  with its full Content-Length, sends half and drops the connection. */
function dropServer() {
  const s = http.createServer((req, res) => {
    const name = decodeURIComponent(new URL(req.url, 'http://x').pathname).split('/').pop();
    const headers = { 'access-control-allow-origin': '*', 'cache-control': 'no-cache' };
    if (!SOURCES.includes(name)) { res.writeHead(404, headers).end('not found'); return; }
    const bytes = fs.readFileSync(path.join(tiny, name));
    res.writeHead(200, { ...headers, 'content-type': 'application/octet-stream', 'content-length': bytes.length });
    if (name !== 'pytorch_model.bin') { res.end(bytes); return; }
    res.write(bytes.subarray(0, bytes.length >> 1), () => setTimeout(() => res.socket.destroy(), 200));
  });
  return new Promise(r => s.listen(0, '127.0.0.1', () => r(s)));
}

before(async () => {
  requireFixtures();
  assert.ok(fs.existsSync(m3), `${m3} is missing: build it with cargo build --release --bin m3`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'm3-convert-'));
  // m3 convert's packs: what the streamed conversion must equal.
  for (const [name, model, dtype] of [['int8', 'tiny-m3', 'int8'], ['f16', 'tiny-m3', 'f16'], ['h16-f16', 'tiny-m3-h16', 'f16']]) {
    const run = spawnSync(m3, ['convert', '--model', path.join(fixtures, model), '--out', path.join(tmp, name), '--dtype', dtype], { encoding: 'utf8' });
    assert.equal(run.status, 0, `m3 convert ${model} --dtype ${dtype} failed: ${run.stderr}`);
  }
  const bin = fs.readFileSync(path.join(tiny, 'pytorch_model.bin'));
  baai('good', null);
  const flipped = Buffer.from(bin);
  flipped[flipped.length >> 1] ^= 0x01; // inside a tensor's storage: only the member's CRC-32 can tell
  baai('flipped', flipped);
  baai('truncated', bin.subarray(0, Math.floor(bin.length * 0.6)));
  ({ server, requests, mounts, base } = await serve({ mounts: { '/packs/': tmp } }));
  dropper = await dropServer();
  dropperBase = `http://127.0.0.1:${dropper.address().port}/`;
  browser = await launch();
  const context = await browser.newContext();
  page = await context.newPage();
  page.on('console', m => { if (m.type() === 'error' && !/404|Failed to load resource/.test(m.text())) console.log('[page]', m.text()); });
  page.on('pageerror', e => console.log('[page error]', e.message));
  await page.goto(`${base}/tests/browser/harness.html`);
});
after(async () => {
  await browser?.close();
  server?.close();
  dropper?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** Calls the harness's `fn` on page `p` (`run`: on the shared page). */
const runOn = (p, fn, ...args) => p.evaluate(async ([fn, args]) => (await import('/tests/browser/convert-harness.mjs'))[fn](...args), [fn, args]);
const run = (fn, ...args) => runOn(page, fn, ...args);
/** `f`'s result and the paths asked for under `prefix` while it ran. */
async function requestsDuring(prefix, f) {
  const from = requests.length;
  const result = await f();
  return [result, requests.slice(from).filter(u => u.startsWith(prefix)).map(u => u.slice(prefix.length))];
}
const sum = xs => xs.reduce((a, b) => a + b, 0);
const sorted = xs => [...xs].sort();

function assertParity(r, dtype, label) {
  assert.equal(r.err, undefined, `${label}: ${JSON.stringify(r.err)}`);
  const worst = { dense: Math.min(...r.texts.map(t => t.dense)), colbert: Math.min(...r.texts.map(t => t.colbert)), sparse: Math.max(...r.texts.map(t => t.sparse)) };
  console.log(`${label}: ${r.texts.length} texts, load ${r.loadMs.toFixed(0)} ms (converted), encode ${r.encodeMs.toFixed(0)} ms; lowest dense cosine `
    + `${worst.dense.toFixed(7)}, lowest ColBERT row cosine ${worst.colbert.toFixed(7)}, largest sparse difference ${worst.sparse.toExponential(2)}; `
    + `against m3 convert's pack: max |diff| dense ${r.vsPack.dense}, sparse ${r.vsPack.sparse}, ColBERT ${r.vsPack.colbert}`);
  assert.equal(r.dtype, dtype);
  assert.equal(r.backend, 'cpu');
  assert.ok(r.texts.length >= 11, `${r.texts.length} texts`);
  assert.ok(r.phases.includes('pytorch_model.bin:convert'), r.phases.join(' '));
  r.texts.forEach((t, n) => {
    assert.ok(t.sameIds, `text ${n}: input ids differ`);
    assert.equal(t.rows, t.wantRows, `text ${n}: ColBERT rows`);
    assert.ok(t.dense >= FLOOR[dtype].dense, `text ${n} (${t.tokens} tokens): dense cosine ${t.dense} < ${FLOOR[dtype].dense}`);
    assert.ok(t.colbert >= FLOOR[dtype].colbert, `text ${n} (${t.tokens} tokens): ColBERT row cosine ${t.colbert} < ${FLOOR[dtype].colbert}`);
  });
  // The same tensors as m3 convert's pack: the same vectors, to the bit.
  assert.equal(r.vsPack.dtype, dtype);
  assert.deepEqual({ ...r.vsPack, dtype: undefined }, { dtype: undefined, dense: 0, sparse: 0, colbert: 0, sameSparseIds: true, sameRows: true });
}

// The cached downloads (in the worker) are also compared tensor by tensor with m3 convert's files;
// the others by their vectors only: converted in memory (`cache: false` on the page's thread; bytes
// on the page's thread), which must open no cache, and picked Files in the worker (cached: the test
// after the loop).
for (const [fixture, dtype, pack, reference, how] of [
  ['tiny-m3', 'int8', 'int8', 'tiny-m3-reference.json', 'cached'],
  ['tiny-m3-h16', 'f16', 'h16-f16', 'tiny-m3-h16-reference.json', 'cached'],
  ['tiny-m3', 'f16', 'f16', 'tiny-m3-reference.json', 'memory'],
  ['tiny-m3', 'int8', 'int8', 'tiny-m3-reference.json', 'files'],
  ['tiny-m3-h16', 'f16', 'h16-f16', 'tiny-m3-h16-reference.json', 'bytes'],
]) {
  const cached = how === 'cached';
  const label = { cached: 'while downloading (cached, in the worker)', memory: 'while downloading (cache: false, worker: false)',
    files: 'from picked Files (cached, in the worker)', bytes: 'from bytes (worker: false)' }[how];
  test(`${fixture} converted to ${dtype} ${label}: within the pack bounds of FlagEmbedding's reference; the same tensors and vectors as m3 convert's pack`, { timeout: 300_000 }, async () => {
    // bytes: the default cache, never opened.
    const cache = cached || how === 'files' ? `convert-${fixture}-${dtype}-${how}` : how === 'memory' ? false : undefined;
    if (cache) await run('clear', cache);
    const names = () => page.evaluate(() => caches.keys());
    const before = await names();
    const picked = how === 'files' || how === 'bytes' ? how : undefined;
    const r = await run('convertParity', { base: `/fixtures/${fixture}/`, picked, dtype, cache, worker: cached || how === 'files', reference: `/fixtures/${reference}`, pack: `/packs/${pack}/`, maxItemTokens: MAX_TOKENS });
    assertParity(r, dtype, `${fixture} -> ${dtype} (${label})`);
    if (how === 'files') await run('clear', cache);
    if (!cached) {
      assert.deepEqual(await names(), before, 'no cache opened');
      return;
    }
    const tensors = await run('compareTensors', { cache, base: `/fixtures/${fixture}/`, dtype, pack: `/packs/${pack}/` });
    for (const [name, t] of Object.entries(tensors)) {
      console.log(`  ${name}: ${t.tensors} tensors, ${t.differ.length} differ; metadata ${t.sameMetadata ? 'the same' : 'differs'}; byte order ${t.sameOrder ? 'the same' : 'differs (storage order vs sorted)'}`);
      assert.deepEqual(t.differ, [], name);
      assert.ok(t.sameMetadata, `${name}: metadata`);
      assert.ok(t.tensors > 0, name);
    }
    await run('clear', cache);
  });
}

test('the Cache API keeps the converted pack and never the f32 files; the second load asks for nothing; the manifest is m3 convert\'s but for byte order', { timeout: 300_000 }, async () => {
  const cache = 'convert-cache';
  const live = '/live/';
  mounts[live] = path.join(tmp, 'good');
  await run('clear', cache);
  const [first, firstReqs] = await requestsDuring(live, () => run('loadOnce', { base: live, dtype: 'int8', cache }));
  assert.equal(first.err, undefined, JSON.stringify(first.err));
  assert.equal(first.dtype, 'int8');
  assert.ok(first.dense0 >= FLOOR.int8.dense, `dense cosine ${first.dense0}`);
  assert.deepEqual(sorted(firstReqs), sorted(['m3-pack.json', ...SOURCES]), 'each source fetched once');
  // Progress: the heads, the encoder and tokenizer.json (minified) by phase 'convert', bytes of the
  // source, up to its size.
  assert.deepEqual(sorted(first.phases.filter(p => !p.startsWith('model:'))),
    sorted(['config.json:download', 'tokenizer.json:convert', 'colbert_linear.pt:convert', 'sparse_linear.pt:convert', 'pytorch_model.bin:convert']));
  const binEvents = first.progress.filter(([f]) => f === 'pytorch_model.bin');
  assert.ok(binEvents.every(([, , total]) => total === BIN), 'total: the source size');
  assert.ok(binEvents.every(([, loaded], i) => i === 0 || loaded >= binEvents[i - 1][1]), 'loaded grows');
  assert.equal(binEvents.at(-1)[1], BIN);

  const st = await run('cacheState', { cache, base: live, dtype: 'int8' });
  assert.ok(st.manifest, 'm3-pack.json written');
  assert.deepEqual(st.f32, Object.fromEntries(SOURCES.map(f => [f, false])), 'no f32 file cached');
  assert.ok(st.keys.every(k => k.startsWith('https://bge-m3-web.invalid/')), `only the pack's keys: ${st.keys.filter(k => !k.startsWith('https://bge-m3-web.invalid/'))}`);
  assert.equal(st.isCached, true);
  assert.equal(st.isCachedF32, false);
  const ours = JSON.parse(st.manifest), theirs = JSON.parse(fs.readFileSync(path.join(tmp, 'int8', 'm3-pack.json'), 'utf8'));
  for (const k of ['format', 'version', 'dtype', 'quantization']) assert.deepEqual(ours[k], theirs[k], k);
  assert.deepEqual(ours.source, Object.fromEntries(SOURCES.map(f => [f, sha(path.join(tiny, f))])), 'sources: the SHA-256 of each file read');
  assert.deepEqual(sorted(Object.keys(ours.files)), sorted(PACK_FILES));
  for (const f of PACK_FILES) {
    assert.equal(st.files[f].size, ours.files[f].size, `${f}: cached size`);
    assert.equal(st.files[f].record.sha256, ours.files[f].sha256, `${f}: record`);
  }
  // config.json copied, tokenizer.json minified: the same bytes as m3 convert's.
  for (const f of ['config.json', 'tokenizer.json']) assert.deepEqual(ours.files[f], theirs.files[f], `${f}: as m3 convert writes it`);
  const cachedBytes = sum(PACK_FILES.map(f => st.files[f].size));
  const f32Bytes = sum(SOURCES.map(f => fs.statSync(path.join(tiny, f)).size));

  // The second load: nothing asked for (the 404 of m3-pack.json is remembered), all from the cache.
  const [again, againReqs] = await requestsDuring(live, () => run('loadOnce', { base: live, dtype: 'int8', cache }));
  assert.equal(again.dtype, 'int8');
  assert.deepEqual(againReqs, [], 'no request at all');
  assert.deepEqual(sorted(again.phases.filter(p => !p.startsWith('model:'))), sorted(PACK_FILES.map(f => `${f}:cache`)));
  assert.equal(again.dense0, first.dense0);
  // Without dtype the same base is BAAI's f32 files, as before: the converted pack is not taken.
  const st2 = await run('cacheState', { cache, base: live, dtype: 'f16' });
  assert.equal(st2.isCached, false, 'no f16 pack converted');
  const [, , , start] = binEvents[0], [, , , end] = binEvents.at(-1);
  console.log(`cache: int8 pack ${cachedBytes} bytes (f32 files ${f32Bytes}); first load ${first.ms.toFixed(0)} ms (download + convert), second ${again.ms.toFixed(0)} ms (cache); `
    + `pytorch_model.bin downloaded, converted and cached at ${((BIN - binEvents[0][1]) / (end - start) / 1000).toFixed(1)} MB/s (${binEvents.length} progress events)`);
  assert.ok(cachedBytes < f32Bytes);
  await run('clear', cache);
});

test('bad sources: a flipped byte (CRC-32), a file cut short, a dropped connection: clear errors, nothing of the file cached, no pack marked complete', { timeout: 300_000 }, async () => {
  const cache = 'convert-bad';
  const live = '/live/';
  await run('clear', cache);
  const state = b => run('cacheState', { cache, base: b, dtype: 'int8' });
  const nothingOfTheEncoder = (st, label) => {
    assert.equal(st.manifest, null, `${label}: no m3-pack.json`);
    assert.deepEqual(st.files['model.safetensors'], { size: null, record: null }, `${label}: nothing of model.safetensors`);
    assert.equal(st.isCached, false, label);
    assert.deepEqual(Object.values(st.f32), [false, false, false, false, false], `${label}: no f32 file`);
  };

  mounts[live] = path.join(tmp, 'flipped');
  const flipped = await run('loadOnce', { base: live, dtype: 'int8', cache });
  console.log('flipped byte:', flipped.err.message);
  assert.equal(flipped.err.kind, 'format');
  assert.match(flipped.err.message, /^pytorch_model\.bin: .*CRC-32/);
  nothingOfTheEncoder(await state(live), 'flipped');

  const truncated = await run('loadOnce', { base: '/packs/truncated/', dtype: 'int8', cache });
  console.log('cut short:', truncated.err.message);
  assert.equal(truncated.err.kind, 'format');
  assert.match(truncated.err.message, /^pytorch_model\.bin: .*cut short/);
  nothingOfTheEncoder(await state('/packs/truncated/'), 'truncated');

  const dropped = await run('loadOnce', { base: dropperBase, dtype: 'int8', cache });
  console.log('dropped connection:', dropped.err.message);
  assert.equal(dropped.err.kind, 'io');
  assert.match(dropped.err.message, new RegExp(`^pytorch_model\\.bin: the download from ${dropperBase}pytorch_model\\.bin broke off after \\d+ of ${BIN} bytes`));
  nothingOfTheEncoder(await state(dropperBase), 'dropped');

  // The good files at the flipped one's URL: what was finished before the failure is kept (with its
  // record) and used; only pytorch_model.bin is fetched again.
  mounts[live] = path.join(tmp, 'good');
  const [good, goodReqs] = await requestsDuring(live, () => run('loadOnce', { base: live, dtype: 'int8', cache }));
  assert.equal(good.err, undefined, JSON.stringify(good.err));
  assert.ok(good.dense0 >= FLOOR.int8.dense);
  assert.deepEqual(sorted(goodReqs), ['m3-pack.json', 'pytorch_model.bin']);
  assert.equal((await state(live)).isCached, true);

  // Options the conversion cannot honour: before any model file is fetched.
  const [enc, encReqs] = await requestsDuring('/packs/good/', () => run('loadOnce', { base: '/packs/good/', dtype: 'f16', cache, encoderFile: 'model.safetensors' }));
  assert.equal(enc.err.kind, 'input');
  assert.match(enc.err.message, /encoderFile "model\.safetensors" cannot be converted/);
  assert.deepEqual(encReqs, ['m3-pack.json']);
  await run('clear', cache);
});

test('picked files: the converted pack is cached; the same files picked again load from the cache, touched or changed ones are converted again; bytes are never cached', { timeout: 300_000 }, async () => {
  const cache = 'convert-picked';
  await run('clear', cache);
  const good = { base: '/packs/good/', picked: 'files', dtype: 'int8', cache };
  const first = await run('loadOnce', { ...good, stamp: 1000 });
  assert.equal(first.err, undefined, JSON.stringify(first.err));
  assert.ok(first.phases.includes('pytorch_model.bin:convert'), first.phases.join(' '));
  const keys = await run('pickedKeys', cache);
  assert.ok(keys.some(k => k.endsWith('/m3-pack.json')), `a complete pack: ${keys}`);
  assert.equal(new Set(keys.map(k => k.replace(/\/[^/]*$/, ''))).size, 1, 'one folder');
  // The same files (names, sizes, modification times, contents): from the cache, the same vectors.
  const again = await run('loadOnce', { ...good, stamp: 1000 });
  assert.deepEqual(sorted(again.phases.filter(p => !p.startsWith('model:'))), sorted(PACK_FILES.map(f => `${f}:cache`)));
  assert.equal(again.dense0, first.dense0);
  // Touched since (another modification time): converted again, into a folder of its own.
  const touched = await run('loadOnce', { ...good, stamp: 2000 });
  assert.ok(touched.phases.includes('pytorch_model.bin:convert'), touched.phases.join(' '));
  assert.equal(touched.dense0, first.dense0);
  assert.equal(new Set((await run('pickedKeys', cache)).map(k => k.replace(/\/[^/]*$/, ''))).size, 2);
  // Bytes: converted in memory, nothing more in the cache.
  const n = (await run('pickedKeys', cache)).length;
  const bytes = await run('loadOnce', { ...good, picked: 'bytes', worker: false });
  assert.ok(bytes.phases.includes('pytorch_model.bin:convert'), bytes.phases.join(' '));
  assert.equal((await run('pickedKeys', cache)).length, n, 'bytes are not cached');
  await run('clear', cache);
});

test('BAAI\'s files picked or handed over as bytes: a flipped byte and a file cut short are format errors naming the file, an abort mid-conversion an AbortError; no pack is marked complete', { timeout: 300_000 }, async () => {
  const cache = 'convert-picked-bad';
  await run('clear', cache);
  const flipped = await run('loadOnce', { base: '/packs/flipped/', picked: 'files', stamp: 3000, dtype: 'int8', cache });
  console.log('picked, flipped byte:', flipped.err?.message);
  assert.equal(flipped.err?.kind, 'format');
  assert.match(flipped.err.message, /^pytorch_model\.bin: .*CRC-32/);
  const truncated = await run('loadOnce', { base: '/packs/truncated/', picked: 'bytes', dtype: 'f16', worker: false, cache });
  console.log('bytes, cut short:', truncated.err?.message);
  assert.equal(truncated.err?.kind, 'format');
  assert.match(truncated.err.message, /^pytorch_model\.bin: .*cut short/);
  for (const worker of [true, false]) {
    const aborted = await run('loadOnce', { base: '/packs/good/', picked: 'files', stamp: 4000, dtype: 'f16', worker, cache, abortOn: 'pytorch_model.bin:convert' });
    assert.equal(aborted.err?.name, 'AbortError', `worker: ${worker}`);
  }
  const keys = await run('pickedKeys', cache);
  assert.ok(!keys.some(k => k.endsWith('/m3-pack.json') || k.includes('model.safetensors')), `no pack complete, nothing of model.safetensors: ${keys}`);
  assert.ok(keys.some(k => k.endsWith('/tokenizer.json')), 'files finished before the failure are kept');
  await run('clear', cache);
});

test('abort mid-conversion: AbortError, no pack marked complete, the next load converts only what was missing; a damaged cached file is made again', { timeout: 300_000 }, async () => {
  const cache = 'convert-abort';
  const live = '/live/';
  mounts[live] = path.join(tmp, 'good');
  await run('clear', cache);
  // In the worker (load() rejects at once and ends the worker, mid-write), then on the page's
  // thread (the signal stops the conversion, which fails the cache write).
  let st;
  for (const worker of [true, false]) {
    const aborted = await run('loadOnce', { base: live, dtype: 'f16', cache, worker, abortOn: 'pytorch_model.bin:convert' });
    assert.equal(aborted.err.name, 'AbortError', `worker: ${worker}`);
    st = await run('cacheState', { cache, base: live, dtype: 'f16' });
    assert.equal(st.manifest, null);
    assert.deepEqual(st.files['model.safetensors'], { size: null, record: null }, `worker: ${worker}`);
    assert.equal(st.isCached, false);
    assert.ok(st.files['tokenizer.json'].record, 'files finished before the abort are kept');
  }

  const [next, nextReqs] = await requestsDuring(live, () => run('loadOnce', { base: live, dtype: 'f16', cache }));
  assert.equal(next.err, undefined, JSON.stringify(next.err));
  assert.ok(next.dense0 >= FLOOR.f16.dense);
  assert.deepEqual(sorted(nextReqs), ['m3-pack.json', 'pytorch_model.bin']);
  st = await run('cacheState', { cache, base: live, dtype: 'f16' });
  assert.equal(st.isCached, true);
  const manifest = st.manifest;

  // One bit of the cached model.safetensors changed (in its first bytes, where the sampled
  // fingerprint reads): the load makes that file again from pytorch_model.bin, and nothing else.
  // The first attempt to make it again is aborted: the pack is no longer complete.
  await run('damageCached', { cache, base: live, dtype: 'f16', name: 'model.safetensors', at: 100 });
  const stopped = await run('loadOnce', { base: live, dtype: 'f16', cache, worker: false, abortOn: 'pytorch_model.bin:convert' });
  assert.equal(stopped.err.name, 'AbortError');
  st = await run('cacheState', { cache, base: live, dtype: 'f16' });
  assert.equal(st.manifest, null, 'not complete while a file is made again');
  assert.equal(st.isCached, false);
  const [remade, remadeReqs] = await requestsDuring(live, () => run('loadOnce', { base: live, dtype: 'f16', cache }));
  assert.equal(remade.err, undefined, JSON.stringify(remade.err));
  assert.equal(remade.dense0, next.dense0);
  assert.deepEqual(remadeReqs, ['m3-pack.json', 'pytorch_model.bin']);
  assert.ok(remade.phases.includes('pytorch_model.bin:convert') && remade.phases.includes('tokenizer.json:cache'), remade.phases.join(' '));
  st = await run('cacheState', { cache, base: live, dtype: 'f16' });
  assert.equal(st.isCached, true);
  assert.equal(st.manifest, manifest, 'the same pack again');
  await run('clear', cache);
});

test('f32 files cached by an earlier f32 load are converted from the cache, not downloaded again', { timeout: 300_000 }, async () => {
  const cache = 'convert-from-f32';
  const live = '/live/';
  mounts[live] = path.join(tmp, 'good');
  await run('clear', cache);
  const f32 = await run('loadOnce', { base: live, cache });
  assert.equal(f32.dtype, 'f32');
  const [conv, convReqs] = await requestsDuring(live, () => run('loadOnce', { base: live, dtype: 'int8', cache }));
  assert.equal(conv.dtype, 'int8');
  assert.deepEqual(convReqs, ['m3-pack.json'], 'no model file downloaded');
  assert.ok(conv.phases.includes('pytorch_model.bin:convert'), conv.phases.join(' '));
  const st = await run('cacheState', { cache, base: live, dtype: 'int8' });
  assert.equal(st.isCached, true);
  assert.equal(st.isCachedF32, true, 'the f32 files stay as that load left them');
  await run('clear', cache);
});

test('the Cache API refusing the pack (quota): the load converts in memory instead (the dtype asked for), and nothing is marked complete', { timeout: 300_000 }, async () => {
  // In a context of its own, whose storage no earlier test wrote to: in the shared one, the caches
  // that earlier tests deleted could still count in the origin's usage (a deleted cache's bytes
  // are freed once nothing holds it), so a quota set just above that usage left room for the
  // whole pack (1 of 2 CI runs).
  const context = await browser.newContext();
  const origin = new URL(base).origin;
  const fresh = await context.newPage();
  const freshCdp = await context.newCDPSession(fresh);
  try {
    await fresh.goto(`${base}/tests/browser/harness.html`);
    const cache = 'convert-quota';
    const live = '/live/';
    mounts[live] = path.join(tmp, 'good');
    // Room for the small files, not for tokenizer.json (9.1 MB minified) nor model.safetensors (9.5 MB).
    await quotaAbove(fresh, freshCdp, origin, 1_000_000);
    const [r, reqs] = await requestsDuring(live, () => runOn(fresh, 'loadOnce', { base: live, dtype: 'int8', cache }));
    console.log(`quota: ${JSON.stringify(r.err ?? { dtype: r.dtype, dense0: r.dense0 })}; requests ${reqs.join(' ')}`);
    assert.equal(r.err, undefined, JSON.stringify(r.err));
    assert.equal(r.dtype, 'int8');
    assert.ok(r.dense0 >= FLOOR.int8.dense);
    const st = await runOn(fresh, 'cacheState', { cache, base: live, dtype: 'int8' });
    assert.equal(st.manifest, null);
    assert.equal(st.isCached, false);
    assert.equal(st.files['tokenizer.json'].size, null, 'the refused file is not kept');
    // tokenizer.json was fetched twice (refused, then made in memory); nothing else was.
    assert.deepEqual(sorted(reqs), sorted(['m3-pack.json', 'tokenizer.json', ...SOURCES]));
  } finally {
    await freshCdp.send('Storage.overrideQuotaForOrigin', { origin });
    await context.close();
  }
});
