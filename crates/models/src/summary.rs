//! A printable description of an architecture: its weighted layers in order, with the
//! shape each produces and the parameters each holds. Computed from the configuration,
//! and checked by tests against the parameters of the built network.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSummary {
    /// The layer's parameter path (`stages.1.0.first`), as in checkpoints.
    pub name: String,
    /// What it computes, e.g. `conv 3x3 16->32 /2 + BN` or `shortcut A: subsample, pad +16`.
    pub kind: String,
    /// Output shape of one example: [channels, rows, cols] or [features].
    pub output: Vec<usize>,
    /// Trainable scalars (BN running statistics excluded).
    pub params: usize,
    /// Multiply-adds of the forward pass for one example (the weights' products; BN,
    /// ReLU and additions are not counted). A training step costs about three times this
    /// per example: the forward pass, the input gradient and the weight gradient.
    pub multiply_adds: usize,
    /// Whether this is one of the weighted layers that "depth" counts (shortcuts are not).
    pub counts_in_depth: bool,
}

/// The whole table, as `degrade arch` prints it.
#[derive(Debug, Clone)]
pub struct ArchSummary {
    pub title: String,
    pub layers: Vec<LayerSummary>,
}

impl ArchSummary {
    pub fn params(&self) -> usize {
        self.layers.iter().map(|l| l.params).sum()
    }

    /// Forward multiply-adds for one example, all layers.
    pub fn multiply_adds(&self) -> usize {
        self.layers.iter().map(|l| l.multiply_adds).sum()
    }

    pub fn weighted_layers(&self) -> usize {
        self.layers.iter().filter(|l| l.counts_in_depth).count()
    }
}

impl fmt::Display for ArchSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.title)?;
        let name_w = self.layers.iter().map(|l| l.name.len()).max().unwrap_or(0);
        let kind_w = self.layers.iter().map(|l| l.kind.len()).max().unwrap_or(0);
        writeln!(
            f,
            "{:>3}  {:<name_w$}  {:<kind_w$}  {:>12}  {:>9}",
            "#", "layer", "computes", "output", "params"
        )?;
        let mut index = 0;
        for l in &self.layers {
            let number = if l.counts_in_depth {
                index += 1;
                index.to_string()
            } else {
                String::new()
            };
            let shape = l
                .output
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("x");
            writeln!(
                f,
                "{number:>3}  {:<name_w$}  {:<kind_w$}  {shape:>12}  {:>9}",
                l.name,
                l.kind,
                group_thousands(l.params)
            )?;
        }
        write!(
            f,
            "{} weighted layers, {} trainable parameters ({:.2}M)",
            self.weighted_layers(),
            group_thousands(self.params()),
            self.params() as f64 / 1e6
        )
    }
}

fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_grouped() {
        assert_eq!(super::group_thousands(269722), "269,722");
        assert_eq!(super::group_thousands(1727962), "1,727,962");
        assert_eq!(super::group_thousands(650), "650");
    }
}
