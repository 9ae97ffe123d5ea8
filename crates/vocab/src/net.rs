//! `NetSpec`: one network, described completely enough to build it or to print its
//! layers, without building anything.

use crate::depth::CIFAR_STAGES;
use crate::names::{Family, ModelArch, ShortcutOption};

#[derive(Debug, Clone, PartialEq)]
pub struct NetSpec {
    pub arch: ModelArch,
    pub family: Family,
    /// Weighted layers (see `ModelArch::units`).
    pub depth: usize,
    /// An MLP's hidden width, or a CIFAR-style net's first-stage filters (16 in the
    /// paper; the later stages double it each).
    pub width: usize,
    /// (channels, rows, cols) of one input image.
    pub input: [usize; 3],
    pub classes: usize,
    /// Residual conv nets only (`ShortcutOption::for_net`).
    pub shortcut: Option<ShortcutOption>,
    /// Residual nets only: start each block's last BN scale at 0, so that each block
    /// starts as the identity.
    pub zero_init_residual: bool,
}

impl NetSpec {
    /// The net's units (`ModelArch::units`), or why it cannot be built: an impossible
    /// depth, no width, or a widest layer whose width is not a number.
    pub fn units(&self) -> Result<usize, String> {
        let units = self.arch.units(self.depth)?;
        if self.width == 0 {
            return Err("width must be at least 1".into());
        }
        if self.widest().is_none() {
            return Err(format!(
                "width {} is too large: its widest layer would have more than {} units",
                self.width,
                usize::MAX
            ));
        }
        Ok(units)
    }

    /// The width of the widest layer: the last stage's filters of a CIFAR-style net;
    /// None if that overflows.
    pub fn widest(&self) -> Option<usize> {
        match self.arch {
            ModelArch::Mlp => Some(self.width),
            ModelArch::Cifar => self.width.checked_mul(1 << (CIFAR_STAGES - 1)),
        }
    }

    pub fn residual(&self) -> bool {
        self.family == Family::Residual
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CLASSES;

    fn spec(arch: ModelArch, depth: usize, width: usize) -> NetSpec {
        NetSpec {
            arch,
            family: Family::Residual,
            depth,
            width,
            input: [3, 32, 32],
            classes: CLASSES,
            shortcut: ShortcutOption::for_net(arch, Family::Residual, None),
            zero_init_residual: false,
        }
    }

    #[test]
    fn a_net_that_cannot_be_built_says_why() {
        assert_eq!(spec(ModelArch::Cifar, 56, 16).units(), Ok(9));
        assert_eq!(spec(ModelArch::Cifar, 56, 16).widest(), Some(64));
        assert!(spec(ModelArch::Cifar, 57, 16)
            .units()
            .unwrap_err()
            .contains("6n + 2"));
        assert!(spec(ModelArch::Mlp, 4, 0)
            .units()
            .unwrap_err()
            .contains("at least 1"));
        let huge = spec(ModelArch::Cifar, 8, usize::MAX / 2);
        assert!(huge.units().unwrap_err().contains("too large"));
        assert_eq!(spec(ModelArch::Mlp, 4, usize::MAX).units(), Ok(1));
    }
}
