// Packs (`m3 convert --dtype f16|int8`) through the npm package in headless Chromium: parity
// with FlagEmbedding's f32 reference on the wasm CPU backend and on WebGPU, the Cache API (pack
// sizes, no request for cached pack files, a changed manifest refetches), integrity (a flipped
// byte, wrong sizes: nothing unchecked is kept or used), manifest checks, the dtype option, picked
// files; and pkg/src/sha256.js against crypto.subtle. Needs the wasm build and the m3 binary
// (both made by scripts/test.sh); the packs are made here, from the tiny-m3 fixture.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serve, launch, requireFixtures, fixtures } from './server.mjs';
import { packFloors } from './pack-bounds.mjs';

const FLOOR = await packFloors();

const m3 = path.join(process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), '.cache/bge-m3-target'), 'release/m3');
const PACK_FILES = ['config.json', 'tokenizer.json', 'model.safetensors', 'colbert_linear.safetensors', 'sparse_linear.safetensors'];

let tmp, server, requests, mounts, base, browser, page;
const manifests = {};
const convertMs = {};

/** A copy of pack `from` as `name` (links to its files): `edit` may change the manifest (or return
 *  the text to write instead), `flip` names a file whose middle byte gets one bit flipped. */
function variant(name, from, { edit, flip } = {}) {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(path.join(tmp, from))) {
    const src = path.join(tmp, from, f);
    if (f === 'm3-pack.json' && edit) {
      const m = JSON.parse(fs.readFileSync(src, 'utf8'));
      const out = edit(m) ?? m;
      fs.writeFileSync(path.join(dir, f), typeof out === 'string' ? out : JSON.stringify(out, null, 2));
    } else if (f === flip) {
      const b = fs.readFileSync(src);
      b[b.length >> 1] ^= 0x01;
      fs.writeFileSync(path.join(dir, f), b);
    } else {
      fs.symlinkSync(src, path.join(dir, f));
    }
  }
  return dir;
}

