//! The statistical judge of the `compare` provider: canary against stable with a
//! Mann-Whitney U test (normal approximation, tie and continuity corrections) and a
//! Hodges-Lehmann estimate of the shift with its confidence interval. Pure.

use crate::api::{CompareDirection, CompareMetric};

/// Default relative shift tolerated, in percent.
pub const DEFAULT_TOLERANCE_PERCENT: u32 = 10;
/// Default confidence, in percent.
pub const DEFAULT_CONFIDENCE_PERCENT: u32 = 98;
/// Default fewest samples per side.
pub const DEFAULT_MIN_SAMPLES: u32 = 10;

/// What the judge concluded about one metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classification {
    /// No regression beyond the tolerance.
    Pass,
    /// The canary is significantly and materially higher.
    High,
    /// The canary is significantly and materially lower.
    Low,
    /// Too few samples on one side to judge.
    NoData,
}

/// The result of comparing two samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    /// The conclusion against the metric's direction and tolerance.
    pub classification: Classification,
    /// U statistic of the canary sample.
    pub u: f64,
    /// p-value of the test in the direction judged (two-sided for `Either`).
    pub p_value: f64,
    /// Hodges-Lehmann estimate of canary minus stable.
    pub shift: f64,
    /// Confidence interval of the shift.
    pub interval: (f64, f64),
    /// Median of canary over median of stable (NaN when the stable median is 0).
    pub median_ratio: f64,
    /// Medians of the canary and of the stable sample.
    pub medians: (f64, f64),
    /// Samples used (canary, stable), after NaN cleanup.
    pub samples: (usize, usize),
}

impl Judgement {
    /// One-line summary for status.
    pub fn render(&self) -> String {
        if self.classification == Classification::NoData {
            return format!(
                "NoData: {} canary and {} stable samples",
                self.samples.0, self.samples.1
            );
        }
        format!(
            "{:?}: p={:.4} shift={:+.4} [{:.4}, {:.4}] ratio={:.3} canary={:.4} stable={:.4} n={}/{}",
            self.classification,
            self.p_value,
            self.shift,
            self.interval.0,
            self.interval.1,
            self.median_ratio,
            self.medians.0,
            self.medians.1,
            self.samples.0,
            self.samples.1
        )
    }
}

/// The numbers of a judgement, read back from its one-line summary (the value a
/// measurement keeps in status), for reports and plots.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// p-value.
    pub p: f64,
    /// Hodges-Lehmann shift, canary minus stable.
    pub shift: f64,
    /// Lower end of the shift's confidence interval.
    pub low: f64,
    /// Upper end of the shift's confidence interval.
    pub high: f64,
    /// Median of canary over median of stable.
    pub ratio: f64,
    /// Median of the canary sample.
    pub canary: f64,
    /// Median of the stable sample.
    pub stable: f64,
    /// Canary samples.
    pub canary_samples: u64,
    /// Stable samples.
    pub stable_samples: u64,
}

impl Figures {
    /// Reads the summary [`Judgement::render`] writes; `None` for anything else (NoData, a
    /// threshold metric's number).
    pub fn parse(summary: &str) -> Option<Self> {
        let field = |name: &str| -> Option<&str> {
            summary
                .split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        };
        let number = |name: &str| field(name)?.parse::<f64>().ok();
        let (low, high) = summary
            .split_once('[')?
            .1
            .split_once(']')?
            .0
            .split_once(", ")?;
        let (canary_samples, stable_samples) = field("n")?.split_once('/')?;
        Some(Self {
            p: number("p")?,
            shift: number("shift")?,
            low: low.parse().ok()?,
            high: high.parse().ok()?,
            ratio: number("ratio")?,
            canary: number("canary")?,
            stable: number("stable")?,
            canary_samples: canary_samples.parse().ok()?,
            stable_samples: stable_samples.parse().ok()?,
        })
    }
}

