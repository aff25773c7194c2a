// The module Web Worker that hosts the model: one job at a time, in arrival order; results go
// back as transferred typed arrays.
import { Engine, isTrap } from './engine.js';
import { abortError, ERROR_FIELDS } from './errors.js';

// A trap after an await inside wasm (a panic, out of memory) is no call's rejection: it surfaces
// here, uncaught. Tell the page, which rejects every pending call and ends this worker.
function onUncaught(error) {
  if (isTrap(error)) self.postMessage({ crashed: String(error?.message ?? error) });
}
self.addEventListener('error', e => onUncaught(e.error ?? e.message));
self.addEventListener('unhandledrejection', e => onUncaught(e.reason));

let engine = null;
let queue = Promise.resolve();
const controllers = new Map(); // job id -> AbortController

self.onmessage = ({ data: msg }) => {
  if (msg.op === 'abort') {
    controllers.get(msg.id)?.abort(abortError());
    return;
  }
  const ctl = new AbortController();
  controllers.set(msg.id, ctl);
  queue = queue.then(() => run(msg, ctl.signal)).finally(() => controllers.delete(msg.id));
};

function post(msg, result) {
  const buffers = new Set();
  collect(result, buffers, 0);
  self.postMessage(msg, [...buffers]);
}

/** Every ArrayBuffer under `x` (each once: a buffer may be shared by a window and its document). */
function collect(x, out, depth) {
  if (!x || typeof x !== 'object' || depth > 6) return;
  if (ArrayBuffer.isView(x)) { out.add(x.buffer); return; }
  for (const v of Array.isArray(x) ? x : Object.values(x)) collect(v, out, depth + 1);
}

async function run({ id, op, args }, signal) {
  const progress = p => self.postMessage({ id, progress: p });
  try {
    if (signal.aborted) throw abortError();
    let result;
    switch (op) {
      case 'load':
        engine?.dispose();
        engine = await Engine.load(args.source, { ...args.options, signal, onProgress: args.progress ? progress : undefined });
        result = engine.info;
        break;
      case 'encode':
        result = await engine.encode(args.texts, { ...args.options, signal, onProgress: args.progress ? progress : undefined });
        break;
      case 'tokenize':
        result = await engine.tokenize(args.text);
        break;
      case 'idsToTokens':
        result = await engine.idsToTokens(args.ids);
        break;
      case 'score':
        result = await engine.score(args.query, args.passages, { ...args.options, signal, onProgress: args.progress ? progress : undefined });
        break;
      case 'panicForTests':
        result = await engine.panicForTests();
        break;
      case 'dispose':
        engine?.dispose();
        engine = null;
        result = true;
        break;
      default:
        throw new Error(`unknown operation ${op}`);
    }
    post({ id, ok: true, result }, result);
  } catch (e) {
    const name = e?.name === 'AbortError' || e?.name === 'TypeError' || e?.name === 'RangeError' ? e.name : 'Error';
    const error = { name, message: e?.message ?? String(e) };
    for (const f of ERROR_FIELDS) if (e?.[f] !== undefined) error[f] = e[f];
    self.postMessage({ id, ok: false, error });
    if (e?.kind === 'crashed') self.postMessage({ crashed: e.message });
  }
}
