// The page's state, shared by its modules (one object, changed in place).

export const state = {
  model: null,          // the loaded model
  modelLabel: '',       // where it came from, in words
  fingerprint: null,    // of the loaded model
  indexFingerprint: null, // stored with the index
  docs: [],
  mismatch: false,
  loading: null,        // AbortController while loading
  indexing: null,       // AbortController while indexing
  reindexing: false,    // while the indexing job is a re-index
  queue: Promise.resolve(),
  last: null,           // { query, emb, qTokens, scored, encodeMs, scoreMs }
  showAll: false,
  loadedAt: null,       // performance.now() when the model finished loading
  requestsAfterLoad: [],
};
