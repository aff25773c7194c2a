//! Our own GPU kernels: the linear layers (x W + b), both attention products and the attention
//! softmax. Written for software adapters, and the default on every adapter since they also
//! beat burn's on the one real GPU measured (see below).
//!
//! burn 0.22 runs every matmul through cubek's tiled kernels: tiles staged in workgroup memory,
//! with a workgroup barrier per k step. On a real GPU that is the right design. On a software
//! adapter (SwiftShader, Chrome's WebGPU when no GPU is usable; lavapipe natively) workgroup
//! memory is ordinary memory and every barrier switches between the invocations of a workgroup,
//! so the same kernel ran at ~0.1 GFLOP/s there (measured: `[32, 384] x [384, 384]` took ~110 ms
//! on SwiftShader). `matmul_4x4` has no workgroup memory and no barriers: each invocation keeps
//! a `UNIT_ROWS` x 4 block of the output in registers and reads its operands as `vec4`s straight
//! from the buffers (the CPU's caches do the staging), ~1.2 GFLOP/s on the same machine with
//! blocks of 4 rows.
//! `softmax_rows` replaces burn's five-kernel softmax with one in-place pass.
//! On an NVIDIA H200 (Vulkan, native wgpu, full-size model) the same design ran f32 at 1.73x
//! burn's tiled kernels at 512 tokens and 1.64x at 2048 (docs/benchmarks.md), so
//! [`crate::gpu::KernelChoice::Auto`] picks these everywhere; burn's stay selectable.

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
    /// burn's matmul on f16 operands with f32 accumulation (cubek accumulates f16 in f32), for
    /// an f16 pack on an adapter with `shader-f16`: its matrices stay f16 tensors on the device,
    /// activations are rounded to f16 at each matmul's input, and the results, bias, GELU,
    /// LayerNorm and softmax stay f32. f32 weights run as with `Burn`, int8 as always.
    BurnF16,
    /// What "auto" gives where the device's kernels may use cooperative matrices (tensor cores;
    /// natively, with the `vulkan` feature): each layer takes `BurnF16` for f16 weights (burn's
    /// f16 matmuls run on the tensor cores) and `Register4x4` for f32 and int8 ones.
    TensorCores,
}

impl LinearKernel {
    /// The kernel a layer runs, given whether its weights are kept as f16 tensors: resolves
    /// `TensorCores` (the one owner of that rule, for the linear layers and attention).
    pub fn for_layer(self, f16_weights: bool) -> LinearKernel {
        match self {
            LinearKernel::TensorCores if f16_weights => LinearKernel::BurnF16,
            LinearKernel::TensorCores => LinearKernel::Register4x4,
            kernel => kernel,
        }
    }
}

type Vec4 = Vector<f32, Const<4>>;
/// Four 32-bit words: one tile of a packed weight, or half of one ([`WordCode::words_per_vec4`]).
type UVec4 = Vector<u32, Const<4>>;

/// Units per workgroup along the output columns (in vec4s) and along the blocks of `UNIT_ROWS` rows.
const GROUP_COLS: u32 = 16;
const GROUP_ROWS: u32 = 4;

/// Rows of the output each unit of `matmul_4x4` computes: every weight
/// vec4 it reads (or unpacks) serves this many rows, so that reading and unpacking cost less than
/// the multiply-adds they feed on a CPU adapter, where arithmetic, not memory, is what a kernel
/// waits on. (SwiftShader, small model, 512 tokens, packed kernel against f32 at 4 rows: 4 rows
/// with the old unpacking 0.30-0.60x for f16; 8 rows 1.08x f16, 1.33-1.42x int8; 16 rows
/// 1.07-1.30x f16, 1.26-1.30x int8. The f32 kernel at 16 rows: docs/benchmarks.md.)
const UNIT_ROWS: usize = 16;

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

