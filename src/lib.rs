//! BGE-M3 (dense, sparse/lexical and multi-vector ColBERT embeddings) on burn: the same numbers
//! as FlagEmbedding's `BGEM3FlagModel`, natively (CPU or wgpu) and in the browser (WebGPU).

pub mod config;
pub mod cpu_attention;
pub mod encoder;
pub mod error;
pub mod gpu;
pub mod heads;
pub mod kernels;
pub mod model;
pub mod scoring;
pub mod tokenizer;
pub mod weights;
pub mod windows;

#[cfg(not(target_family = "wasm"))]
pub mod native;
pub mod pack;
#[cfg(target_family = "wasm")]
pub mod web;

pub use config::ModelConfig;
pub use error::{Error, Result};
pub use model::{BgeM3, Document, Embedding, EncodeOptions, Progress};
pub use scoring::{ScoreWeights, Scores, compute_scores};
