//! Our own GPU kernels for software adapters: the linear layers (x W + b), both attention
//! products and the attention softmax.
//!
//! burn 0.22 runs every matmul through cubek's tiled kernels: tiles staged in workgroup memory,
//! with a workgroup barrier per k step. On a real GPU that is the right design. On a software
//! adapter (SwiftShader, Chrome's WebGPU when no GPU is usable; lavapipe natively) workgroup
//! memory is ordinary memory and every barrier switches between the invocations of a workgroup,
//! so the same kernel ran at ~0.1 GFLOP/s there (measured: `[32, 384] x [384, 384]` took ~110 ms
//! on SwiftShader). `matmul_4x4` has no workgroup memory and no barriers: each invocation keeps
//! a 4 x 4 block of the output in registers and reads its operands as `vec4`s straight from the
//! buffers (the CPU's caches do the staging), ~1.2 GFLOP/s on the same machine.
//! `softmax_rows` replaces burn's five-kernel softmax with one in-place pass.
//! `crate::gpu` picks these for CPU adapters ([`crate::gpu::KernelChoice`]); GPUs keep burn's
//! kernels.

use burn::backend::Wgpu;
use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

/// burn's tensor (`Tensor` here is cubecl's kernel argument type).
type BurnTensor<const D: usize> = burn::tensor::Tensor<D>;

/// Which kernel runs the linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearKernel {
    /// burn's matmul (cubek's tiled kernels on wgpu, flex's on the CPU backend).
    Burn,
    /// `matmul_4x4` and `softmax_rows`: register-blocked, no workgroup memory (wgpu devices
    /// only).
    Register4x4,
}

type Vec4 = Vector<f32, Const<4>>;

/// Units per workgroup along the output columns (in vec4s) and along the blocks of 4 rows.
const GROUP_COLS: u32 = 16;
const GROUP_ROWS: u32 = 4;

/// Where row `r` of matrix `z` starts in a buffer, in vec4s:
/// `offset + (z / heads) * batch + (z % heads) * head + r * row`.
/// (z = batch index * heads + head: attention runs one matrix per text and head.)
#[derive(CubeLaunch, CubeType)]
struct Layout {
    offset: usize,
    batch: usize,
    head: usize,
    row: usize,
}

#[cube]
fn row_start(l: &Layout, z: usize, heads: usize, r: usize) -> usize {
    l.offset + (z / heads) * l.batch + (z % heads) * l.head + r * l.row
}

/// acc + a[0] w0 + a[1] w1 + a[2] w2 + a[3] w3: four k steps of one output row's four columns.
#[cube]
fn row_times_w(acc: Vec4, a: Vec4, w0: Vec4, w1: Vec4, w2: Vec4, w3: Vec4) -> Vec4 {
    acc + Vec4::new(a.extract(0usize)) * w0
        + Vec4::new(a.extract(1usize)) * w1
        + Vec4::new(a.extract(2usize)) * w2
        + Vec4::new(a.extract(3usize)) * w3
}

/// For every matrix z (`ABSOLUTE_POS_Z`): out[z][m, :] = scale * (a[z][m, :] B[z]) + bias[z],
/// with a [rows, 4 * k4], B [4 * k4, 4 * n4], bias one row of n4 vec4s (when `has_bias`).
/// One unit computes the 4 rows `4 * ABSOLUTE_POS_Y ..` and the 4 columns `4 * ABSOLUTE_POS_X ..`
/// in registers.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn matmul_4x4(
    a: &Tensor<Vec4>,
    b: &Tensor<Vec4>,
    bias: &Tensor<Vec4>,
    out: &mut Tensor<Vec4>,
    a_layout: Layout,
    b_layout: Layout,
    bias_layout: Layout,
    out_layout: Layout,
    heads: usize,
    rows: usize,
    k4: usize,
    n4: usize,
    scale: f32,
    #[comptime] has_bias: bool,
) {
    let z = ABSOLUTE_POS_Z as usize;
    let col = ABSOLUTE_POS_X as usize;
    let row0 = ABSOLUTE_POS_Y as usize * 4;
    if col >= n4 || row0 >= rows {
        terminate!();
    }
    // Rows past the end read the last row (their results are not written).
    let last = rows - 1;
    let a0 = row_start(&a_layout, z, heads, row0);
    let a1 = row_start(&a_layout, z, heads, usize::min(row0 + 1, last));
    let a2 = row_start(&a_layout, z, heads, usize::min(row0 + 2, last));
    let a3 = row_start(&a_layout, z, heads, usize::min(row0 + 3, last));
    let b_start = row_start(&b_layout, z, heads, 0) + col;
    let zero = Vec4::new(0.0f32);
    let mut acc0 = zero;
    let mut acc1 = zero;
    let mut acc2 = zero;
    let mut acc3 = zero;
    for kk in 0..k4 {
        let w_row = b_start + kk * 4 * b_layout.row;
        let w0 = b[w_row];
        let w1 = b[w_row + b_layout.row];
        let w2 = b[w_row + 2 * b_layout.row];
        let w3 = b[w_row + 3 * b_layout.row];
        acc0 = row_times_w(acc0, a[a0 + kk], w0, w1, w2, w3);
        acc1 = row_times_w(acc1, a[a1 + kk], w0, w1, w2, w3);
        acc2 = row_times_w(acc2, a[a2 + kk], w0, w1, w2, w3);
        acc3 = row_times_w(acc3, a[a3 + kk], w0, w1, w2, w3);
    }
    let s = Vec4::new(scale);
    let mut add = zero;
    if has_bias {
        add = bias[row_start(&bias_layout, z, heads, 0) + col];
    }
    out[row_start(&out_layout, z, heads, row0) + col] = acc0 * s + add;
    if row0 + 1 < rows {
        out[row_start(&out_layout, z, heads, row0 + 1) + col] = acc1 * s + add;
    }
    if row0 + 2 < rows {
        out[row_start(&out_layout, z, heads, row0 + 2) + col] = acc2 * s + add;
    }
    if row0 + 3 < rows {
        out[row_start(&out_layout, z, heads, row0 + 3) + col] = acc3 * s + add;
    }
}