/// acc[r] += (row r's a at `a_at[r] + kk`) times the 4 k steps `w0`..`w3`, for the unit's
/// `UNIT_ROWS` rows.
#[cube]
#[allow(clippy::too_many_arguments)]
fn unit_rows_times_w(
    acc: &mut Array<Vec4>,
    a: &Tensor<Vec4>,
    a_at: &Array<usize>,
    kk: usize,
    w0: Vec4,
    w1: Vec4,
    w2: Vec4,
    w3: Vec4,
) {
    #[unroll]
    for r in 0..UNIT_ROWS {
        acc[r] = row_times_w(acc[r], a[a_at[r] + kk], w0, w1, w2, w3);
    }
}

/// How `matmul_4x4` reads a weight word (chosen when the weight is uploaded:
/// [`pack_i8_columns`], [`pack_f16_columns`], then [`tile_words`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WordCode {
    /// Four int8 columns, byte j = q + 128 of column 4 c + j (biased: no sign to extend).
    Int8,
    /// Two f16 columns as *rebased* halves: sign, a 5-bit exponent shifted so that every non-zero
    /// value of the matrix (f16 subnormals included, normalised) has an exponent from 1 to 31,
    /// and the 10-bit mantissa. Placed in an f32's bits it is an exact, normal f32: the value
    /// times 2^(s - 112), which the column factor undoes after the k loop. 9 integer operations
    /// per pair, no branch, and never an f32 subnormal (which software adapters flush to zero).
    F16Rebased,
    /// Two f16 columns as IEEE halves, for a matrix whose values span more than 31 binades:
    /// rebuilt bit by bit with subnormals as mantissa * 2^-24 (exact, slower).
    F16,
}

