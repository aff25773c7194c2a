// The page's state, shared by its modules (one object, changed in place).

export const state = {
  model: null,          // the loaded model
  modelLabel: '',       // where it came from, in words
  fingerprint: null,    // of the loaded model
  indexFingerprint: null, // stored with the index
  docs: [],             // the index's documents, as stored (checked on restore and import)
  damaged: [],          // stored records that failed the checks on restore: { key, where, problem }
  mismatch: false,
  loading: null,        // AbortController while loading
  askedSource: null,    // a ?model= URL on another site, until the person answers whether to load it
  indexing: null,       // AbortController while indexing
  reindexing: false,    // while the indexing job is a re-index
  importing: false,     // while an index file is read and stored
  persisted: null,      // whether the browser keeps this site's storage (navigator.storage.persist)
  persistAsked: false,
  queue: Promise.resolve(),
  last: null,           // { query, emb, qTokens, scored, encodeMs, scoreMs }
  showAll: false,
  loadedAt: null,       // performance.now() when the model finished loading
  requestsAfterLoad: [],
};
