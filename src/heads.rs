//! The three BGE-M3 outputs on top of the last hidden state, as FlagEmbedding's `BGEM3Model`:
//! dense (`<s>` state, L2-normalised), sparse (`relu(sparse_linear(h))`, max per token id,
//! specials dropped) and ColBERT (`colbert_linear(h[1:])`, L2-normalised per token).

use burn::tensor::{Device, Tensor, activation};

use crate::config::ModelConfig;
use crate::encoder::Linear;
use crate::error::Result;
use crate::kernels::LinearKernel;
use crate::tokenizer::{BOS_ID, EOS_ID, PAD_ID, UNK_ID};
use crate::weights::TensorSource;

/// `sparse_linear.pt`: Linear(H, 1).
pub struct SparseHead {
    linear: Linear,
}

impl SparseHead {
    pub fn new(src: &dyn TensorSource, cfg: &ModelConfig, device: &Device) -> Result<Self> {
        Ok(SparseHead { linear: Linear::new(src, "", cfg.hidden_size, 1, device, LinearKernel::Burn)? })
    }

    /// h: [N, H] -> token weights [N] (>= 0).
    pub fn forward(&self, h: Tensor<2>) -> Tensor<1> {
        activation::relu(self.linear.forward(h)).flatten(0, 1)
    }
}

/// Max weight per token id, in order of first appearance; `<s>` `</s>` `<pad>` `<unk>` and
/// weights <= 0 dropped (FlagEmbedding's `_process_token_weights`).
pub fn lexical_weights(ids: &[u32], weights: &[f32]) -> Vec<(u32, f32)> {
    let mut out: Vec<(u32, f32)> = Vec::new();
    let mut slot: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    for (&id, &w) in ids.iter().zip(weights) {
        if matches!(id, BOS_ID | EOS_ID | PAD_ID | UNK_ID) || w <= 0.0 {
            continue;
        }
        match slot.get(&id) {
            Some(&i) => out[i].1 = f32::max(out[i].1, w),
            None => {
                slot.insert(id, out.len());
                out.push((id, w));
            }
        }
    }
    out
}

/// `colbert_linear.pt`: Linear(H, H).
pub struct ColbertHead {
    linear: Linear,
}

impl ColbertHead {
    pub fn new(src: &dyn TensorSource, cfg: &ModelConfig, device: &Device, kernel: LinearKernel) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(ColbertHead { linear: Linear::new(src, "", h, h, device, kernel)? })
    }

    /// h: [B, T, H] -> [B, T-1, H]: the states after `<s>`, projected and L2-normalised
    /// (padding rows are computed too; callers keep the first len-1 rows of each text).
    pub fn forward(&self, h: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = h.dims();
        let after_bos = h.narrow(1, 1, t - 1).reshape([b * (t - 1), d]);
        let v = self.linear.forward(after_bos);
        l2_normalize(v).reshape([b, t - 1, d])
    }
}

/// Rows divided by their L2 norm (at least 1e-12, as `torch.nn.functional.normalize`).
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_weights_keep_the_max_per_id_and_drop_specials_and_non_positive() {
        // <s> 10 11 10 <unk> 12 <pad> 13 </s>
        let ids = [BOS_ID, 10, 11, 10, UNK_ID, 12, PAD_ID, 13, EOS_ID];
        let w = [9.0, 0.5, 0.2, 0.7, 9.0, 0.0, 9.0, -1.0, 9.0];
        assert_eq!(lexical_weights(&ids, &w), [(10, 0.7), (11, 0.2)]);
        assert!(lexical_weights(&[BOS_ID, EOS_ID], &[1.0, 1.0]).is_empty());
    }
}