/// The 4 signed bytes of `word` (byte j = column j), as f32: int8 weights unpacked in registers.
#[cube]
fn unpack_i8x4(word: u32) -> Vec4 {
    let mut v = Vec4::empty();
    // byte - 256 * (top bit): two's complement without signed shifts.
    let b0 = word & 255u32;
    let b1 = (word >> 8u32) & 255u32;
    let b2 = (word >> 16u32) & 255u32;
    let b3 = word >> 24u32;
    v.insert(0usize, f32::cast_from(b0) - 256.0 * f32::cast_from(b0 >> 7u32));
    v.insert(1usize, f32::cast_from(b1) - 256.0 * f32::cast_from(b1 >> 7u32));
    v.insert(2usize, f32::cast_from(b2) - 256.0 * f32::cast_from(b2 >> 7u32));
    v.insert(3usize, f32::cast_from(b3) - 256.0 * f32::cast_from(b3 >> 7u32));
    v
}

/// The f16 in the low 16 bits of `h`, as f32 (WGSL without `shader-f16` has no f16 type, and
/// cubecl does not expose `unpack2x16float`): normal numbers rebuilt bit by bit, subnormals as
/// mantissa * 2^-24. Packs hold finite values only (`m3 convert` refuses overflow).
#[cube]
fn f16_to_f32(h: u32) -> f32 {
    let sign = (h & 32768u32) << 16u32;
    let exp = (h >> 10u32) & 31u32;
    let mant = h & 1023u32;
    let normal = f32::reinterpret(sign | ((exp + 112u32) << 23u32) | (mant << 13u32));
    let tiny = f32::cast_from(mant) * 0.000000059604645f32;
    let tiny = select(sign != 0u32, -tiny, tiny);
    select(exp == 0u32, tiny, normal)
}

/// Columns 4 c .. 4 c + 3 of an f16 weight row: two words, two halves each (low half first).
#[cube]
fn unpack_f16x4(lo: u32, hi: u32) -> Vec4 {
    let mut v = Vec4::empty();
    v.insert(0usize, f16_to_f32(lo & 65535u32));
    v.insert(1usize, f16_to_f32(lo >> 16u32));
    v.insert(2usize, f16_to_f32(hi & 65535u32));
    v.insert(3usize, f16_to_f32(hi >> 16u32));
    v
}

/// Four columns of row `at` of a packed weight, as f32: one word of four int8 (`half` false) or
/// two words of two f16 (`half` true).
#[cube]
fn packed_w(words: &Tensor<u32>, at: usize, #[comptime] half: bool) -> Vec4 {
    if half { unpack_f16x4(words[at], words[at + 1]) } else { unpack_i8x4(words[at]) }
}