impl WordCode {
    /// u32 words per 4 columns of a weight row: one of four int8, two of two halves; so also
    /// the [`UVec4`]s of a tile of 4 rows x 4 columns ([`tile_words`]).
    pub const fn words_per_vec4(self) -> usize {
        match self {
            WordCode::Int8 => 1,
            WordCode::F16Rebased | WordCode::F16 => 2,
        }
    }
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

/// Row `r` (0..4) of a tile's 4 columns, as f32, from the tile's words (`t0`, and `t1` for
/// halves; [`tile_words`]): word r of `t0` for int8 (four biased bytes), words 2 r, 2 r + 1 of
/// the pair for halves (low half first), as `code` says.
#[cube]
fn tile_row(t0: UVec4, t1: UVec4, #[comptime] r: usize, #[comptime] code: WordCode) -> Vec4 {
    let mut v = Vec4::empty();
    match code {
        WordCode::Int8 => {
            let w = t0.extract(r);
            v.insert(0usize, f32::cast_from(w & 255u32));
            v.insert(1usize, f32::cast_from((w >> 8u32) & 255u32));
            v.insert(2usize, f32::cast_from((w >> 16u32) & 255u32));
            v.insert(3usize, f32::cast_from(w >> 24u32));
            v -= Vec4::new(128.0f32);
        }
        WordCode::F16Rebased => {
            let t = if comptime!(r < 2) { t0 } else { t1 };
            let lo = t.extract(comptime!(2 * (r % 2)));
            let hi = t.extract(comptime!(2 * (r % 2) + 1));
            // Half j's 15 magnitude bits go to an f32's bits 13..27, its sign to bit 31.
            v.insert(0usize, f32::reinterpret(((lo << 13u32) & 268427264u32) | ((lo << 16u32) & 2147483648u32)));
            v.insert(1usize, f32::reinterpret(((lo >> 3u32) & 268427264u32) | (lo & 2147483648u32)));
            v.insert(2usize, f32::reinterpret(((hi << 13u32) & 268427264u32) | ((hi << 16u32) & 2147483648u32)));
            v.insert(3usize, f32::reinterpret(((hi >> 3u32) & 268427264u32) | (hi & 2147483648u32)));
        }
        WordCode::F16 => {
            let t = if comptime!(r < 2) { t0 } else { t1 };
            let lo = t.extract(comptime!(2 * (r % 2)));
            let hi = t.extract(comptime!(2 * (r % 2) + 1));
            v.insert(0usize, f16_to_f32(lo & 65535u32));
            v.insert(1usize, f16_to_f32(lo >> 16u32));
            v.insert(2usize, f16_to_f32(hi & 65535u32));
            v.insert(3usize, f16_to_f32(hi >> 16u32));
        }
    }
    v
}

/// For every matrix z (`ABSOLUTE_POS_Z`): out[z][m, :] = scale * (a[z][m, :] B[z]) * f + bias[z]
/// (then GELU, exact (erf), when `gelu`),
/// with a [rows, 4 * k4], B [4 * k4, 4 * n4], bias one row of n4 vec4s (when `has_bias`). B is
/// f32 vec4s in `b` (`packed` None; f = 1), or, for one matrix in plain row-major layouts, a
/// packed weight in `words` (`packed` its [`WordCode`]), in tiles of 4 rows x 4 columns
/// ([`tile_words`]: one [`UVec4`] for int8, two for f16; a row of B's tiles is `b_layout.row`
/// UVec4s), with a per-column factor f in `factor` (int8: the scales; rebased f16: 2^(112 - s);
/// f16: 1, unread). A packed weight is never expanded: each unit unpacks the tile it reads for
/// each 4 k steps in registers (one or two 16-byte loads, where f32 takes four), and f is
/// applied once, after the k loop (it factors out of it). The argument a
/// launch does not use is bound to a stand-in and never read. One unit computes the `UNIT_ROWS`
/// rows `UNIT_ROWS * ABSOLUTE_POS_Y ..` and the 4 columns `4 * ABSOLUTE_POS_X ..` in registers.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn matmul_4x4(
    a: &Tensor<Vec4>,
    b: &Tensor<Vec4>,
    words: &Tensor<UVec4>,
    factor: &Tensor<Vec4>,
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
    #[comptime] packed: Option<WordCode>,
    #[comptime] gelu: bool,
) {
    let z = ABSOLUTE_POS_Z as usize;
    let col = ABSOLUTE_POS_X as usize;
    let row0 = ABSOLUTE_POS_Y as usize * UNIT_ROWS;
    if col >= n4 || row0 >= rows {
        terminate!();
    }
    // Rows past the end read the last row (their results are not written).
    let last = rows - 1;
    let mut a_at = Array::<usize>::new(UNIT_ROWS);
    let mut acc = Array::<Vec4>::new(UNIT_ROWS);
    #[unroll]
    for r in 0..UNIT_ROWS {
        a_at[r] = row_start(&a_layout, z, heads, usize::min(row0 + r, last));
        acc[r] = Vec4::new(0.0f32);
    }
    // Where this unit's 4 columns start in B's first row (of vec4s of `b`), or in its first row
    // of tiles (of UVec4s of `words`). Rows of `b_layout.row` vec4s, or rows of tiles.
    let first = row_start(&b_layout, z, heads, 0) + col * comptime!(packed.map_or(1, WordCode::words_per_vec4));
    let per_row = b_layout.row;
    for kk in 0..k4 {
        if comptime!(packed.is_some()) {
            let code = comptime!(packed.unwrap_or(WordCode::Int8));
            let at = first + kk * per_row;
            let t0 = words[at];
            let t1 = if comptime!(code.words_per_vec4() == 2) { words[at + 1] } else { t0 };
            let w0 = tile_row(t0, t1, 0usize, code);
            let w1 = tile_row(t0, t1, 1usize, code);
            let w2 = tile_row(t0, t1, 2usize, code);
            let w3 = tile_row(t0, t1, 3usize, code);
            unit_rows_times_w(&mut acc, a, &a_at, kk, w0, w1, w2, w3);
        } else {
            let w_row = first + kk * 4 * per_row;
            let w0 = b[w_row];
            let w1 = b[w_row + per_row];
            let w2 = b[w_row + 2 * per_row];
            let w3 = b[w_row + 3 * per_row];
            unit_rows_times_w(&mut acc, a, &a_at, kk, w0, w1, w2, w3);
        }
    }
    let mut m = Vec4::new(scale);
    if comptime!(packed.is_some_and(|code| code != WordCode::F16)) {
        m *= factor[col];
    }
    let mut add = Vec4::new(0.0f32);
    if has_bias {
        add = bias[row_start(&bias_layout, z, heads, 0) + col];
    }
    #[unroll]
    for r in 0..UNIT_ROWS {
        if row0 + r < rows {
            let mut y = acc[r] * m + add;
            if gelu {
                // burn's GELU, step for step: x (erf(x / sqrt 2) + 1) / 2.
                y = y * ((y / Vec4::new(SQRT_2)).erf() + Vec4::new(1.0f32)) / Vec4::new(2.0f32);
            }
            out[row_start(&out_layout, z, heads, row0 + r) + col] = y;
        }
    }
}

