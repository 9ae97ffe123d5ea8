//! What the results show, in plain words, computed from the final errors and the runs
//! that are not done. Each half is a test with stated statistics, on the final training
//! error of the shallowest and the deepest depth over their seeds (Welch's t, one-sided,
//! 95 %):
//! - degradation is *shown* when the deepest plain net is worse with p < 0.05, and
//!   *absent* when, with 95 % confidence, it is less than `NO_WORSE_MARGIN` worse;
//! - the residual nets *avoid* it when, with 95 % confidence, the deepest is less than
//!   `NO_WORSE_MARGIN` worse (a non-inferiority test), and *do not* when it is worse
//!   with p < 0.05 and by more than the margin.
//!
//! Anything else is inconclusive: the seeds cannot tell, there is one seed per depth, or
//! a planned run is missing or diverged; the verdict says which.

use crate::aggregate::GroupStat;
use crate::stats::Welch;
use serde::Serialize;
use vocab::Family;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    /// The data shows it beyond the spread across seeds.
    Shown,
    /// The data shows the opposite.
    Absent,
    /// Too little data to tell: one seed, a difference inside the spread, runs missing.
    Inconclusive,
}

/// A planned run that has no final result.
#[derive(Debug, Clone, PartialEq)]
pub struct NotDone {
    pub family: Family,
    pub label: String,
    /// "missing", "unfinished", "failed" or "diverged".
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// One sentence for the top of the report and the index.
    pub headline: String,
    /// Do deeper plain nets train worse?
    pub degradation: Evidence,
    /// Do the residual nets avoid it? (Shown = they avoid it.)
    pub residual_avoids: Evidence,
    /// The numbers behind it, one sentence each.
    pub details: Vec<String>,
}

/// Training error (a fraction: 1 point) within which a deeper net counts as no worse.
const NO_WORSE_MARGIN: f64 = 0.01;
/// The one-sided confidence of every claim.
const CONFIDENCE: f64 = 0.95;

/// The shallowest-vs-deepest comparison of one family's final training error.
#[derive(Debug, Clone, PartialEq)]
struct Comparison {
    shallow: GroupStat,
    deep: GroupStat,
    /// Deep minus shallow mean training error.
    diff: f64,
    /// Welch's test of deep against shallow; None with one seed at either depth.
    welch: Option<Welch>,
}

impl Comparison {
    fn of(finals: &[GroupStat], family: Family) -> Option<Self> {
        let of_family: Vec<&GroupStat> = finals.iter().filter(|g| g.family == family).collect();
        let shallow = (*of_family.iter().min_by_key(|g| g.depth)?).clone();
        let deep = (*of_family.iter().max_by_key(|g| g.depth)?).clone();
        if shallow.depth == deep.depth {
            return None;
        }
        let diff = deep.train_error.mean - shallow.train_error.mean;
        let group = |g: &GroupStat| (g.n, g.train_error.mean, g.train_error.std);
        let welch = Welch::of(group(&shallow), group(&deep));
        Some(Self {
            shallow,
            deep,
            diff,
            welch,
        })
    }

    fn one_seed(&self) -> bool {
        self.welch.is_none()
    }

    /// Deep worse than shallow with p < 1 - CONFIDENCE.
    fn significantly_worse(&self) -> bool {
        self.welch.is_some_and(|w| w.p_greater() < 1.0 - CONFIDENCE)
    }

    /// With CONFIDENCE, deep is less than NO_WORSE_MARGIN worse than shallow.
    fn no_worse(&self) -> bool {
        self.welch
            .is_some_and(|w| w.upper_bound(CONFIDENCE) < NO_WORSE_MARGIN)
    }

    /// "Welch t = 2.10, df 3.8, one-sided p = 0.053, effect size d = 1.7; 95 % upper
    /// bound of the difference +4.12 points", or None with one seed.
    fn statistics(&self) -> Option<String> {
        let w = self.welch?;
        let number = |v: f64| match v {
            v if v.is_infinite() => format!("{}∞", if v < 0.0 { "-" } else { "" }),
            v => format!("{v:.2}"),
        };
        let p = w.p_greater();
        let p = match p < 0.001 {
            true => "p < 0.001".to_string(),
            false => format!("p = {p:.3}"),
        };
        let df = match w.df.is_finite() {
            true => format!(", df {:.1}", w.df),
            false => String::new(),
        };
        Some(format!(
            "Welch t = {}{df}, one-sided {p}, effect size d = {}; {:.0} % upper bound of the difference {:+.2} points",
            number(w.t),
            number(w.effect),
            100.0 * CONFIDENCE,
            100.0 * w.upper_bound(CONFIDENCE)
        ))
    }

