// The model fingerprint: vectors of one model cannot be compared with another's, so an index
// records the model that built it — the width of its vectors and its dense vector of a fixed probe
// text — and refuses a model whose probe vector differs. The package owns this rule (the demo
// used it first).

/** The probe text (several scripts, so that a model differing on any of them shows). */
export const PROBE_TEXT = 'BGE-M3 index fingerprint · Fingerabdruck · empreinte · 指纹 · отпечаток';
/** Two fingerprints are of the same model when their probe vectors' cosine is above this:
 *  hardware and backends differ in the 6th decimal, another model or revision by far more. */
export const SAME_MODEL_COSINE = 0.999;

/** { dim, probe } of a loaded model: its hidden size and the dense vector of PROBE_TEXT. */
export async function modelFingerprint(model, { signal } = {}) {
  const e = await model.encode(PROBE_TEXT, { sparse: false, colbert: false, signal });
  return { dim: model.hiddenSize, probe: e.dense.slice() };
}

/** Whether two fingerprints are of the same model: same dim, probe cosine > SAME_MODEL_COSINE. */
export function sameModel(a, b) {
  if (!a || !b || a.dim !== b.dim || !a.probe || !b.probe || a.probe.length !== b.probe.length) return false;
  let s = 0, na = 0, nb = 0;
  for (let i = 0; i < a.probe.length; i++) { s += a.probe[i] * b.probe[i]; na += a.probe[i] ** 2; nb += b.probe[i] ** 2; }
  return s / Math.sqrt(na * nb || 1) > SAME_MODEL_COSINE;
}