/// out[m, :] = (a[m, :] W) * scale + bias for a packed weight W [4 * k4, 4 * n4]: int8 (`half`
/// false: one u32 word per 4 columns, byte j = column 4 c + j, with per-column `scale`) or f16
/// (`half` true: two halves per word, column 2 c + j in half j; `scale` unused). The weight is
/// never expanded: each unit unpacks the words it reads in registers, and the int8 column
/// scales are applied once, after the k loop (they factor out of it).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn matmul_4x4_packed(
    a: &Tensor<Vec4>,
    words: &Tensor<u32>,
    scale: &Tensor<Vec4>,
    bias: &Tensor<Vec4>,
    out: &mut Tensor<Vec4>,
    rows: usize,
    k4: usize,
    n4: usize,
    #[comptime] half: bool,
) {
    let col = ABSOLUTE_POS_X as usize;
    let row0 = ABSOLUTE_POS_Y as usize * 4;
    if col >= n4 || row0 >= rows {
        terminate!();
    }
    let last = rows - 1;
    let a0 = row0 * k4;
    let a1 = usize::min(row0 + 1, last) * k4;
    let a2 = usize::min(row0 + 2, last) * k4;
    let a3 = usize::min(row0 + 3, last) * k4;
    // Words per weight row, and the first word of this unit's 4 columns.
    let mut per_row = n4;
    let mut first = col;
    if half {
        per_row = 2 * n4;
        first = 2 * col;
    }
    let zero = Vec4::new(0.0f32);
    let mut acc0 = zero;
    let mut acc1 = zero;
    let mut acc2 = zero;
    let mut acc3 = zero;
    for kk in 0..k4 {
        let w_row = kk * 4 * per_row + first;
        let w0 = packed_w(words, w_row, half);
        let w1 = packed_w(words, w_row + per_row, half);
        let w2 = packed_w(words, w_row + 2 * per_row, half);
        let w3 = packed_w(words, w_row + 3 * per_row, half);
        acc0 = row_times_w(acc0, a[a0 + kk], w0, w1, w2, w3);
        acc1 = row_times_w(acc1, a[a1 + kk], w0, w1, w2, w3);
        acc2 = row_times_w(acc2, a[a2 + kk], w0, w1, w2, w3);
        acc3 = row_times_w(acc3, a[a3 + kk], w0, w1, w2, w3);
    }
    let mut s = Vec4::new(1.0f32);
    if !half {
        s = scale[col];
    }
    let add = bias[col];
    out[row0 * n4 + col] = acc0 * s + add;
    if row0 + 1 < rows {
        out[(row0 + 1) * n4 + col] = acc1 * s + add;
    }
    if row0 + 2 < rows {
        out[(row0 + 2) * n4 + col] = acc2 * s + add;
    }
    if row0 + 3 < rows {
        out[(row0 + 3) * n4 + col] = acc3 * s + add;
    }
}

/// softmax over each row of x [rows, 4 * t4], in place: one unit per row.
#[cube(launch_unchecked)]
fn softmax_rows(x: &mut Tensor<Vec4>, rows: usize, t4: usize) {
    let r = ABSOLUTE_POS;
    if r >= rows {
        terminate!();
    }
    let base = r * t4;
    let mut m = x[base];
    for i in 1..t4 {
        m = max(m, x[base + i]);
    }
    let m = Vec4::new(max(max(m.extract(0usize), m.extract(1usize)), max(m.extract(2usize), m.extract(3usize))));
    let mut sum = Vec4::new(0.0f32);
    for i in 0..t4 {
        let e = (x[base + i] - m).exp();
        x[base + i] = e;
        sum += e;
    }
    let inv = Vec4::new(1.0f32 / sum.vector_sum());
    for i in 0..t4 {
        x[base + i] *= inv;
    }
}

/// Units per workgroup of `softmax_rows`.
const SOFTMAX_GROUP: u32 = 64;

fn softmax_in_place(x: &CubeTensor, rows: usize, t4: usize) {
    let groups = rows.div_ceil(SOFTMAX_GROUP as usize) as u32;
    // SAFETY: units past `rows` stop; a row spans t4 vec4s of x [rows, t4].
    unsafe {
        softmax_rows::launch_unchecked(
            &x.client,
            CubeCount::new_1d(groups),
            CubeDim::new_1d(SOFTMAX_GROUP),
            x.clone().into_tensor_arg(),
            rows,
            t4,
        );
    }
}

/// A plain row-major matrix of `row` vec4s per row, starting `offset` vec4s in.
fn matrix(offset: usize, row: usize) -> LayoutLaunch {
    LayoutLaunch::new(offset, 0, 0, row)
}

/// A new, uninitialised f32 tensor of `shape` on the device of `like`.
fn empty_f32<const D: usize>(like: &CubeTensor, shape: [usize; D]) -> CubeTensor {
    empty_device_dtype(like.client.clone(), like.device.clone(), shape.into(), DType::F32)
}