/// U statistic and p-values of a Mann-Whitney test of `x` against `y`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MannWhitney {
    /// U of `x`: the number of pairs where x beats y, ties counting one half.
    pub u: f64,
    /// p-value for "x tends to be greater than y".
    pub p_greater: f64,
    /// p-value for "x tends to be less than y".
    pub p_less: f64,
    /// Two-sided p-value.
    pub p_two_sided: f64,
}

/// Mann-Whitney U test with the normal approximation, tie correction and continuity
/// correction (as scipy's `mannwhitneyu(method="asymptotic")`). Both samples non-empty.
pub fn mann_whitney(x: &[f64], y: &[f64]) -> Option<MannWhitney> {
    let (n1, n2) = (x.len(), y.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let mut all: Vec<(f64, bool)> = x
        .iter()
        .map(|v| (*v, true))
        .chain(y.iter().map(|v| (*v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = all.len();
    let mut rank_sum_x = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their average.
        let average = (i + j + 2) as f64 / 2.0;
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        rank_sum_x += average * all[i..=j].iter().filter(|e| e.1).count() as f64;
        i = j + 1;
    }
    let (n1f, n2f, nf) = (n1 as f64, n2 as f64, n as f64);
    let u = rank_sum_x - n1f * (n1f + 1.0) / 2.0;
    let mean = n1f * n2f / 2.0;
    let variance = n1f * n2f / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)));
    if variance <= 0.0 {
        // Every value equal: no evidence either way.
        return Some(MannWhitney {
            u,
            p_greater: 1.0,
            p_less: 1.0,
            p_two_sided: 1.0,
        });
    }
    let sd = variance.sqrt();
    let p_greater = normal_sf((u - mean - 0.5) / sd);
    let p_less = normal_sf((mean - u - 0.5) / sd);
    let p_two_sided = (2.0 * normal_sf(((u - mean).abs() - 0.5) / sd)).min(1.0);
    Some(MannWhitney {
        u,
        p_greater: p_greater.min(1.0),
        p_less: p_less.min(1.0),
        p_two_sided,
    })
}

/// Hodges-Lehmann estimate of the shift `x - y` (median of pairwise differences) and its
/// distribution-free confidence interval at `confidence` (0..1).
pub fn hodges_lehmann(x: &[f64], y: &[f64], confidence: f64) -> Option<(f64, (f64, f64))> {
    if x.is_empty() || y.is_empty() {
        return None;
    }
    let mut d: Vec<f64> = x
        .iter()
        .flat_map(|a| y.iter().map(move |b| a - b))
        .collect();
    d.sort_by(f64::total_cmp);
    let m = d.len();
    let estimate = median_sorted(&d);
    let (n1, n2) = (x.len() as f64, y.len() as f64);
    let z = normal_quantile(1.0 - (1.0 - confidence) / 2.0);
    let k = (n1 * n2 / 2.0 - z * (n1 * n2 * (n1 + n2 + 1.0) / 12.0).sqrt()).floor();
    let k = (k.max(1.0) as usize).min(m);
    Some((estimate, (d[k - 1], d[m - k])))
}

