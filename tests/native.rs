//! Parity with FlagEmbedding on the tiny fixtures (CPU and wgpu backends, .bin and .safetensors,
//! f32 and fp16 heads), windows, batching invariance and bad input.
#![cfg(not(target_family = "wasm"))]

mod common;

use bge_m3_web::native::{PickedDevice, WeightsFile, block_on, load_dir};
use bge_m3_web::weights::{Checkpoint, TensorSource};
use bge_m3_web::{BgeM3, EncodeOptions, Error, ScoreWeights, compute_scores};
use common::*;

const TOL: f32 = 1e-4;

/// FlagEmbedding's behaviour: long texts truncated, `</s>` kept last.
fn truncating(batch_size: usize) -> EncodeOptions {
    EncodeOptions { batch_size, truncate: true, ..Default::default() }
}

fn encode_with(model: &BgeM3, texts: &[&str], opts: &EncodeOptions) -> Vec<bge_m3_web::Embedding> {
    let docs = block_on(model.encode(texts, opts, &mut |_| {})).unwrap();
    docs.into_iter().map(|d| d.into_embedding()).collect()
}

fn encode(model: &BgeM3, texts: &[&str], batch_size: usize) -> Vec<bge_m3_web::Embedding> {
    encode_with(model, texts, &truncating(batch_size))
}

fn load_tiny(d: &PickedDevice, file: WeightsFile) -> BgeM3 {
    load_dir(&tiny_dir(), d, file, &mut |_, _| {}).unwrap()
}

/// Every fixture text and every score of one fixture model, on one device and encoder file.
fn parity(name: &str, d: &PickedDevice, file: WeightsFile) {
    let model = load_dir(&fixtures().join(name), d, file, &mut |_, _| {}).unwrap();
    let reference = reference_of(name);
    let backend = format!("{name}/{}", d.backend);
    let items = reference["items"].as_array().unwrap();
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    let dim = model.config.hidden_size;
    let got = encode(&model, &texts, 4);
    assert_eq!(got.len(), items.len());
    for (i, (g, want)) in got.iter().zip(items).enumerate() {
        check_item(&format!("{backend}/{file:?} text {i}"), g, want, dim, TOL);
    }
    // compute_score over the fixture's pairs.
    let scores = &reference["scores"];
    let embs = encode(&model, &pair_texts(&reference), 8);
    let w = ScoreWeights::default();
    for (k, pair) in embs.chunks_exact(2).enumerate() {
        let s = compute_scores(&pair[0], &pair[1], dim, w).unwrap();
        for (name, value) in score_modes(&s) {
            let want = scores["result"][name][k].as_f64().unwrap() as f32;
            assert!(matches_reference(value, want, TOL), "{backend} pair {k} {name}: {value} vs {want}");
        }
    }
}

#[test]
fn cpu_parity_safetensors() {
    parity("tiny-m3", &cpu(), WeightsFile::Safetensors);
}

#[test]
fn cpu_parity_pytorch_bin() {
    parity("tiny-m3", &cpu(), WeightsFile::PytorchBin);
}

/// fp16 heads, as BAAI/bge-m3 ships `colbert_linear.pt` and `sparse_linear.pt`.
#[test]
fn cpu_parity_fp16_heads() {
    parity("tiny-m3-h16", &cpu(), WeightsFile::PytorchBin);
}

#[test]
fn wgpu_parity() {
    if let Some(d) = wgpu("wgpu_parity") {
        parity("tiny-m3", &d, WeightsFile::PytorchBin);
        parity("tiny-m3-h16", &d, WeightsFile::PytorchBin);
    }
}

