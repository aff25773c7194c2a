// bge-m3-web: BGE-M3 in the browser. One entry point: `load(source, options)` -> a model with
// `encode`, `tokenize`, `idsToTokens`, `score`, `dispose`. The model runs in a module Web Worker
// by default; `{ worker: false }` runs it on the calling thread. Types: ../index.d.ts.
import { abortError, crashError, kindError, ERROR_FIELDS } from './errors.js';
import { clearCache, isCached, HF_BGE_M3 } from './files.js';

export { HF_BGE_M3, clearCache, isCached };
export { DEFAULT_WEIGHTS, RRF_K, denseScore, lexicalScore, colbertScore, weightedScore, hybridScores, reciprocalRankFusion } from './scoring.js';
export { openIndex, deleteIndex, DEFAULT_CANDIDATES } from './index/hybrid.js';
export { modelFingerprint, sameModel, PROBE_TEXT } from './index/fingerprint.js';
export { toJsonl, portableSchema, pointId, PORTABLE_FORMATS } from './index/portable.js';

function checkOptions(options) {
  if (options === null || typeof options !== 'object') throw kindError('input', 'options must be an object', {}, TypeError);
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw kindError('input', 'options.signal must be an AbortSignal', {}, TypeError);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw kindError('input', 'options.onProgress must be a function', {}, TypeError);
}

/** Loads BGE-M3 (see index.d.ts). Defaults: BAAI/bge-m3 from the Hugging Face hub, cached;
 *  WebGPU when available, else the wasm CPU backend; in a Web Worker. */
export async function load(source = HF_BGE_M3, options = {}) {
  checkOptions(options);
  const { worker = true, onProgress, signal, ...rest } = options;
  signal?.throwIfAborted?.();
  const model = worker && typeof Worker !== 'undefined' ? new WorkerModel() : new LocalModel();
  try {
    await model.init(source, rest, onProgress, signal);
  } catch (e) {
    model.terminate?.();
    throw e;
  }
  return model;
}

class ModelBase {
  encode(textOrTexts, options = {}) {
    checkOptions(options);
    const single = typeof textOrTexts === 'string';
    if (!single && !Array.isArray(textOrTexts)) return Promise.reject(kindError('input', `encode() takes a string or an array of strings (got ${textOrTexts === null ? 'null' : typeof textOrTexts})`, {}, TypeError));
    const texts = single ? [textOrTexts] : textOrTexts;
    const bad = texts.findIndex(t => typeof t !== 'string');
    if (bad >= 0) return Promise.reject(kindError('input', `texts[${bad}] is not a string (${texts[bad] === null ? 'null' : typeof texts[bad]})`, {}, TypeError));
    return this.call('encode', { texts, options }, options).then(r => (single ? r[0] : r));
  }
  tokenize(text) {
    if (typeof text !== 'string') return Promise.reject(kindError('input', 'text must be a string', {}, TypeError));
    return this.call('tokenize', { text });
  }
  idsToTokens(ids) {
    return this.call('idsToTokens', { ids: Array.from(ids) });
  }
  score(query, passages, options = {}) {
    checkOptions(options);
    return this.call('score', { query, passages, options }, options);
  }
}

