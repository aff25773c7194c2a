// Step 1, the model: where it comes from (Hugging Face, a base URL, a folder), loading with a
// progress row per file, the backend it runs on, and the model fingerprint (the package's) that
// says whether the stored index can be searched with it. Also which controls of the page are
// usable (setReady).
import { load, isCached, HF_BGE_M3, modelFingerprint, sameModel } from '../pkg/src/index.js';
import { state } from './state.js';
import { $, el, show, fmtBytes, fmtInt, isAbort } from './ui.js';
import { renderPrivacy } from './privacy.js';
import { connectAllowed, MODEL_HOSTS } from './csp.js';

const params = new URLSearchParams(location.search);

/** The model source chosen on the page: { kind, source, label, encoderFile? }; throws with a
 *  message for the person when the choice is incomplete. */
export function selectedSource() {
  const kind = document.querySelector('input[name=source]:checked').value;
  if (kind === 'hf') return { kind, source: HF_BGE_M3, label: 'Hugging Face BAAI/bge-m3' };
  if (kind === 'url') {
    const raw = $('source-url').value.trim();
    if (!raw) throw new Error('Type the base URL of the model files (the folder holding config.json, tokenizer.json, pytorch_model.bin, …).');
    let url;
    try { url = new URL(raw, location.href); } catch { throw new Error(`“${raw}” is not a URL.`); }
    if (!url.pathname.endsWith('/')) url.pathname += '/';
    return { kind, source: url.href, label: url.origin === location.origin ? url.pathname : url.href };
  }
  const files = [...$('source-folder').files];
  if (!files.length) throw new Error('Pick the folder that holds the model files (config.json, tokenizer.json, pytorch_model.bin or model.safetensors, colbert_linear.pt, sparse_linear.pt).');
  const names = new Set(files.map(f => f.name));
  const folder = (files[0].webkitRelativePath || files[0].name).split('/')[0];
  const label = `folder “${folder}” on this computer`;
  // A pack (m3 convert's): the package checks its files against its m3-pack.json.
  if (names.has('m3-pack.json')) return { kind, source: files, label };
  const missing = ['config.json', 'tokenizer.json', 'colbert_linear.pt', 'sparse_linear.pt'].filter(n => !names.has(n));
  if (!names.has('pytorch_model.bin') && !names.has('model.safetensors')) missing.push('pytorch_model.bin (or model.safetensors)');
  if (missing.length) throw new Error(`The picked folder has no ${missing.join(', ')}. Pick the folder of a BAAI/bge-m3 download, or a pack made by m3 convert.`);
  const wanted = new Set(['config.json', 'tokenizer.json', 'colbert_linear.pt', 'sparse_linear.pt', names.has('pytorch_model.bin') ? 'pytorch_model.bin' : 'model.safetensors']);
  return { kind, source: files.filter(f => wanted.has(f.name)), label,
    encoderFile: names.has('pytorch_model.bin') ? 'pytorch_model.bin' : 'model.safetensors' };
}

/** The weights chosen on the page: '' (as the files are), 'f16' or 'int8' (the package's `dtype`:
 *  BAAI's f32 files are converted while they download, and the Cache API keeps the compact form;
 *  from a folder, while they are read, and cached the same way). */
const DTYPES = ['', 'f16', 'int8'];

/** The file options of `load` (and `isCached`) for a source, with the weights chosen. */
const fileOptions = src => ({
  ...(src.encoderFile ? { encoderFile: src.encoderFile } : {}),
  ...($('dtype').value ? { dtype: $('dtype').value } : {}),
});

/** The source from the page's URL (?model=, ?device=) or the one loaded last time. A ?model= on
 *  another site (anything but this site and BAAI/bge-m3 on the hub) is not taken as it comes: a
 *  link can point anywhere, and model files are untrusted input. The page asks first (`askSource`). */
