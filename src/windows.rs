//! The rules between texts and forward passes, each written once here and used by the wasm API,
//! the CLI and `score()`:
//! - **windows**: a text longer than `max_length` tokens (`<s>` and `</s>` included) is cut into
//!   windows of at most that many tokens that overlap by `overlap` content tokens, each with the
//!   span of the text it covers (together the spans cover the text without gaps); or, with
//!   `truncate`, only the first window is kept (FlagEmbedding's behaviour);
//! - **the document-level merge** of a text's window outputs;
//! - **the batch plan**: which windows share a forward pass, and how far a batch is padded.
//!
//! Shape key: N = content tokens of a text (between `<s>` and `</s>`), W = windows of a text,
//! H = hidden size.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::model::Embedding;
use crate::tokenizer::Tokens;

/// Content tokens that two neighbouring windows share by default (at most half a window).
pub const DEFAULT_OVERLAP: usize = 256;

/// Batches are padded to a multiple of this many tokens: GPU kernels are compiled per shape, so
/// fewer distinct shapes means far fewer shader compilations (seconds each on a software adapter).
pub const PAD_MULTIPLE: usize = 32;

/// A length rounded up to a multiple of [`PAD_MULTIPLE`].
pub fn padded_len(len: usize) -> usize {
    len.next_multiple_of(PAD_MULTIPLE)
}

/// How texts are cut into windows, checked against the model's limit by [`WindowPolicy::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPolicy {
    /// Most tokens of a window, `<s>` and `</s>` included (3 ..= the model's limit).
    pub max_length: usize,
    /// Content tokens shared by neighbouring windows (0 ..= (max_length - 2) / 2).
    pub overlap: usize,
    /// Keep only the first window of a long text (FlagEmbedding's truncation).
    pub truncate: bool,
}

impl WindowPolicy {
    /// `max_length` defaults to `limit` (the model's longest input), `overlap` to
    /// min([`DEFAULT_OVERLAP`], half a window).
    pub fn new(max_length: Option<usize>, overlap: Option<usize>, truncate: bool, limit: usize) -> Result<Self> {
        let max_length = max_length.unwrap_or(limit);
        if !(3..=limit).contains(&max_length) {
            return Err(Error::OutOfRange(format!(
                "the max length must be an integer from 3 to {limit} (got {max_length})"
            )));
        }
        let half = (max_length - 2) / 2;
        let overlap = overlap.unwrap_or(DEFAULT_OVERLAP.min(half));
        if overlap > half {
            return Err(Error::OutOfRange(format!(
                "the overlap must be an integer from 0 to {half} for a max length of {max_length} (got {overlap})"
            )));
        }
        Ok(WindowPolicy { max_length, overlap, truncate })
    }

    /// Content tokens per window.
    pub fn width(&self) -> usize {
        self.max_length - 2
    }

    /// The windows of a tokenized text of `text_len` bytes.
    pub fn windows(&self, tok: &Tokens, text_len: usize) -> Vec<Window> {
        let n = tok.content_len();
        let width = self.width();
        let mut ranges = Vec::new();
        if n <= width {
            ranges.push((0, n));
        } else if self.truncate {
            ranges.push((0, width));
        } else {
            let step = width - self.overlap;
            let mut a = 0;
            loop {
                let b = (a + width).min(n);
                ranges.push((a, b));
                if b == n {
                    break;
                }
                a += step;
            }
        }
        // Token i of the content is tok.offsets[1 + i]. A window's span runs from its first token
        // (the first window: from the text's start) to where the token after its last one starts
        // (the last window: the text's end; a truncated window: its last token's end), so the
        // spans cover the text without gaps.
        let start_of = |i: usize| tok.offsets[1 + i].0;
        ranges
            .iter()
            .enumerate()
            .map(|(k, &(a, b))| {
                let start = if k == 0 { 0 } else { start_of(a) };
                let end = if b == n {
                    text_len
                } else if self.truncate {
                    tok.offsets[b].1
                } else {
                    start_of(b)
                };
                Window { token_start: a, token_end: b, span: (start, end.max(start)) }
            })
            .collect()
    }
}

/// One window of a tokenized text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Content tokens `[token_start, token_end)` of the text (0 is the first token after `<s>`).
    pub token_start: usize,
    pub token_end: usize,
    /// Byte span `[start, end)` of the text that the window covers.
    pub span: (usize, usize),
}

impl Window {
    /// The window's input: `<s>`, its content tokens, `</s>`.
    pub fn ids(&self, tok: &Tokens) -> Vec<u32> {
        let mut ids = Vec::with_capacity(self.token_end - self.token_start + 2);
        ids.push(tok.ids[0]);
        ids.extend_from_slice(&tok.ids[1 + self.token_start..1 + self.token_end]);
        ids.push(*tok.ids.last().expect("a tokenized text holds <s> and </s>"));
        ids
    }