/** The model in a module worker; calls are queued there in order. */
class WorkerModel extends ModelBase {
  constructor() {
    super();
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'bge-m3-web' });
    this.pending = new Map();
    this.nextId = 1;
    this.dead = null;
    this.worker.onmessage = ({ data }) => {
      if (data.crashed !== undefined) { this.fail(crashError(data.crashed)); return; }
      const p = this.pending.get(data.id);
      if (!p) return;
      if (data.progress) { p.onProgress?.(data.progress); return; }
      this.pending.delete(data.id);
      p.cleanup();
      if (data.ok) p.resolve(data.result);
      else p.reject(rebuild(data.error));
    };
    this.worker.onerror = e => this.fail(crashError(`the model worker failed: ${e.message ?? 'error'}`));
    this.worker.onmessageerror = () => this.fail(crashError('a message from the model worker could not be read'));
  }
  /** The worker is gone for good: every pending and later call rejects with `error`, and the
   *  worker (with its wasm instance and GPU memory) is ended. */
  fail(error) {
    if (this.dead) return;
    this.dead = error;
    for (const p of this.pending.values()) { p.cleanup(); p.reject(error); }
    this.pending.clear();
    this.worker.terminate();
  }
  async init(source, options, onProgress, signal) {
    // Only plain data crosses to the worker: a FileList becomes an array of Files.
    if (typeof FileList !== 'undefined' && source instanceof FileList) source = [...source];
    if (source instanceof URL) source = source.href;
    if (typeof source === 'string') source = new URL(source, globalThis.location?.href).href; // relative to the page, not the worker
    const info = await this.call('load', { source, options }, { onProgress, signal });
    Object.assign(this, info);
  }
  call(op, args, { onProgress, signal } = {}) {
    if (this.dead) return Promise.reject(this.dead);
    if (signal?.aborted) return Promise.reject(abortError());
    const id = this.nextId++;
    const { options, ...plain } = args;
    const opts = options && { ...options, onProgress: undefined, signal: undefined };
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        // Reject now; the worker stops at its next check and the queue goes on.
        this.worker.postMessage({ op: 'abort', id });
        this.pending.delete(id);
        reject(abortError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const cleanup = () => signal?.removeEventListener('abort', onAbort);
      this.pending.set(id, { resolve, reject, onProgress, cleanup });
      this.worker.postMessage({ id, op, args: { ...plain, options: opts, progress: !!onProgress } });
    });
  }
  async dispose() {
    if (!this.dead) await this.call('dispose', {}).catch(() => {});
    this.terminate();
  }
  terminate() {
    this.worker.terminate();
    this.dead ??= disposedError();
  }
}

/** The model on the calling thread (`worker: false`). */
class LocalModel extends ModelBase {
  async init(source, options, onProgress, signal) {
    const { Engine, isTrap } = await import('./engine.js');
    this.engine = await Engine.load(source, { ...options, onProgress, signal });
    Object.assign(this, this.engine.info);
    this.queue = Promise.resolve();
    this.rejects = new Set(); // of the calls in flight
    // A trap after an await inside wasm is no call's rejection: it surfaces as an uncaught error
    // on this thread. Without this, the call in flight would never settle.
    this.onUncaught = e => {
      const error = e.error ?? e.reason;
      if (isTrap(error)) this.crash(String(error?.message ?? error));
    };
    globalThis.addEventListener?.('error', this.onUncaught);
    globalThis.addEventListener?.('unhandledrejection', this.onUncaught);
  }
  crash(detail) {
    if (this.dead) return;
    this.dead = crashError(detail);
    this.engine?.crashed(detail);
    for (const reject of this.rejects) reject(this.dead);
    this.rejects.clear();
  }
  call(op, args, { onProgress, signal } = {}) {
    if (this.dead) return Promise.reject(this.dead);
    const run = async () => {
      signal?.throwIfAborted?.();
      const e = this.engine;
      if (!e) throw disposedError();
      switch (op) {
        case 'encode': return e.encode(args.texts, { ...args.options, onProgress, signal });
        case 'tokenize': return e.tokenize(args.text);
        case 'idsToTokens': return e.idsToTokens(args.ids);
        case 'score': return e.score(args.query, args.passages, { ...args.options, onProgress, signal });
        case 'panicForTests': return e.panicForTests();
      }
    };
    const p = new Promise((resolve, reject) => {
      this.rejects.add(reject);
      this.queue.then(run).then(resolve, error => {
        if (error?.kind === 'crashed') this.crash(error.message);
        reject(error);
      }).finally(() => this.rejects.delete(reject));
    });
    this.queue = p.catch(() => {});
    return p;
  }
  async dispose() {
    globalThis.removeEventListener?.('error', this.onUncaught);
    globalThis.removeEventListener?.('unhandledrejection', this.onUncaught);
    await this.queue;
    this.engine?.dispose();
    this.engine = null;
  }
}

/** A call of a disposed model. */
const disposedError = () => kindError('input', 'the model was disposed');

/** The worker's error as an error of the same name, with its `ERROR_FIELDS` (see index.d.ts). */
function rebuild({ name, message, ...fields }) {
  const e = name === 'AbortError' ? abortError(message)
    : name === 'TypeError' ? new TypeError(message)
    : name === 'RangeError' ? new RangeError(message)
    : new Error(message);
  for (const f of ERROR_FIELDS) if (fields[f] !== undefined) e[f] = fields[f];
  return e;
}
