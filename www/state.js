// The page's state, shared by its modules (one object, changed in place).

export const state = {
  model: null,          // the loaded model
  modelLabel: '',       // where it came from, in words
  fingerprint: null,    // of the loaded model: { dim, probe } (the package's modelFingerprint)
  index: null,          // the open hybrid index of the person's documents (library.js), or null: none yet
  docs: [],             // its documents for the list: { id, name, lang, origin, tokens, addedAt, windows }, by addedAt
  damaged: null,        // why the stored index could not be opened (a damaged store), or null
  mismatch: false,      // the index holds another model's vectors
  colbert: 'int8',      // the ColBERT option chosen for the next index created (library.js COLBERT_OPTIONS)
  loading: null,        // AbortController while loading
  askedSource: null,    // a ?model= URL on another site, until the person answers whether to load it
  indexing: null,       // AbortController while indexing
  reindexing: false,    // while the indexing job is a re-index
  importing: false,     // while an index file is read and stored
  scaleTest: null,      // AbortController while the synthetic scale test runs
  persisted: null,      // whether the browser keeps this site's storage (navigator.storage.persist)
  persistAsked: false,
  queue: Promise.resolve(),
  last: null,           // { query, emb, qTokens, encodeMs, result } of the last search
  searchSeq: 0,         // the latest index search asked for (older answers are dropped)
  showAll: false,
  loadedAt: null,       // performance.now() when the model finished loading
  requestsAfterLoad: [],
};
