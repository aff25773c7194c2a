// Model files: from a base URL (streamed into the Cache API, read back as disk-backed Blobs),
// from local Files, or from bytes handed over by the caller.

/** The BAAI/bge-m3 repository on the Hugging Face hub. */
export const HF_BGE_M3 = 'https://huggingface.co/BAAI/bge-m3/resolve/main/';
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

export function throwIfAborted(signal) {
  if (signal?.aborted) throw signal.reason instanceof DOMException && signal.reason.name === 'AbortError' ? signal.reason : abortError();
}

/**
 * Resolves `source` to `{ files: { config, tokenizer, encoder, colbert, sparse }, cached, urls }`
 * where every file is a Blob or Uint8Array.
 * `cached`: names of the files served from the Cache API; `urls`: the URLs fetched or looked up.
 */
export async function resolveFiles(source, { encoderFile = 'pytorch_model.bin', cache = DEFAULT_CACHE, onProgress, signal } = {}) {
  source ??= HF_BGE_M3;
  if (typeof source === 'string' || source instanceof URL) {
    return fromUrl(String(source), { encoderFile, cache, onProgress, signal });
  }
  if (isFileList(source)) return { files: fromFileList(source), cached: [], urls: {} };
  if (typeof source === 'object') {
    const files = {};
    for (const role of [...Object.keys(ROLES), 'encoder']) {
      const v = source[role];
      if (!(v instanceof Blob || v instanceof ArrayBuffer || ArrayBuffer.isView(v))) {
        throw new TypeError(`source.${role} must be a Blob, ArrayBuffer or Uint8Array`);
      }
      files[role] = v instanceof ArrayBuffer ? new Uint8Array(v) : ArrayBuffer.isView(v) && !(v instanceof Uint8Array) ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : v;
    }
    return { files, cached: [], urls: {} };
  }
  throw new TypeError('source must be a base URL, a FileList / File[] or { config, tokenizer, encoder, colbert, sparse }');
}

function isFileList(x) {
  return (typeof FileList !== 'undefined' && x instanceof FileList) || (Array.isArray(x) && x.every(f => f instanceof Blob));
}

function fromFileList(list) {
  const byName = new Map();
  for (const f of list) byName.set(String(f.webkitRelativePath || f.name).split('/').pop(), f);
  const files = {};
  const missing = [];
  for (const [role, name] of Object.entries(ROLES)) {
    if (byName.has(name)) files[role] = byName.get(name);
    else missing.push(name);
  }
  const enc = ENCODERS.find(n => byName.has(n));
  if (enc) files.encoder = byName.get(enc);
  else missing.push('pytorch_model.bin or model.safetensors');
  if (missing.length) throw new Error(`the picked files lack ${missing.join(', ')} (BAAI/bge-m3 file names are needed)`);
  return files;
}

async function fromUrl(base, { encoderFile, cache, onProgress, signal }) {
  if (!ENCODERS.includes(encoderFile)) throw new TypeError(`encoderFile must be ${ENCODERS.join(' or ')}`);
  base = new URL(base, globalThis.location?.href).href; // relative to the page
  if (!base.endsWith('/')) base += '/';
  const names = { ...ROLES, encoder: encoderFile };
  const store = cache !== false && typeof caches !== 'undefined' ? await caches.open(cache) : null;
  const files = {}, urls = {}, cached = [];
  // Small files first: a wrong URL fails before the 2 GB download starts.
  for (const role of ['config', 'tokenizer', 'colbert', 'sparse', 'encoder']) {
    throwIfAborted(signal);
    const name = names[role];
    const url = new URL(name, base).href;
    urls[role] = url;
    const got = await fetchFile(url, name, store, onProgress, signal);
    files[role] = got.blob;
    if (got.cached) cached.push(name);
  }
  return { files, cached, urls };
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
 *  downloads nothing). Only presence is checked here; `load` still verifies each copy. */
export async function isCached(base = HF_BGE_M3, { encoderFile = 'pytorch_model.bin', cache = DEFAULT_CACHE } = {}) {
  if (typeof caches === 'undefined' || cache === false) return false;
  try {
    base = new URL(base, globalThis.location?.href).href;
    if (!base.endsWith('/')) base += '/';
    const store = await caches.open(cache);
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

async function fetchFile(url, name, store, onProgress, signal) {
  if (store) {
    const [hit, meta] = await Promise.all([store.match(url), store.match(metaKey(url))]);
    if (hit && meta) {
      const blob = await hit.blob();
      const want = await meta.json().catch(() => null);
      if (want && want.size === blob.size && want.fingerprint === (await fingerprint(blob))) {
        onProgress?.({ file: name, phase: 'cache', loaded: blob.size, total: blob.size });
        return { blob, cached: true };
      }
    }
    if (hit || meta) await Promise.all([store.delete(url), store.delete(metaKey(url))]); // changed or truncated: fetch again
  }
  let blob;
  try {
    blob = await download(url, name, store, onProgress, signal);
  } catch (e) {
    if (!store || e?.name === 'AbortError' || !e?.cacheFailed) throw e;
    // The Cache API refused the file (a private window keeps it in memory and refuses entries of
    // a gigabyte; the disk may be full): download it again without caching.
    store = null;
    blob = await download(url, name, null, onProgress, signal);
  }
  if (store) await store.put(metaKey(url), Response.json({ size: blob.size, fingerprint: await fingerprint(blob), url, savedAt: Date.now() }));
  onProgress?.({ file: name, phase: 'download', loaded: blob.size, total: blob.size });
  return { blob, cached: false };
}

/** Streams `url` into the Cache API (or a Blob without one) and returns the Blob. */
async function download(url, name, store, onProgress, signal) {
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
  let loaded = 0, last = 0;
  const counter = new TransformStream({
    transform(chunk, ctl) {
      loaded += chunk.byteLength;
      const now = Date.now();
      if (now - last > 100) { last = now; onProgress?.({ file: name, phase: 'download', loaded, total }); }
      ctl.enqueue(chunk);
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
  } catch (e) {
    if (store) await Promise.all([store.delete(url), store.delete(metaKey(url))]);
    if (signal?.aborted || e?.name === 'AbortError') throw abortError();
    const err = new Error(`${name}: download from ${url} failed: ${e?.message ?? e}`);
    err.cacheFailed = !!store; // worth one more try without the cache
    throw err;
  }
  if (total !== null && blob.size !== total) {
    if (store) await store.delete(url);
    throw new Error(`${name}: download from ${url} truncated: got ${blob.size} of ${total} bytes`);
  }
  return blob;
}
