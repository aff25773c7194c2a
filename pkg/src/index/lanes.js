// What an index holds in page memory between queries, and nothing per token: the dense lane (one
// int8 vector per window; an index storing f16 vectors scans their int8 rounding and rescores
// its candidates from the stored f16), the sparse postings, and per window its document, its number in
// the document, its token count and whether it is live. Windows are numbered by `wid`, their slot
// in the dense lane. A removed window stays (dead, skipped) until a quarter of the windows are
// dead; then `compact` renumbers the live ones (dense lane, postings and tables rebuilt together).
import { DenseLane, maxSimInt8, quantizeRows } from './kernels.js';
import { decodeF16 } from './f16.js';
import { Postings } from './postings.js';
import { VOCAB_SIZE } from './checks.js';
import { BYTE_PARTS } from './records.js';

/** Dead windows before a compaction: at least this many, and a quarter of all. */
const COMPACT_MIN = 1024;

export class LaneSet {
  /** dim: vector width; capacity: windows to make room for. */
  constructor(dim, capacity = 1024) {
    this.dim = dim;
    this.lane = new DenseLane(dim, capacity);
    this.postings = new Postings(VOCAB_SIZE);
    this.cap = 0;
    this.grow(capacity);
    /** id -> { id, wids: Uint32Array (one per window, in order), bytes: stored bytes by part }. */
    this.docs = new Map();
    this.windows = 0; // live
    this.tokens = 0; // live windows' tokens (<s> and </s> included)
    this.dead = 0;
    this.bytes = Object.fromEntries(BYTE_PARTS.map(p => [p, 0]));
  }
  /** Window numbers in use (live and dead). */
  get count() {
    return this.lane.count;
  }
  grow(cap) {
    const copy = (a, T) => { const b = new T(cap); if (a) b.set(a.subarray(0, Math.min(a.length, cap))); return b; };
    this.winIndex = copy(this.winIndex, Uint32Array);
    this.winTokens = copy(this.winTokens, Uint32Array);
    this.alive = copy(this.alive, Uint8Array);
    this.winDoc = this.winDoc ?? [];
    // Scratch of a search: dense scores, lexical sums, marks, the windows reached.
    this.denseOut = new Float32Array(cap);
    this.acc = new Float32Array(cap);
    this.seen = new Uint8Array(cap);
    this.touched = new Uint32Array(cap);
    this.cap = cap;
  }
  /** Adds a document's windows: `doc` its doc record, `lanes` its lane records. */
  addDoc(doc, lanes) {
    const entry = { id: doc.id, wids: new Uint32Array(lanes.length), bytes: doc.bytes };
    for (let k = 0; k < lanes.length; k++) {
      const l = lanes[k];
      const q = l.dense instanceof Uint16Array ? quantizeRows(decodeF16(l.dense), this.dim) : null;
      const wid = q ? this.lane.push(q.codes, q.scales[0]) : this.lane.push(l.dense, l.scale);
      if (wid >= this.cap) this.grow(Math.max(1024, this.cap * 2));
      entry.wids[k] = wid;
      this.winDoc[wid] = entry;
      this.winIndex[wid] = k;
      this.winTokens[wid] = doc.windows[4 * k + 3] - doc.windows[4 * k + 2] + 2;
      this.alive[wid] = 1;
      this.postings.add(wid, l.ids, l.weights);
      this.tokens += this.winTokens[wid];
    }
    this.windows += lanes.length;
    this.docs.set(doc.id, entry);
    for (const p of BYTE_PARTS) this.bytes[p] += doc.bytes[p];
  }
  removeDoc(id) {
    const entry = this.docs.get(id);
    if (!entry) return false;
    for (const wid of entry.wids) {
      this.alive[wid] = 0;
      this.tokens -= this.winTokens[wid];
      this.winDoc[wid] = null;
    }
    this.windows -= entry.wids.length;
    this.dead += entry.wids.length;
    this.docs.delete(id);
    for (const p of BYTE_PARTS) this.bytes[p] -= entry.bytes[p];
    return true;
  }
  maybeCompact() {
    if (this.dead >= COMPACT_MIN && this.dead * 4 >= this.count) this.compact();
  }
  /** Renumbers the live windows 0..windows-1 in order; the dead are dropped everywhere. */
  compact() {
    const old = this.lane, n = old.count, dim = this.dim;
    const remap = new Int32Array(n).fill(-1);
    const lane = new DenseLane(dim, Math.max(1, this.windows));
    const winIndex = new Uint32Array(this.windows), winTokens = new Uint32Array(this.windows), winDoc = [];
    for (let wid = 0; wid < n; wid++) {
      if (!this.alive[wid]) continue;
      const w = lane.push(old.codes.subarray(wid * dim, (wid + 1) * dim), old.scales[wid]);
      remap[wid] = w;
      winIndex[w] = this.winIndex[wid];
      winTokens[w] = this.winTokens[wid];
      winDoc[w] = this.winDoc[wid];
    }
    for (const entry of this.docs.values()) for (let k = 0; k < entry.wids.length; k++) entry.wids[k] = remap[entry.wids[k]];
    this.postings.rebuild(remap);
    this.lane = lane;
    this.winIndex = winIndex;
    this.winTokens = winTokens;
    this.winDoc = winDoc;
    this.alive = new Uint8Array(this.windows).fill(1);
    this.cap = 0;
    this.grow(Math.max(1024, this.windows));
    this.dead = 0;
  }
  /** q · the int8 dense vector of window `wid`. */
  denseDot(wid, q) {
    const { lane, dim } = this;
    return maxSimInt8(q, lane.codes.subarray(wid * dim, (wid + 1) * dim), lane.scales.subarray(wid, wid + 1), dim);
  }
  /** Bytes held in page memory: the lanes, the tables, the search scratch, and an estimate of
   *  the per-document entries (Map entry, id string, window list). */
  get memoryBytes() {
    let docs = 0;
    for (const e of this.docs.values()) docs += 96 + 2 * e.id.length + e.wids.byteLength;
    return this.lane.bytes + this.postings.bytes + this.winIndex.byteLength + this.winTokens.byteLength
      + this.alive.byteLength + 8 * this.winDoc.length + this.denseOut.byteLength + this.acc.byteLength
      + this.seen.byteLength + this.touched.byteLength + docs;
  }
}