/// A wgpu tensor's primitive, contiguous, f32.
fn primitive<const D: usize>(t: BurnTensor<D>) -> CubeTensor {
    into_contiguous(t.try_into_primitive::<Wgpu>().expect("the register kernels run on wgpu tensors"))
}

/// Launches `matmul_4x4` over `matrices` matrices of `rows` x `n4` vec4s (k4 vec4s inner).
#[allow(clippy::too_many_arguments)]
fn launch(
    a: (&CubeTensor, LayoutLaunch),
    b: (&CubeTensor, LayoutLaunch),
    bias: Option<(&CubeTensor, LayoutLaunch)>,
    out: (&CubeTensor, LayoutLaunch),
    matrices: usize,
    heads: usize,
    rows: usize,
    k4: usize,
    n4: usize,
    scale: f32,
) {
    let count = CubeCount::Static(
        n4.div_ceil(GROUP_COLS as usize) as u32,
        rows.div_ceil(4).div_ceil(GROUP_ROWS as usize) as u32,
        matrices as u32,
    );
    let has_bias = bias.is_some();
    // Without a bias the kernel never reads its bias argument; `a` stands in for it.
    let (bias, bias_layout) = bias.unwrap_or((a.0, matrix(0, 0)));
    // SAFETY: callers pass layouts that keep every read and write inside the tensors: columns
    // stop at n4, rows past `rows` are clamped (reads) or skipped (writes), k stops at k4.
    unsafe {
        matmul_4x4::launch_unchecked(
            &out.0.client,
            count,
            CubeDim::new_2d(GROUP_COLS, GROUP_ROWS),
            a.0.clone().into_tensor_arg(),
            b.0.clone().into_tensor_arg(),
            bias.clone().into_tensor_arg(),
            out.0.clone().into_tensor_arg(),
            a.1,
            b.1,
            bias_layout,
            out.1,
            heads,
            rows,
            k4,
            n4,
            scale,
            has_bias,
        );
    }
}

/// Whether [`linear_register_4x4`] takes these shapes: both inner sizes multiples of 4.
pub fn register_kernel_fits(d_in: usize, d_out: usize) -> bool {
    d_in.is_multiple_of(4) && d_out.is_multiple_of(4)
}

/// x [N, in] · weight [in, out] + bias [1, out] -> [N, out] with `matmul_4x4`. The tensors
/// must live on a wgpu device and be f32, with `register_kernel_fits(in, out)`.
pub fn linear_register_4x4(x: BurnTensor<2>, weight: BurnTensor<2>, bias: BurnTensor<2>) -> BurnTensor<2> {
    let [rows, d_in] = x.dims();
    let [_, d_out] = weight.dims();
    let (x, weight, bias) = (primitive(x), primitive(weight), primitive(bias));
    let out = empty_f32(&x, [rows, d_out]);
    let (k4, n4) = (d_in / 4, d_out / 4);
    launch(
        (&x, matrix(0, k4)),
        (&weight, matrix(0, n4)),
        Some((&bias, matrix(0, 0))),
        (&out, matrix(0, n4)),
        1,
        1,
        rows,
        k4,
        n4,
        1.0,
    );
    BurnTensor::from_primitive::<Wgpu>(out)
}

/// A linear layer's weight packed in 32-bit words (an Int tensor), as `matmul_4x4_packed`
/// reads it.
#[allow(clippy::large_enum_variant)] // a few hundred of them per model
pub enum PackedWeight {
    /// [in, out / 4] words of four int8 columns ([`pack_i8_columns`]) and the per-column scales
    /// [1, out].
    Int8 { words: burn::tensor::Tensor<2, burn::tensor::Int>, scale: BurnTensor<2> },
    /// [in, out / 2] words of two f16 columns ([`pack_f16_columns`]).
    F16 { words: burn::tensor::Tensor<2, burn::tensor::Int> },
}

