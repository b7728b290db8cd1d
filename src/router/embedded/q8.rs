//! Int8 matrices with one f32 scale per 32 values, and single-threaded matmul kernels (AVX-VNNI / AVX512-VNNI, AVX2, scalar).
//!
//! Same scheme as GGML's Q8_0 × Q8_0 (weights and activations both quantized per 32-value block)
//! but with f32 scales and kernels that compute four output columns per pass over an activation
//! row. candle's Q8_0 `vec_dot` spends most of its time converting f16 scales and reducing every
//! single dot product; end to end, prefill went from ~60 to ~270 tokens/s on the 2-core
//! AVX512-VNNI dev box.
//!
//! Every output element is computed by the same sequence of operations whatever the number of
//! rows in the batch, so results do not depend on how a prompt is split into chunks.

/// Values per quantization block.
pub(crate) const QK: usize = 32;
/// Rows of activations that reuse the same four weight rows while they are in L1.
const ROW_TILE: usize = 8;

/// Which kernel the CPU supports (chosen once at load).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    Scalar,
    Avx2,
    /// VEX-encoded VNNI (`avxvnni`).
    AvxVnni,
    /// EVEX-encoded VNNI on 256-bit registers (`avx512vnni` + `avx512vl`).
    Avx512Vnni,
}

impl Kernel {
    /// Best kernel for this CPU; `RFPQ_EMBEDDED_KERNEL=scalar|avx2|avxvnni|avx512vnni` picks a
    /// lower one (for benchmarks; a kernel the CPU lacks is never used).
    pub fn detect() -> Self {
        let best = Self::best();
        let wanted = match std::env::var("RFPQ_EMBEDDED_KERNEL").ok().as_deref() {
            Some("scalar") => Self::Scalar,
            Some("avx2") => Self::Avx2,
            Some("avxvnni") => Self::AvxVnni,
            _ => return best,
        };
        let rank = |k: Self| k as u8;
        if rank(wanted) <= rank(best) && (wanted != Self::AvxVnni || Self::has_avxvnni()) {
            wanted
        } else {
            best
        }
    }

    fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            if avx2
                && is_x86_feature_detected!("avx512vnni")
                && is_x86_feature_detected!("avx512vl")
            {
                return Self::Avx512Vnni;
            }
            if avx2 && Self::has_avxvnni() {
                return Self::AvxVnni;
            }
            if avx2 {
                return Self::Avx2;
            }
        }
        Self::Scalar
    }

    fn has_avxvnni() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avxvnni")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Every kernel this CPU can run (for tests).
    #[cfg(test)]
    pub fn available() -> Vec<Self> {
        let best = Self::best();
        let mut all = vec![Self::Scalar];
        if best != Self::Scalar {
            all.push(Self::Avx2);
        }
        if Self::has_avxvnni() {
            all.push(Self::AvxVnni);
        }
        if best == Self::Avx512Vnni {
            all.push(Self::Avx512Vnni);
        }
        all
    }

    /// VNNI kernels take the weights as unsigned bytes (`w + 128`).
    fn biased(self) -> bool {
        matches!(self, Self::AvxVnni | Self::Avx512Vnni)
    }
}

/// Quantize one block: scale = max|x| / 127, values rounded to nearest (ties to even).
fn quantize_block(x: &[f32], q: &mut [i8]) -> f32 {
    let mut lanes = [0f32; 8];
    for c in x.chunks_exact(8) {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l = l.max(v.abs());
        }
    }
    let amax = lanes.iter().fold(0f32, |m, v| m.max(*v));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (o, v) in q.iter_mut().zip(x) {
        // |v · id| <= 127: adding 1.5 · 2^23 rounds to an integer held in the low mantissa bits.
        let r = (v * id + 12_582_912.0).to_bits() as i32 - 0x4B40_0000;
        *o = r as i8;
    }
    d
}

/// Weight matrix: `rows` output features of `cols` inputs, row-major.
pub(crate) struct Q8Mat {
    pub rows: usize,
    pub cols: usize,
    q: Vec<i8>,
    d: Vec<f32>,
    kernel: Kernel,
}

/// Quantized activations (`m` rows), ready for [`Q8Mat::matmul`].
pub(crate) struct Q8Acts {
    m: usize,
    cols: usize,
    q: Vec<i8>,
    d: Vec<f32>,
    /// VNNI only: per block and 4-value lane, `-128 × sum(x)` (cancels the weight bias).
    negbias: Vec<i32>,
}