    fn describe(&self, family: Family) -> String {
        let stat = |g: &GroupStat| {
            if g.n > 1 {
                format!(
                    "{:.2}% ± {:.2} (depth {}, {} seeds)",
                    100.0 * g.train_error.mean,
                    100.0 * g.train_error.std,
                    g.depth,
                    g.n
                )
            } else {
                format!(
                    "{:.2}% (depth {}, 1 seed)",
                    100.0 * g.train_error.mean,
                    g.depth
                )
            }
        };
        let statistics = self
            .statistics()
            .map_or(String::new(), |s| format!(" {s}."));
        format!(
            "{family} nets: final training error {} against {}: {:+.2} points, {:.1}x.{statistics}",
            stat(&self.deep),
            stat(&self.shallow),
            100.0 * self.diff,
            self.deep.train_error.mean / self.shallow.train_error.mean.max(1e-9),
        )
    }
}

fn not_done_note(not_done: &[NotDone], family: Family) -> Option<String> {
    let runs: Vec<String> = not_done
        .iter()
        .filter(|n| n.family == family)
        .map(|n| format!("{} ({})", n.label, n.state))
        .collect();
    (!runs.is_empty()).then(|| {
        format!(
            "{} {family} run(s) have no final result: {}.",
            runs.len(),
            runs.join(", ")
        )
    })
}

pub fn verdict(finals: &[GroupStat], not_done: &[NotDone]) -> Verdict {
    let mut details = Vec::new();
    let plain = Comparison::of(finals, Family::Plain);
    let residual = Comparison::of(finals, Family::Residual);
    for (family, comparison) in [(Family::Plain, &plain), (Family::Residual, &residual)] {
        if let Some(c) = comparison {
            details.push(c.describe(family));
        }
        if let Some(note) = not_done_note(not_done, family) {
            details.push(note);
        }
    }
    let plain_incomplete = not_done.iter().any(|n| n.family == Family::Plain);
    let residual_incomplete = not_done.iter().any(|n| n.family == Family::Residual);

    let degradation = match &plain {
        None => Evidence::Inconclusive,
        Some(_) if plain_incomplete => Evidence::Inconclusive,
        Some(c) if c.significantly_worse() => Evidence::Shown,
        Some(c) if c.no_worse() => Evidence::Absent,
        Some(_) => Evidence::Inconclusive,
    };
    let residual_avoids = match &residual {
        None => Evidence::Inconclusive,
        Some(_) if residual_incomplete => Evidence::Inconclusive,
        Some(c) if c.no_worse() => Evidence::Shown,
        Some(c) if c.significantly_worse() && c.diff > NO_WORSE_MARGIN => Evidence::Absent,
        Some(_) => Evidence::Inconclusive,
    };

    let headline = headline(
        &plain,
        &residual,
        degradation,
        residual_avoids,
        (plain_incomplete, residual_incomplete),
    );
    Verdict {
        headline,
        degradation,
        residual_avoids,
        details,
    }
}

