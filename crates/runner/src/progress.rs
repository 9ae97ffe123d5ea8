//! The sweep's live view: indicatif bars on a terminal, one plain line per epoch and per
//! finished run otherwise (CI logs, files).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;

pub struct SweepProgress {
    total_runs: usize,
    finished_runs: usize,
    view: View,
}

enum View {
    Bars {
        multi: MultiProgress,
        sweep: ProgressBar,
        runs: HashMap<usize, ProgressBar>,
    },
    Lines,
}

impl SweepProgress {
    /// `total_work` is in the same units as `work_done` calls (batches x layers).
    pub fn new(total_runs: usize, total_work: u64) -> Self {
        let view = if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let sweep = multi.add(ProgressBar::new(total_work));
            sweep.set_style(
                ProgressStyle::with_template(
                    "sweep {bar:30.cyan/blue} {percent:>3}%  {msg}  ETA {eta}",
                )
                .expect("template is valid"),
            );
            View::Bars {
                multi,
                sweep,
                runs: HashMap::new(),
            }
        } else {
            View::Lines
        };
        let p = Self {
            total_runs,
            finished_runs: 0,
            view,
        };
        p.update_message();
        p
    }

    fn update_message(&self) {
        if let View::Bars { sweep, .. } = &self.view {
            sweep.set_message(format!(
                "{}/{} runs done",
                self.finished_runs, self.total_runs
            ));
        }
    }

    pub fn run_started(&mut self, id: usize, label: &str, batches_total: u64) {
        match &mut self.view {
            View::Bars { multi, runs, .. } => {
                let bar = multi.add(ProgressBar::new(batches_total));
                bar.set_style(
                    ProgressStyle::with_template("  {prefix:<22} {bar:20} {msg}")
                        .expect("template is valid"),
                );
                bar.set_prefix(label.to_string());
                runs.insert(id, bar);
            }
            View::Lines => eprintln!("started {label}"),
        }
    }

    pub fn batch(&mut self, id: usize, position: u64, message: String, work: u64) {
        if let View::Bars { sweep, runs, .. } = &mut self.view {
            if let Some(bar) = runs.get(&id) {
                bar.set_position(position);
                bar.set_message(message);
            }
            sweep.inc(work);
        }
    }

    pub fn line(&self, text: String) {
        match &self.view {
            View::Bars { multi, .. } => {
                let _ = multi.println(text);
            }
            View::Lines => eprintln!("{text}"),
        }
    }

    pub fn run_finished(&mut self, id: usize, text: String, unreported_work: u64) {
        self.finished_runs += 1;
        if let View::Bars { runs, sweep, .. } = &mut self.view {
            if let Some(bar) = runs.remove(&id) {
                bar.finish_and_clear();
            }
            sweep.inc(unreported_work);
        }
        self.line(format!(
            "[{}/{}] {text}",
            self.finished_runs, self.total_runs
        ));
        self.update_message();
    }

    pub fn finish(&self) {
        if let View::Bars { sweep, .. } = &self.view {
            sweep.finish_and_clear();
        }
    }
}
