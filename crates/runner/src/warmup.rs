//! The learning-rate warm-up: a low lr until the net has started to learn (the paper's
//! ResNet-110: 0.01 until the training error is below 80 %), then the schedule's.
//! Its state travels in checkpoints, so a resumed run ends its warm-up where an
//! uninterrupted one would.

use experiment::{Warmup, WARMUP_WINDOW};
use std::collections::VecDeque;

#[derive(Debug, Clone, PartialEq)]
pub struct WarmupState {
    config: Option<Warmup>,
    /// The iteration at which the normal schedule took over, once it has.
    ended_at: Option<usize>,
    /// Training errors of the most recent mini-batches (error-based warm-up only).
    recent: VecDeque<f64>,
}

impl WarmupState {
    pub fn new(config: Option<Warmup>) -> Self {
        let ended_at = if config.is_none() { Some(0) } else { None };
        WarmupState {
            config,
            ended_at,
            recent: VecDeque::with_capacity(WARMUP_WINDOW),
        }
    }

    /// The warm-up lr for `iteration` (0-based), or None once the schedule applies.
    pub fn lr(&self, iteration: usize) -> Option<f64> {
        let config = self.config.as_ref()?;
        match (self.ended_at, config.iterations) {
            (Some(_), _) => None,
            (None, Some(n)) if iteration >= n => None,
            (None, _) => Some(config.lr),
        }
    }

    /// Records the training error of the mini-batch of `iteration`, which just finished.
    pub fn observe(&mut self, iteration: usize, batch_error: f64) {
        let Some(config) = &self.config else { return };
        if self.ended_at.is_some() {
            return;
        }
        if let Some(n) = config.iterations {
            if iteration + 1 >= n {
                self.ended_at = Some(n);
            }
            return;
        }
        if self.recent.len() == WARMUP_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(batch_error);
        let threshold = config.until_train_error.unwrap_or(1.0);
        let mean = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
        if self.recent.len() == WARMUP_WINDOW && mean < threshold {
            self.ended_at = Some(iteration + 1);
        }
    }

    /// When the warm-up ended, if it has.
    pub fn ended_at(&self) -> Option<usize> {
        self.ended_at
    }

    /// [ended_at or -1, recent errors...] for a checkpoint.
    pub fn to_record(&self) -> Vec<f64> {
        let mut v = vec![self.ended_at.map_or(-1.0, |i| i as f64)];
        v.extend(self.recent.iter());
        v
    }

    /// The inverse of `to_record`; None if the record cannot have come from it.
    pub fn from_record(config: Option<Warmup>, record: &[f64]) -> Option<Self> {
        let (&first, recent) = record.split_first()?;
        if recent.len() > WARMUP_WINDOW || !(first == -1.0 || first >= 0.0) {
            return None;
        }
        Some(WarmupState {
            config,
            ended_at: (first >= 0.0).then_some(first as usize),
            recent: recent.iter().copied().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_error() -> Option<Warmup> {
        Some(Warmup {
            lr: 0.01,
            until_train_error: Some(0.8),
            iterations: None,
        })
    }

    #[test]
    fn without_warmup_the_schedule_applies_from_the_start() {
        assert_eq!(WarmupState::new(None).lr(0), None);
    }

    #[test]
    fn a_counted_warmup_ends_after_its_iterations() {
        let mut w = WarmupState::new(Some(Warmup {
            lr: 0.01,
            until_train_error: None,
            iterations: Some(3),
        }));
        for i in 0..3 {
            assert_eq!(w.lr(i), Some(0.01));
            w.observe(i, 0.9);
        }
        assert_eq!(w.lr(3), None);
        assert_eq!(w.ended_at(), Some(3));
    }

    #[test]
    fn an_error_warmup_ends_when_the_window_mean_falls_below_the_threshold() {
        let mut w = WarmupState::new(by_error());
        let mut i = 0;
        // Ten batches at 90 %: still warming up.
        for _ in 0..WARMUP_WINDOW {
            w.observe(i, 0.9);
            i += 1;
        }
        assert_eq!(w.lr(i), Some(0.01));
        // Errors fall to 50 %: the mean of the last ten crosses 0.8 after 3 of them
        // ((7 * 0.9 + 3 * 0.5) / 10 = 0.78).
        for _ in 0..3 {
            assert_eq!(w.lr(i), Some(0.01));
            w.observe(i, 0.5);
            i += 1;
        }
        assert_eq!(w.lr(i), None);
        assert_eq!(w.ended_at(), Some(13));
        // A later bad batch does not restart it.
        w.observe(i, 1.0);
        assert_eq!(w.lr(i + 1), None);
    }

    #[test]
    fn the_checkpoint_record_round_trips() {
        let mut w = WarmupState::new(by_error());
        for i in 0..4 {
            w.observe(i, 0.95);
        }
        let back = WarmupState::from_record(by_error(), &w.to_record()).unwrap();
        assert_eq!(back, w);
        assert!(WarmupState::from_record(by_error(), &[]).is_none());
        assert!(WarmupState::from_record(by_error(), &[-3.0]).is_none());
    }
}