/// x [N, in] · W [in, out] + bias [1, out] -> [N, out] with `matmul_4x4_packed`, W packed (no
/// f32 copy of it is made). wgpu tensors only, with `register_kernel_fits(in, out)`.
pub fn linear_packed_register(x: BurnTensor<2>, weight: &PackedWeight, bias: BurnTensor<2>) -> BurnTensor<2> {
    let [rows, d_in] = x.dims();
    let (words, scale, half) = match weight {
        PackedWeight::Int8 { words, scale } => (words.clone(), Some(primitive(scale.clone())), false),
        PackedWeight::F16 { words } => (words.clone(), None, true),
    };
    let n4 = if half { words.dims()[1] / 2 } else { words.dims()[1] };
    let (x, bias) = (primitive(x), primitive(bias));
    let words = into_contiguous(words.try_into_primitive::<Wgpu>().expect("the register kernels run on wgpu tensors"));
    let out = empty_f32(&x, [rows, n4 * 4]);
    let count = CubeCount::Static(
        n4.div_ceil(GROUP_COLS as usize) as u32,
        rows.div_ceil(4).div_ceil(GROUP_ROWS as usize) as u32,
        1,
    );
    // f16 weights have no scales: the kernel never reads its scale argument; bias stands in.
    let scale = scale.unwrap_or_else(|| bias.clone());
    // SAFETY: columns stop at n4, rows past `rows` are clamped (reads) or skipped (writes), k
    // stops at d_in / 4 vec4s of x; words holds d_in rows of n4 (int8) or 2 n4 (f16) words.
    unsafe {
        matmul_4x4_packed::launch_unchecked(
            &out.client,
            count,
            CubeDim::new_2d(GROUP_COLS, GROUP_ROWS),
            x.into_tensor_arg(),
            words.into_tensor_arg(),
            scale.into_tensor_arg(),
            bias.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            rows,
            d_in / 4,
            n4,
            half,
        );
    }
    BurnTensor::from_primitive::<Wgpu>(out)
}

/// f16 bit patterns of a row-major [rows, cols] matrix (cols even) packed two columns to a word,
/// column 2 c + j in half j of word c: [rows, cols / 2], as `matmul_4x4_packed` reads them.
pub fn pack_f16_columns(bits: &[u16]) -> Vec<i32> {
    bits.chunks_exact(2).map(|h| (h[0] as u32 | (h[1] as u32) << 16) as i32).collect()
}

/// int8 values of a row-major [rows, cols] matrix (cols a multiple of 4) packed four columns to
/// a word, column 4 c + j in byte j of word c: [rows, cols / 4], as `matmul_4x4_packed` reads them.
pub fn pack_i8_columns(q: &[i8]) -> Vec<i32> {
    q.chunks_exact(4).map(|b| i32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])).collect()
}

/// Whether [`attention_register_4x4`] takes these shapes.
pub fn attention_kernel_fits(head_dim: usize, padded_len: usize) -> bool {
    head_dim.is_multiple_of(4) && padded_len.is_multiple_of(4)
}

/// Multi-head attention on the projections q, k, v [B*T, H] (rows of text i at i*T..):
/// softmax(q k^T / sqrt(d) + mask) v per text and head, returned as the context [B*T, H] (heads
/// side by side, as `attention.output.dense` takes it). `mask_bias` [B, T]: 0 for tokens, a large
/// negative for padding. Query rows go `block_rows` at a time so the scores
/// [B*heads, block_rows, T] stay small.
#[allow(clippy::too_many_arguments)] // the shapes, spelled out
pub fn attention_register_4x4(
    q: BurnTensor<2>,
    k: BurnTensor<2>,
    v: BurnTensor<2>,
    mask_bias: BurnTensor<2>,
    b: usize,
    t: usize,
    heads: usize,
    block_rows: usize,
) -> BurnTensor<2> {
    let [n, h] = q.dims();
    let d = h / heads;
    let (h4, d4, t4) = (h / 4, d / 4, t / 4);
    // k^T per text and head: [B, heads, d, T], so that keys are the columns of a row-major matrix.
    let k_t = primitive(k.reshape([b, t, heads, d]).permute([0, 2, 3, 1]));
    let (q, v, mask) = (primitive(q), primitive(v), primitive(mask_bias));
    let context = empty_f32(&q, [n, h]);
    let per_text = |offset: usize| LayoutLaunch::new(offset, t * h4, d4, h4); // q, v, context
    for start in (0..t).step_by(block_rows) {
        let len = block_rows.min(t - start);
        let scores = empty_f32(&q, [b * heads, len, t]);
        let scores_layout = || LayoutLaunch::new(0, heads * len * t4, len * t4, t4);
        launch(
            (&q, per_text(start * h4)),
            (&k_t, LayoutLaunch::new(0, heads * d * t4, d * t4, t4)),
            Some((&mask, LayoutLaunch::new(0, t4, 0, 0))),
            (&scores, scores_layout()),
            b * heads,
            heads,
            len,
            d4,
            t4,
            1.0 / (d as f32).sqrt(),
        );
        softmax_in_place(&scores, b * heads * len, t4);
        launch(
            (&scores, scores_layout()),
            (&v, per_text(0)),
            None,
            (&context, per_text(start * h4)),
            b * heads,
            heads,
            len,
            t4,
            d4,
            1.0,
        );
    }
    BurnTensor::from_primitive::<Wgpu>(context)
}
