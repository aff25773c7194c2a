// The sparse lane: an inverted index from token id to the windows that hold it, with their
// lexical weights as f16 bits (6 bytes a posting: Uint32 window + Uint16 weight), and a top-k
// selection over typed arrays. Windows are the index's in-memory window numbers (wid).
//
// Layout: a compact base (CSR: offsets [vocab + 1], wids, weights, grouped by token) and a tail
// of recent postings chained per token (head [vocab] -> newest, next -> older), merged into the
// base when it grows past an eighth of it. Removed windows are not looked for here: the caller
// skips them (its `alive`) and rebuilds with a renumbering when enough are dead.
import { toF16, f16Table } from './f16.js';

export class Postings {
  constructor(vocab) {
    this.vocab = vocab;
    this.offsets = new Uint32Array(vocab + 1);
    this.wids = new Uint32Array(0);
    this.weights = new Uint16Array(0);
    this.head = new Int32Array(vocab).fill(-1);
    this.tWid = new Uint32Array(1024);
    this.tW = new Uint16Array(1024);
    this.tNext = new Int32Array(1024);
    this.tLen = 0;
  }
  /** Postings held (removed windows' included until a rebuild). */
  get size() {
    return this.wids.length + this.tLen;
  }
  /** Adds window `wid`'s lexical vector (ids: Uint32Array, weights: Float32Array). */
  add(wid, ids, weights) {
    if (this.tLen + ids.length > this.tWid.length) this.growTail(this.tLen + ids.length);
    for (let i = 0; i < ids.length; i++) {
      const t = this.tLen++, id = ids[i];
      this.tWid[t] = wid;
      this.tW[t] = toF16(weights[i]);
      this.tNext[t] = this.head[id];
      this.head[id] = t;
    }
    if (this.tLen > Math.max(65536, this.wids.length >> 3)) this.rebuild(null);
  }
  growTail(need) {
    const cap = Math.max(need, this.tWid.length * 2);
    const grow = (a, T) => { const b = new T(cap); b.set(a.subarray(0, this.tLen)); return b; };
    this.tWid = grow(this.tWid, Uint32Array);
    this.tW = grow(this.tW, Uint16Array);
    this.tNext = grow(this.tNext, Int32Array);
  }
  /** acc[wid] += qw * w over the postings of each query token (qIds, qWeights); each window
   *  reached is listed once in `touched` (seen: Uint8Array marks, left set). Returns how many. */
  accumulate(qIds, qWeights, acc, seen, touched) {
    const t16 = f16Table(), { offsets, wids, weights, head, tWid, tW, tNext } = this;
    let n = 0;
    for (let q = 0; q < qIds.length; q++) {
      const id = qIds[q], qw = qWeights[q];
      if (id >= this.vocab) continue;
      for (let p = offsets[id], end = offsets[id + 1]; p < end; p++) {
        const wid = wids[p];
        if (!seen[wid]) { seen[wid] = 1; touched[n++] = wid; }
        acc[wid] += qw * t16[weights[p]];
      }
      for (let t = head[id]; t >= 0; t = tNext[t]) {
        const wid = tWid[t];
        if (!seen[wid]) { seen[wid] = 1; touched[n++] = wid; }
        acc[wid] += qw * t16[tW[t]];
      }
    }
    return n;
  }
  /** Merges the tail into the base; `remap` (Int32Array: old wid -> new wid, -1 to drop) renumbers. */
  rebuild(remap) {
    const { vocab, offsets, wids, weights, head, tWid, tW, tNext } = this;
    const keep = wid => (remap ? remap[wid] : wid);
    const counts = new Uint32Array(vocab + 1);
    for (let id = 0; id < vocab; id++) {
      let c = 0;
      for (let p = offsets[id]; p < offsets[id + 1]; p++) if (keep(wids[p]) >= 0) c++;
      for (let t = head[id]; t >= 0; t = tNext[t]) if (keep(tWid[t]) >= 0) c++;
      counts[id + 1] = counts[id] + c;
    }
    const total = counts[vocab];
    const nw = new Uint32Array(total), nwt = new Uint16Array(total);
    for (let id = 0; id < vocab; id++) {
      let o = counts[id];
      for (let p = offsets[id]; p < offsets[id + 1]; p++) {
        const w = keep(wids[p]);
        if (w >= 0) { nw[o] = w; nwt[o++] = weights[p]; }
      }
      for (let t = head[id]; t >= 0; t = tNext[t]) {
        const w = keep(tWid[t]);
        if (w >= 0) { nw[o] = w; nwt[o++] = tW[t]; }
      }
    }
    this.offsets = counts;
    this.wids = nw;
    this.weights = nwt;
    this.head.fill(-1);
    this.tLen = 0;
    if (this.tWid.length > 65536) {
      this.tWid = new Uint32Array(1024); this.tW = new Uint16Array(1024); this.tNext = new Int32Array(1024);
    }
  }
  /** Bytes held in memory (capacities). */
  get bytes() {
    return this.offsets.byteLength + this.wids.byteLength + this.weights.byteLength + this.head.byteLength
      + this.tWid.byteLength + this.tW.byteLength + this.tNext.byteLength;
  }
}

/** The k best of scored items (a min-heap of size k: O(n log k), no full sort). `push(id, score)`;
 *  `sorted()` -> ids best first (ties: smaller id first). */
export class TopK {
  constructor(k) {
    this.k = k;
    this.n = 0;
    this.ids = new Int32Array(k);
    this.scores = new Float64Array(k);
  }
  /** Whether (a, sa) ranks below (b, sb). */
  static below(sa, a, sb, b) {
    return sa < sb || (sa === sb && a > b);
  }
  push(id, score) {
    const { ids, scores } = this;
    if (this.n < this.k) {
      let i = this.n++;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!TopK.below(score, id, scores[p], ids[p])) break;
        ids[i] = ids[p]; scores[i] = scores[p]; i = p;
      }
      ids[i] = id; scores[i] = score;
      return;
    }
    if (this.k === 0 || !TopK.below(scores[0], ids[0], score, id)) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i, ms = score, mi = id;
      if (l < this.n && TopK.below(scores[l], ids[l], ms, mi)) { m = l; ms = scores[l]; mi = ids[l]; }
      if (r < this.n && TopK.below(scores[r], ids[r], ms, mi)) { m = r; ms = scores[r]; mi = ids[r]; }
      if (m === i) break;
      ids[i] = ids[m]; scores[i] = scores[m]; i = m;
    }
    ids[i] = id; scores[i] = score;
  }
  sorted() {
    const order = Array.from({ length: this.n }, (_, i) => i);
    order.sort((a, b) => this.scores[b] - this.scores[a] || this.ids[a] - this.ids[b]);
    return order.map(i => this.ids[i]);
  }
}
