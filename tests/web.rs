//! The wasm-bindgen API in headless Chromium (`wasm-pack test --headless --chrome --release`, run
//! by scripts/test.sh): the tiny fixture loaded from bytes, parity with FlagEmbedding on the wasm
//! CPU backend and on WebGPU (SwiftShader, flags in webdriver.json), windows, progress and
//! cancellation across the boundary, and bad input. The fixture is compiled in (`include_bytes!`
//! from ../shared/fixtures): the test page cannot read files.
#![cfg(target_family = "wasm")]

use bge_m3_web::web::M3;
use js_sys::{Array, Float32Array, Function, Object, Reflect, Uint8Array, Uint32Array};
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

#[path = "common/reference_tolerance.rs"]
mod reference_tolerance;
use reference_tolerance::matches_reference;

// In a worker, as the package runs the model: a long synchronous step (the CPU backend, the
// tokenizer) then never blocks the page that the test runner polls through WebDriver.
wasm_bindgen_test_configure!(run_in_dedicated_worker);

macro_rules! fixture {
    ($file:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/", $file))
    };
}

const TOL: f32 = 1e-4;

fn files(encoder: &[u8]) -> JsValue {
    let o = Object::new();
    let put = |k: &str, bytes: &[u8]| Reflect::set(&o, &k.into(), &Uint8Array::from(bytes).into()).unwrap();
    put("config", fixture!("tiny-m3/config.json"));
    put("tokenizer", fixture!("tiny-m3/tokenizer.json"));
    put("encoder", encoder);
    put("colbert", fixture!("tiny-m3/colbert_linear.pt"));
    put("sparse", fixture!("tiny-m3/sparse_linear.pt"));
    o.into()
}

async fn load(device: &str) -> Result<M3, JsValue> {
    load_with_kernel(device, None).await
}

/// The tiny fixture on `device` with `M3.load`'s `kernel` argument.
async fn load_with_kernel(device: &str, kernel: Option<&str>) -> Result<M3, JsValue> {
    started();
    M3::load(
        files(fixture!("tiny-m3/model.safetensors")),
        Some(device.into()),
        None,
        None,
        None,
        kernel.map(String::from),
    )
    .await
}

/// The module's start function (static constructors: burn's kernel registry), which the test
/// harness does not run by itself.
fn started() {
    bge_m3_web::web::start();
}

fn reference() -> Value {
    serde_json::from_slice(fixture!("tiny-m3-reference.json")).unwrap()
}

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap()
}

