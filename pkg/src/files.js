// Model files: from a base URL (streamed into the Cache API, read back as disk-backed Blobs),
// from local Files, or from bytes handed over by the caller; in BAAI's layout or as a pack
// (pack.js owns what a pack is; here its files are checked against m3-pack.json as they stream).
import { Sha256 } from './sha256.js';
import { MANIFEST, MANIFEST_MAX_BYTES, PACK_FILES, PACK_DTYPES, parseManifest, notAPackError, dtypeMismatchError } from './pack.js';

/** The BAAI/bge-m3 repository on the Hugging Face hub, pinned to one commit: what the default
 *  source downloads cannot change under the package (another base URL overrides it). */
export const HF_BGE_M3 = 'https://huggingface.co/BAAI/bge-m3/resolve/5617a9f61b028005a4858fdac845db406aefb181/';
export const DEFAULT_CACHE = 'bge-m3-web';

/** What `M3.load` needs, and the BAAI/bge-m3 file names they come from. */
const ROLES = { config: 'config.json', tokenizer: 'tokenizer.json', colbert: 'colbert_linear.pt', sparse: 'sparse_linear.pt' };
const ENCODERS = ['model.safetensors', 'pytorch_model.bin'];

export function abortError(message = 'The operation was aborted.') {
  return new DOMException(message, 'AbortError');
}

/** What every call rejects with once the wasm instance has died (a panic, a trap, out of memory):
 *  `kind` 'crashed'; loading the model again is the way out. */
export function crashError(detail) {
  const e = new Error(/^the model crashed/.test(detail) ? detail : `the model crashed (${detail}); load it again`);
  e.kind = 'crashed';
  return e;
}

/** A pack file whose bytes are not those m3-pack.json lists (`kind` 'integrity'); `url` is the
 *  file's URL when it was downloaded (its cache entry is already gone). */
function integrityError(name, detail, url) {
  return Object.assign(new Error(`${name}: ${detail}${url ? ` (${url})` : ''}; the file was not used${url ? ' or kept' : ''}`), { kind: 'integrity', url });
}

export function throwIfAborted(signal) {
  if (signal?.aborted) throw signal.reason instanceof DOMException && signal.reason.name === 'AbortError' ? signal.reason : abortError();
}

/**
 * Resolves `source` to `{ files: { config, tokenizer, encoder, colbert, sparse }, dtype, cached, urls }`
 * where every file is a Blob or Uint8Array (a pack's files checked against its manifest).
 * `dtype`: 'f32' (BAAI's layout) or the pack's; `cached`: names of the files served from the
 * Cache API; `urls`: the URLs fetched or looked up, by role (and `manifest`).
 */
export async function resolveFiles(source, { encoderFile = 'pytorch_model.bin', dtype, cache = DEFAULT_CACHE, onProgress, signal } = {}) {
  source ??= HF_BGE_M3;
  if (typeof source === 'string' || source instanceof URL) {
    return fromUrl(String(source), { encoderFile, dtype, cache, onProgress, signal });
  }
  if (isFileList(source)) return { ...(await fromFileList(source, { dtype, onProgress, signal })), cached: [], urls: {} };
  if (typeof source === 'object') return { ...(await fromObject(source, { dtype, onProgress, signal })), cached: [], urls: {} };
  throw new TypeError('source must be a base URL, a FileList / File[] or { config, tokenizer, encoder, colbert, sparse, manifest? }');
}

function isFileList(x) {
  return (typeof FileList !== 'undefined' && x instanceof FileList) || (Array.isArray(x) && x.every(f => f instanceof Blob));
}

/** The pack's storage type, after checking it against the `dtype` option. */
function packDtype(manifest, dtype, where) {
  if (dtype !== undefined && dtype !== manifest.dtype) throw dtypeMismatchError(dtype, manifest.dtype, where);
  return manifest.dtype;
}

/** Not a pack: the f32 files as they are, unless a pack's storage type was asked for. */
function layoutDtype(dtype, where) {
  if (PACK_DTYPES.includes(dtype)) throw notAPackError(dtype, where);
  return 'f32';
}

