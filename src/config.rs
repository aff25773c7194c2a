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

    /// Checked before any weight is read: sizes a real XLM-R model can have, so that no crafted
    /// config can make the loader allocate without bound or compute nonsense.
    fn validate(&self) -> Result<()> {
        if self.hidden_act != "gelu" {
            return Err(Error::Config(format!("hidden_act {:?} is not supported (only \"gelu\")", self.hidden_act)));
        }
        for (name, value, max) in [
            ("vocab_size", self.vocab_size, 1 << 22),
            ("hidden_size", self.hidden_size, 1 << 14),
            ("num_hidden_layers", self.num_hidden_layers, 256),
            ("num_attention_heads", self.num_attention_heads, 1 << 10),
            ("intermediate_size", self.intermediate_size, 1 << 16),
            ("max_position_embeddings", self.max_position_embeddings, 1 << 20),
            ("type_vocab_size", self.type_vocab_size, 1 << 10),
        ] {
            if value == 0 || value > max {
                return Err(Error::Config(format!("{name} {value} is out of range (1 to {max})")));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(Error::Config(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if self.pad_token_id >= self.vocab_size {
            return Err(Error::Config(format!(
                "pad_token_id {} is outside the vocabulary of {}",
                self.pad_token_id, self.vocab_size
            )));
        }
        // Positions start at pad_token_id + 1 (HF's create_position_ids_from_input_ids): room for
        // at least `<s>`, one token and `</s>`.
        if self.max_position_embeddings < self.pad_token_id + 1 + 3 {
            return Err(Error::Config(format!(
                "max_position_embeddings {} leaves no room for a text after pad_token_id {}",
                self.max_position_embeddings, self.pad_token_id
            )));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0 && self.layer_norm_eps < 1.0) {
            return Err(Error::Config(format!(
                "layer_norm_eps {:e} is not a small positive number",
                self.layer_norm_eps
            )));
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

#[cfg(test)]
mod tests {
    use super::*;

    const BGE_M3: &str = r#"{"vocab_size": 250002, "hidden_size": 1024, "num_hidden_layers": 24,
        "num_attention_heads": 16, "intermediate_size": 4096, "max_position_embeddings": 8194,
        "type_vocab_size": 1, "layer_norm_eps": 1e-05, "pad_token_id": 1, "hidden_act": "gelu"}"#;

    /// BAAI/bge-m3's config.json with `key` set to the raw JSON text `value`.
    fn with(key: &str, value: &str) -> Result<ModelConfig> {
        let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(BGE_M3).unwrap();
        let body: Vec<String> = v
            .iter()
            .map(|(k, x)| format!("\"{k}\": {}", if k == key { value.to_string() } else { x.to_string() }))
            .collect();
        ModelConfig::from_json(format!("{{{}}}", body.join(", ")).as_bytes())
    }

    #[test]
    fn bge_m3_passes_and_crafted_values_are_refused() {
        let c = ModelConfig::from_json(BGE_M3.as_bytes()).unwrap();
        assert_eq!((c.max_tokens(), c.head_dim()), (8192, 64));
        for (key, value) in [
            ("num_hidden_layers", "1000000000"),
            ("num_hidden_layers", "0"),
            ("hidden_size", "0"),
            ("intermediate_size", "0"),
            ("vocab_size", "0"),
            ("num_attention_heads", "0"),
            ("num_attention_heads", "7"),
            ("pad_token_id", "250002"),
            ("max_position_embeddings", "3"),
            ("layer_norm_eps", "0"),
            ("layer_norm_eps", "-1"),
            ("layer_norm_eps", "1e400"),
            ("hidden_act", "\"relu\""),
            ("vocab_size", "-1"),
            ("hidden_size", "\"1024\""),
        ] {
            let err = with(key, value).err().unwrap_or_else(|| panic!("{key}: {value} passed"));
            assert!(matches!(err, Error::Config(_)), "{key}: {value}: {err}");
        }
        // 514 positions (a 512-token model): valid, and its limit is 512.
        assert_eq!(with("max_position_embeddings", "514").unwrap().max_tokens(), 512);
    }
}