/// A text longer than the window: windows of at most `max_length` tokens whose spans cover the
/// text; each window's outputs equal encoding its ids alone; the document-level outputs merge
/// them; `truncate` keeps FlagEmbedding's first window.
#[test]
fn long_texts_become_windows() {
    let model = load_tiny(&cpu(), WeightsFile::Auto);
    let reference = reference();
    let long = reference["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["input_ids"].as_array().unwrap().len() == 713)
        .unwrap()["text"]
        .as_str()
        .unwrap();
    let opts = EncodeOptions { max_length: Some(256), overlap: Some(32), ..Default::default() };
    let doc = &block_on(model.encode(&[long], &opts, &mut |_| {})).unwrap()[0];
    let n = doc.tokens.content_len();
    assert_eq!(n, 711);
    assert_eq!(doc.windows.len(), 4, "711 tokens in windows of 254 stepping 222: 0, 222, 444, 666");
    assert_eq!(doc.windows[0].span.0, 0);
    assert_eq!(doc.windows.last().unwrap().span.1, long.len());
    for pair in doc.windows.windows(2) {
        assert!(pair[1].span.0 <= pair[0].span.1 && pair[0].span.0 < pair[1].span.0);
    }
    let dim = model.config.hidden_size;
    let ids: Vec<Vec<u32>> = doc.windows.iter().map(|w| w.ids(&doc.tokens)).collect();
    assert!(ids.iter().all(|w| w.len() <= 256));
    let alone = block_on(model.encode_ids(ids, &EncodeOptions::default(), &mut |_| {})).unwrap();
    for (k, (a, b)) in alone.iter().zip(&doc.results).enumerate() {
        let d = a
            .dense
            .as_ref()
            .unwrap()
            .iter()
            .zip(b.dense.as_ref().unwrap())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(d < 1e-5, "window {k}: dense differs by {d}");
    }
    let e = doc.embedding();
    assert_eq!(e.input_ids.len(), n + 2);
    assert_eq!(e.colbert.as_ref().unwrap().len(), (n + 1) * dim);
    let norm: f32 = e.dense.as_ref().unwrap().iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-5);
    let most: f32 = doc.results.iter().flat_map(|r| r.sparse.as_ref().unwrap().iter().map(|p| p.1)).fold(0.0, f32::max);
    assert_eq!(e.sparse.as_ref().unwrap().iter().map(|p| p.1).fold(0.0, f32::max), most);
    // The same text, truncated: one window of 256 tokens, `</s>` last.
    let t = EncodeOptions { truncate: true, ..opts };
    let doc = &block_on(model.encode(&[long], &t, &mut |_| {})).unwrap()[0];
    assert!(doc.truncated);
    assert_eq!(doc.windows.len(), 1);
    assert_eq!(doc.embedding().input_ids.len(), 256);
    assert_eq!(*doc.embedding().input_ids.last().unwrap(), 2);
}

