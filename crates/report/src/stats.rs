//! The statistics behind the verdict: Welch's t-test of two groups of seeds, Student's t
//! distribution for its p-values and bounds, and the effect size. Written out here (a
//! few dozen lines) rather than brought in: the report needs only these.

/// Welch's comparison of two groups' means (`b - a`), each given as (n, mean, sample
/// standard deviation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Welch {
    /// Difference of the means, b - a.
    pub diff: f64,
    /// Its standard error, sqrt(s_a^2 / n_a + s_b^2 / n_b).
    pub se: f64,
    /// diff / se (infinite when se is 0 and diff is not).
    pub t: f64,
    /// Welch-Satterthwaite degrees of freedom (infinite when se is 0).
    pub df: f64,
    /// Cohen's d: diff over the pooled standard deviation (infinite when both are 0).
    pub effect: f64,
}

impl Welch {
    /// None with fewer than two seeds in a group: no spread to test against.
    pub fn of(a: (usize, f64, f64), b: (usize, f64, f64)) -> Option<Self> {
        let ((na, ma, sa), (nb, mb, sb)) = (a, b);
        if na < 2 || nb < 2 {
            return None;
        }
        let (na, nb) = (na as f64, nb as f64);
        let (va, vb) = (sa * sa / na, sb * sb / nb);
        let diff = mb - ma;
        let se = (va + vb).sqrt();
        // x / y, with y = 0 (no spread at all) giving 0 for x = 0 and ±∞ otherwise.
        let ratio = |x: f64, y: f64| {
            if y > 0.0 {
                x / y
            } else if x == 0.0 {
                0.0
            } else {
                x.signum() * f64::INFINITY
            }
        };
        let df = match se > 0.0 {
            true => (va + vb).powi(2) / (va * va / (na - 1.0) + vb * vb / (nb - 1.0)),
            false => f64::INFINITY,
        };
        let pooled = (((na - 1.0) * sa * sa + (nb - 1.0) * sb * sb) / (na + nb - 2.0)).sqrt();
        Some(Self {
            diff,
            se,
            t: ratio(diff, se),
            df,
            effect: ratio(diff, pooled),
        })
    }

    /// One-sided p-value of "b's mean is larger than a's".
    pub fn p_greater(&self) -> f64 {
        t_upper_tail(self.t, self.df)
    }

    /// The one-sided upper confidence bound of the difference at `confidence`.
    pub fn upper_bound(&self, confidence: f64) -> f64 {
        self.diff + t_quantile(confidence, self.df) * self.se
    }
}

/// P(T > t) for Student's t with `df` degrees of freedom (df infinite: the normal).
pub fn t_upper_tail(t: f64, df: f64) -> f64 {
    if t.is_nan() {
        return f64::NAN;
    }
    if t.is_infinite() {
        return if t > 0.0 { 0.0 } else { 1.0 };
    }
    if df.is_infinite() {
        return 0.5 * erfc(t / std::f64::consts::SQRT_2);
    }
    let tail = 0.5 * incomplete_beta(df / (df + t * t), df / 2.0, 0.5);
    if t >= 0.0 {
        tail
    } else {
        1.0 - tail
    }
}

/// The t with P(T <= t) = `p` (0.5 < p < 1), by bisection on the tail.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1e6f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if 1.0 - t_upper_tail(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The regularised incomplete beta function I_x(a, b), by its continued fraction
/// (Numerical Recipes' betacf, modified Lentz).
fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    // The fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry
    // I_x(a, b) = 1 - I_{1-x}(b, a) beyond.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(x, a, b) / a
    } else {
        1.0 - front * beta_fraction(1.0 - x, b, a) / b
    }
}

fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    d = 1.0 / if d.abs() < TINY { TINY } else { d };
    let mut h = d;
    for m in 1..300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        for aa in [
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ] {
            d = 1.0 + aa * d;
            d = 1.0 / if d.abs() < TINY { TINY } else { d };
            c = 1.0 + aa / c;
            c = if c.abs() < TINY { TINY } else { c };
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: about 15 digits).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 - x) = π / sin(π x).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let sum = G[1..]
        .iter()
        .enumerate()
        .fold(G[0], |s, (i, g)| s + g / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The complementary error function (Numerical Recipes' erfcc: 1.2e-7 relative).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// Against the printed tables of Student's t (and R's qt / pt).
    #[test]
    fn t_quantiles_and_tails_match_the_tables() {
        for (p, df, t) in [
            (0.95, 1.0, 6.313_752),
            (0.95, 2.0, 2.919_986),
            (0.95, 4.0, 2.131_847),
            (0.95, 10.0, 1.812_461),
            (0.975, 5.0, 2.570_582),
            (0.99, 30.0, 2.457_262),
            (0.95, f64::INFINITY, 1.644_854),
        ] {
            let got = t_quantile(p, df);
            assert!(close(got, t, 2e-5), "t({p}, {df}) = {got}, tables {t}");
        }
        assert!(close(t_upper_tail(2.0, 10.0), 0.036_694, 1e-6));
        assert!(close(t_upper_tail(-2.0, 10.0), 1.0 - 0.036_694, 1e-6));
        assert!(close(t_upper_tail(0.0, 3.3), 0.5, 1e-12));
        assert_eq!(t_upper_tail(f64::INFINITY, 3.0), 0.0);
    }

    #[test]
    fn welch_matches_a_hand_computation() {
        // a: 3 seeds 18.0 ± 1.0; b: 3 seeds 22.3 ± 4.4 (residual-20 and -56 of an early
        // three-seed fashion-conv run).
        let w = Welch::of((3, 18.0, 1.0), (3, 22.3, 4.4)).unwrap();
        let se = (1.0f64 / 3.0 + 4.4 * 4.4 / 3.0).sqrt();
        assert!(close(w.diff, 4.3, 1e-12) && close(w.se, se, 1e-12));
        assert!(close(w.t, 4.3 / se, 1e-12));
        let (va, vb) = (1.0f64 / 3.0, 4.4 * 4.4 / 3.0);
        let df = (va + vb).powi(2) / (va * va / 2.0 + vb * vb / 2.0);
        assert!(close(w.df, df, 1e-12));
        assert!(close(
            w.effect,
            4.3 / ((1.0f64 + 4.4 * 4.4) / 2.0).sqrt(),
            1e-12
        ));
        assert!(
            w.p_greater() > 0.05,
            "{w:?}: 4.3 points is not significant here"
        );
        assert!(Welch::of((1, 1.0, 0.0), (3, 2.0, 1.0)).is_none());
        let exact = Welch::of((3, 5.0, 0.0), (3, 5.0, 0.0)).unwrap();
        assert_eq!((exact.t, exact.upper_bound(0.95)), (0.0, 0.0));
        let apart = Welch::of((3, 5.0, 0.0), (3, 6.0, 0.0)).unwrap();
        assert_eq!((apart.t, apart.p_greater()), (f64::INFINITY, 0.0));
    }
}
