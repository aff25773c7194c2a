// The model on the thread it runs on (a worker by default): loading (files, cache eviction on a
// file error) and what JS must do between forward passes (progress, abort). Windows, batching and
// the document-level merge are Rust's (src/windows.rs).
import init, { M3 as FirstM3, PackConverter as FirstPackConverter } from '../wasm/bge_m3_web.js';
import { resolveFiles, evict, throwIfAborted, DEFAULT_CACHE } from './files.js';
import { crashError, kindError } from './errors.js';
import { DTYPES } from './pack.js';

let wasmReady, wasm, M3 = FirstM3, PackConverter = FirstPackConverter, generation = 0;
function initWasm() {
  wasmReady ??= generation === 0
    ? init().then(exports => { wasm = exports; })
    : import(/* @vite-ignore */ `${new URL('../wasm/bge_m3_web.js', import.meta.url).href}?instance=${generation}`)
      .then(async mod => { wasm = await mod.default(); M3 = mod.M3; PackConverter = mod.PackConverter; });
  return wasmReady;
}

/** After a crash the instance's memory may be corrupt: the next load instantiates the module
 *  afresh (in a worker the page starts a new worker instead, which comes to the same). */
export function discardWasm() {
  generation++;
  wasmReady = null;
}

/** Size of the wasm linear memory in bytes (it only grows: this is also its peak). */
export function wasmHeapBytes() {
  return wasm?.memory?.buffer.byteLength ?? 0;
}

/** Whether Blobs can be read slice by slice here (FileReaderSync: workers only). */
const canReadBlobs = typeof FileReaderSync !== 'undefined';

async function toBytesIfNeeded(files) {
  if (canReadBlobs) return files;
  // On the main thread a Blob cannot be read synchronously: the whole file is copied in.
  const out = {};
  for (const [k, v] of Object.entries(files)) out[k] = v instanceof Blob ? new Uint8Array(await v.arrayBuffer()) : v;
  return out;
}

/** A load failure caused by a file's contents (the kinds of `src/error.rs`): a cached copy that
 *  fails so is worth fetching again. A device error never touches the cache. An 'integrity' error
 *  (a pack file whose bytes are not those its m3-pack.json lists) is not retried: files.js raises
 *  it for bytes just downloaded or picked (a cached copy that no longer matches is refetched there
 *  without an error), and has already deleted the download's cache entry. */
const isFileError = e => ['format', 'weights', 'config', 'tokenizer'].includes(e?.kind);

/** A trap inside wasm (a panic, an out-of-memory abort): the instance is unusable afterwards. */
export const isTrap = e => e instanceof WebAssembly.RuntimeError || /unreachable|RuntimeError/.test(String(e?.stack ?? e));

export class Engine {
  constructor(m3, dtype) {
    this.m3 = m3;
    this.dtype = dtype;
    this.broken = null;
  }