impl Q8Acts {
    pub fn quantize(x: &[f32], cols: usize, kernel: Kernel) -> Self {
        assert!(cols.is_multiple_of(QK) && x.len().is_multiple_of(cols));
        let m = x.len() / cols;
        let mut q = vec![0i8; x.len()];
        let d: Vec<f32> = x
            .chunks_exact(QK)
            .zip(q.chunks_exact_mut(QK))
            .map(|(xb, qb)| quantize_block(xb, qb))
            .collect();
        let negbias = if kernel.biased() {
            q.chunks_exact(4)
                .map(|l| -128 * l.iter().map(|v| i32::from(*v)).sum::<i32>())
                .collect()
        } else {
            Vec::new()
        };
        Self {
            m,
            cols,
            q,
            d,
            negbias,
        }
    }
}

impl Q8Mat {
    pub fn quantize(data: &[f32], rows: usize, cols: usize, kernel: Kernel) -> Self {
        assert!(cols.is_multiple_of(QK) && data.len() == rows * cols);
        let mut q = vec![0i8; data.len()];
        let d = data
            .chunks_exact(QK)
            .zip(q.chunks_exact_mut(QK))
            .map(|(xb, qb)| quantize_block(xb, qb))
            .collect();
        if kernel.biased() {
            for v in q.iter_mut() {
                *v = (*v as u8 ^ 0x80) as i8;
            }
        }
        Self {
            rows,
            cols,
            q,
            d,
            kernel,
        }
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Dequantized row `r` into `out` (`cols` values).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let kb = self.cols / QK;
        let q = &self.q[r * self.cols..(r + 1) * self.cols];
        let bias = if self.kernel.biased() { 0x80u8 } else { 0 };
        for ((ob, qb), d) in out
            .chunks_exact_mut(QK)
            .zip(q.chunks_exact(QK))
            .zip(&self.d[r * kb..(r + 1) * kb])
        {
            for (o, v) in ob.iter_mut().zip(qb) {
                *o = f32::from((*v as u8 ^ bias) as i8) * d;
            }
        }
    }

