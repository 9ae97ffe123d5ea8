//! What the results show, in plain words, computed from the final errors and the runs
//! that are not done. It claims the effect only when the data supports it: at least two
//! seeds at the compared depths, a difference beyond the spread across seeds, and no
//! planned run missing or diverged; otherwise it says what is missing.

use crate::aggregate::GroupStat;
use experiment::Family;
use serde::Serialize;

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

/// Points of training error below which a residual difference is negligible.
const RESIDUAL_TOLERANCE: f64 = 0.01;

/// The shallowest-vs-deepest comparison of one family's final training error.
#[derive(Debug, Clone, PartialEq)]
struct Comparison {
    shallow: GroupStat,
    deep: GroupStat,
    /// Deep minus shallow mean training error.
    diff: f64,
    /// Spread of that difference across seeds: sqrt(std_deep^2 + std_shallow^2).
    spread: f64,
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
        let spread = deep.train_error.std.hypot(shallow.train_error.std);
        Some(Self {
            shallow,
            deep,
            diff,
            spread,
        })
    }

    fn one_seed(&self) -> bool {
        self.shallow.n < 2 || self.deep.n < 2
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
        format!(
            "{family} nets: final training error {} against {}: {:+.2} points, {:.1}x.",
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
        Some(c) if c.one_seed() || plain_incomplete => Evidence::Inconclusive,
        Some(c) if c.diff > 2.0 * c.spread && c.diff > 0.0 => Evidence::Shown,
        Some(c) if c.diff <= 0.0 => Evidence::Absent,
        Some(_) => Evidence::Inconclusive,
    };
    let residual_avoids = match &residual {
        None => Evidence::Inconclusive,
        Some(c) if c.one_seed() || residual_incomplete => Evidence::Inconclusive,
        Some(c) if c.diff <= (2.0 * c.spread).max(RESIDUAL_TOLERANCE) => Evidence::Shown,
        Some(_) => Evidence::Absent,
    };

    let headline = headline(
        &plain,
        &residual,
        degradation,
        residual_avoids,
        plain_incomplete,
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
    plain_incomplete: bool,
) -> String {
    let Some(p) = plain else {
        return "Not enough data yet: fewer than two plain depths have finished runs, so \
                degradation cannot be judged."
            .into();
    };
    let residual_clause = match (residual, residual_avoids) {
        (Some(r), Evidence::Shown) => format!(
            " The residual nets do not degrade: {:.2}% at depth {} against {:.2}% at depth {}.",
            100.0 * r.deep.train_error.mean,
            r.deep.depth,
            100.0 * r.shallow.train_error.mean,
            r.shallow.depth
        ),
        (Some(r), Evidence::Absent) => format!(
            " The residual nets get worse with depth too ({:+.2} points), beyond their seed spread.",
            100.0 * r.diff
        ),
        (Some(r), Evidence::Inconclusive) => format!(
            " Residual nets: {:+.2} points from depth {} to {}, but {}.",
            100.0 * r.diff,
            r.shallow.depth,
            r.deep.depth,
            if r.one_seed() {
                "with one seed the spread between seeds is unknown"
            } else {
                "some residual runs have no final result"
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
            "Degradation shown: {numbers}, {:+.2} points, more than twice the spread across seeds (±{:.2}).",
            100.0 * p.diff,
            100.0 * p.spread
        ),
        Evidence::Absent => format!("No degradation in this sweep: {numbers}."),
        Evidence::Inconclusive if p.one_seed() => format!(
            "Not yet evidence: {numbers}, but with one seed per depth the spread between \
             seeds is unknown. Add seeds (e.g. seeds: [0, 1, 2]) before drawing a conclusion."
        ),
        Evidence::Inconclusive if plain_incomplete => format!(
            "Incomplete sweep: so far {numbers}; some plain runs have no final result (see below)."
        ),
        Evidence::Inconclusive => format!(
            "Inconclusive: {numbers}; the difference ({:+.2} points) is within twice the spread across seeds (±{:.2}).",
            100.0 * p.diff,
            100.0 * p.spread
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