before(async () => {
  requireFixtures();
  assert.ok(fs.existsSync(m3), `${m3} is missing: build it with cargo build --release --bin m3`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'm3-packs-'));
  for (const dtype of ['f16', 'int8']) {
    const t = Date.now();
    const run = spawnSync(m3, ['convert', '--model', path.join(fixtures, 'tiny-m3'), '--out', path.join(tmp, dtype), '--dtype', dtype], { encoding: 'utf8' });
    convertMs[dtype] = Date.now() - t;
    assert.equal(run.status, 0, `m3 convert --dtype ${dtype} failed: ${run.stderr}`);
    manifests[dtype] = JSON.parse(fs.readFileSync(path.join(tmp, dtype, 'm3-pack.json'), 'utf8'));
    assert.deepEqual(Object.keys(manifests[dtype].files).sort(), [...PACK_FILES].sort());
  }
  const model = m => m.files['model.safetensors'];
  variant('flipped', 'int8', { flip: 'model.safetensors' });
  variant('size-short', 'int8', { edit: m => { model(m).size -= 1; } });
  variant('size-long', 'int8', { edit: m => { model(m).size += 1; } });
  variant('bad-size', 'int8', { edit: m => { model(m).size = -1; } });
  variant('fraction-size', 'int8', { edit: m => { model(m).size = 1.5; } });
  variant('bad-hash', 'int8', { edit: m => { model(m).sha256 = model(m).sha256.toUpperCase(); } });
  variant('short-hash', 'int8', { edit: m => { model(m).sha256 = model(m).sha256.slice(1); } });
  variant('unknown-file', 'int8', { edit: m => { m.files['evil.bin'] = { size: 1, sha256: '0'.repeat(64) }; } });
  variant('missing-file', 'int8', { edit: m => { delete m.files['sparse_linear.safetensors']; } });
  variant('version-2', 'int8', { edit: m => { m.version = 2; } });
  variant('bad-dtype', 'int8', { edit: m => { m.dtype = 'int4'; } });
  variant('bad-format', 'int8', { edit: m => { m.format = 'something-else'; } });
  variant('not-json', 'int8', { edit: () => '{"format": "bge-m3-pack", ' });
  ({ server, requests, mounts, base } = await serve({ mounts: { '/packs/': tmp } }));
  browser = await launch();
  page = await browser.newPage();
  page.on('console', m => { if (m.type() === 'error') console.log('[page]', m.text()); });
  page.on('pageerror', e => console.log('[page error]', e.message));
  await page.goto(`${base}/tests/browser/harness.html`);
});
after(async () => {
  await browser?.close();
  server?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const run = (fn, ...args) => page.evaluate(async ([fn, args]) => (await import('/tests/browser/packs-harness.mjs'))[fn](...args), [fn, args]);
/** The paths asked for under `prefix` by `f`. */
async function requestsDuring(prefix, f) {
  const from = requests.length;
  const result = await f();
  return [result, requests.slice(from).filter(u => u.startsWith(prefix)).map(u => u.slice(prefix.length))];
}
const sum = xs => xs.reduce((a, b) => a + b, 0);
const fileSize = (...p) => fs.statSync(path.join(...p)).size;
const packBytes = dtype => sum(Object.values(manifests[dtype].files).map(f => f.size));
/** BAAI's layout of the same model: the f32 files load() reads (the smaller encoder file). */
const f32Bytes = () => sum(['config.json', 'tokenizer.json', 'colbert_linear.pt', 'sparse_linear.pt'].map(f => fileSize(fixtures, 'tiny-m3', f)))
  + Math.min(fileSize(fixtures, 'tiny-m3', 'pytorch_model.bin'), fileSize(fixtures, 'tiny-m3', 'model.safetensors'));

test('sha256.js equals crypto.subtle.digest for lengths 0-300 and larger, whole and in any pieces', { timeout: 300_000 }, async () => {
  const r = await run('sha256Check');
  console.log(`${r.cases} cases; ${r.mbPerS.toFixed(0)} MB/s in 64 KiB pieces (64 MiB)`);
  assert.deepEqual(r.failures, []);
  assert.ok(r.cases > 900, `${r.cases} cases`);
  assert.match(r.afterDigest.message, /update after digest/);
});

function assertParity(r, dtype, { backend, texts, compute = 'f32' }) {
  const worst = { dense: Math.min(...r.texts.map(t => t.dense)), colbert: Math.min(...r.texts.map(t => t.colbert)), sparse: Math.max(...r.texts.map(t => t.sparse)) };
  console.log(`${dtype} pack, ${r.adapter}: ${r.texts.length} texts, load ${r.loadMs.toFixed(0)} ms, encode ${r.encodeMs.toFixed(0)} ms; `
    + `lowest dense cosine ${worst.dense.toFixed(7)}, lowest ColBERT row cosine ${worst.colbert.toFixed(7)}, largest sparse difference ${worst.sparse.toExponential(2)}`);
  assert.equal(r.dtype, dtype);
  assert.equal(r.backend, backend);
  assert.equal(r.compute, compute, `compute on ${r.adapter}`);
  assert.ok(r.texts.length >= texts, `${r.texts.length} texts`);
  r.texts.forEach((t, n) => {
    assert.ok(t.sameIds, `text ${n}: input ids differ`);
    assert.equal(t.rows, t.wantRows, `text ${n}: ColBERT rows`);
    assert.ok(t.dense >= FLOOR[dtype].dense, `text ${n} (${t.tokens} tokens): dense cosine ${t.dense} < ${FLOOR[dtype].dense}`);
    assert.ok(t.colbert >= FLOOR[dtype].colbert, `text ${n} (${t.tokens} tokens): ColBERT row cosine ${t.colbert} < ${FLOOR[dtype].colbert}`);
  });
}

for (const dtype of ['f16', 'int8']) {
  test(`${dtype} pack by URL on the wasm CPU backend, in the worker: every reference text (up to 8192 tokens)`, { timeout: 600_000 }, async () => {
    const r = await run('packParity', { base: `/packs/${dtype}/`, device: 'cpu' });
    assertParity(r, dtype, { backend: 'cpu', texts: 14 });
  });
}

// The f16 pack asks for f16 matmuls (compute: 'f16'), which an adapter with shader-f16 gives;
// SwiftShader lacks the feature, so the model falls back to f32 arithmetic and reports 'f32'. The
// int8 pack runs the default (compute: 'auto', f32 arithmetic).
for (const [dtype, worker, compute] of [['f16', true, 'f16'], ['int8', false, 'auto']]) {
  test(`${dtype} pack by URL on WebGPU (worker: ${worker}, compute: ${compute}): the reference texts of up to 100 tokens`, { timeout: 900_000 }, async () => {
    const r = await run('packParity', { base: `/packs/${dtype}/`, device: 'webgpu', worker, dtype, compute, maxItemTokens: 100 });
    const f16 = compute === 'f16' && /shader-f16/.test(r.adapter);
    assertParity(r, dtype, { backend: 'webgpu', texts: 11, compute: f16 ? 'f16' : 'f32' });
    assert.equal(r.kernel, f16 ? 'burn-f16' : 'register-packed', `kernel on ${r.adapter}`);
  });
}

test('the Cache API: a flipped byte is refused and not kept; cached pack files need no request; a changed manifest refetches what changed', { timeout: 600_000 }, async () => {
  const cache = 'm3-packs-test';
  const live = '/live/';
  const int8 = manifests.int8.files, f16 = manifests.f16.files;
  await run('clear', cache);

  // 1. One bit flipped in model.safetensors: the load fails naming the file and both hashes; the
  //    files that passed are cached, the damaged one is not (neither entry nor record).
  mounts[live] = path.join(tmp, 'flipped');
  const flippedHash = crypto.createHash('sha256').update(fs.readFileSync(path.join(tmp, 'flipped', 'model.safetensors'))).digest('hex');
  const [bad, badReqs] = await requestsDuring(live, () => run('loadOnce', { base: live, cache }));
  console.log('flipped byte:', bad.err.message);
  assert.equal(bad.err.kind, 'integrity');
  assert.match(bad.err.message, /^model\.safetensors: SHA-256 /);
  assert.ok(bad.err.message.includes(int8['model.safetensors'].sha256), 'names the expected hash');
  assert.ok(bad.err.message.includes(flippedHash), 'names the hash of the bytes received');
  assert.deepEqual(badReqs.sort(), ['m3-pack.json', ...PACK_FILES].sort());
  let held = await run('cacheContents', { cache, base: live, names: PACK_FILES });
  assert.deepEqual(held['model.safetensors'], { size: null, sha256: null, record: false }, 'nothing of the damaged file stays in the cache');
  for (const f of PACK_FILES.filter(f => f !== 'model.safetensors')) assert.deepEqual(held[f], { size: int8[f].size, sha256: int8[f].sha256, record: true }, f);

  // 2. The good int8 pack at the same URL: only model.safetensors is fetched; the model works.
  mounts[live] = path.join(tmp, 'int8');
  const [good, goodReqs] = await requestsDuring(live, () => run('loadOnce', { base: live, cache }));
  assert.equal(good.err, undefined, JSON.stringify(good.err));
  assert.equal(good.dtype, 'int8');
  assert.ok(good.dense0 >= FLOOR.int8.dense, `dense cosine ${good.dense0}`);
  assert.deepEqual(goodReqs.sort(), ['m3-pack.json', 'model.safetensors']);
  assert.ok(good.phases.includes('model.safetensors:download') && good.phases.includes('tokenizer.json:cache'), good.phases.join(' '));

  // 3. Second load: every pack file from the cache, only the manifest is asked for. The cache
  //    holds the pack's bytes: fewer than BAAI's f32 files of the same model.
  const [again, againReqs] = await requestsDuring(live, () => run('loadOnce', { base: live, cache }));
  assert.equal(again.dtype, 'int8');
  assert.deepEqual(againReqs, ['m3-pack.json'], 'no request for a cached pack file');
  assert.deepEqual(again.phases.filter(p => !p.startsWith('model:')).sort(), PACK_FILES.map(f => `${f}:cache`).sort());
  held = await run('cacheContents', { cache, base: live, names: PACK_FILES });
  for (const f of PACK_FILES) assert.deepEqual(held[f], { size: int8[f].size, sha256: int8[f].sha256, record: true }, f);
  const cachedInt8 = sum(Object.values(held).map(h => h.size));
  assert.ok(await run('cachedNow', { base: live, cache }));

  // 4. The URL now serves the f16 pack (a changed manifest): the files whose SHA-256 changed are
  //    fetched again, config.json and tokenizer.json (unchanged) come from the cache.
  mounts[live] = path.join(tmp, 'f16');
  const [changed, changedReqs] = await requestsDuring(live, () => run('loadOnce', { base: live, cache }));
  assert.equal(changed.dtype, 'f16');
  assert.ok(changed.dense0 >= FLOOR.f16.dense, `dense cosine ${changed.dense0}`);
  const differ = PACK_FILES.filter(f => f16[f].sha256 !== int8[f].sha256);
  assert.deepEqual(differ.sort(), ['colbert_linear.safetensors', 'model.safetensors', 'sparse_linear.safetensors']);
  assert.deepEqual(changedReqs.sort(), ['m3-pack.json', ...differ].sort());
  held = await run('cacheContents', { cache, base: live, names: PACK_FILES });
  for (const f of PACK_FILES) assert.deepEqual(held[f], { size: f16[f].size, sha256: f16[f].sha256, record: true }, f);
  const cachedF16 = sum(Object.values(held).map(h => h.size));

  // 5. The server no longer has the pack (HTTP 404 for m3-pack.json): the cached manifest serves,
  //    and nothing else is asked for.
  mounts[live] = path.join(tmp, 'nowhere');
  const [offline, offlineReqs] = await requestsDuring(live, () => run('loadOnce', { base: live, cache }));
  assert.equal(offline.dtype, 'f16');
  assert.deepEqual(offlineReqs, ['m3-pack.json']);
  await run('clear', cache);

  const f32 = f32Bytes();
  console.log(`cache: int8 pack ${cachedInt8} bytes, f16 pack ${cachedF16} bytes, f32 files ${f32} bytes; `
    + `load from cache ${again.ms.toFixed(0)} ms (int8), first load ${good.ms.toFixed(0)} ms (int8, model.safetensors downloaded)`);
  assert.equal(cachedInt8, packBytes('int8'));
  assert.equal(cachedF16, packBytes('f16'));
  assert.ok(cachedInt8 < cachedF16 && cachedF16 < f32, `${cachedInt8} < ${cachedF16} < ${f32}`);
});

test('manifest checks: wrong sizes and hashes, unknown or missing files, another version: clear errors, nothing unchecked kept', { timeout: 300_000 }, async () => {
  const cache = 'm3-pack-errors';
  await run('clear', cache);
  const bases = ['size-short', 'size-long', 'bad-size', 'fraction-size', 'bad-hash', 'short-hash', 'unknown-file', 'missing-file', 'version-2', 'bad-dtype', 'bad-format', 'not-json'].map(n => `/packs/${n}/`);
  const [errs, reqs] = await requestsDuring('/packs/', () => run('loadErrors', { bases, cache }));
  const [noCache] = await requestsDuring('/packs/', () => run('loadErrors', { bases: ['/packs/flipped/'], cache: false }));
  const [inPage] = await requestsDuring('/packs/', () => run('loadErrors', { bases: ['/packs/size-long/', '/packs/version-2/'], cache: false, worker: false }));
  const e = n => errs[`/packs/${n}/`];
  for (const [k, v] of Object.entries({ ...errs, ...noCache })) console.log(`${k}: [${v.kind}] ${v.message}`);
  const size = manifests.int8.files['model.safetensors'].size;
  // Wrong sizes: the download stops at the first byte past the listed size, or fails at the end.
  assert.equal(e('size-short').kind, 'integrity');
  assert.match(e('size-short').message, new RegExp(`^model\\.safetensors: more than the ${size - 1} bytes m3-pack\\.json says`));
  assert.equal(e('size-long').kind, 'integrity');
  assert.match(e('size-long').message, new RegExp(`^model\\.safetensors: ${size} bytes, but m3-pack\\.json says ${size + 1}`));
  assert.equal(noCache['/packs/flipped/'].kind, 'integrity');
  assert.match(noCache['/packs/flipped/'].message, /^model\.safetensors: SHA-256 [0-9a-f]{64}, but m3-pack\.json says [0-9a-f]{64}/);
  assert.equal(inPage['/packs/size-long/'].kind, 'integrity');
  assert.equal(inPage['/packs/version-2/'].kind, 'format');
  // A manifest that fails its checks: kind 'format', the field named, no pack file fetched.
  const formats = {
    'bad-size': /model\.safetensors: size -1 is not a whole number of bytes/,
    'fraction-size': /model\.safetensors: size 1\.5 is not a whole number of bytes/,
    'bad-hash': /model\.safetensors: sha256 "[0-9A-F]{64}" is not 64 lowercase hex digits/,
    'short-hash': /model\.safetensors: sha256 "[0-9a-f]{63}" is not 64 lowercase hex digits/,
    'unknown-file': /lists an unknown file "evil\.bin"/,
    'missing-file': /does not list sparse_linear\.safetensors/,
    'version-2': /version 2 is not supported/,
    'bad-dtype': /dtype "int4" is not one of f16, int8/,
    'bad-format': /format is "something-else", not "bge-m3-pack"/,
    'not-json': /not JSON/,
  };
  for (const [n, re] of Object.entries(formats)) {
    assert.equal(e(n).kind, 'format', `${n}: ${e(n).message}`);
    assert.match(e(n).message, /^m3-pack\.json: /);
    assert.match(e(n).message, re);
    assert.deepEqual(reqs.filter(u => u.startsWith(`${n}/`)), [`${n}/m3-pack.json`], `${n}: only the manifest is fetched`);
  }
  // Nothing of the files that failed stays in the cache.
  for (const n of ['size-short', 'size-long']) {
    const held = await run('cacheContents', { cache, base: `/packs/${n}/`, names: ['model.safetensors'] });
    assert.deepEqual(held['model.safetensors'], { size: null, sha256: null, record: false }, n);
  }
  await run('clear', cache);
});

test('the dtype option: a pack of another dtype is an input error; f32 by default (a pack dtype on BAAI files converts: convert.test.mjs)', { timeout: 300_000 }, async () => {
  const [mismatch, mismatchReqs] = await requestsDuring('/packs/', () => run('loadErrors', { bases: ['/packs/int8/'], dtype: 'f16' }));
  const [mismatchPage] = await requestsDuring('/packs/', () => run('loadErrors', { bases: ['/packs/f16/'], dtype: 'f32', worker: false }));
  const badValue = await run('loadErrors', { bases: ['/packs/int8/'], dtype: 'bf16' });
  for (const v of [mismatch, mismatchPage, badValue]) console.log(Object.values(v)[0].message);
  assert.equal(mismatch['/packs/int8/'].kind, 'input');
  assert.match(mismatch['/packs/int8/'].message, /\/packs\/int8\/ is an int8 pack, but dtype "f16" was asked for/);
  assert.deepEqual(mismatchReqs, ['int8/m3-pack.json'], 'refused before any pack file is fetched');
  assert.equal(mismatchPage['/packs/f16/'].kind, 'input');
  assert.equal(badValue['/packs/int8/'].name, 'TypeError');
  const f32 = await run('loadOnce', { base: '/fixtures/tiny-m3/', cache: false });
  assert.equal(f32.dtype, 'f32');
  assert.ok(f32.dense0 > 0.99999, `f32 dense cosine ${f32.dense0}`);
  const explicit = await run('loadOnce', { base: '/fixtures/tiny-m3/', cache: false, dtype: 'f32' });
  assert.equal(explicit.dtype, 'f32');
  const same = await run('loadOnce', { base: '/packs/int8/', cache: false, dtype: 'int8' });
  assert.equal(same.dtype, 'int8');
});

test('picked files (File objects) and an object of bytes with its manifest load a pack; damaged picks are refused', { timeout: 300_000 }, async () => {
  const r = await run('pickedPack', { base: '/packs/f16/' });
  for (const [k, v] of Object.entries(r.errors)) console.log(`${k}: [${v.kind}] ${v.message}`);
  for (const [k, v] of Object.entries({ picked: r.picked, pickedMain: r.pickedMain, object: r.object })) {
    assert.equal(v.dtype, 'f16', k);
    assert.ok(v.cos >= FLOOR.f16.dense, `${k}: dense cosine ${v.cos}`);
  }
  assert.ok(r.picked.phases.includes('model.safetensors:verify'), r.picked.phases.join(' '));
  assert.equal(r.errors.damaged.kind, 'integrity');
  assert.match(r.errors.damaged.message, new RegExp(`^model\\.safetensors: SHA-256 [0-9a-f]{64}, but m3-pack\\.json says ${manifests.f16.files['model.safetensors'].sha256}`));
  assert.equal(r.errors.damagedObject.kind, 'integrity');
  assert.equal(r.errors.shortFile.kind, 'integrity');
  assert.match(r.errors.shortFile.message, /^config\.json: \d+ bytes, but m3-pack\.json says \d+/);
  assert.match(r.errors.incomplete.message, /the picked files lack sparse_linear\.safetensors/);
  assert.equal(r.errors.dtypeMismatch.kind, 'input');
  assert.equal(r.errors.noBin.kind, 'input');
  assert.deepEqual(r.errors.noBin.missing, ['pytorch_model.bin']);
  assert.match(r.errors.noBin.message, /^the picked files lack pytorch_model\.bin: dtype "int8" converts BAAI's files/);
});

test('pack sizes and conversion times (figures for the docs)', () => {
  const f32 = f32Bytes();
  console.log(`f32 files ${f32} bytes; f16 pack ${packBytes('f16')} bytes (m3 convert ${convertMs.f16} ms); int8 pack ${packBytes('int8')} bytes (m3 convert ${convertMs.int8} ms); `
    + `tokenizer.json ${manifests.int8.files['tokenizer.json'].size} bytes in each`);
  assert.ok(packBytes('int8') < packBytes('f16') && packBytes('f16') < f32);
});