fn headline(
    plain: &Option<Comparison>,
    residual: &Option<Comparison>,
    degradation: Evidence,
    residual_avoids: Evidence,
    (plain_incomplete, residual_incomplete): (bool, bool),
) -> String {
    let Some(p) = plain else {
        return "Not enough data yet: fewer than two plain depths have finished runs, so \
                degradation cannot be judged."
            .into();
    };
    let bound = |c: &Comparison| {
        c.welch
            .map_or(f64::NAN, |w| 100.0 * w.upper_bound(CONFIDENCE))
    };
    let p_value = |c: &Comparison| c.welch.map_or(f64::NAN, |w| w.p_greater());
    let residual_clause = match (residual, residual_avoids) {
        (Some(r), Evidence::Shown) => format!(
            " The residual nets do not degrade: {:.2}% at depth {} against {:.2}% at depth {}; the {:.0} % upper bound of the difference, {:+.2} points, is below the {:.0}-point margin.",
            100.0 * r.deep.train_error.mean,
            r.deep.depth,
            100.0 * r.shallow.train_error.mean,
            r.shallow.depth,
            100.0 * CONFIDENCE,
            bound(r),
            100.0 * NO_WORSE_MARGIN
        ),
        (Some(r), Evidence::Absent) => format!(
            " The residual nets get worse with depth too ({:+.2} points, one-sided p = {:.3}).",
            100.0 * r.diff,
            p_value(r)
        ),
        (Some(r), Evidence::Inconclusive) => format!(
            " Residual nets: {:+.2} points from depth {} to {}, but {}.",
            100.0 * r.diff,
            r.shallow.depth,
            r.deep.depth,
            if r.one_seed() {
                "with one seed the spread between seeds is unknown".to_string()
            } else if residual_incomplete {
                "some residual runs have no final result".to_string()
            } else {
                format!(
                    "the seeds cannot tell whether the deeper is worse: it may be up to {:+.2} points worse (one-sided p = {:.3})",
                    bound(r),
                    p_value(r)
                )
            }
        ),
        (None, _) => String::new(),
    };
    let numbers = format!(
        "the deepest plain net (depth {}) ends at {:.2}% training error, the shallowest (depth {}) at {:.2}%",
        p.deep.depth,
        100.0 * p.deep.train_error.mean,
        p.shallow.depth,
        100.0 * p.shallow.train_error.mean
    );
    let plain_sentence = match degradation {
        Evidence::Shown => format!(
            "Degradation shown: {numbers}, {:+.2} points (one-sided p = {:.3} < {:.2}).",
            100.0 * p.diff,
            p_value(p),
            1.0 - CONFIDENCE
        ),
        Evidence::Absent => format!(
            "No degradation in this sweep: {numbers}; the {:.0} % upper bound of the difference, {:+.2} points, is below the {:.0}-point margin.",
            100.0 * CONFIDENCE,
            bound(p),
            100.0 * NO_WORSE_MARGIN
        ),
        Evidence::Inconclusive if p.one_seed() => format!(
            "Not yet evidence: {numbers}, but with one seed per depth the spread between \
             seeds is unknown. Add seeds (e.g. seeds: [0, 1, 2]) before drawing a conclusion."
        ),
        Evidence::Inconclusive if plain_incomplete => format!(
            "Incomplete sweep: so far {numbers}; some plain runs have no final result (see below)."
        ),
        Evidence::Inconclusive => format!(
            "Inconclusive: {numbers}; the seeds cannot tell: {:+.2} points, one-sided p = {:.3}, and the deeper may be up to {:+.2} points worse.",
            100.0 * p.diff,
            p_value(p),
            bound(p)
        ),
    };
    plain_sentence + &residual_clause
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::MeanStd;

    fn stat(family: Family, depth: usize, n: usize, mean_pct: f64, std_pct: f64) -> GroupStat {
        let ms = |m: f64, s: f64| MeanStd {
            mean: m / 100.0,
            std: s / 100.0,
        };
        GroupStat {
            family,
            depth,
            epoch: 0,
            n,
            train_error: ms(mean_pct, std_pct),
            test_error: ms(mean_pct + 2.0, std_pct),
            wall_s: ms(10.0, 0.0),
        }
    }

    fn table(n: usize, plain_deep: f64, spread: f64, residual_deep: f64) -> Vec<GroupStat> {
        vec![
            stat(Family::Plain, 4, n, 9.0, spread),
            stat(Family::Plain, 64, n, plain_deep, spread),
            stat(Family::Residual, 4, n, 9.0, spread),
            stat(Family::Residual, 64, n, residual_deep, spread),
        ]
    }

    #[test]
    fn degradation_present_with_three_seeds_and_separated_spreads() {
        let v = verdict(&table(3, 79.0, 0.5, 9.1), &[]);
        assert_eq!(v.degradation, Evidence::Shown);
        assert_eq!(v.residual_avoids, Evidence::Shown);
        assert!(
            v.headline.starts_with("Degradation shown"),
            "{}",
            v.headline
        );
        assert!(
            v.headline.contains("79.00%") && v.headline.contains("9.00%"),
            "{}",
            v.headline
        );
        assert!(
            v.headline.contains("residual nets do not degrade"),
            "{}",
            v.headline
        );
    }

    #[test]
    fn degradation_absent_when_deeper_plain_nets_train_as_well() {
        let v = verdict(&table(3, 8.5, 0.3, 8.9), &[]);
        assert_eq!(v.degradation, Evidence::Absent);
        assert!(v.headline.starts_with("No degradation"), "{}", v.headline);
    }

    #[test]
    fn one_seed_is_inconclusive_even_for_a_large_difference() {
        let v = verdict(&table(1, 79.0, 0.0, 9.1), &[]);
        assert_eq!(v.degradation, Evidence::Inconclusive);
        assert_eq!(v.residual_avoids, Evidence::Inconclusive);
        assert!(v.headline.contains("one seed"), "{}", v.headline);
        assert!(v.details[0].contains("1 seed"), "{:?}", v.details);
    }

    #[test]
    fn overlapping_spreads_are_inconclusive() {
        // 10.5 vs 9.0 with 1-point spreads: the difference is inside twice the spread.
        let v = verdict(&table(3, 10.5, 1.0, 9.0), &[]);
        assert_eq!(v.degradation, Evidence::Inconclusive);
        assert!(v.headline.starts_with("Inconclusive"), "{}", v.headline);
    }

    #[test]
    fn missing_or_diverged_runs_make_it_inconclusive_and_are_named() {
        let not_done = vec![NotDone {
            family: Family::Plain,
            label: "plain-110 seed 0".into(),
            state: "diverged".into(),
        }];
        let v = verdict(&table(3, 79.0, 0.5, 9.1), &not_done);
        assert_eq!(v.degradation, Evidence::Inconclusive);
        assert!(v.headline.starts_with("Incomplete sweep"), "{}", v.headline);
        assert!(
            v.details
                .iter()
                .any(|d| d.contains("plain-110 seed 0 (diverged)")),
            "{:?}",
            v.details
        );
    }

    #[test]
    fn residual_nets_that_degrade_are_reported() {
        let v = verdict(&table(3, 79.0, 0.2, 15.0), &[]);
        assert_eq!(v.residual_avoids, Evidence::Absent);
        assert!(
            v.headline.contains("get worse with depth too"),
            "{}",
            v.headline
        );
    }

    /// Three seeds of residual-20 at 18.0 % and residual-56 at 22.3 ± 4.4 %: a 4-point
    /// deficit that "within twice the spread" called no deficit. The seeds cannot tell.
    #[test]
    fn a_deficit_the_seeds_cannot_resolve_is_inconclusive_not_avoided() {
        let table = vec![
            stat(Family::Plain, 20, 3, 20.0, 0.5),
            stat(Family::Plain, 56, 3, 40.0, 2.0),
            stat(Family::Residual, 20, 3, 18.0, 1.0),
            stat(Family::Residual, 56, 3, 22.3, 4.4),
        ];
        let v = verdict(&table, &[]);
        assert_eq!(v.degradation, Evidence::Shown);
        assert_eq!(v.residual_avoids, Evidence::Inconclusive);
        assert!(
            v.headline.contains("the seeds cannot tell"),
            "{}",
            v.headline
        );
        let residual = &v.details[1];
        assert!(
            residual.contains("Welch t = 1.65") && residual.contains("upper bound"),
            "{residual}"
        );
    }

    /// The statistics are printed with each family's numbers, and a claim says its p.
    #[test]
    fn each_half_prints_its_statistics() {
        let v = verdict(&table(3, 79.0, 0.5, 9.1), &[]);
        assert!(v.details[0].contains("Welch t = ") && v.details[0].contains("df 4.0"));
        assert!(
            v.details[0].contains("one-sided p < 0.001"),
            "{:?}",
            v.details
        );
        assert!(v.headline.contains("p = 0.000 < 0.05"), "{}", v.headline);
        assert!(
            v.headline
                .contains("difference, +0.97 points, is below the 1-point margin"),
            "{}",
            v.headline
        );
        // Identical seeds: no spread, the difference itself decides.
        let v = verdict(&table(3, 79.0, 0.0, 9.0), &[]);
        assert_eq!(
            (v.degradation, v.residual_avoids),
            (Evidence::Shown, Evidence::Shown)
        );
        assert!(v.details[0].contains("Welch t = ∞"), "{:?}", v.details);
    }

    #[test]
    fn a_single_depth_or_family_cannot_be_judged() {
        let v = verdict(&[stat(Family::Plain, 4, 3, 9.0, 0.1)], &[]);
        assert_eq!(v.degradation, Evidence::Inconclusive);
        assert!(v.headline.starts_with("Not enough data"), "{}", v.headline);
        let v = verdict(&table(3, 79.0, 0.5, 9.1)[..2], &[]);
        assert_eq!(v.degradation, Evidence::Shown);
        assert_eq!(v.residual_avoids, Evidence::Inconclusive);
    }
}
