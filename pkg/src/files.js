// Model files: from a base URL (streamed into the Cache API, read back as disk-backed Blobs),
// from local Files, or from bytes handed over by the caller; in BAAI's layout or as a pack
// (pack.js owns what a pack is; here its files are checked against m3-pack.json as they stream).
// A base URL in BAAI's layout asked for as a pack (dtype 'f16' / 'int8') is converted while it
// downloads (fromConverted), and the Cache API keeps the pack, never the f32 files; picked files
// and bytes in BAAI's layout are converted in memory (convertLocal).
import { Sha256 } from './sha256.js';
import { kindError, abortError } from './errors.js';
import { MANIFEST, MANIFEST_MAX_BYTES, PACK_FILES, PACK_SOURCES, PACK_DTYPES, parseManifest, dtypeMismatchError } from './pack.js';

/** The BAAI/bge-m3 repository on the Hugging Face hub, pinned to one commit: what the default
 *  source downloads cannot change under the package (another base URL overrides it). */
export const HF_BGE_M3 = 'https://huggingface.co/BAAI/bge-m3/resolve/5617a9f61b028005a4858fdac845db406aefb181/';
export const DEFAULT_CACHE = 'bge-m3-web';

/** What `M3.load` needs, and the BAAI/bge-m3 file names they come from. */
const ROLES = { config: 'config.json', tokenizer: 'tokenizer.json', colbert: 'colbert_linear.pt', sparse: 'sparse_linear.pt' };
const ENCODERS = ['model.safetensors', 'pytorch_model.bin'];

/** A pack file whose bytes are not those m3-pack.json lists (`kind` 'integrity'); `url` is the
 *  file's URL when it was downloaded (its cache entry is already gone). */
function integrityError(name, detail, url) {
  return kindError('integrity', `${name}: ${detail}${url ? ` (${url})` : ''}; the file was not used${url ? ' or kept' : ''}`, { url });
}

export function throwIfAborted(signal) {
  if (signal?.aborted) throw signal.reason instanceof DOMException && signal.reason.name === 'AbortError' ? signal.reason : abortError();
}

/**
 * Resolves `source` to `{ files: { config, tokenizer, encoder, colbert, sparse }, dtype, cached, urls, converted }`
 * where every file is a Blob or Uint8Array (a pack's files checked against its manifest).
 * `dtype`: 'f32' (BAAI's layout) or the pack's; `cached`: names of the files served from the
 * Cache API; `urls`: the URLs fetched or looked up, by role (and `manifest`); `converted`: the
 * files are a pack converted here from BAAI's (`urls` are then their cache keys; none for
 * picked files or bytes, converted in memory).
 * `converter`: the wasm module's PackConverter class (the instance the model will run in).
 */
export async function resolveFiles(source, { encoderFile = 'pytorch_model.bin', dtype, cache = DEFAULT_CACHE, converter, onProgress, signal } = {}) {
  source ??= HF_BGE_M3;
  if (typeof source === 'string' || source instanceof URL) {
    return fromUrl(String(source), { encoderFile, dtype, cache, converter, onProgress, signal });
  }
  if (isFileList(source)) return { cached: [], urls: {}, ...(await fromFileList(source, { dtype, cache, converter, onProgress, signal })) };
  if (typeof source === 'object') return { cached: [], urls: {}, ...(await fromObject(source, { dtype, cache, converter, onProgress, signal })) };
  throw kindError('input', 'source must be a base URL, a FileList / File[] or { config, tokenizer, encoder, colbert, sparse, manifest? }', {}, TypeError);
}

function isFileList(x) {
  return (typeof FileList !== 'undefined' && x instanceof FileList) || (Array.isArray(x) && x.every(f => f instanceof Blob));
}

/** The pack's storage type, after checking it against the `dtype` option. */
function packDtype(manifest, dtype, where) {
  if (dtype !== undefined && dtype !== manifest.dtype) throw dtypeMismatchError(dtype, manifest.dtype, where);
  return manifest.dtype;
}

/** The Cache API store `cache` (null: `cache` false, or no Cache API). */
const openStore = async cache => (cache !== false && typeof caches !== 'undefined' ? caches.open(cache) : null);