    pub fn len(&self) -> usize {
        self.token_end - self.token_start + 2
    }

    pub fn is_empty(&self) -> bool {
        false // `<s>` and `</s>` are always there
    }

    /// The content token of each ColBERT row (`None`: the closing `</s>`).
    pub fn colbert_tokens(&self) -> Vec<Option<usize>> {
        (self.token_start..self.token_end).map(Some).chain([None]).collect()
    }
}

/// Which content token of the text each row of the document-level ColBERT output comes from:
/// each token once, from the window where it sits farther from the edge (an overlap is split in
/// its middle), then the last window's `</s>` (`None`). Rows `[from, from + count)` of window k
/// are taken: returns (from, count) per window.
fn colbert_takes(windows: &[Window]) -> Vec<(usize, usize)> {
    let last = windows.len() - 1;
    windows
        .iter()
        .enumerate()
        .map(|(k, w)| {
            let lo = if k == 0 { w.token_start } else { (w.token_start + windows[k - 1].token_end) / 2 };
            let hi = if k == last { w.token_end } else { (windows[k + 1].token_start + w.token_end) / 2 };
            (lo - w.token_start, hi - lo)
        })
        .collect()
}

/// The content token of each row of the document-level ColBERT output (`None`: `</s>`).
pub fn document_colbert_tokens(windows: &[Window]) -> Vec<Option<usize>> {
    let mut rows: Vec<Option<usize>> = Vec::new();
    for (w, (from, count)) in windows.iter().zip(colbert_takes(windows)) {
        rows.extend((w.token_start + from..w.token_start + from + count).map(Some));
    }
    rows.push(None);
    rows
}

/// Byte spans of ColBERT rows given by [`Window::colbert_tokens`] or
/// [`document_colbert_tokens`]: a token's own span; `</s>` an empty span where the row before it
/// ends (`fallback` when it is the only row).
pub fn colbert_spans(rows: &[Option<usize>], tok: &Tokens, fallback: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(rows.len());
    let mut prev_end = fallback;
    for row in rows {
        let span = match row {
            Some(i) => tok.offsets[1 + i],
            None => (prev_end, prev_end),
        };
        prev_end = span.1;
        out.push(span);
    }
    out
}