export function applyParams() {
  const saved = JSON.parse(localStorage.getItem('bge-m3-demo:source') || 'null');
  const model = params.get('model');
  let url = saved?.kind === 'url' ? saved.url : null;
  if (model != null && model !== 'hf' && model !== HF_BGE_M3) {
    let u = null;
    try { u = new URL(model, location.href); } catch { /* not a URL: shown as typed, load says so */ }
    if (u && u.origin !== location.origin) askSource(u.href);
    else url = model;
  } else if (model != null) url = null;
  if (url && url !== HF_BGE_M3) {
    document.querySelector('input[name=source][value=url]').checked = true;
    $('source-url').value = url;
  }
  const device = params.get('device');
  if (device && ['auto', 'webgpu', 'cpu'].includes(device)) $('device').value = device;
  // ?dtype=, else the weights of the model loaded last time (so its cached form loads by itself).
  const dtype = params.get('dtype') ?? saved?.dtype ?? '';
  if (DTYPES.includes(dtype)) $('dtype').value = dtype;
  if (!('gpu' in navigator) && $('device').value === 'auto') {
    $('device').options[0].textContent = 'CPU (this browser has no WebGPU)';
  }
}

/** Whether the page's security policy lets it (and the worker that downloads) fetch `url`. */
const hostAllowed = url => { try { return connectAllowed(url, location.origin); } catch { return false; } };
const allowedHosts = () => ['this site', ...MODEL_HOSTS.map(h => h.replace(/^https:\/\//, ''))].join(', ');

/** The question a ?model= link to another site gets: load from there, or not. Nothing is fetched
 *  from that site before the person says yes. */
function askSource(url) {
  state.askedSource = url;
  const host = new URL(url).host;
  $('source-ask-text').textContent = `This link asks to load the model from ${url} — not from this site, and not BAAI/bge-m3 on Hugging Face. `
    + 'Model files from elsewhere are untrusted input: load them only from a source you trust. '
    + (hostAllowed(url) ? '' : `This page’s security policy only allows downloads from ${allowedHosts()}, so the browser will block ${host} unless whoever runs this page allows it.`);
  $('source-ask-yes').textContent = `Load from ${host}`;
  $('source-ask').hidden = false;
  document.body.dataset.asking = 'yes';
}

/** The answer to `askSource`: yes loads from there (the URL becomes the chosen source), no keeps
 *  the source chosen before. */
export function answerSource(yes) {
  const url = state.askedSource;
  state.askedSource = null;
  $('source-ask').hidden = true;
  document.body.dataset.asking = 'no';
  if (!url) return;
  if (!yes) { show($('model-msg'), `Not loaded from ${url}.`, 'info'); return; }
  document.querySelector('input[name=source][value=url]').checked = true;
  $('source-url').value = url;
  loadModel();
}

/** A model this browser has downloaded before loads by itself (from the cache, no download);
 *  not while a ?model= link waits for an answer. */
export async function loadIfCached() {
  if (state.askedSource) return;
  let src = null;
  try { src = selectedSource(); } catch { /* no URL yet */ }
  if (src && src.kind !== 'folder' && (await isCached(src.source, fileOptions(src)))) loadModel({ auto: true });
}

const fileRows = new Map();
/** One file's progress row; `dtype`: the weights the load converts to ('' for none); `picked`:
 *  the files come from the user's disk (read, not downloaded). */
function progressRow(p, dtype, picked) {
  let row = fileRows.get(p.file);
  if (!row) {
    const bar = el('progress', { max: 1, value: 0, 'aria-label': `${p.file} progress` });
    const info = el('span', { class: 'file-info' });
    const li = el('li', { class: 'file', dataset: { file: p.file } }, el('span', { class: 'file-name', text: p.file === 'model' ? 'building the model' : p.file }), bar, info);
    $('files').append(li);
    row = { li, bar, info, t0: performance.now(), samples: [] };
    fileRows.set(p.file, row);
  }
  const now = performance.now();
  row.li.dataset.phase = p.phase;
  if (p.phase === 'build') {
    row.bar.max = p.total || 1; row.bar.value = p.loaded;
    row.info.textContent = `layer ${p.loaded} / ${p.total}`;
    return;
  }
  if (p.phase === 'cache') {
    row.bar.max = 1; row.bar.value = 1;
    row.info.textContent = `${fmtBytes(p.loaded)} · from the browser cache, no download`;
    return;
  }
  row.samples.push([now, p.loaded]);
  while (row.samples.length > 2 && now - row.samples[0][0] > 3000) row.samples.shift();
  const [t0, b0] = row.samples[0];
  const rate = now > t0 ? ((p.loaded - b0) / (now - t0)) * 1000 : 0;
  if (p.total) { row.bar.max = p.total; row.bar.value = p.loaded; } else row.bar.removeAttribute('value');
  const finished = p.total != null && p.loaded >= p.total;
  const avg = p.loaded / Math.max(1e-3, (now - row.t0) / 1000);
  // 'convert': downloaded (or read from disk) and converted to the chosen weights as it streams
  // (#dtype); 'verify': a picked pack file checked against its m3-pack.json.
  const how = picked ? 'read' : 'downloaded';
  const done = p.phase === 'convert' ? ` · ${how}, converted to ${dtype}` : p.phase === 'verify' ? ' · read and checked' : ` · ${how}`;
  row.info.textContent = `${fmtBytes(p.loaded)}${p.total ? ' / ' + fmtBytes(p.total) : ''} · ${fmtBytes(finished ? avg : rate)}/s${finished ? done : ''}`;
}

export async function loadModel({ auto = false } = {}) {
  if (state.loading) return;
  show($('model-msg'), '');
  let src;
  try { src = selectedSource(); } catch (e) { show($('model-msg'), e.message); return; }
  const device = $('device').value;
  // The options of this load, read once: the page's choices may change while it runs.
  const options = fileOptions(src);
  const dtype = options.dtype ?? '';
  const ac = new AbortController();
  state.loading = ac;
  $('load').disabled = true; $('load-cancel').hidden = false;
  $('files').textContent = ''; fileRows.clear();
  $('backend').hidden = true;
  setReady();
  if (state.model) { const old = state.model; state.model = null; state.loadedAt = null; renderPrivacy(); old.dispose().catch(() => {}); }
  show($('model-msg'), auto ? `Loading the cached model from ${src.label} — no download needed.` : `Loading from ${src.label}…`, 'info');
  try {
    const model = await load(src.source, { device, signal: ac.signal, onProgress: p => progressRow(p, dtype, src.kind === 'folder'), ...options });
    const fingerprint = await modelFingerprint(model, { signal: ac.signal });
    state.model = model;
    state.modelLabel = src.label;
    state.fingerprint = fingerprint;
    if (src.kind !== 'folder') localStorage.setItem('bge-m3-demo:source', JSON.stringify({ kind: src.kind, url: src.source, dtype }));
    state.loadedAt = performance.now();
    state.requestsAfterLoad = [];
    renderPrivacy();
    renderBackend(device);
    show($('model-msg'), `Ready: ${model.hiddenSize}-dimensional vectors, up to ${fmtInt(model.maxTokens)} tokens per window. Loaded from ${src.label}.`, 'ok');
    checkFingerprint();
  } catch (e) {
    show($('model-msg'), isAbort(e) ? 'Loading cancelled.' : explainLoadError(e, src, device, dtype));
  } finally {
    state.loading = null;
    $('load').disabled = false; $('load-cancel').hidden = true;
    setReady();
  }
}

/** What a failed load means for the user, chosen by the error's `kind` (and `status`), never by
 *  its message (the package's M3Error, pkg/index.d.ts). */
function explainLoadError(e, src, device, dtype) {
  const m = e?.message ?? String(e);
  switch (e?.kind) {
    case 'device':
      return device === 'webgpu'
        ? `This browser offers no usable WebGPU adapter, so “WebGPU only” cannot run. Choose “Automatic” to use the CPU fallback. (${m})`
        : `The GPU failed while loading the model: ${m}`;
    case 'http':
      if (e.status === 404) return `A model file is missing: ${m}. Check that ${src.label} holds the BAAI/bge-m3 files (config.json, tokenizer.json, pytorch_model.bin, colbert_linear.pt, sparse_linear.pt) or a pack made by m3 convert.`;
      return `The model host answered with an error: ${m}.`;
    case 'network':
      if (src.kind === 'url' && !hostAllowed(src.source)) return `The browser blocked the download: this page's Content-Security-Policy allows model downloads only from ${allowedHosts()}, and ${new URL(src.source).host} is none of them. To use your own host, serve the page with a policy that allows it (docs/deploy.md). (${m})`;
      return `The model host could not be reached — are you offline, or does the host block this page (CORS)? (${m})`;
    case 'io':
      return `A model file could not be read whole (an interrupted download or a damaged file): ${m}. Load again to download it anew.`;
    case 'integrity':
      return `A file of the pack is not the one its m3-pack.json lists (a damaged download, or a file changed on the host); it was not used or kept: ${m}`;
    case 'input':
      return e.missing ? `Model files are missing: ${e.missing.join(', ')} (${m}).` : `The model could not be loaded: ${m}`;
    case 'crashed':
      return `The model stopped while loading — most often the device ran out of memory${device !== 'cpu' ? ' (try the CPU, or close other tabs)' : ' (close other tabs)'}${dtype === 'int8' ? '' : '; int8 weights take a quarter of the memory'}: ${m}`;
    default:
      return `The model could not be loaded: ${m}`;
  }
}

function renderBackend(device) {
  const m = state.model, box = $('backend');
  box.hidden = false;
  box.textContent = '';
  const gpu = m.backend === 'webgpu';
  box.className = `backend ${gpu ? 'gpu' : 'cpu'}`;
  box.dataset.backend = m.backend;
  box.dataset.dtype = m.dtype;
  box.append(el('span', { class: 'chip', text: gpu ? 'WebGPU' : 'CPU' }), ' ', el('span', { class: 'chip', text: `${m.dtype} weights` }),
    ' ', el('span', { class: 'adapter', text: m.adapter }));
  let note = '';
  if (!gpu && device === 'cpu') note = 'Running on the CPU (WebAssembly), as chosen.';
  else if (!gpu && !('gpu' in navigator)) note = 'This browser has no WebGPU, so the model runs on the CPU (WebAssembly): it works, only slower. Chrome, Edge and recent Safari have WebGPU.';
  else if (!gpu) note = 'No WebGPU adapter could be opened (blocked GPU or driver), so the model runs on the CPU (WebAssembly): it works, only slower.';
  if (note) box.append(el('p', { class: 'small', text: note }));
}

/** Enables what the loaded model (and a usable index) allows. */
export function setReady() {
  const ready = !!state.model && !state.loading;
  const blocked = state.mismatch || !!state.damaged;
  for (const id of ['sample', 'paste-add', 'search']) $(id).disabled = !ready || (id !== 'search' && blocked);
  $('drop').classList.toggle('disabled', !ready || blocked);
  $('reindex').disabled = !ready || !!state.indexing;
  $('colbert-reindex').disabled = !ready || !!state.indexing || state.mismatch;
  $('scale-run').disabled = !ready || !!state.scaleTest;
  document.body.dataset.model = ready ? 'ready' : state.loading ? 'loading' : 'none';
}

// ── Fingerprint: vectors from another model can't be compared ─────────────────────────────────
/** The index's model fingerprint, or null when there is no index. */
export const indexFingerprint = () => (state.index ? state.index.stats().fingerprint : null);

/** Whether the index (with documents) holds another model's vectors than the loaded model's: then
 *  search and indexing are off until it is re-indexed or cleared. */
export function checkFingerprint() {
  const fp = state.fingerprint, ix = indexFingerprint();
  state.mismatch = !!(fp && ix && state.docs.length && !sameModel(fp, ix));
  $('mismatch').hidden = !state.mismatch;
  document.body.dataset.mismatch = state.mismatch ? 'yes' : 'no';
  if (state.mismatch) {
    $('mismatch-text').textContent = `This index was built with a different model (${ix.dim}-dimensional vectors) than the one loaded now (${fp.dim}-dimensional, from ${state.modelLabel}). Their vectors can't be compared, so search is off. Re-index the ${state.docs.length} document${state.docs.length > 1 ? 's' : ''} with this model (their text is stored), or clear the index.`;
  }
  setReady();
}