async function fromFileList(list, { dtype, onProgress, signal }) {
  const byName = new Map();
  for (const f of list) byName.set(String(f.webkitRelativePath || f.name).split('/').pop(), f);
  const files = {};
  if (byName.has(MANIFEST)) {
    const manifest = parseManifest(await blobText(byName.get(MANIFEST)));
    const packType = packDtype(manifest, dtype, 'the picked pack');
    const missing = Object.keys(PACK_FILES).filter(name => !byName.has(name));
    if (missing.length) throw new Error(`the picked files lack ${missing.join(', ')} (${MANIFEST} lists them)`);
    for (const [name, role] of Object.entries(PACK_FILES)) {
      files[role] = await verifyLocal(byName.get(name), name, manifest.files[name], onProgress, signal);
    }
    return { files, dtype: packType };
  }
  const layout = layoutDtype(dtype, 'the picked files');
  const missing = [];
  for (const [role, name] of Object.entries(ROLES)) {
    if (byName.has(name)) files[role] = byName.get(name);
    else missing.push(name);
  }
  const enc = ENCODERS.find(n => byName.has(n));
  if (enc) files.encoder = byName.get(enc);
  else missing.push('pytorch_model.bin or model.safetensors');
  if (missing.length) throw new Error(`the picked files lack ${missing.join(', ')} (BAAI/bge-m3 file names are needed, or a pack with its ${MANIFEST})`);
  return { files, dtype: layout };
}