/// The document-level outputs of a text cut into several windows (`results[k]` is window k's):
/// dense: the mean of the window vectors weighted by their content tokens, L2-normalised;
/// sparse: per token id the largest weight, in order of first appearance;
/// ColBERT: [`document_colbert_tokens`]' rows, `[N+1, H]`.
/// `input_ids`: the whole text's ids. An output is present when every window has it.
pub fn merge(windows: &[Window], results: &[Embedding], input_ids: Vec<u32>, dim: usize) -> Embedding {
    let mut doc = Embedding { input_ids, ..Default::default() };
    if results.iter().all(|r| r.dense.is_some()) {
        let mut v = vec![0f32; dim];
        for (w, r) in windows.iter().zip(results) {
            let n = (w.token_end - w.token_start) as f32;
            for (acc, x) in v.iter_mut().zip(r.dense.as_deref().unwrap_or_default()) {
                *acc += n * x;
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let norm = if norm > 0.0 { norm } else { 1.0 };
        v.iter_mut().for_each(|x| *x /= norm);
        doc.dense = Some(v);
    }
    if results.iter().all(|r| r.sparse.is_some()) {
        let mut out: Vec<(u32, f32)> = Vec::new();
        let mut slot: HashMap<u32, usize> = HashMap::new();
        for (id, w) in results.iter().flat_map(|r| r.sparse.iter().flatten().copied()) {
            match slot.get(&id) {
                Some(&i) => out[i].1 = out[i].1.max(w),
                None => {
                    slot.insert(id, out.len());
                    out.push((id, w));
                }
            }
        }
        doc.sparse = Some(out);
    }
    if results.iter().all(|r| r.colbert.is_some()) {
        let mut data = Vec::new();
        for (r, (from, count)) in results.iter().zip(colbert_takes(windows)) {
            let c = r.colbert.as_deref().unwrap_or_default();
            data.extend_from_slice(&c[from * dim..(from + count) * dim]);
        }
        let last = results.last().and_then(|r| r.colbert.as_deref()).unwrap_or_default();
        data.extend_from_slice(&last[last.len() - dim..]);
        doc.colbert = Some(data);
    }
    doc
}

/// Groups sequences of the given token counts into forward passes, as lists of indices into
/// `lengths`. Longest first: the first sequence of a batch sets its padded length. A batch holds at
/// most `batch_size` sequences and `max_batch_tokens` tokens (at least one sequence), and it also
/// ends where a sequence would be more than a quarter padding, so that a mix of lengths does not
/// spend its work on padding (32 texts of 16-512 tokens: 5,760 positions, not 9,728).
pub fn plan_batches(lengths: &[usize], batch_size: usize, max_batch_tokens: usize) -> Result<Vec<Vec<usize>>> {
    if batch_size == 0 {
        return Err(Error::OutOfRange("the batch size must be at least 1".into()));
    }
    if max_batch_tokens == 0 {
        return Err(Error::OutOfRange("the max batch tokens must be at least 1".into()));
    }
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let mut batches = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let t = lengths[order[start]].max(1);
        let rows = (max_batch_tokens / t).clamp(1, batch_size);
        let t_padded = padded_len(t);
        let mut end = start + 1;
        while end < order.len() && end - start < rows && padded_len(lengths[order[end]]) * 4 >= t_padded * 3 {
            end += 1;
        }
        batches.push(order[start..end].to_vec());
        start = end;
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text of `n` content tokens, token i spanning bytes [2i, 2i + 1) ("a a a ...").
    fn tokens(n: usize) -> (Tokens, usize) {
        let mut ids = vec![0];
        let mut offsets = vec![(0, 0)];
        for i in 0..n {
            ids.push(10 + i as u32);
            offsets.push((2 * i, 2 * i + 1));
        }
        ids.push(2);
        offsets.push((0, 0));
        (Tokens { ids, offsets }, 2 * n)
    }

    #[test]
    fn policy_checks_its_limits() {
        assert!(WindowPolicy::new(Some(2), None, false, 8192).is_err());
        assert!(WindowPolicy::new(Some(8193), None, false, 8192).is_err());
        let p = WindowPolicy::new(None, None, false, 8192).unwrap();
        assert_eq!((p.max_length, p.overlap), (8192, 256));
        // The default overlap shrinks to half a window; a larger one is refused.
        assert_eq!(WindowPolicy::new(Some(10), None, false, 8192).unwrap().overlap, 4);
        assert!(WindowPolicy::new(Some(10), Some(5), false, 8192).is_err());
        // A model with 514 positions: the default window is its limit.
        assert_eq!(WindowPolicy::new(None, None, false, 512).unwrap().max_length, 512);
    }

    #[test]
    fn windows_tile_the_text_and_overlap() {
        let (tok, len) = tokens(20);
        let p = WindowPolicy::new(Some(10), Some(2), false, 8192).unwrap(); // width 8, step 6
        let ws = p.windows(&tok, len);
        let ranges: Vec<_> = ws.iter().map(|w| (w.token_start, w.token_end)).collect();
        assert_eq!(ranges, [(0, 8), (6, 14), (12, 20)]);
        assert_eq!(ws[0].span.0, 0);
        assert_eq!(ws.last().unwrap().span.1, len);
        for pair in ws.windows(2) {
            assert!(pair[1].span.0 <= pair[0].span.1, "no gap between windows");
        }
        // From its first token (6, byte 12) to where the token after its last one starts (14, byte 28).
        assert_eq!(ws[1].span, (12, 28));
        let ids = ws[1].ids(&tok);
        assert_eq!(ids.len(), 10);
        assert_eq!((ids[0], ids[1], ids[8], ids[9]), (0, 16, 23, 2));
        assert!(ws.iter().all(|w| w.len() <= 10));
    }

    #[test]
    fn short_empty_and_truncated_texts() {
        let (tok, len) = tokens(0);
        let p = WindowPolicy::new(Some(10), None, false, 8192).unwrap();
        assert_eq!(p.windows(&tok, len), [Window { token_start: 0, token_end: 0, span: (0, 0) }]);
        let (tok, len) = tokens(8);
        assert_eq!(p.windows(&tok, len).len(), 1);
        let (tok, len) = tokens(30);
        let t = WindowPolicy::new(Some(10), None, true, 8192).unwrap();
        let ws = t.windows(&tok, len);
        assert_eq!(ws, [Window { token_start: 0, token_end: 8, span: (0, 15) }]);
    }

    #[test]
    fn the_last_window_ends_at_the_text_even_when_steps_fit_exactly() {
        let (tok, len) = tokens(14);
        let p = WindowPolicy::new(Some(10), Some(2), false, 8192).unwrap();
        let ranges: Vec<_> = p.windows(&tok, len).iter().map(|w| (w.token_start, w.token_end)).collect();
        assert_eq!(ranges, [(0, 8), (6, 14)]);
    }

    fn emb(ids: Vec<u32>, dense: Vec<f32>, sparse: Vec<(u32, f32)>, colbert: Vec<f32>) -> Embedding {
        Embedding { input_ids: ids, dense: Some(dense), sparse: Some(sparse), colbert: Some(colbert) }
    }

    #[test]
    fn merge_weights_dense_maxes_sparse_and_takes_each_token_once() {
        let (tok, len) = tokens(20);
        let p = WindowPolicy::new(Some(10), Some(2), false, 8192).unwrap();
        let ws = p.windows(&tok, len);
        // H = 2. ColBERT row r of window k is (its token, 0), or (-1 - k, 0) for </s>.
        let results: Vec<Embedding> = ws
            .iter()
            .enumerate()
            .map(|(k, w)| {
                let colbert =
                    w.colbert_tokens().iter().flat_map(|t| [t.map_or(-1.0 - k as f32, |i| i as f32), 0.0]).collect();
                emb(w.ids(&tok), vec![k as f32, 1.0], vec![(5, 0.5 * k as f32 + 0.1), (7 + k as u32, 1.0)], colbert)
            })
            .collect();
        let doc = merge(&ws, &results, tok.ids.clone(), 2);
        // dense: token counts 8, 8, 8 -> mean of (0,1), (1,1), (2,1) = (1, 1), normalised.
        let d = doc.dense.unwrap();
        assert!((d[0] - d[1]).abs() < 1e-6 && (d[0] * d[0] + d[1] * d[1] - 1.0).abs() < 1e-6);
        assert_eq!(doc.sparse.unwrap(), [(5, 1.1), (7, 1.0), (8, 1.0), (9, 1.0)]);
        // Every content token once, in order, then the last window's </s>.
        let c: Vec<f32> = doc.colbert.unwrap().chunks(2).map(|row| row[0]).collect();
        assert_eq!(c.len(), 21);
        assert_eq!(c[..20], (0..20).map(|i| i as f32).collect::<Vec<_>>()[..]);
        assert_eq!(c[20], -3.0);
        let rows = document_colbert_tokens(&ws);
        assert_eq!(rows.len(), 21);
        assert_eq!(rows[7], Some(7));
        assert_eq!(rows[20], None);
        // Overlaps split in the middle: window 0 gives tokens 0..7, window 1 7..13, window 2 13..20.
        assert_eq!(colbert_takes(&ws), [(0, 7), (1, 6), (1, 7)]);
    }

    #[test]
    fn colbert_spans_give_eos_an_empty_span_after_the_last_token() {
        let (tok, len) = tokens(3);
        let p = WindowPolicy::new(None, None, false, 8192).unwrap();
        let w = p.windows(&tok, len)[0];
        assert_eq!(colbert_spans(&w.colbert_tokens(), &tok, 0), [(0, 1), (2, 3), (4, 5), (5, 5)]);
        let (tok, _) = tokens(0);
        assert_eq!(colbert_spans(&[None], &tok, 0), [(0, 0)]);
    }

    #[test]
    fn batches_go_longest_first_under_both_budgets_and_the_padding_cap() {
        // 32 texts of 16..512 tokens.
        let lengths: Vec<usize> = (0..32).map(|i| 16 + i * 496 / 31).collect();
        let plan = plan_batches(&lengths, 16, 8192).unwrap();
        let mut seen: Vec<usize> = plan.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..32).collect::<Vec<_>>(), "every sequence exactly once");
        for b in &plan {
            let longest = lengths[b[0]];
            assert!(b.iter().all(|&i| lengths[i] <= longest), "longest first");
            assert!(b.len() <= 16 && (b.len() == 1 || b.len() * longest <= 8192));
            assert!(b.iter().all(|&i| padded_len(lengths[i]) * 4 >= padded_len(longest) * 3));
        }
        // At most a quarter padding per row: positions <= 4/3 of the rows' own padded lengths.
        let positions: usize = plan.iter().map(|b| b.len() * padded_len(lengths[b[0]])).sum();
        let own: usize = lengths.iter().map(|&l| padded_len(l)).sum();
        assert!(positions * 3 <= own * 4, "{positions} positions for {own}");
        assert_eq!(plan.len(), 7);
        // One sequence over the budget still gets a batch of its own.
        assert_eq!(plan_batches(&[9000, 5], 16, 8192).unwrap(), [vec![0], vec![1]]);
        assert!(plan_batches(&[5], 0, 8192).is_err());
        assert!(plan_batches(&[], 4, 8192).unwrap().is_empty());
    }
}
