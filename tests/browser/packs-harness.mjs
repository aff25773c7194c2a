// Runs inside the test page for tests/browser/packs.test.mjs: packs (m3 convert's f16 / int8
// folders) through the package's public API, and pkg/src/sha256.js against crypto.subtle.
// Every function returns plain data for the Node side to assert on.
import { load, clearCache, isCached } from '/pkg/src/index.js';
import { cosine, againstReference } from '/tests/browser/pack-bounds.mjs';
import { Sha256 } from '/pkg/src/sha256.js';

const grab = async f => {
  try { await f(); return { name: 'none', message: 'no error' }; } catch (e) { return { name: e?.name, message: e?.message ?? String(e), kind: e?.kind, missing: e?.missing, isError: e instanceof Error || e instanceof DOMException }; }
};
const hex = buf => [...new Uint8Array(buf)].map(b => b.toString(16).padStart(2, '0')).join('');
const randomBytes = n => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
  return b;
};

/** The incremental hash against crypto.subtle.digest: every length from 0 to 300 (55, 56, 63, 64,
 *  65 among them) and some larger ones, each fed whole, byte by byte (up to 300) and in random
 *  pieces; multi-MB buffers in pieces of 1 MiB, of 7 bytes... and random; then the throughput. */
export async function sha256Check() {
  const failures = [];
  let cases = 0;
  const lengths = [...Array(301).keys(), 511, 512, 513, 1000, 4095, 4096, 4097, 65535, 65536, 65537, 1_000_003];
  const feed = (bytes, sizes) => {
    const h = new Sha256();
    let i = 0, k = 0;
    while (i < bytes.length) { const n = Math.max(1, sizes(k++)); h.update(bytes.subarray(i, i + n)); i += n; }
    return h.digestHex();
  };
  const check = async (bytes, label, chunkings) => {
    const want = hex(await crypto.subtle.digest('SHA-256', bytes));
    for (const [name, sizes] of chunkings) {
      cases++;
      const got = sizes ? feed(bytes, sizes) : new Sha256().update(bytes).digestHex();
      if (got !== want) failures.push(`${label}, ${name}: ${got} != ${want}`);
    }
  };
  for (const n of lengths) {
    const chunkings = [['whole', null], ['random pieces', () => Math.floor(Math.random() * 130)]];
    if (n <= 300) chunkings.push(['byte by byte', () => 1]);
    await check(randomBytes(n), `${n} bytes`, chunkings);
  }
  for (const n of [3 << 20, (8 << 20) + 3]) {
    await check(randomBytes(n), `${n} bytes`, [['whole', null], ['1 MiB pieces', () => 1 << 20], ['7-byte pieces', () => 7],
      ['random pieces up to 200 KB', () => Math.floor(Math.random() * 200_000)], ['64 KiB + 1 pieces', () => 65537]]);
  }
  // Known answers (FIPS 180-4 examples), so that a shared mistake could not pass.
  const abc = new Sha256().update(new TextEncoder().encode('abc')).digestHex();
  if (abc !== 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad') failures.push(`"abc": ${abc}`);
  const empty = new Sha256().digestHex();
  if (empty !== 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855') failures.push(`"": ${empty}`);
  const h = new Sha256().update(new Uint8Array(1));
  h.digestHex();
  const afterDigest = await grab(() => h.update(new Uint8Array(1)));
  const big = randomBytes(64 << 20);
  const t = performance.now();
  const ours = new Sha256();
  for (let i = 0; i < big.length; i += 1 << 16) ours.update(big.subarray(i, i + (1 << 16)));
  ours.digestHex();
  const mbPerS = 64 * 1.048576 / ((performance.now() - t) / 1000);
  return { cases, failures, mbPerS, afterDigest };
}

/** A pack by URL against FlagEmbedding's reference of the f32 model: per text the cosine of the
 *  dense vectors and the smallest cosine of a ColBERT row with its reference row. */
export async function packParity({ base, device = 'cpu', worker = true, dtype, compute, maxItemTokens = Infinity } = {}) {
  const t0 = performance.now();
  const model = await load(base, { device, worker, dtype, compute, cache: false });
  const loadMs = performance.now() - t0;
  const ref = await (await fetch('/fixtures/tiny-m3-reference.json')).json();
  const items = ref.items.filter(i => i.input_ids.length <= maxItemTokens);
  const t1 = performance.now();
  const out = await model.encode(items.map(i => i.text), { truncate: true, batchSize: 4 });
  const encodeMs = performance.now() - t1;
  const texts = againstReference(items, out);
  const info = { dtype: model.dtype, backend: model.backend, adapter: model.adapter, compute: model.compute, kernel: model.kernel };
  await model.dispose();
  return { ...info, texts, loadMs, encodeMs };
}

const abs = p => new URL(p, location.href).href;

/** What the cache named `cache` holds for the pack at `base`: per file the cached size and the
 *  SHA-256 its record says it was checked against (null where there is no entry / no record). */
export async function cacheContents({ cache, base, names }) {
  const store = await caches.open(cache);
  const meta = url => `https://bge-m3-web.invalid/meta?url=${encodeURIComponent(url)}`;
  const out = {};
  for (const name of names) {
    const url = abs(base + name);
    const hit = await store.match(url);
    const rec = await store.match(meta(url));
    out[name] = { size: hit ? (await hit.blob()).size : null, sha256: rec ? (await rec.json()).sha256 ?? null : null, record: !!rec };
  }
  return out;
}

/** One load of `base` (then a short encode and dispose): the dtype, which file came from where
 *  ("file:phase"), and the load's outcome. */
export async function loadOnce({ base, cache, dtype, device = 'cpu', worker = true }) {
  const events = [];
  const t = performance.now();
  let model;
  const err = await grab(async () => { model = await load(base, { device, worker, dtype, cache, onProgress: p => events.push(p) }); });
  const ms = performance.now() - t;
  const phases = [...new Set(events.map(e => `${e.file}:${e.phase}`))];
  if (!model) return { err, phases, ms };
  const ref = await (await fetch('/fixtures/tiny-m3-reference.json')).json();
  const { dense } = await model.encode(ref.items[0].text);
  const r = { dtype: model.dtype, phases, ms, dense0: cosine(dense, ref.items[0].dense) };
  await model.dispose();
  return r;
}

export const clear = name => clearCache(name);
export const cachedNow = ({ base, cache }) => isCached(base, { cache });

/** Errors of `load` for each base (cache `cache`). */
export async function loadErrors({ bases, cache = false, dtype, worker = true }) {
  const out = {};
  for (const base of bases) out[base] = await grab(() => load(base, { device: 'cpu', cache, dtype, worker }));
  return out;
}

/** A pack as picked files (`File`s, as an <input type=file> gives them) and as an object of
 *  bytes with its manifest: each loads (dense of text 0 against the reference), and damaged or
 *  incomplete picks are refused. */
export async function pickedPack({ base }) {
  const names = ['m3-pack.json', 'config.json', 'tokenizer.json', 'model.safetensors', 'colbert_linear.safetensors', 'sparse_linear.safetensors'];
  const bytes = {};
  for (const n of names) bytes[n] = new Uint8Array(await (await fetch(base + n)).arrayBuffer());
  const files = names.map(n => new File([bytes[n]], n));
  const ref = await (await fetch('/fixtures/tiny-m3-reference.json')).json();
  const dense0 = async (source, options = {}) => {
    const phases = new Set();
    const model = await load(source, { device: 'cpu', onProgress: p => phases.add(`${p.file}:${p.phase}`), ...options });
    const { dense } = await model.encode(ref.items[0].text);
    const r = { dtype: model.dtype, cos: cosine(dense, ref.items[0].dense), phases: [...phases] };
    await model.dispose();
    return r;
  };
  const picked = await dense0(files);
  const pickedMain = await dense0(files, { worker: false });
  const object = await dense0({ manifest: bytes['m3-pack.json'], config: bytes['config.json'], tokenizer: bytes['tokenizer.json'],
    encoder: bytes['model.safetensors'], colbert: bytes['colbert_linear.safetensors'], sparse: bytes['sparse_linear.safetensors'] });
  const flipped = bytes['model.safetensors'].slice();
  flipped[flipped.length >> 1] ^= 0x01;
  const damaged = names.map(n => new File([n === 'model.safetensors' ? flipped : bytes[n]], n));
  const errors = {
    damaged: await grab(() => load(damaged, { device: 'cpu' })),
    damagedObject: await grab(() => load({ manifest: bytes['m3-pack.json'], config: bytes['config.json'], tokenizer: bytes['tokenizer.json'],
      encoder: flipped, colbert: bytes['colbert_linear.safetensors'], sparse: bytes['sparse_linear.safetensors'] }, { device: 'cpu' })),
    shortFile: await grab(() => load(names.map(n => new File([n === 'config.json' ? bytes[n].subarray(1) : bytes[n]], n)), { device: 'cpu' })),
    incomplete: await grab(() => load(files.filter(f => f.name !== 'sparse_linear.safetensors'), { device: 'cpu' })),
    dtypeMismatch: await grab(() => load(files, { device: 'cpu', dtype: 'f32' })),
    // Files in BAAI's layout (no m3-pack.json) with a pack's dtype are converted (convert.test.mjs),
    // from pytorch_model.bin: with model.safetensors in its place, refused before anything is read.
    noBin: await grab(() => load(['config.json', 'tokenizer.json', 'model.safetensors', 'colbert_linear.pt', 'sparse_linear.pt'].map(n => new File(['x'], n)), { device: 'cpu', dtype: 'int8' })),
  };
  return { picked, pickedMain, object, errors };
}
