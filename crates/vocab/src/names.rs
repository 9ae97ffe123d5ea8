//! The enums of the domain.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Every dataset the tool trains on has ten classes.
pub const CLASSES: usize = 10;

/// A plain net stacks its blocks; a residual net adds each block's input to its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Plain,
    Residual,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Plain, Family::Residual];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Plain => "plain",
            Family::Residual => "residual",
        }
    }

    /// The family spelled `name` (as `as_str` spells it).
    pub fn named(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

/// The networks' architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ModelArch {
    /// Fully connected Linear-BN-ReLU layers on the flattened image.
    Mlp,
    /// The paper's CIFAR-10 conv nets: depth 6n + 2, three stages of basic blocks.
    Cifar,
}

impl ModelArch {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelArch::Mlp => "mlp",
            ModelArch::Cifar => "cifar",
        }
    }
}

/// How a residual conv net's shortcut crosses a change of shape (the paper's options).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ShortcutOption {
    /// Identity, subsampled and zero-padded: no parameters (the paper's CIFAR nets).
    #[serde(rename = "a", alias = "A")]
    A,
    /// 1x1 strided conv + BN projection.
    #[serde(rename = "b", alias = "B")]
    B,
}

impl ShortcutOption {
    /// The option a net of `arch` and `family` uses, given the one asked for: only a
    /// residual conv net has one, option A unless another is asked for.
    pub fn for_net(
        arch: ModelArch,
        family: Family,
        asked: Option<ShortcutOption>,
    ) -> Option<ShortcutOption> {
        (arch == ModelArch::Cifar && family == Family::Residual)
            .then(|| asked.unwrap_or(ShortcutOption::A))
    }

    pub fn letter(self) -> char {
        match self {
            ShortcutOption::A => 'A',
            ShortcutOption::B => 'B',
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    FashionMnist,
    Mnist,
    Cifar10,
}

impl DatasetName {
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Mnist => "mnist",
            DatasetName::Cifar10 => "cifar10",
        }
    }

    /// (channels, rows, cols) of one image.
    pub fn image_shape(self) -> [usize; 3] {
        match self {
            DatasetName::FashionMnist | DatasetName::Mnist => [1, 28, 28],
            DatasetName::Cifar10 => [3, 32, 32],
        }
    }

    /// Images in the training file (before any validation split or limit).
    pub fn train_size(self) -> usize {
        match self {
            DatasetName::FashionMnist | DatasetName::Mnist => 60_000,
            DatasetName::Cifar10 => 50_000,
        }
    }
}

macro_rules! display_as_str {
    ($($t:ty),+) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )+};
}
display_as_str!(Family, ModelArch, DatasetName);

#[cfg(test)]
mod tests {
    use super::*;

    /// `as_str` is the serde spelling (the YAML's, config.json's, the Parquet column's).
    #[test]
    fn every_name_is_spelled_as_serde_spells_it() {
        let json = |v: String| v.trim_matches('"').to_string();
        for f in Family::ALL {
            assert_eq!(json(serde_json::to_string(&f).unwrap()), f.as_str());
            assert_eq!(Family::named(f.as_str()), Some(f));
        }
        for a in [ModelArch::Mlp, ModelArch::Cifar] {
            assert_eq!(json(serde_json::to_string(&a).unwrap()), a.as_str());
        }
        for d in [
            DatasetName::FashionMnist,
            DatasetName::Mnist,
            DatasetName::Cifar10,
        ] {
            assert_eq!(json(serde_json::to_string(&d).unwrap()), d.as_str());
        }
        for s in [ShortcutOption::A, ShortcutOption::B] {
            let lower = s.letter().to_ascii_lowercase().to_string();
            assert_eq!(json(serde_json::to_string(&s).unwrap()), lower);
        }
        assert_eq!(Family::named("Residual"), None);
    }

    /// On the command line a value is spelled as in the YAML.
    #[cfg(feature = "clap")]
    #[test]
    fn command_line_values_are_the_yaml_spellings() {
        use clap::ValueEnum;
        let name = |v: Option<clap::builder::PossibleValue>| v.unwrap().get_name().to_string();
        for f in Family::ALL {
            assert_eq!(name(f.to_possible_value()), f.as_str());
        }
        for d in [
            DatasetName::FashionMnist,
            DatasetName::Mnist,
            DatasetName::Cifar10,
        ] {
            assert_eq!(name(d.to_possible_value()), d.as_str());
        }
        for a in [ModelArch::Mlp, ModelArch::Cifar] {
            assert_eq!(name(a.to_possible_value()), a.as_str());
        }
    }

    #[test]
    fn only_a_residual_conv_net_has_a_shortcut_option() {
        use ShortcutOption::*;
        assert_eq!(
            ShortcutOption::for_net(ModelArch::Cifar, Family::Residual, None),
            Some(A)
        );
        assert_eq!(
            ShortcutOption::for_net(ModelArch::Cifar, Family::Residual, Some(B)),
            Some(B)
        );
        assert_eq!(
            ShortcutOption::for_net(ModelArch::Cifar, Family::Plain, Some(B)),
            None
        );
        assert_eq!(
            ShortcutOption::for_net(ModelArch::Mlp, Family::Residual, Some(A)),
            None
        );
    }
}
