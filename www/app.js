// The demo page: load BGE-M3, index your documents into the package's hybrid index (IndexedDB),
// search them with hybrid scores. Plain ES modules, no build step. Everything runs in this tab
// (the model in a Web Worker). This module wires the page's controls to the modules that own them:
//   state.js        the page's state
//   model-panel.js  step 1: model source, loading and progress, backend, fingerprint, setReady
//   indexing.js     step 2: documents in (files, paste, sample corpus), indexing and re-indexing
//   storage.js      step 2: the stored index (restore, list, remove, clear, sizes per lane,
//                   ColBERT option, export / import, storage used and persistence, a full storage)
//   library.js      which index is the current one, staging indexes for a re-index
//   migrate.js      the previous version's store moved into the index, once
//   index-file.js   the previous version's formats (v1 files, old records): read and checked
//   results.js      step 3: search (the index's), weights and fusion, timings, hits, ColBERT alignment
//   search.js       what the result view needs: lexical matches, snippets, alignments
//   scale.js        step 4: the synthetic scale test (a separate index in page memory)
//   csp.js          the Content-Security-Policy (the server's header, the <meta> tag, allowed hosts)
//   privacy.js      the network-request counter in the header
//   ui.js           DOM and formatting helpers
import { clearCache } from '../pkg/src/index.js';
import { state } from './state.js';
import { $, show } from './ui.js';
import { watchNetwork } from './privacy.js';
import { applyParams, answerSource, loadModel, loadIfCached, setReady } from './model-panel.js';
import { addFiles, addPasted, addSample, reindexAll, showSampleInfo } from './indexing.js';
import { restoreIndex, renderStorage, clearIndex, exportIndexFile, importIndexFile, chooseColbert } from './storage.js';
import { initWeights, resetWeights, reweigh, runSearch } from './results.js';
import { prefetchSynth, runScaleTest, cancelScaleTest } from './scale.js';

const MODES = ['dense', 'sparse', 'colbert'];

function wireModelPanel() {
  $('load').addEventListener('click', () => loadModel());
  $('load-cancel').addEventListener('click', () => state.loading?.abort());
  $('source-ask-yes').addEventListener('click', () => answerSource(true));
  $('source-ask-no').addEventListener('click', () => answerSource(false));
  $('clear-cache').addEventListener('click', async () => {
    const had = await clearCache();
    show($('model-msg'), had ? 'The downloaded model files were removed from this browser.' : 'No downloaded model files were stored.', 'info');
    renderStorage();
  });
  $('source-url').addEventListener('focus', () => { document.querySelector('input[name=source][value=url]').checked = true; });
  $('source-folder').addEventListener('change', () => { document.querySelector('input[name=source][value=folder]').checked = true; });
}

function wireIndexPanel() {
  const drop = $('drop');
  drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', e => { e.preventDefault(); drop.classList.remove('over'); addFiles([...e.dataTransfer.files]); });
  drop.addEventListener('keydown', e => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); $('pick').click(); } });
  $('pick').addEventListener('change', e => { addFiles([...e.target.files]); e.target.value = ''; });
  $('paste-add').addEventListener('click', addPasted);
  $('sample').addEventListener('click', addSample);
  $('index-cancel').addEventListener('click', () => state.indexing?.abort());
  $('reindex').addEventListener('click', () => reindexAll());
  $('mismatch-clear').addEventListener('click', clearIndex);
  $('clear-index').addEventListener('click', clearIndex);
  $('damaged-clear').addEventListener('click', clearIndex);
  $('colbert-option').addEventListener('change', e => chooseColbert(e.target.value));
  $('colbert-reindex').addEventListener('click', () => reindexAll($('colbert-option').value));
  $('colbert-keep').addEventListener('click', () => chooseColbert(state.index?.stats().options.colbert ?? state.colbert));
  $('export').addEventListener('click', exportIndexFile);
  $('import').addEventListener('change', e => { const f = e.target.files[0]; e.target.value = ''; if (f) importIndexFile(f); });
}

function wireSearchPanel() {
  $('search-form').addEventListener('submit', e => { e.preventDefault(); runSearch(); });
  for (const k of MODES) $(`w-${k}`).addEventListener('input', reweigh);
  $('rrf').addEventListener('change', reweigh);
  $('w-reset').addEventListener('click', resetWeights);
  $('scale-run').addEventListener('click', runScaleTest);
  $('scale-cancel').addEventListener('click', cancelScaleTest);
}

async function start() {
  watchNetwork();
  prefetchSynth();
  applyParams();
  initWeights();
  wireModelPanel();
  wireIndexPanel();
  wireSearchPanel();
  await restoreIndex();
  setReady();
  showSampleInfo();
  document.body.dataset.started = 'yes';
  await loadIfCached();
}

start();
