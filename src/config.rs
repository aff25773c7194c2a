//! `config.json` of an XLM-RoBERTa encoder (the BAAI/bge-m3 one: 24 layers, 1024 wide, 16 heads,
//! FFN 4096, 8194 positions, vocabulary 250002).

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ModelConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "one")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "one")]
    pub pad_token_id: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn one() -> usize {
    1
}
fn default_eps() -> f64 {
    1e-5
}
fn default_act() -> String {
    "gelu".into()
}

impl ModelConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let cfg: ModelConfig = serde_json::from_slice(bytes)
            .map_err(|e| Error::Config(format!("config.json is not a valid XLM-RoBERTa config: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        if self.hidden_act != "gelu" {
            return Err(Error::Config(format!("hidden_act {:?} is not supported (only \"gelu\")", self.hidden_act)));
        }
        if self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(Error::Config(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if self.max_position_embeddings <= self.pad_token_id + 1 || self.type_vocab_size == 0 {
            return Err(Error::Config("max_position_embeddings / type_vocab_size too small".into()));
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The longest input in tokens (special tokens included): positions start at pad_token_id + 1.
    pub fn max_tokens(&self) -> usize {
        self.max_position_embeddings - self.pad_token_id - 1
    }
}