/// `score()` scores document-level outputs: for texts within the window, FlagEmbedding's scores.
#[test]
fn score_matches_compute_scores() {
    let model = load_tiny(&cpu(), WeightsFile::Auto);
    let texts = ["what is a bee", "bees make honey", "a long passage about hives and honey"];
    let got =
        block_on(model.score(texts[0], &texts[1..], &EncodeOptions::default(), ScoreWeights::default(), &mut |_| {}))
            .unwrap();
    let e = encode(&model, &texts, 4);
    for (k, s) in got.iter().enumerate() {
        let want = compute_scores(&e[0], &e[k + 1], model.config.hidden_size, ScoreWeights::default()).unwrap();
        assert!((s.colbert_sparse_dense - want.colbert_sparse_dense).abs() < 1e-6, "pair {k}");
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
    let model = load_tiny(&cpu(), WeightsFile::Auto);
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
    let model = load_tiny(&cpu(), WeightsFile::Auto);
    // An empty list is fine; empty and whitespace texts are valid inputs (<s></s>).
    assert!(block_on(model.encode(&[], &EncodeOptions::default(), &mut |_| {})).unwrap().is_empty());
    let opts = EncodeOptions { max_length: Some(1), ..Default::default() };
    assert!(matches!(block_on(model.encode(&["x"], &opts, &mut |_| {})), Err(Error::OutOfRange(_))));
    let opts = EncodeOptions { max_length: Some(9000), ..Default::default() };
    let err = block_on(model.encode(&["x"], &opts, &mut |_| {})).unwrap_err();
    assert!(err.to_string().contains("8192"), "{err}");
    let opts = EncodeOptions { batch_size: 0, ..Default::default() };
    assert!(matches!(block_on(model.encode(&["x"], &opts, &mut |_| {})), Err(Error::OutOfRange(_))));
    let err =
        block_on(model.encode_ids(vec![vec![0, 250_010, 2]], &EncodeOptions::default(), &mut |_| {})).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
    // Truncation keeps </s> last.
    let long = "word ".repeat(100);
    let opts = EncodeOptions { max_length: Some(16), truncate: true, ..Default::default() };
    let e = encode_with(&model, &[&long], &opts).remove(0);
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
    std::fs::write(tmp.join("config.json"), cfg.replace("\"intermediate_size\": 64", "\"intermediate_size\": 96"))
        .unwrap();
    let err = load_dir(&tmp, &cpu(), WeightsFile::Auto, &mut |_, _| {}).err().unwrap().to_string();
    assert!(
        err.contains("encoder.layer.0.intermediate.dense.weight")
            && err.contains("[64, 32]")
            && err.contains("[96, 32]"),
        "{err}"
    );
    std::fs::write(tmp.join("config.json"), &cfg).unwrap();
    std::fs::remove_file(tmp.join("sparse_linear.pt")).unwrap();
    let err = load_dir(&tmp, &cpu(), WeightsFile::Auto, &mut |_, _| {}).err().unwrap().to_string();
    assert!(err.contains("sparse_linear.pt"), "{err}");
    let err = load_dir(&tmp.join("nope"), &cpu(), WeightsFile::Auto, &mut |_, _| {}).err().unwrap().to_string();
    assert!(err.contains("does not exist"), "{err}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// The two kernels for the linear layers and attention on wgpu (burn's cubek matmul, chosen on
/// GPUs; our register-blocked one, chosen on CPU adapters such as lavapipe and SwiftShader) give
/// the same outputs: every fixture text under 1000 tokens, batched with padding.
#[test]
fn wgpu_linear_kernels_agree() {
    use bge_m3_web::kernels::LinearKernel;
    let Some(d) = wgpu("wgpu_linear_kernels_agree") else { return };
    let device = d.device;
    let dir = tiny_dir();
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let open = |f: &str| Checkpoint::open(read(f)).unwrap();
    let load = |kernel| {
        let (encoder, colbert, sparse) =
            (open("model.safetensors"), open("colbert_linear.pt"), open("sparse_linear.pt"));
        BgeM3::load(
            &read("config.json"),
            &read("tokenizer.json"),
            &encoder,
            &colbert,
            &sparse,
            device.clone(),
            kernel,
            &mut |_, _| {},
        )
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
        assert_eq!(
            sx.iter().map(|p| p.0).collect::<Vec<_>>(),
            sy.iter().map(|p| p.0).collect::<Vec<_>>(),
            "text {i}: sparse ids"
        );
        let (wx, wy): (Vec<f32>, Vec<f32>) = (sx.iter().map(|p| p.1).collect(), sy.iter().map(|p| p.1).collect());
        assert!(close(&wx, &wy), "text {i}: sparse weights differ");
    }
}

/// `matmul_f16` (f16 operands, kernel::LinearKernel::BurnF16) sums in f32 and returns f32: no
/// rounding of the results to f16 (which burn's own f16 matmul would add: 2^-11 relative).
#[test]
fn f16_matmul_keeps_f32_sums() {
    use bge_m3_web::kernels::matmul_f16;
    use burn::tensor::{Tensor, TensorData};
    let Some(d) = wgpu_f16("f16_matmul_keeps_f32_sums") else { return };
    use burn::tensor::FloatDType;
    let read = |t: Tensor<2>| {
        let t = t.cast(FloatDType::F32);
        block_on(t.into_data_async()).unwrap().try_to_vec::<f32>().unwrap()
    };
    // 1 + 2^-11 is an f32, not an f16 (it rounds to 1, as burn's f16 matmul shows).
    let a = Tensor::<2>::from_data(TensorData::new(vec![1f32, 1.0], [1, 2]), &d.device);
    let b = Tensor::<2>::from_data(TensorData::new(vec![1f32, 2f32.powi(-11)], [2, 1]), &d.device);
    assert_eq!(read(a.clone().cast(FloatDType::F16).matmul(b.clone().cast(FloatDType::F16))), vec![1.0]);
    assert_eq!(read(matmul_f16(a, b)), vec![1.0 + 2f32.powi(-11)]);
    // A linear layer's shape, operands exact in f16: within f32 summation error of the f64 sums.
    let (n, k, m) = (48, 256, 96);
    let value = |i: usize| half::f16::from_f32(((i * 7919 % 1000) as f32 - 500.0) / 256.0).to_f32();
    let x: Vec<f32> = (0..n * k).map(value).collect();
    let w: Vec<f32> = (0..k * m).map(|i| value(i + 13)).collect();
    let got = read(matmul_f16(
        Tensor::<2>::from_data(TensorData::new(x.clone(), [n, k]), &d.device),
        Tensor::<2>::from_data(TensorData::new(w.clone(), [k, m]), &d.device),
    ));
    for r in 0..n {
        for c in 0..m {
            let want: f64 = (0..k).map(|i| x[r * k + i] as f64 * w[i * m + c] as f64).sum();
            let scale: f64 = (0..k).map(|i| (x[r * k + i] as f64 * w[i * m + c] as f64).abs()).sum();
            let err = (got[r * m + c] as f64 - want).abs() / scale;
            assert!(err < 1e-6, "[{r}, {c}]: {} vs {want} (error {err:.1e} of the sum of magnitudes)", got[r * m + c]);
        }
    }
}
