//! Parity with FlagEmbedding on the tiny fixture (CPU and wgpu backends, .bin and .safetensors),
//! batching invariance and bad input.

mod common;

use bge_m3_web::native::{Backend, WeightsFile, block_on, load_dir};
use bge_m3_web::weights::{Checkpoint, TensorSource};
use bge_m3_web::{BgeM3, EncodeOptions, Error, ScoreWeights, compute_scores};
use common::*;

const TOL: f32 = 1e-4;

fn encode(model: &BgeM3, texts: &[&str], batch_size: usize) -> Vec<bge_m3_web::Embedding> {
    let opts = EncodeOptions { batch_size, ..Default::default() };
    block_on(model.encode(texts, &opts, &mut |_, _| {})).unwrap()
}

/// Every fixture text and every score, on one backend and encoder file.
fn parity(backend: Backend, file: WeightsFile) {
    let model = load_dir(&tiny_dir(), backend, file, &mut |_, _| {}).unwrap();
    let reference = reference();
    let items = reference["items"].as_array().unwrap();
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    let dim = model.config.hidden_size;
    let got = encode(&model, &texts, 4);
    assert_eq!(got.len(), items.len());
    for (i, (g, want)) in got.iter().zip(items).enumerate() {
        check_item(&format!("{backend:?}/{file:?} text {i}"), g, want, dim, TOL);
    }
    // compute_score over the fixture's pairs.
    let scores = &reference["scores"];
    let pairs = scores["pairs"].as_array().unwrap();
    let flat: Vec<&str> = pairs.iter().flat_map(|p| p.as_array().unwrap().iter().map(|t| t.as_str().unwrap())).collect();
    let embs = encode(&model, &flat, 8);
    let w = ScoreWeights::default();
    for (k, pair) in embs.chunks_exact(2).enumerate() {
        let s = compute_scores(&pair[0], &pair[1], dim, w).unwrap();
        for (name, value) in [
            ("dense", s.dense),
            ("sparse", s.sparse),
            ("colbert", s.colbert),
            ("sparse+dense", s.sparse_dense),
            ("colbert+sparse+dense", s.colbert_sparse_dense),
        ] {
            let want = scores["result"][name][k].as_f64().unwrap() as f32;
            assert!((value - want).abs() <= TOL, "{backend:?} pair {k} {name}: {value} vs {want}");
        }
    }
}

#[test]
fn cpu_parity_safetensors() {
    parity(Backend::Cpu, WeightsFile::Safetensors);
}

#[test]
fn cpu_parity_pytorch_bin() {
    parity(Backend::Cpu, WeightsFile::PytorchBin);
}

#[test]
fn wgpu_parity() {
    match Backend::Wgpu.device() {
        Ok(_) => parity(Backend::Wgpu, WeightsFile::PytorchBin),
        Err(e) => println!("SKIPPED wgpu_parity: no wgpu adapter on this machine ({e})"),
    }
}

#[test]
fn bin_and_safetensors_hold_the_same_tensors() {
    let dir = tiny_dir();
    let bin = Checkpoint::open(std::fs::read(dir.join("pytorch_model.bin")).unwrap()).unwrap();
    let st = Checkpoint::open(std::fs::read(dir.join("model.safetensors")).unwrap()).unwrap();
    assert_eq!(bin.format(), "pytorch");
    assert_eq!(st.format(), "safetensors");
    let names: Vec<&str> = st.names().collect();
    assert!(names.len() > 30);
    for name in names {
        assert_eq!(bin.tensor(name).unwrap(), st.tensor(name).unwrap(), "{name}");
    }
}

#[test]
fn result_does_not_depend_on_the_batch() {
    let model = load_dir(&tiny_dir(), Backend::Cpu, WeightsFile::Auto, &mut |_, _| {}).unwrap();
    let texts = ["short", "a somewhat longer text with more tokens in it, to force padding", "mid length text"];
    let together = encode(&model, &texts, 3);
    for (i, t) in texts.iter().enumerate() {
        let alone = &encode(&model, &[t], 1)[0];
        let a = alone.dense.as_ref().unwrap();
        let b = together[i].dense.as_ref().unwrap();
        let d = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(d < 1e-5, "text {i} changes by {d} when batched");
        assert_eq!(alone.colbert.as_ref().unwrap().len(), together[i].colbert.as_ref().unwrap().len());
    }
}