/// sqrt(2) as f32, for GELU.
const SQRT_2: f32 = std::f32::consts::SQRT_2;

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

/// x (+ residual) [rows, 4 * h4] -> torch's LayerNorm of each row, times weight plus bias
/// [1, 4 * h4]: one unit per row, three passes over it (the mean; the variance of the centered
/// row, as torch computes it; the output), so no workgroup memory or barrier (the design of
/// `softmax_rows`). burn's ops took ten kernels for the same (the residual add, two means,
/// subtract, square, add eps, sqrt, divide, scale, shift).
#[allow(clippy::too_many_arguments)]
#[cube(launch_unchecked)]
fn layer_norm_rows(
    x: &Tensor<Vec4>,
    residual: &Tensor<Vec4>,
    weight: &Tensor<Vec4>,
    bias: &Tensor<Vec4>,
    out: &mut Tensor<Vec4>,
    rows: usize,
    h4: usize,
    inv_h: f32,
    eps: f32,
    #[comptime] has_residual: bool,
) {
    let r = ABSOLUTE_POS;
    if r >= rows {
        terminate!();
    }
    let base = r * h4;
    let mut sum = Vec4::new(0.0f32);
    for i in 0..h4 {
        sum += row_value(x, residual, base + i, has_residual);
    }
    let mean = Vec4::new(sum.vector_sum() * inv_h);
    let mut squares = Vec4::new(0.0f32);
    for i in 0..h4 {
        let c = row_value(x, residual, base + i, has_residual) - mean;
        squares += c * c;
    }
    let std = Vec4::new(squares.vector_sum() * inv_h + eps).sqrt();
    for i in 0..h4 {
        out[base + i] = (row_value(x, residual, base + i, has_residual) - mean) / std * weight[i] + bias[i];
    }
}

/// x[i] (+ residual[i]).
#[cube]
fn row_value(x: &Tensor<Vec4>, residual: &Tensor<Vec4>, i: usize, #[comptime] has_residual: bool) -> Vec4 {
    let mut v = x[i];
    if has_residual {
        v += residual[i];
    }
    v
}

/// Units per workgroup of `layer_norm_rows`.
const LAYER_NORM_GROUP: u32 = 64;

/// Whether [`layer_norm_register`] takes rows of `h` values: a multiple of 4.
pub fn layer_norm_kernel_fits(h: usize) -> bool {
    h.is_multiple_of(4)
}