fn options(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

fn texts(items: &[&str]) -> JsValue {
    items.iter().map(|t| JsValue::from_str(t)).collect::<Array>().into()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Every fixture text (up to 8192 tokens, `truncate` as FlagEmbedding) through `encode` against
/// FlagEmbedding's outputs.
async fn parity(device: &str) {
    let m3 = load(device).await.unwrap();
    assert_eq!(m3.backend(), if device == "cpu" { "cpu" } else { "webgpu" });
    let reference = reference();
    let items: Vec<&Value> = reference["items"].as_array().unwrap().iter().collect();
    assert_eq!(items.len(), 14);
    let strs: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    let opts = options(&[("batchSize", 4.into()), ("truncate", true.into())]);
    let out = m3.encode(texts(&strs), opts, None).await.unwrap();
    assert_eq!(out.length() as usize, items.len());
    for (i, (got, want)) in out.iter().zip(&items).enumerate() {
        let ids = Uint32Array::from(get(&got, "inputIds")).to_vec();
        let want_ids: Vec<u32> =
            want["input_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        assert_eq!(ids, want_ids, "{device} text {i}: ids");
        let dense = Float32Array::from(get(&got, "dense")).to_vec();
        let d = max_diff(&dense, &floats(&want["dense"]));
        assert!(d <= TOL, "{device} text {i}: dense differs by {d}");
        let colbert = Float32Array::from(get(&get(&got, "colbert"), "data")).to_vec();
        let want_colbert: Vec<f32> = want["colbert"].as_array().unwrap().iter().flat_map(floats).collect();
        let d = max_diff(&colbert, &want_colbert);
        assert!(d <= TOL, "{device} text {i}: colbert differs by {d}");
        let sparse = get(&got, "sparse");
        let (sid, sw) =
            (Uint32Array::from(get(&sparse, "ids")).to_vec(), Float32Array::from(get(&sparse, "weights")).to_vec());
        let want_sparse = want["sparse"].as_object().unwrap();
        for (id, w) in sid.iter().zip(&sw) {
            let expected = want_sparse.get(&id.to_string()).map_or(0.0, |x| x.as_f64().unwrap() as f32);
            assert!(
                matches_reference(*w, expected, TOL),
                "{device} text {i}: sparse weight of {id}: {w} vs {expected}"
            );
        }
        assert!(sid.len() + 1 >= want_sparse.len(), "{device} text {i}: sparse ids missing");
        let windows = Array::from(&get(&got, "windows"));
        assert_eq!(windows.length(), 1, "{device} text {i}: one window");
        // The last fixture text is longer than 8192 tokens: FlagEmbedding, and `truncate`, cut it.
        assert_eq!(get(&got, "truncated").as_bool(), Some(want_ids.len() == 8192), "{device} text {i}: truncated");
    }
}

#[wasm_bindgen_test]
async fn parity_on_the_wasm_cpu_backend() {
    parity("cpu").await;
}

#[wasm_bindgen_test]
async fn parity_on_webgpu() {
    // webdriver.json gives Chromium SwiftShader's WebGPU adapter; without one this fails, never skips.
    parity("webgpu").await;
}

/// `kernel`: ours by default, burn's tiled kernels on request (the escape hatch for a GPU where
/// ours are slower), both within the reference tolerance on the short fixture texts.
#[wasm_bindgen_test]
async fn the_kernel_choice_is_kept_and_reported() {
    let reference = reference();
    let items: Vec<&Value> = reference["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["input_ids"].as_array().unwrap().len() < 100)
        .collect();
    let strs: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    for (choice, ran) in [(None, "register"), (Some("burn"), "burn")] {
        let m3 = load_with_kernel("webgpu", choice).await.unwrap();
        assert_eq!(m3.kernel(), ran);
        let out = m3.encode(texts(&strs), options(&[("batchSize", 4.into())]), None).await.unwrap();
        for (i, (got, want)) in out.iter().zip(&items).enumerate() {
            let d = max_diff(&Float32Array::from(get(&got, "dense")).to_vec(), &floats(&want["dense"]));
            assert!(d <= TOL, "{ran} text {i}: dense differs by {d}");
        }
    }
}

/// A long text becomes windows with UTF-16 spans; progress comes after each forward pass, and a
/// callback that throws stops the encode with its error.
#[wasm_bindgen_test]
async fn windows_progress_and_cancellation() {
    let m3 = load("cpu").await.unwrap();
    let text = "Bienen sammeln Nektar 🐝 und machen Honig. ".repeat(60);
    let calls = std::rc::Rc::new(std::cell::RefCell::new(Vec::<u32>::new()));
    let seen = calls.clone();
    let on_batch = Closure::<dyn FnMut(JsValue)>::new(move |p: JsValue| {
        seen.borrow_mut().push(get(&p, "windowsDone").as_f64().unwrap() as u32);
    });
    let opts = options(&[
        ("maxLength", 64.into()),
        ("overlap", 8.into()),
        ("batchSize", 2.into()),
        ("colbertSpans", true.into()),
    ]);
    let out = m3
        .encode(texts(&[&text]), opts.clone(), Some(on_batch.as_ref().unchecked_ref::<Function>().clone()))
        .await
        .unwrap();
    let doc = out.get(0);
    let windows = Array::from(&get(&doc, "windows"));
    let n = windows.length();
    assert!(n >= 4, "{n} windows");
    assert_eq!(*calls.borrow().last().unwrap(), n, "progress reaches every window");
    assert!(calls.borrow().len() as u32 >= n / 2, "progress after each pass of at most 2 windows");
    let utf16_len = text.encode_utf16().count() as f64;
    let (mut prev_end, mut tokens) = (0.0, 0);
    for (k, w) in windows.iter().enumerate() {
        let (start, end) = (get(&w, "start").as_f64().unwrap(), get(&w, "end").as_f64().unwrap());
        assert!(start <= prev_end && end > start, "window {k}: [{start}, {end}) after {prev_end}");
        prev_end = end;
        assert!(Uint32Array::from(get(&w, "inputIds")).length() <= 64);
        tokens = get(&w, "tokenEnd").as_f64().unwrap() as u32;
    }
    assert_eq!(prev_end, utf16_len, "the last window ends at the text's end (UTF-16 units)");
    let colbert = get(&doc, "colbert");
    assert_eq!(get(&colbert, "rows").as_f64().unwrap() as u32, tokens + 1, "each token once, then </s>");
    assert_eq!(Uint32Array::from(get(&doc, "colbertSpans")).length(), 2 * (tokens + 1));

    let stop =
        Closure::<dyn FnMut(JsValue) -> Result<(), JsValue>>::new(|_p: JsValue| Err(JsValue::from_str("stop here")));
    let err =
        m3.encode(texts(&[&text]), opts, Some(stop.as_ref().unchecked_ref::<Function>().clone())).await.unwrap_err();
    assert_eq!(err.as_string().as_deref(), Some("stop here"), "the callback's error is what the call rejects with");
    // The model still works.
    let again = m3.encode(texts(&["still works"]), options(&[("colbert", false.into())]), None).await.unwrap();
    assert_eq!(Float32Array::from(get(&again.get(0), "dense")).length(), 32);
}

/// Bad input: JS error types and kinds, never a panic.
#[wasm_bindgen_test]
async fn bad_input_gives_errors_with_kinds() {
    let name = |e: &JsValue| get(e, "name").as_string().unwrap_or_default();
    let kind = |e: &JsValue| get(e, "kind").as_string().unwrap_or_default();
    started();
    let half = &fixture!("tiny-m3/model.safetensors")[..1_000_000];
    let e = M3::load(files(half), Some("cpu".into()), None, None, None, None).await.err().unwrap();
    assert_eq!(kind(&e), "format", "a truncated checkpoint");
    let e = M3::load(files(b"<!doctype html>"), Some("cpu".into()), None, None, None, None).await.err().unwrap();
    assert_eq!(kind(&e), "format", "not a checkpoint");
    let e = M3::load(files(fixture!("tiny-m3/model.safetensors")), Some("tpu".into()), None, None, None, None)
        .await
        .err()
        .unwrap();
    assert_eq!(kind(&e), "input");
    let e = load_with_kernel("cpu", Some("cudnn")).await.err().unwrap();
    assert_eq!(kind(&e), "input", "an unknown kernel");
    let m3 = load("cpu").await.unwrap();
    let e = m3.encode(JsValue::from(42), JsValue::UNDEFINED, None).await.unwrap_err();
    assert_eq!(name(&e), "TypeError");
    let e = m3
        .encode(
            vec![JsValue::from("ok"), JsValue::NULL].into_iter().collect::<Array>().into(),
            JsValue::UNDEFINED,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(name(&e), "TypeError");
    for (key, value) in [("maxLength", 100_000), ("maxLength", 2), ("batchSize", 0), ("maxBatchTokens", 0)] {
        let e = m3.encode(texts(&["ok"]), options(&[(key, value.into())]), None).await.unwrap_err();
        assert_eq!((name(&e), kind(&e)), ("RangeError".into(), "range".into()), "{key}: {value}");
    }
    let e = m3
        .encode(texts(&["ok"]), options(&[("maxLength", 100.into()), ("overlap", 60.into())]), None)
        .await
        .unwrap_err();
    assert_eq!(name(&e), "RangeError");
    let e = m3.encode(texts(&["ok"]), options(&[("dense", "yes".into())]), None).await.unwrap_err();
    assert_eq!(name(&e), "TypeError");
    let bad_ids: Array = [Uint32Array::from(&[0u32, 250_010, 2][..])].iter().collect();
    let e = m3.encode_ids(bad_ids.into(), JsValue::UNDEFINED, None).await.unwrap_err();
    assert_eq!(kind(&e), "input");
    // Empty inputs are fine.
    assert_eq!(m3.encode(texts(&[]), JsValue::UNDEFINED, None).await.unwrap().length(), 0);
    let empty = m3.encode(texts(&[""]), JsValue::UNDEFINED, None).await.unwrap();
    assert_eq!(Uint32Array::from(get(&empty.get(0), "inputIds")).to_vec(), [0, 2]);
}

/// `score` equals FlagEmbedding's `compute_score` on the fixture's pairs; the default weights
/// are FlagEmbedding's.
#[wasm_bindgen_test]
async fn score_matches_flagembedding() {
    let m3 = load("cpu").await.unwrap();
    let w = M3::default_weights();
    assert_eq!(
        [get(&w, "dense"), get(&w, "sparse"), get(&w, "colbert")].map(|x| x.as_f64().unwrap() as f32),
        [0.4, 0.2, 0.4]
    );
    let reference = reference();
    let scores = &reference["scores"];
    for (k, pair) in scores["pairs"].as_array().unwrap().iter().enumerate() {
        let (q, p) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        // compute_score truncates at 8192 tokens; so does `truncate`.
        let got = m3.score(q.into(), texts(&[p]), options(&[("truncate", true.into())]), None).await.unwrap().get(0);
        for name in ["dense", "sparse", "colbert", "sparse+dense", "colbert+sparse+dense"] {
            let (g, want) =
                (get(&got, name).as_f64().unwrap() as f32, scores["result"][name][k].as_f64().unwrap() as f32);
            assert!(matches_reference(g, want, TOL), "pair {k} {name}: {g} vs {want}");
        }
    }
}