/// Judges canary against stable for one compare metric: NaN dropped, too few samples is
/// NoData, otherwise a regression needs both significance and a shift beyond the tolerance.
pub fn judge(metric: &CompareMetric, canary: &[f64], stable: &[f64]) -> Judgement {
    let clean = |v: &[f64]| -> Vec<f64> { v.iter().copied().filter(|x| x.is_finite()).collect() };
    let (x, y) = (clean(canary), clean(stable));
    let min = metric.min_samples.unwrap_or(DEFAULT_MIN_SAMPLES) as usize;
    let confidence = f64::from(
        metric
            .confidence_percent
            .unwrap_or(DEFAULT_CONFIDENCE_PERCENT),
    ) / 100.0;
    let tolerance = f64::from(
        metric
            .tolerance_percent
            .unwrap_or(DEFAULT_TOLERANCE_PERCENT),
    ) / 100.0;
    let no_data = |x: &[f64], y: &[f64]| Judgement {
        classification: Classification::NoData,
        u: f64::NAN,
        p_value: f64::NAN,
        shift: f64::NAN,
        interval: (f64::NAN, f64::NAN),
        median_ratio: f64::NAN,
        medians: (f64::NAN, f64::NAN),
        samples: (x.len(), y.len()),
    };
    if x.len() < min || y.len() < min {
        return no_data(&x, &y);
    }
    let (Some(test), Some((shift, interval))) =
        (mann_whitney(&x, &y), hodges_lehmann(&x, &y, confidence))
    else {
        return no_data(&x, &y);
    };
    let stable_median = median(&y);
    let canary_median = median(&x);
    let median_ratio = if stable_median == 0.0 {
        f64::NAN
    } else {
        canary_median / stable_median
    };
    // A shift is material when it passes the tolerance relative to the stable median; with a
    // stable median of 0 any shift is.
    let material = |s: f64| {
        if stable_median == 0.0 {
            s != 0.0
        } else {
            s.abs() > tolerance * stable_median.abs()
        }
    };
    let alpha = 1.0 - confidence;
    let direction = metric.direction.unwrap_or_default();
    let (p_value, classification) = match direction {
        CompareDirection::Increase => {
            let high = test.p_greater < alpha && shift > 0.0 && material(shift);
            (
                test.p_greater,
                if high {
                    Classification::High
                } else {
                    Classification::Pass
                },
            )
        }
        CompareDirection::Decrease => {
            let low = test.p_less < alpha && shift < 0.0 && material(shift);
            (
                test.p_less,
                if low {
                    Classification::Low
                } else {
                    Classification::Pass
                },
            )
        }
        CompareDirection::Either => {
            let significant = test.p_two_sided < alpha && material(shift);
            let classification = match (significant, shift > 0.0) {
                (false, _) => Classification::Pass,
                (true, true) => Classification::High,
                (true, false) => Classification::Low,
            };
            (test.p_two_sided, classification)
        }
    };
    Judgement {
        classification,
        u: test.u,
        p_value,
        shift,
        interval,
        median_ratio,
        medians: (canary_median, stable_median),
        samples: (x.len(), y.len()),
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    median_sorted(&v)
}

fn median_sorted(v: &[f64]) -> f64 {
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Upper tail of the standard normal distribution, P(Z > z).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (W. J. Cody's rational approximations, relative error
/// below 1e-14 over the real line).
fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 0.5 {
        return 1.0 - erf_small(x);
    }
    if x < 4.0 {
        const P: [f64; 9] = [
            5.641_884_969_886_701e-1,
            8.883_149_794_388_376,
            6.611_919_063_714_163e1,
            2.986_351_381_974_001e2,
            8.819_522_212_417_69e2,
            1.712_047_612_634_071e3,
            2.051_078_377_826_071e3,
            1.230_339_354_797_997e3,
            2.153_115_354_744_038e-8,
        ];
        const Q: [f64; 8] = [
            1.574_492_611_070_983e1,
            1.176_939_508_913_125e2,
            5.371_811_018_620_099e2,
            1.621_389_574_566_69e3,
            3.290_799_235_733_46e3,
            4.362_619_090_143_247e3,
            3.439_367_674_143_722e3,
            1.230_339_354_803_749e3,
        ];
        let mut num = P[8] * x;
        let mut den = x;
        for i in 0..7 {
            num = (num + P[i]) * x;
            den = (den + Q[i]) * x;
        }
        let r = (num + P[7]) / (den + Q[7]);
        return (-x * x).exp() * r;
    }
    const P: [f64; 6] = [
        3.053_266_349_612_323e-1,
        3.603_448_999_498_044e-1,
        1.257_817_261_112_292e-1,
        1.608_378_514_874_228e-2,
        6.587_491_615_298_378e-4,
        1.631_538_713_730_71e-2,
    ];
    const Q: [f64; 5] = [
        2.568_520_192_289_822,
        1.872_952_849_923_46,
        5.279_051_029_514_285e-1,
        6.051_834_131_244_132e-2,
        2.335_204_976_268_692e-3,
    ];
    let z = 1.0 / (x * x);
    let mut num = P[5] * z;
    let mut den = z;
    for i in 0..4 {
        num = (num + P[i]) * z;
        den = (den + Q[i]) * z;
    }
    let r = z * (num + P[4]) / (den + Q[4]);
    let r = (1.0 / std::f64::consts::PI.sqrt() - r) / x;
    (-x * x).exp() * r
}

fn erf_small(x: f64) -> f64 {
    const A: [f64; 5] = [
        3.161_123_743_870_566,
        1.138_641_541_510_502e2,
        3.774_852_376_853_02e2,
        3.209_377_589_138_469e3,
        1.857_777_061_846_032e-1,
    ];
    const B: [f64; 4] = [
        2.360_129_095_234_412e1,
        2.440_246_379_344_442e2,
        1.282_616_526_077_372e3,
        2.844_236_833_439_171e3,
    ];
    let z = x * x;
    let mut num = A[4] * z;
    let mut den = z;
    for i in 0..3 {
        num = (num + A[i]) * z;
        den = (den + B[i]) * z;
    }
    x * (num + A[3]) / (den + B[3])
}

/// Quantile of the standard normal distribution (Acklam's algorithm refined by one Newton
/// step), for `p` in (0, 1).
pub fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let low = 0.02425;
    let x = if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // One Newton step on the CDF sharpens the approximation to near machine precision.
    let e = (1.0 - normal_sf(x)) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_reads_back_as_its_figures() {
        let j = Judgement {
            classification: Classification::High,
            u: 300.0,
            p_value: 0.000_12,
            shift: 0.152,
            interval: (0.121, -0.18),
            median_ratio: 1.712,
            medians: (0.35, 0.2),
            samples: (20, 19),
        };
        let summary = j.render();
        assert_eq!(
            summary,
            "High: p=0.0001 shift=+0.1520 [0.1210, -0.1800] ratio=1.712 canary=0.3500 stable=0.2000 n=20/19"
        );
        assert_eq!(
            Figures::parse(&summary),
            Some(Figures {
                p: 0.0001,
                shift: 0.152,
                low: 0.121,
                high: -0.18,
                ratio: 1.712,
                canary: 0.35,
                stable: 0.2,
                canary_samples: 20,
                stable_samples: 19,
            })
        );
        let no_data = Judgement {
            classification: Classification::NoData,
            ..j
        };
        assert_eq!(Figures::parse(&no_data.render()), None);
        assert_eq!(Figures::parse("0.05"), None, "a threshold metric's value");
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn normal_distribution_matches_tables() {
        assert!(close(normal_sf(0.0), 0.5, 1e-14));
        assert!(close(normal_sf(1.959_963_984_540_054), 0.025, 1e-12));
        assert!(close(normal_sf(-1.0), 0.841_344_746_068_542_9, 1e-12));
        assert!(close(normal_sf(3.0), 0.001_349_898_031_630_094_6, 1e-10));
        assert!(close(normal_sf(6.0), 9.865_876_450_377e-10, 1e-9));
        assert!(close(normal_quantile(0.975), 1.959_963_984_540_054, 1e-9));
        assert!(close(normal_quantile(0.99), 2.326_347_874_040_841, 1e-9));
        assert!(close(normal_quantile(0.01), -2.326_347_874_040_841, 1e-9));
    }

    #[test]
    fn mann_whitney_matches_the_textbook_example() {
        // scipy.stats.mannwhitneyu documentation: males vs females, U = 17.
        let males = [19.0, 22.0, 16.0, 29.0, 24.0];
        let females = [20.0, 11.0, 17.0, 12.0];
        let t = mann_whitney(&males, &females).unwrap();
        assert_eq!(t.u, 17.0);
        assert!(close(t.p_two_sided, 0.111_346_886_533_140_41, 1e-9));
        assert!(close(t.p_greater, 0.055_673_443_266_570_206, 1e-9));
        assert!(close(t.p_less, 0.966_903_710_138_903_3, 1e-9));
    }

    #[test]
    fn mann_whitney_corrects_for_ties() {
        let a = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0];
        let b = [3.0, 4.0, 4.0, 5.0, 5.0, 6.0, 6.0, 7.0, 8.0];
        let t = mann_whitney(&a, &b).unwrap();
        assert_eq!(t.u, 7.5);
        assert!(close(t.p_two_sided, 0.006_373_133_838_085_873, 1e-9));
        assert!(close(t.p_less, 0.003_186_566_919_042_936_4, 1e-9));
        assert!(close(t.p_greater, 0.997_638_665_807_353_5, 1e-9));
        let same = mann_whitney(&[1.0, 1.0], &[1.0, 1.0]).unwrap();
        assert_eq!(same.p_two_sided, 1.0);
        assert!(mann_whitney(&[], &[1.0]).is_none());
    }

    #[test]
    fn hodges_lehmann_is_the_median_pairwise_difference() {
        let males = [19.0, 22.0, 16.0, 29.0, 24.0];
        let females = [20.0, 11.0, 17.0, 12.0];
        let (shift, (lo, hi)) = hodges_lehmann(&males, &females, 0.95).unwrap();
        assert_eq!(shift, 7.0);
        assert!(lo <= shift && shift <= hi);
        let a = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0];
        let b = [3.0, 4.0, 4.0, 5.0, 5.0, 6.0, 6.0, 7.0, 8.0];
        assert_eq!(hodges_lehmann(&a, &b, 0.95).unwrap().0, -2.0);
        // A pure shift is recovered exactly, and the interval narrows with confidence.
        let base: Vec<f64> = (0..30).map(|i| f64::from(i) * 0.37 % 5.0).collect();
        let shifted: Vec<f64> = base.iter().map(|v| v + 2.0).collect();
        let (s, (l95, h95)) = hodges_lehmann(&shifted, &base, 0.95).unwrap();
        let (_, (l80, h80)) = hodges_lehmann(&shifted, &base, 0.80).unwrap();
        assert!(close(s, 2.0, 1e-12));
        assert!(l95 <= l80 && h80 <= h95);
    }

    /// Reference values computed once with numpy 2.4.6 and scipy 1.17.1: the estimate is
    /// `np.median(np.subtract.outer(x, y))`; the interval is the pair of order statistics
    /// `d[k-1], d[m-k]` of the sorted differences with
    /// `k = floor(n1*n2/2 - scipy.stats.norm.ppf(1-(1-c)/2) * sqrt(n1*n2*(n1+n2+1)/12))`,
    /// the large-sample interval of Hollander & Wolfe (Nonparametric Statistical Methods).
    /// The first data set is the permeability data of R's `?wilcox.test` example (Hollander
    /// & Wolfe 1973, p. 69); the second was drawn with `np.random.default_rng(7)`, normal
    /// around 0.30 and 0.25 and rounded to 3 places.
    #[test]
    fn hodges_lehmann_matches_reference_values() {
        let x = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46];
        let y = [1.15, 0.88, 0.90, 0.74, 1.21];
        // Thousandths, as drawn: n / 1000.0 is the same double as the decimal literal.
        let canary: Vec<f64> = CANARY.iter().map(|&n| f64::from(n) / 1000.0).collect();
        let stable: Vec<f64> = STABLE.iter().map(|&n| f64::from(n) / 1000.0).collect();
        type Case<'a> = (&'a [f64], &'a [f64], f64, f64, (f64, f64));
        let cases: [Case; 4] = [
            (&x, &y, 0.95, 0.305, (-0.17, 0.76)),
            (&x, &y, 0.90, 0.305, (-0.10, 0.74)),
            (&canary, &stable, 0.95, 0.048, (0.023, 0.071)),
            (&canary, &stable, 0.99, 0.048, (0.013, 0.079)),
        ];
        for (x, y, confidence, estimate, (lo, hi)) in cases {
            let (s, (l, h)) = hodges_lehmann(x, y, confidence).unwrap();
            assert!(close(s, estimate, 1e-9), "{confidence}: estimate {s}");
            assert!(close(l, lo, 1e-9), "{confidence}: lower {l}");
            assert!(close(h, hi, 1e-9), "{confidence}: upper {h}");
        }
    }

    const CANARY: [u16; 24] = [
        300, 315, 286, 255, 277, 250, 303, 367, 275, 269, 324, 318, 305, 253, 299, 335, 233, 277,
        205, 236, 208, 288, 237, 314,
    ];
    const STABLE: [u16; 20] = [
        258, 241, 124, 223, 248, 256, 173, 226, 201, 210, 303, 210, 248, 294, 221, 244, 256, 253,
        189, 254,
    ];

    fn compare(direction: CompareDirection) -> CompareMetric {
        CompareMetric {
            direction: Some(direction),
            ..Default::default()
        }
    }

    fn series(center: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| center * (1.0 + 0.02 * (((i * 7) % 11) as f64 - 5.0) / 5.0))
            .collect()
    }

    #[test]
    fn a_material_significant_increase_is_high() {
        let j = judge(
            &compare(CompareDirection::Increase),
            &series(0.2, 30),
            &series(0.1, 30),
        );
        assert_eq!(j.classification, Classification::High, "{}", j.render());
        assert!(j.p_value < 0.001);
        assert!(close(j.median_ratio, 2.0, 0.05));
        // The same data judged for a decrease is fine.
        let j = judge(
            &compare(CompareDirection::Decrease),
            &series(0.2, 30),
            &series(0.1, 30),
        );
        assert_eq!(j.classification, Classification::Pass);
        let j = judge(
            &compare(CompareDirection::Either),
            &series(0.05, 30),
            &series(0.1, 30),
        );
        assert_eq!(j.classification, Classification::Low);
    }

    #[test]
    fn a_significant_shift_inside_the_tolerance_passes() {
        // 3 % higher, very consistently: significant but within the default 10 %.
        let j = judge(
            &compare(CompareDirection::Increase),
            &series(0.103, 40),
            &series(0.1, 40),
        );
        assert!(j.p_value < 0.02, "{}", j.render());
        assert_eq!(j.classification, Classification::Pass);
        let mut strict = compare(CompareDirection::Increase);
        strict.tolerance_percent = Some(1);
        assert_eq!(
            judge(&strict, &series(0.103, 40), &series(0.1, 40)).classification,
            Classification::High
        );
    }

    #[test]
    fn equal_samples_pass_and_nan_is_dropped_before_counting() {
        let j = judge(
            &compare(CompareDirection::Either),
            &series(0.1, 20),
            &series(0.1, 20),
        );
        assert_eq!(j.classification, Classification::Pass);
        let mut canary = series(0.1, 12);
        canary.extend([f64::NAN; 5]);
        let j = judge(
            &compare(CompareDirection::Increase),
            &canary,
            &series(0.1, 12),
        );
        assert_eq!(j.samples, (12, 12));
        let j = judge(
            &compare(CompareDirection::Increase),
            &[f64::NAN; 30],
            &series(0.1, 30),
        );
        assert_eq!(j.classification, Classification::NoData);
        assert!(j.render().starts_with("NoData"));
    }
}
