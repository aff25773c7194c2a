// A fresh app that installed the packed bge-m3-web tarball: the three lines a user writes.
import { load, hybridScores } from 'bge-m3-web';

const status = document.getElementById('status');
try {
  const model = await load('/fixtures/tiny-m3/', { device: 'cpu', cache: false });
  const [q, p] = await model.encode(['What is BGE M3?', 'BGE M3 is an embedding model supporting dense retrieval, lexical matching and multi-vector interaction.']);
  window.result = { backend: model.backend, dense: [...q.dense], ids: [...q.inputIds], scores: hybridScores(q, p) };
  status.textContent = `done on ${model.backend}`;
} catch (e) {
  window.result = { error: e.message };
  status.textContent = `failed: ${e.message}`;
}