async function fromFileList(list, { dtype, cache, converter, onProgress, signal }) {
  const byName = new Map();
  for (const f of list) byName.set(String(f.webkitRelativePath || f.name).split('/').pop(), f);
  const files = {};
  if (byName.has(MANIFEST)) {
    const manifest = parseManifest(await blobText(byName.get(MANIFEST)));
    const packType = packDtype(manifest, dtype, 'the picked pack');
    const missing = Object.keys(PACK_FILES).filter(name => !byName.has(name));
    if (missing.length) throw kindError('input', `the picked files lack ${missing.join(', ')} (${MANIFEST} lists them)`, { missing });
    for (const [name, role] of Object.entries(PACK_FILES)) {
      files[role] = await verifyLocal(byName.get(name), name, manifest.files[name], onProgress, signal);
    }
    return { files, dtype: packType };
  }
  if (PACK_DTYPES.includes(dtype)) {
    return convertLocal(name => byName.get(name), { dtype, where: 'the picked files', cache, converter, onProgress, signal });
  }
  const missing = [];
  for (const [role, name] of Object.entries(ROLES)) {
    if (byName.has(name)) files[role] = byName.get(name);
    else missing.push(name);
  }
  const enc = ENCODERS.find(n => byName.has(n));
  if (enc) files.encoder = byName.get(enc);
  else missing.push('pytorch_model.bin or model.safetensors');
  if (missing.length) throw kindError('input', `the picked files lack ${missing.join(', ')} (BAAI/bge-m3 file names are needed, or a pack with its ${MANIFEST})`, { missing });
  return { files, dtype: 'f32' };
}

/** `{ config, tokenizer, encoder, colbert, sparse }`, plus `manifest` (m3-pack.json) for a pack. */
async function fromObject(source, { dtype, cache, converter, onProgress, signal }) {
  const bytes = (v, role) => {
    if (!(v instanceof Blob || v instanceof ArrayBuffer || ArrayBuffer.isView(v))) {
      throw kindError('input', `source.${role} must be a Blob, ArrayBuffer or Uint8Array`, {}, TypeError);
    }
    return v instanceof ArrayBuffer ? new Uint8Array(v) : ArrayBuffer.isView(v) && !(v instanceof Uint8Array) ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : v;
  };
  const files = {};
  for (const role of [...Object.keys(ROLES), 'encoder']) files[role] = bytes(source[role], role);
  if (source.manifest === undefined) {
    if (!PACK_DTYPES.includes(dtype)) return { files, dtype: 'f32' };
    // BAAI's files by role; the encoder must be pytorch_model.bin's bytes (the converter's input).
    const byName = new Map(Object.entries(ROLES).map(([role, name]) => [name, files[role]]));
    byName.set(PACK_SOURCES['model.safetensors'], files.encoder);
    return convertLocal(name => byName.get(name), { dtype, where: 'the source object', cache, converter, onProgress, signal });
  }
  const m = bytes(source.manifest, 'manifest');
  const manifest = parseManifest(await blobText(m instanceof Blob ? m : new Blob([m])));
  const packType = packDtype(manifest, dtype, 'the source object');
  for (const [name, role] of Object.entries(PACK_FILES)) {
    files[role] = await verifyLocal(files[role], name, manifest.files[name], onProgress, signal);
  }
  return { files, dtype: packType };
}

/** A manifest file's text, refused past MANIFEST_MAX_BYTES. */
async function blobText(blob) {
  if (blob.size > MANIFEST_MAX_BYTES) throw kindError('format', `${MANIFEST}: ${blob.size} bytes, more than a manifest has`);
  return blob.text();
}

/** Checks a local pack file (Blob or bytes) against its manifest entry: the size first, then
 *  the SHA-256 of one read through it. Returns the file unchanged. */
async function verifyLocal(file, name, want, onProgress, signal) {
  const size = file instanceof Blob ? file.size : file.byteLength;
  if (size !== want.size) throw integrityError(name, `${size} bytes, but ${MANIFEST} says ${want.size}`);
  const hash = new Sha256();
  if (file instanceof Blob) {
    const reader = file.stream().getReader();
    let loaded = 0, last = 0;
    for (;;) {
      throwIfAborted(signal);
      const { done, value } = await reader.read();
      if (done) break;
      hash.update(value);
      loaded += value.byteLength;
      const now = Date.now();
      if (now - last > 100) { last = now; onProgress?.({ file: name, phase: 'verify', loaded, total: size }); }
    }
  } else {
    hash.update(file);
  }
  const got = hash.digestHex();
  if (got !== want.sha256) throw integrityError(name, `SHA-256 ${got}, but ${MANIFEST} says ${want.sha256}`);
  onProgress?.({ file: name, phase: 'verify', loaded: size, total: size });
  return file;
}