#[test]
fn bad_input_gives_errors() {
    let model = load_dir(&tiny_dir(), Backend::Cpu, WeightsFile::Auto, &mut |_, _| {}).unwrap();
    // An empty list is fine; empty and whitespace texts are valid inputs (<s></s>).
    assert!(block_on(model.encode(&[], &EncodeOptions::default(), &mut |_, _| {})).unwrap().is_empty());
    let opts = EncodeOptions { max_length: 1, ..Default::default() };
    assert!(matches!(block_on(model.encode(&["x"], &opts, &mut |_, _| {})), Err(Error::Input(_))));
    let opts = EncodeOptions { max_length: 9000, ..Default::default() };
    let err = block_on(model.encode(&["x"], &opts, &mut |_, _| {})).unwrap_err();
    assert!(err.to_string().contains("8192"), "{err}");
    let err = block_on(model.encode_ids(vec![vec![0, 250_010, 2]], &EncodeOptions::default(), &mut |_, _| {})).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
    // Truncation keeps </s> last.
    let long = "word ".repeat(100);
    let opts = EncodeOptions { max_length: 16, ..Default::default() };
    let e = &block_on(model.encode(&[&long], &opts, &mut |_, _| {})).unwrap()[0];
    assert_eq!(e.input_ids.len(), 16);
    assert_eq!(*e.input_ids.last().unwrap(), 2);
}

#[test]
fn truncated_or_foreign_files_are_errors() {
    let dir = tiny_dir();
    let bin = std::fs::read(dir.join("pytorch_model.bin")).unwrap();
    let st = std::fs::read(dir.join("model.safetensors")).unwrap();
    // Cut short: the zip directory is gone.
    let err = Checkpoint::open(bin[..bin.len() / 2].to_vec()).err().unwrap();
    assert!(err.to_string().contains("truncated"), "{err}");
    // Cut short safetensors: the index fails.
    let err = Checkpoint::open(st[..st.len() - 1000].to_vec()).err().unwrap();
    assert!(err.to_string().contains("truncated"), "{err}");
    // Not a model at all.
    assert!(Checkpoint::open(b"hello world, not a model".to_vec()).is_err());
    assert!(Checkpoint::open(vec![]).is_err());
    // A tensor's data cut (zip directory intact but storage shortened) via a corrupt offset:
    // flip bytes in the middle of the pickle: parse error, not a panic.
    let mut corrupt = bin.clone();
    let pos = corrupt.windows(8).position(|w| w == b"data.pkl").unwrap() + 200;
    for b in &mut corrupt[pos..pos + 64] {
        *b = 0xff;
    }
    let _ = Checkpoint::open(corrupt).map(|c| c.tensor("embeddings.word_embeddings.weight"));
}

#[test]
fn wrong_shapes_and_missing_files_are_errors() {
    let dir = tiny_dir();
    let tmp = std::env::temp_dir().join(format!("m3-wrong-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for f in ["tokenizer.json", "pytorch_model.bin", "colbert_linear.pt", "sparse_linear.pt"] {
        std::fs::copy(dir.join(f), tmp.join(f)).unwrap();
    }
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(tmp.join("config.json"), cfg.replace("\"intermediate_size\": 64", "\"intermediate_size\": 96")).unwrap();
    let err = load_dir(&tmp, Backend::Cpu, WeightsFile::Auto, &mut |_, _| {}).err().unwrap().to_string();
    assert!(err.contains("encoder.layer.0.intermediate.dense.weight") && err.contains("[64, 32]") && err.contains("[96, 32]"), "{err}");
    std::fs::write(tmp.join("config.json"), &cfg).unwrap();
    std::fs::remove_file(tmp.join("sparse_linear.pt")).unwrap();
    let err = load_dir(&tmp, Backend::Cpu, WeightsFile::Auto, &mut |_, _| {}).err().unwrap().to_string();
    assert!(err.contains("sparse_linear.pt"), "{err}");
    let err = load_dir(&tmp.join("nope"), Backend::Cpu, WeightsFile::Auto, &mut |_, _| {}).err().unwrap().to_string();
    assert!(err.contains("does not exist"), "{err}");
    std::fs::remove_dir_all(&tmp).unwrap();
}
