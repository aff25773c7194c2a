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

/// The two kernels for the linear layers and attention on wgpu (burn's cubek matmul, chosen on
/// GPUs; our register-blocked one, chosen on CPU adapters such as lavapipe and SwiftShader) give
/// the same outputs: every fixture text under 1000 tokens, batched with padding.
#[test]
fn wgpu_linear_kernels_agree() {
    use bge_m3_web::kernels::LinearKernel;
    let device = match Backend::Wgpu.device() {
        Ok((device, _)) => device,
        Err(e) => return println!("SKIPPED wgpu_linear_kernels_agree: no wgpu adapter on this machine ({e})"),
    };
    let dir = tiny_dir();
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let open = |f: &str| Checkpoint::open(read(f)).unwrap();
    let load = |kernel| {
        let (encoder, colbert, sparse) = (open("model.safetensors"), open("colbert_linear.pt"), open("sparse_linear.pt"));
        BgeM3::load(&read("config.json"), &read("tokenizer.json"), &encoder, &colbert, &sparse, device.clone(), kernel, &mut |_, _| {})
            .unwrap()
    };
    let (burn, register) = (load(LinearKernel::Burn), load(LinearKernel::Register4x4));
    let reference = reference();
    let texts: Vec<&str> = reference["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["input_ids"].as_array().unwrap().len() < 1000)
        .map(|i| i["text"].as_str().unwrap())
        .collect();
    assert!(texts.len() >= 8, "the fixture has short texts");
    let (a, b) = (encode(&burn, &texts, 4), encode(&register, &texts, 4));
    let close = |x: &[f32], y: &[f32]| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| (p - q).abs() <= 1e-5);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x.input_ids, y.input_ids);
        assert!(close(x.dense.as_ref().unwrap(), y.dense.as_ref().unwrap()), "text {i}: dense differs");
        assert!(close(x.colbert.as_ref().unwrap(), y.colbert.as_ref().unwrap()), "text {i}: colbert differs");
        let (sx, sy) = (x.sparse.as_ref().unwrap(), y.sparse.as_ref().unwrap());
        assert_eq!(sx.iter().map(|p| p.0).collect::<Vec<_>>(), sy.iter().map(|p| p.0).collect::<Vec<_>>(), "text {i}: sparse ids");
        let (wx, wy): (Vec<f32>, Vec<f32>) = (sx.iter().map(|p| p.1).collect(), sy.iter().map(|p| p.1).collect());
        assert!(close(&wx, &wy), "text {i}: sparse weights differ");
    }
}