async function fromUrl(base, { encoderFile, dtype, cache, converter, onProgress, signal }) {
  if (!ENCODERS.includes(encoderFile)) throw kindError('input', `encoderFile must be ${ENCODERS.join(' or ')}`, {}, TypeError);
  base = new URL(base, globalThis.location?.href).href; // relative to the page
  if (!base.endsWith('/')) base += '/';
  const store = await openStore(cache);
  const convert = PACK_DTYPES.includes(dtype);
  const job = { base, dtype, encoderFile, store, converter, onProgress, signal };
  // Converted here before, from a base whose m3-pack.json was a 404 then (remembered): loaded
  // from the cache without any request, as a cached BAAI-layout model is.
  if (convert && store && (await savedRecord(store, new URL(MANIFEST, base).href))?.absent && (await convertedManifest(store, convertedBase(base, dtype), dtype))) {
    return fromConverted(job);
  }
  const files = {}, urls = {}, cached = [];
  const pack = await findManifest(base, store, dtype, signal);
  if (!pack.manifest && convert) return fromConverted(job);
  urls.manifest = pack.url;
  let names, expect = {}, type;
  if (pack.manifest) {
    type = packDtype(pack.manifest, dtype, base);
    names = Object.fromEntries(Object.entries(PACK_FILES).map(([name, role]) => [role, name]));
    for (const [name, role] of Object.entries(PACK_FILES)) expect[role] = pack.manifest.files[name];
  } else {
    type = 'f32'; // no pack, and none asked for (a pack's dtype went to fromConverted above)
    names = { ...ROLES, encoder: encoderFile };
  }
  // Small files first: a wrong URL fails before the 2 GB download starts.
  for (const role of ['config', 'tokenizer', 'colbert', 'sparse', 'encoder']) {
    throwIfAborted(signal);
    const name = names[role];
    const url = new URL(name, base).href;
    urls[role] = url;
    const got = await fetchFile(url, name, store, onProgress, signal, expect[role]);
    files[role] = got.blob;
    if (got.cached) cached.push(name);
  }
  return { files, dtype: type, cached, urls };
}

/**
 * Whether `base` is a pack: `{ url, manifest }` (parsed and checked) or `{ url, manifest: null }`.
 * A pack's m3-pack.json is fetched on every load (1-2 KB), so that a changed pack is seen; its
 * copy in the cache (the record under metaKey) serves when the server cannot be reached. An HTTP
 * 404/410 is remembered as "no pack here", and not asked again unless a pack's dtype is asked
 * for: a cached BAAI-layout model loads without a request. A page served instead of the file
 * (an HTML fallback) is no manifest; a JSON manifest that fails the checks is an error.
 */
async function findManifest(base, store, dtype, signal) {
  const url = new URL(MANIFEST, base).href;
  const saved = store ? await savedRecord(store, url) : null;
  if (saved?.absent && !PACK_DTYPES.includes(dtype)) return { url, manifest: null };
  let resp;
  try {
    resp = await fetch(url, { signal, cache: 'no-cache' });
  } catch (e) {
    if (signal?.aborted || e?.name === 'AbortError') throw abortError();
  }
  if (resp?.ok && !/text\/html/i.test(resp.headers.get('content-type') ?? '')) {
    const text = await readCapped(resp, signal);
    const manifest = parseManifest(text);
    if (store) await store.put(metaKey(url), Response.json({ url, manifest: text, savedAt: Date.now() }));
    return { url, manifest };
  }
  await resp?.body?.cancel().catch(() => {});
  if (saved?.manifest) return { url, manifest: parseManifest(saved.manifest) };
  if (store && (resp?.status === 404 || resp?.status === 410)) {
    await store.put(metaKey(url), Response.json({ url, absent: true, status: resp.status, savedAt: Date.now() }));
  }
  return { url, manifest: null };
}

/** A manifest response's text, refused past MANIFEST_MAX_BYTES without reading the rest. */
async function readCapped(resp, signal) {
  const tooBig = () => kindError('format', `${MANIFEST}: more than ${MANIFEST_MAX_BYTES} bytes, more than a manifest has`);
  if (Number(resp.headers.get('content-length')) > MANIFEST_MAX_BYTES) { await resp.body?.cancel().catch(() => {}); throw tooBig(); }
  const reader = resp.body.getReader();
  const parts = [];
  let n = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.byteLength;
      if (n > MANIFEST_MAX_BYTES) { await reader.cancel().catch(() => {}); throw tooBig(); }
      parts.push(value);
    }
  } catch (e) {
    if (signal?.aborted || e?.name === 'AbortError') throw abortError();
    throw e;
  }
  return new TextDecoder().decode(await new Blob(parts).arrayBuffer());
}

/** Drops the cached copies of `urls` (after a cached file failed to load). */
export async function evict(cacheName, urls) {
  if (cacheName === false || typeof caches === 'undefined') return;
  const store = await caches.open(cacheName);
  for (const url of urls) {
    await store.delete(url);
    await store.delete(metaKey(url));
  }
}

