//! The depth rules: which depths a net of each architecture can have, and how many
//! blocks that makes. Depth counts weighted layers, as the paper does.

use crate::names::ModelArch;

/// Stages of a CIFAR-style net: 32x32, 16x16 and 8x8 maps of width, 2 width and 4 width
/// filters.
pub const CIFAR_STAGES: usize = 3;

impl ModelArch {
    /// Weighted layers each unit adds: an MLP's unit is one block of 2 layers; a
    /// CIFAR-style net's is one block of 2 convs in each of its 3 stages. Plain and
    /// residual nets have the same units, so every plain net has a residual twin of
    /// the same size.
    pub fn layers_per_unit(self) -> usize {
        match self {
            ModelArch::Mlp => 2,
            ModelArch::Cifar => 2 * CIFAR_STAGES,
        }
    }

    /// The depth of a net of `units` units: its first layer (input layer, or first
    /// conv), the units, and the classifier.
    pub fn depth_of(self, units: usize) -> usize {
        2 + self.layers_per_unit() * units
    }

    /// The shallowest net: one unit.
    pub fn shallowest(self) -> usize {
        self.depth_of(1)
    }

    /// The units of a net of `depth` (an MLP's blocks, a CIFAR-style net's blocks per
    /// stage, the paper's n), or why no net of this architecture has that depth.
    pub fn units(self, depth: usize) -> Result<usize, String> {
        let per_unit = self.layers_per_unit();
        if depth >= self.shallowest() && (depth - 2).is_multiple_of(per_unit) {
            return Ok((depth - 2) / per_unit);
        }
        Err(match self {
            ModelArch::Mlp => format!(
                "depth {depth} is not possible for an MLP: it has an input layer, blocks of 2 \
                 layers and a classifier, so depth = 2 + 2 * blocks (4, 6, 8, ...)"
            ),
            ModelArch::Cifar => format!(
                "depth {depth} is not possible for a CIFAR-style net: a first conv, three \
                 stages of n blocks of 2 convs and a classifier make depth = 6n + 2 (8, 14, \
                 20, 26, 32, 38, 44, 50, 56, ..., 110)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_depths_are_the_papers() {
        let cifar: Vec<usize> = (0..120)
            .filter(|&d| ModelArch::Cifar.units(d).is_ok())
            .collect();
        assert_eq!(cifar, (1..=19).map(|n| 6 * n + 2).collect::<Vec<_>>());
        assert_eq!(ModelArch::Cifar.units(56), Ok(9));
        assert_eq!(ModelArch::Cifar.units(110), Ok(18));
        let mlp: Vec<usize> = (0..12)
            .filter(|&d| ModelArch::Mlp.units(d).is_ok())
            .collect();
        assert_eq!(mlp, vec![4, 6, 8, 10]);
        for arch in [ModelArch::Mlp, ModelArch::Cifar] {
            for units in 1..30 {
                assert_eq!(arch.units(arch.depth_of(units)), Ok(units));
            }
        }
        let why = ModelArch::Cifar.units(21).unwrap_err();
        assert!(why.contains("depth 21") && why.contains("6n + 2"), "{why}");
        let why = ModelArch::Mlp.units(0).unwrap_err();
        assert!(why.contains("depth = 2 + 2 * blocks"), "{why}");
    }
}