/** `{ config, tokenizer, encoder, colbert, sparse }`, plus `manifest` (m3-pack.json) for a pack. */
async function fromObject(source, { dtype, onProgress, signal }) {
  const bytes = (v, role) => {
    if (!(v instanceof Blob || v instanceof ArrayBuffer || ArrayBuffer.isView(v))) {
      throw new TypeError(`source.${role} must be a Blob, ArrayBuffer or Uint8Array`);
    }
    return v instanceof ArrayBuffer ? new Uint8Array(v) : ArrayBuffer.isView(v) && !(v instanceof Uint8Array) ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : v;
  };
  const files = {};
  for (const role of [...Object.keys(ROLES), 'encoder']) files[role] = bytes(source[role], role);
  if (source.manifest === undefined) return { files, dtype: layoutDtype(dtype, 'the source object (it has no `manifest`)') };
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
  if (blob.size > MANIFEST_MAX_BYTES) throw Object.assign(new Error(`${MANIFEST}: ${blob.size} bytes, more than a manifest has`), { kind: 'format' });
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

async function fromUrl(base, { encoderFile, dtype, cache, onProgress, signal }) {
  if (!ENCODERS.includes(encoderFile)) throw new TypeError(`encoderFile must be ${ENCODERS.join(' or ')}`);
  base = new URL(base, globalThis.location?.href).href; // relative to the page
  if (!base.endsWith('/')) base += '/';
  const store = cache !== false && typeof caches !== 'undefined' ? await caches.open(cache) : null;
  const files = {}, urls = {}, cached = [];
  const pack = await findManifest(base, store, dtype, signal);
  urls.manifest = pack.url;
  let names, expect = {}, type;
  if (pack.manifest) {
    type = packDtype(pack.manifest, dtype, base);
    names = Object.fromEntries(Object.entries(PACK_FILES).map(([name, role]) => [role, name]));
    for (const [name, role] of Object.entries(PACK_FILES)) expect[role] = pack.manifest.files[name];
  } else {
    type = layoutDtype(dtype, `${base} (${pack.why})`);
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
 * Whether `base` is a pack: `{ url, manifest }` (parsed and checked) or `{ url, manifest: null, why }`.
 * A pack's m3-pack.json is fetched on every load (1-2 KB), so that a changed pack is seen; its
 * copy in the cache (the record under metaKey) serves when the server cannot be reached. An HTTP
 * 404/410 is remembered as "no pack here", and not asked again unless a pack's dtype is asked
 * for: a cached BAAI-layout model loads without a request. A page served instead of the file
 * (an HTML fallback) is no manifest; a JSON manifest that fails the checks is an error.
 */
async function findManifest(base, store, dtype, signal) {
  const url = new URL(MANIFEST, base).href;
  const saved = store ? await (await store.match(metaKey(url)))?.json().catch(() => null) : null;
  if (saved?.absent && !PACK_DTYPES.includes(dtype)) return { url, manifest: null, why: `HTTP ${saved.status} for ${url} when last asked` };
  let resp, why;
  try {
    resp = await fetch(url, { signal, cache: 'no-cache' });
  } catch (e) {
    if (signal?.aborted || e?.name === 'AbortError') throw abortError();
    why = `could not fetch ${url}: ${e?.message ?? e}`;
  }
  if (resp?.ok && !/text\/html/i.test(resp.headers.get('content-type') ?? '')) {
    const text = await readCapped(resp, signal);
    const manifest = parseManifest(text);
    if (store) await store.put(metaKey(url), Response.json({ url, manifest: text, savedAt: Date.now() }));
    return { url, manifest };
  }
  if (resp) {
    why = resp.ok ? `${url} is an HTML page` : `HTTP ${resp.status} for ${url}`;
    await resp.body?.cancel().catch(() => {});
  }
  if (saved?.manifest) return { url, manifest: parseManifest(saved.manifest) };
  if (store && (resp?.status === 404 || resp?.status === 410)) {
    await store.put(metaKey(url), Response.json({ url, absent: true, status: resp.status, savedAt: Date.now() }));
  }
  return { url, manifest: null, why };
}

/** A manifest response's text, refused past MANIFEST_MAX_BYTES without reading the rest. */
async function readCapped(resp, signal) {
  const tooBig = () => Object.assign(new Error(`${MANIFEST}: more than ${MANIFEST_MAX_BYTES} bytes, more than a manifest has`), { kind: 'format' });
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

/** Whether every file `load(base, { encoderFile })` needs is in the Cache API (then loading
 *  downloads no model file; a pack's m3-pack.json is still asked for). A pack is recognised by
 *  the manifest cached by an earlier load, and its files must have been stored for the SHA-256s
 *  it lists. Otherwise only presence is checked here; `load` still verifies each copy. */
export async function isCached(base = HF_BGE_M3, { encoderFile = 'pytorch_model.bin', cache = DEFAULT_CACHE } = {}) {
  if (typeof caches === 'undefined' || cache === false) return false;
  try {
    base = new URL(base, globalThis.location?.href).href;
    if (!base.endsWith('/')) base += '/';
    const store = await caches.open(cache);
    const saved = await (await store.match(metaKey(new URL(MANIFEST, base).href)))?.json().catch(() => null);
    if (saved?.manifest) {
      const manifest = parseManifest(saved.manifest);
      for (const [name, want] of Object.entries(manifest.files)) {
        const url = new URL(name, base).href;
        const meta = await (await store.match(metaKey(url)))?.json().catch(() => null);
        if (!(await store.match(url)) || meta?.sha256 !== want.sha256 || meta?.size !== want.size) return false;
      }
      return true;
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

export async function clearCache(name = DEFAULT_CACHE) {
  return typeof caches === 'undefined' ? false : caches.delete(name);
}

// The Cache API ignores URL fragments, so the metadata lives under a URL of its own.
const metaKey = url => `https://bge-m3-web.invalid/meta?url=${encodeURIComponent(url)}`;

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
    const [hit, meta] = await Promise.all([store.match(url), store.match(metaKey(url))]);
    if (hit && meta) {
      const blob = await hit.blob();
      const want = await meta.json().catch(() => null);
      // A pack file's record names the SHA-256 it was checked against; a BAAI-layout file has none.
      const forPack = expect ? want?.sha256 === expect.sha256 && blob.size === expect.size : !want?.sha256;
      if (want && forPack && want.size === blob.size && want.fingerprint === (await fingerprint(blob))) {
        onProgress?.({ file: name, phase: 'cache', loaded: blob.size, total: blob.size });
        return { blob, cached: true };
      }
    }
    if (hit || meta) await Promise.all([store.delete(url), store.delete(metaKey(url))]); // changed or truncated: fetch again
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

/** Streams `url` into the Cache API (or a Blob without one) and returns the Blob. With `expect`
 *  the bytes are counted and hashed on their way through: more bytes than the manifest's size stop
 *  the download, and a wrong size or SHA-256 at the end fails the stream, so that the Cache API
 *  never commits the entry (it is deleted as well) and nothing unchecked is returned. */
async function download(url, name, store, onProgress, signal, expect) {
  let resp;
  try {
    resp = await fetch(url, { signal });
  } catch (e) {
    if (e?.name === 'AbortError') throw abortError();
    throw new Error(`${name}: could not fetch ${url} (${e?.message ?? e}: network error, offline, or blocked by CORS / Content-Security-Policy)`);
  }
  if (!resp.ok) throw new Error(`${name}: HTTP ${resp.status}${resp.statusText ? ' ' + resp.statusText : ''} from ${url}`);
  // Content-Length counts encoded bytes: only a plain (not compressed) body can be checked against it.
  const encoded = (resp.headers.get('content-encoding') ?? 'identity') !== 'identity';
  const total = encoded ? null : Number(resp.headers.get('content-length')) || null;
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
    const err = new Error(`${name}: download from ${url} failed: ${e?.message ?? e}`);
    err.cacheFailed = !!store; // worth one more try without the cache
    throw err;
  }
  if (bad) {
    if (store) await Promise.all([store.delete(url), store.delete(metaKey(url))]);
    throw bad;
  }
  if (total !== null && blob.size !== total) {
    if (store) await store.delete(url);
    throw new Error(`${name}: download from ${url} truncated: got ${blob.size} of ${total} bytes`);
  }
  return blob;
}