    /// `out[m × rows] = x[m × cols] · selfᵀ`.
    pub fn matmul(&self, x: &Q8Acts, out: &mut [f32]) {
        assert_eq!(x.cols, self.cols, "activation width");
        assert_eq!(out.len(), x.m * self.rows, "output size");
        if x.m == 0 || self.rows == 0 {
            return;
        }
        let (k, kb, n) = (self.cols, self.cols / QK, self.rows);
        let simd_cols = match self.kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the kernel was chosen by runtime feature detection; the kernels assert the
            // slice shapes they rely on.
            Kernel::Avx512Vnni => unsafe {
                x86::matmul_avx512vnni(&x.q, &x.d, &x.negbias, &self.q, &self.d, n, out)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Kernel::AvxVnni => unsafe {
                x86::matmul_avxvnni(&x.q, &x.d, &x.negbias, &self.q, &self.d, n, out)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Kernel::Avx2 => unsafe {
                x86::matmul_avx2(&x.q, &x.d, &x.negbias, &self.q, &self.d, n, out)
            },
            _ => 0,
        };
        // Columns the SIMD kernels leave (all of them for the scalar kernel, else n % 4).
        for r in 0..x.m {
            let (xq, xd) = (&x.q[r * k..(r + 1) * k], &x.d[r * kb..(r + 1) * kb]);
            for c in simd_cols..n {
                let (w, wd) = (&self.q[c * k..(c + 1) * k], &self.d[c * kb..(c + 1) * kb]);
                out[r * n + c] = dot_scalar(xq, xd, w, wd, self.kernel.biased());
            }
        }
    }
}

/// Reference dot product (8 float lanes of 4 values per block, like the SIMD kernels).
fn dot_scalar(xq: &[i8], xd: &[f32], w: &[i8], wd: &[f32], biased: bool) -> f32 {
    let bias = if biased { 0x80u8 } else { 0 };
    let mut acc = [0f32; 8];
    for (b, (xb, wb)) in xq.chunks_exact(QK).zip(w.chunks_exact(QK)).enumerate() {
        let s = xd[b] * wd[b];
        for (lane, (xl, wl)) in xb.chunks_exact(4).zip(wb.chunks_exact(4)).enumerate() {
            let t: i32 = xl
                .iter()
                .zip(wl)
                .map(|(x, w)| i32::from(*x) * i32::from((*w as u8 ^ bias) as i8))
                .sum();
            acc[lane] += t as f32 * s;
        }
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The loops walk raw pointers advanced with `wrapping_add` and read memory only through
    //! `lddqu` / `maskload` / `maskstore`, which map straight to LLVM intrinsics: this crate keeps
    //! debug assertions on in release, and slice indexing, `ptr::add`, raw derefs or
    //! `loadu`/`storeu` (via `read_unaligned`) would put precondition checks and stack copies in
    //! the innermost loop (measured 2x slower).

    use std::arch::x86_64::*;

    use super::{QK, ROW_TILE};

    /// Checks every shape the kernels rely on; returns (m, k, kb).
    fn check(
        xq: &[i8],
        xd: &[f32],
        nb: Option<&[i32]>,
        w: &[i8],
        wd: &[f32],
        n: usize,
        out: &[f32],
    ) -> (usize, usize, usize) {
        let kb = wd.len() / n.max(1);
        let k = kb * QK;
        let m = xd.len() / kb.max(1);
        assert!(
            kb > 0 && wd.len() == n * kb && w.len() == n * k,
            "weight shape"
        );
        assert!(
            xd.len() == m * kb && xq.len() == m * k && out.len() == m * n,
            "activation shape"
        );
        if let Some(nb) = nb {
            assert_eq!(nb.len(), m * kb * 8, "activation lane sums");
        }
        (m, k, kb)
    }

    /// 32 bytes at `p`.
    #[inline(always)]
    unsafe fn load256(p: *const i8) -> __m256i {
        // SAFETY: the caller guarantees 32 readable bytes.
        unsafe { _mm256_lddqu_si256(p as *const __m256i) }
    }

    /// The f32 at `p` in all eight lanes.
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees a readable f32; only lane 0 is loaded.
        unsafe { _mm256_broadcastss_ps(_mm_maskload_ps(p, _mm_setr_epi32(-1, 0, 0, 0))) }
    }

    /// Horizontal sums of four accumulators: lane j = ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)) of
    /// `aj`, the order `dot_scalar` uses.
    #[inline(always)]
    unsafe fn hsum4(a0: __m256, a1: __m256, a2: __m256, a3: __m256) -> __m128 {
        // SAFETY: AVX is enabled in every caller.
        unsafe {
            let t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
            _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps::<1>(t))
        }
    }