/// LayerNorm(x + residual) over the last dimension, torch's formula: x, residual [N, H], weight
/// and bias [1, H] -> [N, H], in one kernel (`layer_norm_rows`). wgpu tensors, f32, with
/// `layer_norm_kernel_fits(H)`.
pub fn layer_norm_register(
    x: BurnTensor<2>,
    residual: Option<BurnTensor<2>>,
    weight: BurnTensor<2>,
    bias: BurnTensor<2>,
    eps: f64,
) -> BurnTensor<2> {
    let [rows, h] = x.dims();
    let (x, weight, bias) = (primitive(x), primitive(weight), primitive(bias));
    let has_residual = residual.is_some();
    // Without a residual the kernel never reads it: x is bound in its place.
    let residual = residual.map(primitive).unwrap_or_else(|| x.clone());
    let out = empty_f32(&x, [rows, h]);
    let groups = rows.div_ceil(LAYER_NORM_GROUP as usize) as u32;
    // SAFETY: units past `rows` stop; a row spans h / 4 vec4s of x, residual and out [rows, h],
    // and weight and bias hold h values.
    unsafe {
        layer_norm_rows::launch_unchecked(
            &out.client,
            CubeCount::new_1d(groups),
            CubeDim::new_1d(LAYER_NORM_GROUP),
            x.into_tensor_arg(),
            residual.into_tensor_arg(),
            weight.into_tensor_arg(),
            bias.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            rows,
            h / 4,
            1.0 / h as f32,
            eps as f32,
            has_residual,
        );
    }
    BurnTensor::from_primitive::<Wgpu>(out)
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

/// B of a `matmul_4x4` launch: f32 vec4s with their layout, or one packed matrix.
enum B<'a> {
    F32(&'a CubeTensor, LayoutLaunch),
    Packed(&'a PackedTensors),
}

/// Launches `matmul_4x4` over `matrices` matrices of `rows` x `n4` vec4s (k4 vec4s inner).
#[allow(clippy::too_many_arguments)]
fn launch(
    a: (&CubeTensor, LayoutLaunch),
    b: B,
    bias: Option<(&CubeTensor, LayoutLaunch)>,
    out: (&CubeTensor, LayoutLaunch),
    matrices: usize,
    heads: usize,
    rows: usize,
    k4: usize,
    n4: usize,
    scale: f32,
    gelu: bool,
) {
    let count = CubeCount::Static(
        n4.div_ceil(GROUP_COLS as usize) as u32,
        rows.div_ceil(UNIT_ROWS).div_ceil(GROUP_ROWS as usize) as u32,
        matrices as u32,
    );
    let has_bias = bias.is_some();
    // Arguments the kernel never reads (no bias; the other form of B) are bound to `a`.
    let (bias, bias_layout) = bias.unwrap_or((a.0, matrix(0, 0)));
    let (b, b_layout, words, factor, packed) = match b {
        B::F32(b, layout) => (b, layout, a.0, a.0, None),
        B::Packed(p) => (a.0, matrix(0, n4 * p.code.words_per_vec4()), &p.words, &p.factor, Some(p.code)),
    };
    // SAFETY: callers pass layouts that keep every read and write inside the tensors: columns
    // stop at n4, rows past `rows` are clamped (reads) or skipped (writes), k stops at k4; packed
    // words hold k4 rows of n4 tiles (one UVec4 each for int8, two for f16).
    unsafe {
        matmul_4x4::launch_unchecked(
            &out.0.client,
            count,
            CubeDim::new_2d(GROUP_COLS, GROUP_ROWS),
            a.0.clone().into_tensor_arg(),
            b.clone().into_tensor_arg(),
            words.clone().into_tensor_arg(),
            factor.clone().into_tensor_arg(),
            bias.clone().into_tensor_arg(),
            out.0.clone().into_tensor_arg(),
            a.1,
            b_layout,
            bias_layout,
            out.1,
            heads,
            rows,
            k4,
            n4,
            scale,
            has_bias,
            packed,
            gelu,
        );
    }
}

/// Whether [`linear_register_4x4`] takes these shapes: both inner sizes multiples of 4.
pub fn register_kernel_fits(d_in: usize, d_out: usize) -> bool {
    d_in.is_multiple_of(4) && d_out.is_multiple_of(4)
}

/// x [N, in] · weight [in, out] + bias [1, out] -> [N, out] with `matmul_4x4` (then GELU when
/// `gelu`). The tensors must live on a wgpu device and be f32, with `register_kernel_fits(in, out)`.
pub fn linear_register_4x4(x: BurnTensor<2>, weight: BurnTensor<2>, bias: BurnTensor<2>, gelu: bool) -> BurnTensor<2> {
    let [rows, d_in] = x.dims();
    let [_, d_out] = weight.dims();
    let (x, weight, bias) = (primitive(x), primitive(weight), primitive(bias));
    let out = empty_f32(&x, [rows, d_out]);
    let (k4, n4) = (d_in / 4, d_out / 4);
    launch(
        (&x, matrix(0, k4)),
        B::F32(&weight, matrix(0, n4)),
        Some((&bias, matrix(0, 0))),
        (&out, matrix(0, n4)),
        1,
        1,
        rows,
        k4,
        n4,
        1.0,
        gelu,
    );
    BurnTensor::from_primitive::<Wgpu>(out)
}

/// lhs · rhs on f16 operands, accumulated in f32, with an f32 result: both are cast to f16 (a
/// no-op for f16 tensors, such as [`LinearKernel::BurnF16`]'s weights) and burn's matmul
/// (cubek's tiled kernels) writes f32, so no rounding of the sums to f16 is added (burn's own
/// `matmul` would round them: its result takes the operands' type). wgpu devices with
/// `shader-f16` only. Shapes as `Tensor::matmul`, e.g. [N, in] · [in, out] -> [N, out].
pub fn matmul_f16<const D: usize>(lhs: BurnTensor<D>, rhs: BurnTensor<D>) -> BurnTensor<D> {
    use burn::tensor::FloatDType;
    let (lhs, rhs) = (lhs.cast(FloatDType::F16), rhs.cast(FloatDType::F16));
    let operand = |t: &BurnTensor<D>| t.clone().try_into_primitive::<Wgpu>().expect("f16 matmuls run on wgpu tensors");
    let strategy = burn_cubecl::kernel::matmul::MatmulStrategy::default();
    match burn_cubecl::kernel::matmul::matmul(operand(&lhs), operand(&rhs), None, strategy, DType::F32) {
        Ok(out) => BurnTensor::from_primitive::<Wgpu>(out),
        // No kernel for f16 operands with an f32 result on this device: f16 result, then f32.
        Err(_) => lhs.matmul(rhs).cast(FloatDType::F32),
    }
}

/// A linear layer's weight packed in 32-bit words (an Int tensor) as `matmul_4x4` reads
/// it, with its per-column factor [1, out] (see [`WordCode`]).
pub struct PackedWeight {
    pub words: burn::tensor::Tensor<2, burn::tensor::Int>,
    pub factor: BurnTensor<2>,
    pub code: WordCode,
}

/// The device tensors of a [`PackedWeight`], as `matmul_4x4` binds them.
struct PackedTensors {
    words: CubeTensor,
    factor: CubeTensor,
    code: WordCode,
}

/// x [N, in] · W [in, out] + bias [1, out] -> [N, out] with `matmul_4x4` (then GELU when
/// `gelu`), W packed (no f32 copy of it is made). wgpu tensors only, with
/// `register_kernel_fits(in, out)`.
pub fn linear_packed_register(
    x: BurnTensor<2>,
    weight: &PackedWeight,
    bias: BurnTensor<2>,
    gelu: bool,
) -> BurnTensor<2> {
    let [rows, d_in] = x.dims();
    let n4 = weight.factor.dims()[1] / 4;
    let (x, bias) = (primitive(x), primitive(bias));
    let packed = PackedTensors {
        words: into_contiguous(
            weight.words.clone().try_into_primitive::<Wgpu>().expect("the register kernels run on wgpu tensors"),
        ),
        factor: primitive(weight.factor.clone()),
        code: weight.code,
    };
    let out = empty_f32(&x, [rows, n4 * 4]);
    launch(
        (&x, matrix(0, d_in / 4)),
        B::Packed(&packed),
        Some((&bias, matrix(0, 0))),
        (&out, matrix(0, n4)),
        1,
        1,
        rows,
        d_in / 4,
        n4,
        1.0,
        gelu,
    );
    BurnTensor::from_primitive::<Wgpu>(out)
}

/// f16 bit patterns of a row-major [rows, cols] matrix (cols even), packed two columns to a
/// word, column 2 c + j in half j of word c: [rows, cols / 2] words, with the code and the
/// column factor `matmul_4x4` reads them with. Rebased ([`WordCode::F16Rebased`]) when
/// the matrix's non-zero values span at most 31 binades (any weight matrix under 2^7 in
/// magnitude does), as IEEE halves ([`WordCode::F16`], factor 1) otherwise.
pub fn pack_f16_columns(bits: &[u16]) -> (Vec<i32>, WordCode, f32) {
    // A non-zero half's exponent, normalised: biased as f16's (1..=30 for normal numbers), and
    // -9..=0 for subnormals (mantissa m: 2^p <= m < 2^(p+1) gives p - 9); its 10 mantissa bits
    // after the leading one.
    let split = |h: u16| -> Option<(i32, u32)> {
        let (e, m) = (((h >> 10) & 31) as i32, (h & 1023) as u32);
        match (e, m) {
            (0, 0) => None,
            (0, m) => {
                let p = 31 - m.leading_zeros() as i32;
                Some((p - 9, (m << (10 - p)) & 1023))
            }
            (e, m) => Some((e, m)),
        }
    };
    let (lo, hi) =
        bits.iter().filter_map(|&h| split(h)).fold((i32::MAX, i32::MIN), |(lo, hi), (e, _)| (lo.min(e), hi.max(e)));
    let pairs = |f: &dyn Fn(u16) -> u32| -> Vec<i32> {
        bits.chunks_exact(2).map(|h| (f(h[0]) | f(h[1]) << 16) as i32).collect()
    };
    if hi == i32::MIN {
        return (pairs(&|_| 0), WordCode::F16Rebased, 1.0); // all zeros
    }
    let s = 31 - hi; // the largest exponent becomes 31
    if lo + s < 1 {
        return (pairs(&|h| h as u32), WordCode::F16, 1.0);
    }
    let code = |h: u16| -> u32 {
        let sign = (h & 0x8000) as u32;
        match split(h) {
            None => sign,
            Some((e, m)) => sign | (((e + s) as u32) << 10) | m,
        }
    };
    // value = rebased-as-f32 * 2^(112 - s): 2^(e - 15) (1.m) against 2^(e + s - 127) (1.m).
    (pairs(&code), WordCode::F16Rebased, 2f32.powi(112 - s))
}

/// int8 values of a row-major [rows, cols] matrix (cols a multiple of 4) packed four columns to
/// a word, column 4 c + j in byte j of word c as q + 128: [rows, cols / 4], as
/// `matmul_4x4` reads them ([`WordCode::Int8`]).
pub fn pack_i8_columns(q: &[i8]) -> Vec<i32> {
    let biased = |v: i8| (v as i16 + 128) as u8;
    q.chunks_exact(4).map(|b| i32::from_le_bytes([biased(b[0]), biased(b[1]), biased(b[2]), biased(b[3])])).collect()
}

/// A packed weight's words ([`pack_i8_columns`], [`pack_f16_columns`]: `rows` rows of
/// `per_row` words, `w` words per 4 columns) regrouped as `matmul_4x4` reads them: in tiles of 4
/// rows x 4 columns, tile (kk, c) at words `(kk * per_row / w + c) * 4 w ..`, its 4 rows' words
/// one after the other (so one 16-byte load brings an int8 tile, two an f16 one). `rows` must
/// be a multiple of 4 ([`register_kernel_fits`]).
pub fn tile_words(words: &[i32], rows: usize, w: usize) -> Vec<i32> {
    let per_row = words.len() / rows.max(1);
    let mut out = Vec::with_capacity(words.len());
    for kk in 0..rows / 4 {
        for c in 0..per_row / w {
            for r in 0..4 {
                let at = (4 * kk + r) * per_row + c * w;
                out.extend_from_slice(&words[at..at + w]);
            }
        }
    }
    out
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
            B::F32(&k_t, LayoutLaunch::new(0, heads * d * t4, d * t4, t4)),
            Some((&mask, LayoutLaunch::new(0, t4, 0, 0))),
            (&scores, scores_layout()),
            b * heads,
            heads,
            len,
            d4,
            t4,
            1.0 / (d as f32).sqrt(),
            false,
        );
        softmax_in_place(&scores, b * heads * len, t4);
        launch(
            (&scores, scores_layout()),
            B::F32(&v, per_text(0)),
            None,
            (&context, per_text(start * h4)),
            b * heads,
            heads,
            len,
            t4,
            d4,
            1.0,
            false,
        );
    }
    BurnTensor::from_primitive::<Wgpu>(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_cores_resolve_per_layer() {
        assert_eq!(LinearKernel::TensorCores.for_layer(true), LinearKernel::BurnF16);
        assert_eq!(LinearKernel::TensorCores.for_layer(false), LinearKernel::Register4x4);
        // Any other kernel is the layer's as chosen.
        for k in [LinearKernel::Burn, LinearKernel::Register4x4, LinearKernel::BurnF16] {
            assert_eq!((k.for_layer(true), k.for_layer(false)), (k, k));
        }
    }

    /// What `tile_row` makes of half `j` of `word` (the kernel's integer steps), times the factor.
    fn decode(word: u32, j: u32, code: WordCode, factor: f32) -> f32 {
        let h = word >> (16 * j);
        match code {
            WordCode::F16Rebased => f32::from_bits(((h & 0x7fff) << 13) | ((h & 0x8000) << 16)) * factor,
            WordCode::F16 => half::f16::from_bits(h as u16).to_f32(),
            WordCode::Int8 => unreachable!(),
        }
    }

    /// Every finite half, in a matrix whose largest magnitude is `max`: decoded exactly, and
    /// never through an f32 subnormal (which a software adapter would flush to zero).
    fn round_trip(max: f32) -> WordCode {
        let mut bits: Vec<u16> = (0..=u16::MAX)
            .filter(|&h| half::f16::from_bits(h).is_finite() && half::f16::from_bits(h).to_f32().abs() <= max)
            .collect();
        bits.push(half::f16::from_f32(max).to_bits());
        if bits.len() % 2 == 1 {
            bits.push(0);
        }
        let (words, code, factor) = pack_f16_columns(&bits);
        for (i, &h) in bits.iter().enumerate() {
            let word = words[i / 2] as u32;
            let got = decode(word, (i % 2) as u32, code, factor);
            let want = half::f16::from_bits(h).to_f32();
            assert_eq!(got.to_bits(), want.to_bits(), "half {h:#06x} ({want}) decoded as {got} ({code:?})");
            if code == WordCode::F16Rebased && want != 0.0 {
                let built = f32::from_bits(((word >> (16 * (i % 2))) & 0x7fff) << 13);
                assert!(built.is_normal(), "half {h:#06x}: an f32 subnormal on the way");
            }
        }
        code
    }

    #[test]
    fn f16_words_decode_exactly() {
        // Subnormals up to 64: within 31 binades, rebased; up to 65504: IEEE halves.
        assert_eq!(round_trip(64.0), WordCode::F16Rebased);
        assert_eq!(round_trip(0.125), WordCode::F16Rebased);
        assert_eq!(round_trip(65504.0), WordCode::F16);
        // Without subnormals a wide matrix still rebases: 2^-14 .. 2^15 is 30 binades.
        let wide: Vec<u16> =
            [6.1035156e-5f32, -1.0, 32768.0, 0.0].iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
        let (words, code, factor) = pack_f16_columns(&wide);
        assert_eq!(code, WordCode::F16Rebased);
        for (i, &h) in wide.iter().enumerate() {
            assert_eq!(decode(words[i / 2] as u32, (i % 2) as u32, code, factor), half::f16::from_bits(h).to_f32());
        }
    }

    #[test]
    fn tiles_hold_four_rows_of_four_columns() {
        // 8 rows x 8 columns of int8 as words (one per 4 columns): word (k, c) = 10 k + c.
        let words: Vec<i32> = (0..8).flat_map(|k| (0..2).map(move |c| 10 * k + c)).collect();
        // Tile (kk, c): rows 4 kk .. 4 kk + 3 of column group c, in order.
        assert_eq!(tile_words(&words, 8, 1), vec![0, 10, 20, 30, 1, 11, 21, 31, 40, 50, 60, 70, 41, 51, 61, 71]);
        // Halves: two words per 4 columns, a row's two words together.
        let words: Vec<i32> = (0..4).flat_map(|k| (0..4).map(move |j| 10 * k + j)).collect();
        assert_eq!(tile_words(&words, 4, 2), vec![0, 1, 10, 11, 20, 21, 30, 31, 2, 3, 12, 13, 22, 23, 32, 33]);
    }

    #[test]
    fn int8_words_are_biased_bytes() {
        let q: Vec<i8> = (-127..=127).chain([0]).collect();
        for (c, &word) in pack_i8_columns(&q).iter().enumerate() {
            for j in 0..4 {
                let got = ((word as u32 >> (8 * j)) & 255) as f32 - 128.0;
                assert_eq!(got, q[4 * c + j] as f32);
            }
        }
    }
}