/** Whether every file `load(base, { encoderFile, dtype })` needs is in the Cache API (then loading
 *  downloads no model file; a pack's m3-pack.json is still asked for). A pack is recognised by
 *  the manifest cached by an earlier load, and its files must have been stored for the SHA-256s
 *  it lists (and be of `dtype`, when given). Without one, `dtype` 'f16' / 'int8' asks for the pack
 *  converted from BAAI's files at `base`: complete (its m3-pack.json written) with every file
 *  stored for the SHA-256 it lists. Otherwise only presence is checked here; `load` still
 *  verifies each copy. */
export async function isCached(base = HF_BGE_M3, { encoderFile = 'pytorch_model.bin', cache = DEFAULT_CACHE, dtype } = {}) {
  if (typeof caches === 'undefined' || cache === false) return false;
  try {
    base = new URL(base, globalThis.location?.href).href;
    if (!base.endsWith('/')) base += '/';
    const store = await caches.open(cache);
    const saved = await savedRecord(store, new URL(MANIFEST, base).href);
    if (saved?.manifest) {
      const manifest = parseManifest(saved.manifest);
      return (dtype === undefined || dtype === manifest.dtype) && (await storedAsListed(store, base, manifest));
    }
    if (PACK_DTYPES.includes(dtype)) {
      const manifest = await convertedManifest(store, convertedBase(base, dtype), dtype);
      return !!manifest && (await storedAsListed(store, convertedBase(base, dtype), manifest));
    }
    for (const name of [...Object.values(ROLES), encoderFile]) {
      const url = new URL(name, base).href;
      if (!(await store.match(url)) || !(await store.match(metaKey(url)))) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/** Whether every file `manifest` lists is stored under `base` with a record naming its size and SHA-256. */
async function storedAsListed(store, base, manifest) {
  for (const [name, want] of Object.entries(manifest.files)) {
    const url = new URL(name, base).href;
    const meta = await savedRecord(store, url);
    if (!(await store.match(url)) || meta?.sha256 !== want.sha256 || meta?.size !== want.size) return false;
  }
  return true;
}

export async function clearCache(name = DEFAULT_CACHE) {
  return typeof caches === 'undefined' ? false : caches.delete(name);
}

// The Cache API ignores URL fragments, so the metadata lives under a URL of its own.
export const metaKey = url => `https://bge-m3-web.invalid/meta?url=${encodeURIComponent(url)}`;
/** The record stored with `url` (a JSON object), or null. */
const savedRecord = async (store, url) => (await store.match(metaKey(url)))?.json().catch(() => null) ?? null;

/** Where the pack converted from BAAI's files at `base` is kept in the Cache API: its files and
 *  m3-pack.json under this folder URL, one per dtype, each file with a record under metaKey. */
export const convertedBase = (base, dtype) => `https://bge-m3-web.invalid/converted/${dtype}/${encodeURIComponent(base)}/`;
/** The same for a pack converted from picked files, `id` naming them (pickedId). */
export const pickedBase = (id, dtype) => `https://bge-m3-web.invalid/picked/${dtype}/${id}/`;

/** Which picked files these are (`[[name, Blob]]`), without reading them whole: the SHA-256 of
 *  each one's name, size, modification time and sampled fingerprint. The same files picked again
 *  give the same id; a file replaced, changed or touched since gives another. */
async function pickedId(named) {
  const parts = [];
  for (const [name, blob] of named) parts.push([name, blob.size, blob.lastModified ?? null, await fingerprint(blob)]);
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(JSON.stringify(parts)));
  return [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join('');
}

/** A fingerprint of a Blob: its size and the SHA-256 of 16 evenly spaced 64 KiB samples (first
 *  and last bytes included). Catches truncation and most changes without reading 2 GB. */
async function fingerprint(blob) {
  const n = 16, len = 65536;
  const parts = [];
  for (let i = 0; i < n; i++) {
    const start = Math.floor(((blob.size - Math.min(len, blob.size)) * i) / (n - 1));
    parts.push(blob.slice(start, start + len));
  }
  const bytes = await new Blob([String(blob.size), ...parts]).arrayBuffer();
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join('');
}

/** `url` from the cache when its copy is intact, else downloaded (and cached). `expect`: a pack
 *  file's `{ size, sha256 }` from m3-pack.json. A cached copy is taken when its size and sampled
 *  fingerprint match the record stored with it and, for a pack file, when that record says it was
 *  stored (after a full check) for the same SHA-256 and size the manifest lists now; the cached
 *  bytes are not hashed again. Anything else is downloaded anew. */
async function fetchFile(url, name, store, onProgress, signal, expect) {
  if (store) {
    // A pack file's record names the SHA-256 it was checked against; a BAAI-layout file has none.
    const hit = await cachedCopy(store, url, name, onProgress, (rec, blob) => (expect ? rec.sha256 === expect.sha256 && blob.size === expect.size : !rec.sha256));
    if (hit) return { blob: hit.blob, cached: true };
  }
  let blob;
  try {
    blob = await download(url, name, store, onProgress, signal, expect);
  } catch (e) {
    if (!store || e?.name === 'AbortError' || !e?.cacheFailed) throw e;
    // The Cache API refused the file (a private window keeps it in memory and refuses entries of
    // a gigabyte; the disk may be full): download it again without caching.
    store = null;
    blob = await download(url, name, null, onProgress, signal, expect);
  }
  if (store) {
    await store.put(metaKey(url), Response.json({ size: blob.size, fingerprint: await fingerprint(blob), sha256: expect?.sha256, url, savedAt: Date.now() }));
  }
  onProgress?.({ file: name, phase: 'download', loaded: blob.size, total: blob.size });
  return { blob, cached: false };
}

/** The cached copy of `url` when intact: an entry and its record, whose size and sampled
 *  fingerprint match the entry's, and which `accept(record, blob)` takes. Resolves to
 *  `{ blob, record }`, else null, with whatever there was of it deleted (changed or truncated:
 *  it will be fetched or made again). */
async function cachedCopy(store, url, name, onProgress, accept) {
  const [hit, meta] = await Promise.all([store.match(url), store.match(metaKey(url))]);
  if (hit && meta) {
    const blob = await hit.blob();
    const rec = await meta.json().catch(() => null);
    if (rec && accept(rec, blob) && rec.size === blob.size && rec.fingerprint === (await fingerprint(blob))) {
      onProgress?.({ file: name, phase: 'cache', loaded: blob.size, total: blob.size });
      return { blob, record: rec };
    }
  }
  if (hit || meta) await dropEntry(store, url);
  return null;
}

const dropEntry = (store, url) => Promise.all([store.delete(url), store.delete(metaKey(url))]);

/** `fetch(url)`, rejecting unless it answers 2xx (an error naming `name` and the URL). */
async function request(url, name, signal) {
  let resp;
  try {
    resp = await fetch(url, { signal });
  } catch (e) {
    if (e?.name === 'AbortError') throw abortError();
    throw kindError('network', `${name}: could not fetch ${url} (${e?.message ?? e}: network error, offline, or blocked by CORS / Content-Security-Policy)`, { url });
  }
  if (!resp.ok) {
    await resp.body?.cancel().catch(() => {});
    throw kindError('http', `${name}: HTTP ${resp.status}${resp.statusText ? ' ' + resp.statusText : ''} from ${url}`, { status: resp.status, url });
  }
  return resp;
}

/** The byte count a response promises, or null: Content-Length counts encoded bytes, so only a
 *  plain (not compressed) body can be checked against it. */
function plainLength(resp) {
  const encoded = (resp.headers.get('content-encoding') ?? 'identity') !== 'identity';
  return encoded ? null : Number(resp.headers.get('content-length')) || null;
}

/** Streams `url` into the Cache API (or a Blob without one) and returns the Blob. With `expect`
 *  the bytes are counted and hashed on their way through: more bytes than the manifest's size stop
 *  the download, and a wrong size or SHA-256 at the end fails the stream, so that the Cache API
 *  never commits the entry (it is deleted as well) and nothing unchecked is returned. */
async function download(url, name, store, onProgress, signal, expect) {
  const resp = await request(url, name, signal);
  const total = plainLength(resp);
  const hash = expect ? new Sha256() : null;
  let loaded = 0, last = 0, bad = null;
  const counter = new TransformStream({
    transform(chunk, ctl) {
      loaded += chunk.byteLength;
      if (hash) {
        if (loaded > expect.size) throw (bad = integrityError(name, `more than the ${expect.size} bytes ${MANIFEST} says`, url));
        hash.update(chunk);
      }
      const now = Date.now();
      if (now - last > 100) { last = now; onProgress?.({ file: name, phase: 'download', loaded, total: expect?.size ?? total }); }
      ctl.enqueue(chunk);
    },
    flush() {
      if (!hash) return;
      if (loaded !== expect.size) throw (bad = integrityError(name, `${loaded} bytes, but ${MANIFEST} says ${expect.size}`, url));
      const got = hash.digestHex();
      if (got !== expect.sha256) throw (bad = integrityError(name, `SHA-256 ${got}, but ${MANIFEST} says ${expect.sha256}`, url));
    },
  });
  const body = resp.body ? resp.body.pipeThrough(counter) : null;
  const headers = { 'content-type': resp.headers.get('content-type') ?? 'application/octet-stream' };
  let blob;
  try {
    if (store) {
      // Streamed to disk by the Cache API; the Blob read back is disk-backed, so the 2.27 GB
      // checkpoint never has to sit in memory.
      await store.put(url, new Response(body, { headers }));
      blob = await (await store.match(url)).blob();
    } else {
      blob = await new Response(body, { headers }).blob();
    }
    if (hash && !bad && !hash.done) {
      // No body at all (flush never ran): an empty file, checked like any other.
      if (expect.size !== 0 || new Sha256().digestHex() !== expect.sha256) bad = integrityError(name, `0 bytes, but ${MANIFEST} says ${expect.size} bytes with SHA-256 ${expect.sha256}`, url);
    }
  } catch (e) {
    if (store) await Promise.all([store.delete(url), store.delete(metaKey(url))]);
    if (bad) throw bad;
    if (signal?.aborted || e?.name === 'AbortError') throw abortError();
    // cacheFailed: worth one more try without the cache.
    throw kindError('io', `${name}: download from ${url} failed: ${e?.message ?? e}`, { url, cacheFailed: !!store });
  }
  if (bad) {
    if (store) await Promise.all([store.delete(url), store.delete(metaKey(url))]);
    throw bad;
  }
  if (total !== null && blob.size !== total) {
    if (store) await store.delete(url);
    throw kindError('io', `${name}: download from ${url} truncated: got ${blob.size} of ${total} bytes`, { url });
  }
  return blob;
}

// ---- Converting BAAI's files into a pack while they download ----

/** The complete pack of `dtype` converted earlier into folder `vbase` (its m3-pack.json, parsed), or null. */
async function convertedManifest(store, vbase, dtype) {
  const hit = await store.match(new URL(MANIFEST, vbase).href);
  if (!hit) return null;
  try {
    const manifest = parseManifest(await hit.text());
    return manifest.dtype === dtype ? manifest : null;
  } catch {
    return null;
  }
}

/** The pack (`dtype` 'f16' or 'int8') converted from BAAI's files at `base` (convertInto, under
 *  convertedBase; each file's bytes from an intact f32 copy in the cache, else downloaded). */
async function fromConverted({ base, dtype, encoderFile, store, converter, onProgress, signal }) {
  if (encoderFile !== PACK_SOURCES['model.safetensors']) {
    throw kindError('input', `encoderFile "${encoderFile}" cannot be converted to a ${dtype} pack while it downloads (the converter reads `
      + `${PACK_SOURCES['model.safetensors']}); leave encoderFile out, or make a pack with \`m3 convert\``);
  }
  return convertInto({ vbase: convertedBase(base, dtype), sourceOf: from => urlSource(from, base, store, signal), dtype, store, converter, onProgress, signal });
}

/**
 * The pack (`dtype` 'f16' or 'int8') converted from BAAI's files (`sourceOf(name)`: urlSource,
 * localSource), kept in folder `vbase` of the cache. Each pack file comes
 * from the cache when an intact copy is there (under `vbase`, its record naming its size,
 * SHA-256 and source; those m3-pack.json lists when the pack is complete), else it is made now
 * (`makeFile`: config.json copied; tokenizer.json minified, pytorch_model.bin and the heads' .pt
 * converted, by the wasm PackConverter) and written to the cache as it streams. m3-pack.json
 * (PackConverter.manifest) is written last, once every file is there: without it the pack is not
 * complete, and it is deleted before any file is made again. Files finished before an abort or a
 * failure stay, with their records, for the next load. The f32 bytes are never cached.
 * `store` null (`cache: false`): everything is made in memory. The Cache API refusing a file
 * (quota, a private window): this load goes on in memory, without caching (LoadOptions.dtype).
 */
async function convertInto({ vbase, sourceOf, dtype, store, converter, onProgress, signal }) {
  needConverter(converter);
  const manifestUrl = new URL(MANIFEST, vbase).href;
  const manifest = store ? await convertedManifest(store, vbase, dtype) : null;
  const files = {}, made = {}, cached = [], urls = { manifest: manifestUrl };
  let complete = !!manifest;
  for (const [name, role] of Object.entries(PACK_FILES)) {
    throwIfAborted(signal);
    const url = new URL(name, vbase).href;
    urls[role] = url;
    const want = manifest?.files[name];
    const hit = store && await cachedCopy(store, url, name, onProgress,
      (rec, blob) => typeof rec.sha256 === 'string' && rec.source?.name === PACK_SOURCES[name] && (!want || (rec.sha256 === want.sha256 && blob.size === want.size)));
    if (hit) {
      files[role] = hit.blob;
      made[name] = hit.record;
      cached.push(name);
      continue;
    }
    if (store && complete) await store.delete(manifestUrl); // not complete while a file is made again
    complete = false;
    const job = { name, from: PACK_SOURCES[name], dtype, source: sourceOf(PACK_SOURCES[name]), url, converter, onProgress, signal };
    let got;
    try {
      got = await makeFile({ ...job, store });
    } catch (e) {
      if (!store || !e?.cacheFailed) throw e;
      store = null; // the Cache API refused it: the rest of this load in memory, nothing more cached
      got = await makeFile({ ...job, store: null });
    }
    files[role] = got.blob;
    made[name] = got.record;
  }
  if (store && !complete) {
    const sources = Object.fromEntries(Object.values(made).map(r => [r.source.name, r.source.sha256]));
    const listed = Object.fromEntries(Object.entries(made).map(([n, r]) => [n, { size: r.size, sha256: r.sha256 }]));
    const text = converter.manifest(dtype, sources, listed);
    parseManifest(text); // what the next load will read: the same checks as any pack's
    // Refused (quota): the pack stays incomplete, and the next load finds its files and writes it.
    await store.put(manifestUrl, new Response(text, { headers: { 'content-type': 'application/json' } })).catch(() => {});
  }
  return { files, dtype, cached, urls, converted: true };
}

/** Converting runs in the wasm instance the model will run in: its PackConverter class. */
function needConverter(converter) {
  if (typeof converter !== 'function') throw new Error('resolveFiles: converting needs the wasm module\'s PackConverter');
}

/** A turn of the event loop: a message (an abort) gets in, a page stays responsive. */
const nextTurn = () => new Promise(r => setTimeout(r, 0));

/** A source that ended before its bytes did (a dropped connection, fewer bytes than its
 *  Content-Length, a picked file that could no longer be read): kind 'io'. */
function cutOff(name, source, loaded, total, cause) {
  const detail = cause ? ` (${cause?.message ?? cause})` : '';
  return kindError('io', `${name}: ${source.what} broke off after ${loaded}${total === null ? '' : ` of ${total}`} bytes${detail}; nothing of it was kept`, { url: source.url });
}

/** BAAI's file `from` at `base`, as makeFile reads it: an intact copy in `readStore` from an
 *  earlier f32 load, else downloaded. */
function urlSource(from, base, readStore, signal) {
  const url = new URL(from, base).href;
  return {
    url,
    what: `the download from ${url}`,
    copyPhase: 'download',
    async open() {
      const local = readStore && (await cachedCopy(readStore, url, from, null, () => true));
      if (local) return { body: local.blob.stream(), total: local.blob.size };
      const resp = await request(url, from, signal);
      return { body: resp.body, total: plainLength(resp) };
    },
  };
}

/** Bytes the caller holds (a picked File, a Blob or a Uint8Array), as makeFile reads them. */
function localSource(bytes) {
  const CHUNK = 1 << 22;
  return {
    url: undefined,
    what: 'reading the file',
    copyPhase: 'convert', // config.json, copied into the pack: nothing is downloaded
    async open() {
      if (bytes instanceof Blob) return { body: bytes.stream(), total: bytes.size };
      let at = 0;
      const body = new ReadableStream({
        pull(ctl) {
          if (at >= bytes.byteLength) { ctl.close(); return; }
          ctl.enqueue(bytes.subarray(at, at + CHUNK));
          at += CHUNK;
        },
      });
      return { body, total: bytes.byteLength };
    },
  };
}

/** A pack of `dtype` converted from BAAI's files the caller holds (`bytesOf(name)`: a File, Blob
 *  or Uint8Array, or undefined), as a base URL's are while they download (convertInto). Picked
 *  files (Blobs) are kept in the Cache API store `cache` under pickedBase, named by pickedId: the
 *  same files picked again load from the cache. Bytes (Uint8Arrays), or `cache` false: in memory,
 *  nothing cached, no cache opened. */
async function convertLocal(bytesOf, { dtype, where, cache, converter, onProgress, signal }) {
  const named = Object.values(PACK_SOURCES).map(name => [name, bytesOf(name)]);
  const missing = named.filter(([, b]) => !b).map(([name]) => name);
  if (missing.length) {
    throw kindError('input', `${where} lack ${missing.join(', ')}: dtype "${dtype}" converts BAAI's files (${Object.values(PACK_SOURCES).join(', ')}; `
      + `the converter reads pytorch_model.bin, not model.safetensors), or give a pack with its ${MANIFEST}`, { missing });
  }
  const store = named.every(([, b]) => b instanceof Blob) ? await openStore(cache) : null;
  const vbase = pickedBase(store ? await pickedId(named) : 'in-memory', dtype);
  return convertInto({ vbase, sourceOf: name => localSource(bytesOf(name)), dtype, store, converter, onProgress, signal });
}

/**
 * Makes pack file `name` from BAAI's file `from`: its bytes (`source`: urlSource, localSource)
 * are copied, or pushed through a PackConverter
 * chunk by chunk, and what comes out goes into the Cache API under `url` as it comes (or into a
 * Blob in memory without `store`). SHA-256s of the source and of the result are taken on the way
 * (by the converter, or here for a copy), and a converter checks every zip member's CRC-32. A
 * failure of any kind fails the stream, so that the Cache API never commits the entry (it is
 * deleted as well). Resolves to `{ blob, record: { size, sha256, source: { name, sha256 } } }`.
 */
async function makeFile({ name, from, dtype, source, url, store, converter, onProgress, signal }) {
  const { body, total } = await source.open();
  const conv = name === 'config.json' ? null : new converter(name, dtype); // the rest: PackConverter.new's files
  const hash = conv ? null : new Sha256();
  const phase = conv ? 'convert' : source.copyPhase;
  const reader = (body ?? new Blob([]).stream()).getReader();
  let loaded = 0, lastEvent = 0, lastTurn = Date.now(), result = null, bad = null, closed = false;
  const out = new ReadableStream({
    async pull(ctl) {
      try {
        for (;;) {
          throwIfAborted(signal);
          let r;
          try {
            r = await reader.read();
          } catch (e) {
            throw signal?.aborted || e?.name === 'AbortError' ? abortError() : cutOff(from, source, loaded, total, e);
          }
          if (closed) return;
          if (r.done) {
            if (total !== null && loaded !== total) throw cutOff(from, source, loaded, total);
            if (conv) {
              const f = conv.finish();
              result = { size: f.size, sha256: f.sha256, source: { name: from, sha256: f.sourceSha256 } };
            } else {
              const sha256 = hash.digestHex();
              result = { size: loaded, sha256, source: { name: from, sha256 } };
            }
            ctl.close();
            return;
          }
          loaded += r.value.byteLength;
          const bytes = conv ? conv.push(r.value) : (hash.update(r.value), r.value);
          const now = Date.now();
          if (now - lastEvent > 100) { lastEvent = now; onProgress?.({ file: from, phase, loaded, total }); }
          if (now - lastTurn > 50) {
            await nextTurn();
            lastTurn = Date.now();
            if (closed) return;
          }
          if (bytes.byteLength) { ctl.enqueue(bytes); return; }
        }
      } catch (e) {
        // A trap is the wasm instance's death, not this file's (engine.js deals with it).
        bad = e instanceof WebAssembly.RuntimeError || e?.name === 'AbortError' || e?.kind === 'io' ? e
          : kindError(e?.kind, `${from}: ${e?.message ?? e}`);
        reader.cancel().catch(() => {});
        throw bad;
      }
    },
    cancel() {
      closed = true;
      reader.cancel().catch(() => {});
    },
  });
  let blob;
  try {
    if (store) {
      await store.put(url, new Response(out, { headers: { 'content-type': 'application/octet-stream' } }));
      blob = await (await store.match(url)).blob();
    } else {
      blob = await new Response(out).blob();
    }
  } catch (e) {
    if (store) await dropEntry(store, url);
    if (bad) throw bad;
    if (signal?.aborted || e?.name === 'AbortError') throw abortError();
    if (!store) throw e;
    throw kindError('io', `${name}: the Cache API did not keep it (${e?.message ?? e})`, { cacheFailed: true });
  } finally {
    closed = true;
    conv?.free();
  }
  if (!result || blob.size !== result.size) {
    if (store) await dropEntry(store, url);
    throw kindError('io', `${name}: ${blob.size} bytes were kept of the ${result?.size} made from ${from}`);
  }
  if (store) {
    try {
      await store.put(metaKey(url), Response.json({ ...result, fingerprint: await fingerprint(blob), from: source.url, savedAt: Date.now() }));
    } catch (e) {
      await dropEntry(store, url).catch(() => {});
      throw kindError('io', `${name}: the Cache API did not keep its record (${e?.message ?? e})`, { cacheFailed: true });
    }
  }
  onProgress?.({ file: from, phase, loaded, total: loaded });
  return { blob, record: result };
}
