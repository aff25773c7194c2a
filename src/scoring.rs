//! Relevance scores as FlagEmbedding's `BGEM3FlagModel.compute_score`.

use crate::model::Embedding;

/// Dot product of two unit dense vectors.
pub fn dense_score(q: &[f32], p: &[f32]) -> f32 {
    q.iter().zip(p).map(|(a, b)| a * b).sum()
}

/// Lexical matching: sum over the token ids both texts share of w_q * w_p.
pub fn lexical_score(q: &[(u32, f32)], p: &[(u32, f32)]) -> f32 {
    let p: std::collections::HashMap<u32, f32> = p.iter().copied().collect();
    q.iter().filter_map(|(id, w)| p.get(id).map(|wp| w * wp)).sum()
}

/// ColBERT late interaction: for each query vector the best dot product over the passage
/// vectors, averaged over the query vectors. `q`, `p`: rows of `dim` floats.
pub fn colbert_score(q: &[f32], p: &[f32], dim: usize) -> f32 {
    let q_rows = q.len() / dim;
    if q_rows == 0 || p.is_empty() {
        return 0.0;
    }
    let total: f32 = q
        .chunks_exact(dim)
        .map(|qv| p.chunks_exact(dim).map(|pv| dense_score(qv, pv)).fold(f32::NEG_INFINITY, f32::max))
        .sum();
    total / q_rows as f32
}

/// Weights of the dense, sparse and ColBERT scores in the hybrid sums.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreWeights {
    pub dense: f32,
    pub sparse: f32,
    pub colbert: f32,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        ScoreWeights { dense: 0.4, sparse: 0.2, colbert: 0.4 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub dense: f32,
    pub sparse: f32,
    pub colbert: f32,
    /// (w_sparse * sparse + w_dense * dense) / (w_sparse + w_dense)
    pub sparse_dense: f32,
    /// (w_colbert * colbert + w_sparse * sparse + w_dense * dense) / (sum of the three)
    pub colbert_sparse_dense: f32,
}

/// All five scores of a query/passage pair; both embeddings need dense, sparse and ColBERT.
pub fn compute_scores(q: &Embedding, p: &Embedding, dim: usize, w: ScoreWeights) -> Option<Scores> {
    let dense = dense_score(q.dense.as_ref()?, p.dense.as_ref()?);
    let sparse = lexical_score(q.sparse.as_ref()?, p.sparse.as_ref()?);
    let colbert = colbert_score(q.colbert.as_ref()?, p.colbert.as_ref()?, dim);
    Some(Scores {
        dense,
        sparse,
        colbert,
        sparse_dense: (w.sparse * sparse + w.dense * dense) / (w.sparse + w.dense),
        colbert_sparse_dense: (w.colbert * colbert + w.sparse * sparse + w.dense * dense)
            / (w.colbert + w.sparse + w.dense),
    })
}