    /// Generates `matmul_*`: for each tile of `ROW_TILE` activation rows and each group of four
    /// weight rows, four dot products per activation row; returns how many columns were done
    /// (`n` rounded down to a multiple of 4).
    macro_rules! matmul_kernel {
        ($name:ident, $features:literal, vnni: $dpbusd:ident) => {
            matmul_kernel!(@impl $name, $features, |xv, bias, wv| $dpbusd(bias, wv, xv), true);
        };
        ($name:ident, $features:literal, avx2) => {
            matmul_kernel!(@impl $name, $features, |xv, _bias, wv| {
                // |w| · (x · sign(w)) = w · x; |w|, |x| <= 127, so the i16 pair sums cannot saturate.
                let p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
                _mm256_madd_epi16(p, _mm256_set1_epi16(1))
            }, false);
        };
        (@impl $name:ident, $features:literal, $dot:expr, $vnni:literal) => {
            /// # Safety
            /// The CPU must support the enabled features.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(xq: &[i8], xd: &[f32], nb: &[i32], w: &[i8], wd: &[f32], n: usize, out: &mut [f32]) -> usize {
                let (m, k, kb) = check(xq, xd, if $vnni { Some(nb) } else { None }, w, wd, n, out);
                let dot = $dot;
                let mask = _mm_set1_epi32(-1);
                let n4 = n & !3;
                for r0 in (0..m).step_by(ROW_TILE) {
                    for c in (0..n4).step_by(4) {
                        for r in r0..m.min(r0 + ROW_TILE) {
                            // SAFETY: `check` bounds all pointers: activation row `r` has `kb`
                            // blocks (`k` bytes, `kb` scales, `8 kb` lane sums); weight rows
                            // `c..c+4` start `k` bytes (`kb` scales) apart; output row `r` has `n`
                            // values and `c + 4 <= n`.
                            unsafe {
                                let mut px = xq.as_ptr().wrapping_add(r * k);
                                let mut pdx = xd.as_ptr().wrapping_add(r * kb);
                                let mut pb = if $vnni { nb.as_ptr().wrapping_add(r * kb * 8) } else { nb.as_ptr() };
                                let mut pw = w.as_ptr().wrapping_add(c * k);
                                let mut pd = wd.as_ptr().wrapping_add(c * kb);
                                let (mut a0, mut a1, mut a2, mut a3) =
                                    (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
                                for _ in 0..kb {
                                    let xv = load256(px);
                                    let bias = if $vnni { _mm256_lddqu_si256(pb as *const __m256i) } else { _mm256_setzero_si256() };
                                    let dx = splat(pdx);
                                    let sc = |j: usize| _mm256_mul_ps(dx, splat(pd.wrapping_add(j * kb)));
                                    let f = |j: usize| _mm256_cvtepi32_ps(dot(xv, bias, load256(pw.wrapping_add(j * k))));
                                    a0 = _mm256_fmadd_ps(f(0), sc(0), a0);
                                    a1 = _mm256_fmadd_ps(f(1), sc(1), a1);
                                    a2 = _mm256_fmadd_ps(f(2), sc(2), a2);
                                    a3 = _mm256_fmadd_ps(f(3), sc(3), a3);
                                    px = px.wrapping_add(QK);
                                    pdx = pdx.wrapping_add(1);
                                    if $vnni {
                                        pb = pb.wrapping_add(8);
                                    }
                                    pw = pw.wrapping_add(QK);
                                    pd = pd.wrapping_add(1);
                                }
                                let dst = out.as_mut_ptr().wrapping_add(r * n + c);
                                _mm_maskstore_ps(dst, mask, hsum4(a0, a1, a2, a3));
                            }
                        }
                    }
                }
                n4
            }
        };
    }

    // VNNI: the weights are stored as `w + 128` (unsigned) and `bias` = -128 · Σx per 4-value
    // lane, so bias + Σ (w + 128) · x = Σ w · x exactly.
    matmul_kernel!(matmul_avx512vnni, "avx512vnni,avx512vl,avx2,fma", vnni: _mm256_dpbusd_epi32);
    matmul_kernel!(matmul_avxvnni, "avxvnni,avx2,fma", vnni: _mm256_dpbusd_avx_epi32);
    matmul_kernel!(matmul_avx2, "avx2,fma", avx2);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 4.0
            })
            .collect()
    }

    #[test]
    fn kernels_match_f32_reference() {
        let (rows, cols, m) = (10, 96, 3);
        let w = pseudo_random(rows * cols, 1);
        let x = pseudo_random(m * cols, 2);
        let mut want = vec![0f32; m * rows];
        for r in 0..m {
            for c in 0..rows {
                want[r * rows + c] = (0..cols).map(|i| x[r * cols + i] * w[c * cols + i]).sum();
            }
        }
        let mut results = Vec::new();
        for kernel in Kernel::available() {
            let mat = Q8Mat::quantize(&w, rows, cols, kernel);
            let acts = Q8Acts::quantize(&x, cols, kernel);
            let mut got = vec![0f32; m * rows];
            mat.matmul(&acts, &mut got);
            for (g, e) in got.iter().zip(&want) {
                assert!(
                    (g - e).abs() < 0.05 * (1.0 + e.abs()),
                    "{kernel:?}: {g} vs {e}"
                );
            }
            // Row independence: each row alone gives the same bits.
            for r in 0..m {
                let one = Q8Acts::quantize(&x[r * cols..(r + 1) * cols], cols, kernel);
                let mut single = vec![0f32; rows];
                mat.matmul(&one, &mut single);
                assert_eq!(single, got[r * rows..(r + 1) * rows], "{kernel:?} row {r}");
            }
            let mut row = vec![0f32; cols];
            mat.dequantize_row(3, &mut row);
            assert!(
                row.iter()
                    .zip(&w[3 * cols..4 * cols])
                    .all(|(a, b)| (a - b).abs() < 0.02)
            );
            results.push(got);
        }
        // All kernels compute the same integer block sums; only FMA rounding may differ.
        for r in &results[1..] {
            for (a, b) in r.iter().zip(&results[0]) {
                assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()));
            }
        }
    }
}
