// What the result view needs of a hit's window (ranking is the package index's): lexical matches
// and their positions, a snippet around them, ColBERT rows per token and their alignment with the
// query's. A window is what `index.getWindow` returns: inputIds [T] (<s> … </s>), colbertSpans
// [2 (T - 1)] (a span per token after <s>), sparse, and ColBERT rows as the index stores them.

export function toMap(sparse) {
  const m = new Map();
  for (let i = 0; i < sparse.ids.length; i++) m.set(sparse.ids[i], sparse.weights[i]);
  return m;
}

/** Query tokens that the window matches lexically: [{ id, token, q, p, contribution }], largest first. */
export function lexicalMatches(q, w) {
  const pm = toMap(w.sparse);
  const out = [];
  for (let i = 0; i < q.sparse.ids.length; i++) {
    const id = q.sparse.ids[i];
    const p = pm.get(id);
    if (p === undefined) continue;
    const qw = q.sparse.weights[i];
    out.push({ id, token: q.sparse.tokens?.[i] ?? String(id), q: qw, p, contribution: qw * p });
  }
  return out.sort((a, b) => b.contribution - a.contribution);
}

/** Character span [start, end) in the document of ColBERT row `r` of window `w` (row r is token
 *  inputIds[r + 1]). */
export function rowSpan(w, r) {
  return [w.colbertSpans[2 * r], w.colbertSpans[2 * r + 1]];
}

/** The window's ColBERT row of each token after <s>: Float32Array [T - 1, dim]. An index with
 *  pooled rows (`colbertAssign`: the pooled row of each token) gives each token its pooled row;
 *  one without ColBERT rows gives null. */
export function tokenRows(w) {
  if (!w.colbert) return null;
  if (!w.colbertAssign) return w.colbert.data;
  const { data, dim } = w.colbert, assign = w.colbertAssign;
  const out = new Float32Array(assign.length * dim);
  for (let t = 0; t < assign.length; t++) out.set(data.subarray(assign[t] * dim, (assign[t] + 1) * dim), t * dim);
  return out;
}

/** Spans in the document of the window's tokens whose id is in `ids` (a Map id -> weight):
 *  [{ start, end, id }] in text order. */
export function tokenMarks(w, ids) {
  const marks = [];
  if (!w.colbertSpans) return marks;
  const rows = w.inputIds.length - 1;
  for (let r = 0; r < rows; r++) {
    const id = w.inputIds[r + 1];
    if (!ids.has(id)) continue;
    const [start, end] = rowSpan(w, r);
    if (end > start) marks.push({ start, end, id });
  }
  return marks;
}

/** A passage of about `len` characters of `text` inside [w.start, w.end): around the densest group
 *  of lexical matches, else around `focus` (a character position). Snapped to word boundaries. */
export function snippetRange(text, w, marks, weightOf, focus, len = 420) {
  let center = focus ?? w.start;
  if (marks.length) {
    let bestSum = -1, j = 0, sum = 0;
    for (let i = 0; i < marks.length; i++) {
      sum += weightOf(marks[i]);
      while (marks[i].start - marks[j].start > len * 0.7) { sum -= weightOf(marks[j]); j++; }
      if (sum > bestSum) { bestSum = sum; center = (marks[j].start + marks[i].end) / 2; }
    }
  }
  let start = Math.max(w.start, Math.round(center - len / 2));
  let end = Math.min(w.end, start + len);
  start = Math.max(w.start, end - len);
  if (start > w.start) { const sp = text.lastIndexOf(' ', start); if (sp > start - 30 && sp >= w.start) start = sp + 1; }
  if (end < w.end) { const sp = text.indexOf(' ', end); if (sp !== -1 && sp < end + 30 && sp <= w.end) end = sp; }
  return [start, end];
}

/** ColBERT alignment of query rows against the window's rows: sims (qRows x pRows), the best
 *  passage row per query row and its similarity. */
export function alignment(qColbert, pColbert, dim) {
  const qRows = qColbert.length / dim, pRows = pColbert.length / dim;
  const sims = new Float32Array(qRows * pRows);
  const best = new Int32Array(qRows), bestSim = new Float32Array(qRows);
  for (let i = 0; i < qRows; i++) {
    let b = -Infinity, bj = 0;
    for (let j = 0; j < pRows; j++) {
      let s = 0;
      for (let k = 0; k < dim; k++) s += qColbert[i * dim + k] * pColbert[j * dim + k];
      sims[i * pRows + j] = s;
      if (s > b) { b = s; bj = j; }
    }
    best[i] = bj; bestSim[i] = b;
  }
  return { qRows, pRows, sims, best, bestSim };
}

/** Readable form of a vocabulary token ("▁garden" -> "garden", "▁" -> "␣"). */
export function prettyToken(t) {
  if (t == null) return '?';
  if (t === '▁') return '␣';
  return t.replace(/^▁/, '').replace(/▁/g, ' ');
}