  static async load(source, { device = 'auto', limits = 'default', compute = 'auto', kernel = 'auto', encoderFile, dtype, cache = DEFAULT_CACHE, onProgress, signal } = {}) {
    if (!['auto', 'webgpu', 'cpu'].includes(device)) throw kindError('input', `device must be "auto", "webgpu" or "cpu" (got ${JSON.stringify(device)})`, {}, TypeError);
    if (!['default', 'adapter'].includes(limits)) throw kindError('input', `limits must be "default" or "adapter" (got ${JSON.stringify(limits)})`, {}, TypeError);
    if (!['auto', 'f32', 'f16'].includes(compute)) throw kindError('input', `compute must be "auto", "f32" or "f16" (got ${JSON.stringify(compute)})`, {}, TypeError);
    if (!['auto', 'register', 'burn'].includes(kernel)) throw kindError('input', `kernel must be "auto", "register" or "burn" (got ${JSON.stringify(kernel)})`, {}, TypeError);
    if (dtype !== undefined && !DTYPES.includes(dtype)) throw kindError('input', `dtype must be ${DTYPES.map(d => `"${d}"`).join(', ')} (got ${JSON.stringify(dtype)})`, {}, TypeError);
    // Asked for WebGPU where no adapter exists: fail before downloading gigabytes, and touch no
    // cached file. (Only this early check is here; src/gpu.rs chooses the device.)
    if (device === 'webgpu' && !(await navigator.gpu?.requestAdapter?.().catch(() => null))) {
      throw kindError('device', 'device: WebGPU is not available: no adapter (use device "auto" or "cpu")');
    }
    await initWasm();
    const build = async () => {
      // A base URL in BAAI's layout with dtype 'f16' / 'int8' is converted here, by this instance's PackConverter.
      const { files, dtype: stored, cached, urls, converted } = await resolveFiles(source, { encoderFile, dtype, cache, converter: PackConverter, onProgress, signal });
      throwIfAborted(signal);
      const progress = (done, total) => onProgress?.({ file: 'model', phase: 'build', loaded: done, total });
      try {
        return new Engine(await M3.load(await toBytesIfNeeded(files), device, limits, progress, compute, kernel), stored);
      } catch (e) {
        e.cached = cached;
        e.urls = urls;
        e.converted = converted;
        throw e;
      }
    };
    try {
      return await build();
    } catch (e) {
      if (isTrap(e)) { // inside the converter: the instance may be corrupt
        discardWasm();
        throw crashError(e.message);
      }
      if (e?.kind === 'integrity') {
        if (e.url) await evict(cache, [e.url]).catch(() => {}); // gone already: this also drops its record
        throw e;
      }
      // A cached copy that no longer parses (changed on disk, partial write): fetch once more.
      if (e.cached?.length && isFileError(e)) {
        await evict(cache, Object.values(e.urls));
        return build();
      }
      // A pack just converted here that does not load: not kept (the next load converts again).
      if (e.converted && isFileError(e)) await evict(cache, Object.values(e.urls)).catch(() => {});
      throw e;
    }
  }

  get info() {
    const m = this.m3;
    return { backend: m.backend, adapter: m.adapter, hiddenSize: m.hiddenSize, maxTokens: m.maxTokens, dtype: this.dtype, compute: m.compute, kernel: m.kernel };
  }

  check() {
    if (this.broken) throw crashError(this.broken);
  }

  /** Runs `f`, marking the engine broken if wasm trapped inside the call. (A trap after an
   *  await surfaces as an uncaught error event instead: worker.js and index.js catch those.) */
  async guard(f) {
    this.check();
    try {
      return await f();
    } catch (e) {
      if (isTrap(e)) {
        this.crashed(e.message);
        throw crashError(e.message);
      }
      throw e;
    }
  }

  crashed(detail) {
    this.broken ??= detail;
    discardWasm();
  }

  tokenize(text) {
    if (typeof text !== 'string') throw kindError('input', 'text must be a string', {}, TypeError);
    return this.guard(async () => this.m3.tokenize(text));
  }

  idsToTokens(ids) {
    return this.guard(async () => Array.from(ids, id => this.m3.idToToken(id) ?? ''));
  }

  /** Windows, batching and the document-level merge happen in Rust (src/windows.rs); here only
   *  what JS must do between forward passes: report progress, let queued messages (an abort) in,
   *  and stop when aborted. */
  encode(texts, { signal, onProgress, ...options } = {}) {
    return this.guard(() => this.m3.encode(texts, options, betweenBatches(signal, onProgress)));
  }

  score(query, passages, { signal, onProgress, ...options } = {}) {
    return this.guard(() => this.m3.score(query, passages, options, betweenBatches(signal, onProgress)));
  }

  /** See `M3.panicForTests` (src/web.rs): for the crash-recovery tests only. */
  panicForTests() {
    return this.guard(() => this.m3.panicForTests());
  }

  dispose() {
    if (this.broken) { this.m3 = null; return; } // a dead instance cannot free anything
    this.m3?.free();
    this.m3 = null;
    this.broken = 'disposed';
  }
}

/** Called by Rust after each forward pass: progress, then a macrotask turn (so that an abort
 *  message reaches the worker), then a throw if aborted, which stops the encode. */
function betweenBatches(signal, onProgress) {
  throwIfAborted(signal);
  return async progress => {
    onProgress?.(progress);
    await new Promise(r => setTimeout(r, 0));
    throwIfAborted(signal);
  };
}
