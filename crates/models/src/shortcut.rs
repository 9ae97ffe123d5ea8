//! The shortcut of a residual block where the block changes the shape (stride 2 and
//! twice the channels). The paper's two options for CIFAR-10:
//! - A: identity, subsampled by 2 and padded with zero channels. No parameters, so a
//!   residual net has exactly the parameters of its plain twin (the paper's CIFAR nets).
//! - B: a 1x1 convolution with stride 2, then BN (a projection).
//!
//! Where the shape does not change, both options are the identity.

use crate::conv_layer::{conv_layer, ConvLayer, ConvShape};
use candle_core::{Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};
use vocab::ShortcutOption;

#[derive(Debug, Clone)]
pub enum Shortcut {
    Identity,
    /// Option A: keep every `stride`-th row and column, then add zero channels, half
    /// before and half after the existing ones (as the public PyTorch reproductions do).
    SubsampleAndPad {
        stride: usize,
        pad_before: usize,
        pad_after: usize,
    },
    /// Option B.
    Projection(ConvLayer),
}

/// The shortcut for a block mapping `in_channels` to `out_channels` with `stride`.
pub fn shortcut(
    option: ShortcutOption,
    in_channels: usize,
    out_channels: usize,
    stride: usize,
    vb: VarBuilder,
) -> Result<Shortcut> {
    if in_channels == out_channels && stride == 1 {
        return Ok(Shortcut::Identity);
    }
    match option {
        ShortcutOption::A => {
            if out_channels < in_channels {
                candle_core::bail!(
                    "option A cannot shrink {in_channels} channels to {out_channels}"
                )
            }
            let extra = out_channels - in_channels;
            Ok(Shortcut::SubsampleAndPad {
                stride,
                pad_before: extra / 2,
                pad_after: extra - extra / 2,
            })
        }
        ShortcutOption::B => Ok(Shortcut::Projection(conv_layer(
            projection_shape(in_channels, out_channels, stride),
            1.0,
            vb,
        )?)),
    }
}

/// The 1x1 convolution of an option-B projection.
pub fn projection_shape(in_channels: usize, out_channels: usize, stride: usize) -> ConvShape {
    ConvShape {
        in_channels,
        out_channels,
        kernel: 1,
        stride,
    }
}

impl ModuleT for Shortcut {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Shortcut::Identity => Ok(xs.clone()),
            Shortcut::SubsampleAndPad {
                stride,
                pad_before,
                pad_after,
            } => subsample(xs, *stride)?.pad_with_zeros(1, *pad_before, *pad_after),
            Shortcut::Projection(conv) => conv.forward_t(xs, train),
        }
    }
}

/// `xs[:, :, ::s, ::s]` of a (batch, channels, rows, cols) tensor: rows and columns are
/// padded at the end to a multiple of `s`, split into (side / s, s), and the first of
/// each `s` kept. The output side is ceil(side / s), as a stride-`s` 3x3 or 1x1 conv gives.
fn subsample(xs: &Tensor, s: usize) -> Result<Tensor> {
    if s == 1 {
        return Ok(xs.clone());
    }
    let (b, c, h, w) = xs.dims4()?;
    let (h_out, w_out) = (h.div_ceil(s), w.div_ceil(s));
    let xs = xs
        .pad_with_zeros(2, 0, h_out * s - h)?
        .pad_with_zeros(3, 0, w_out * s - w)?;
    xs.reshape((b, c, h_out, s, w_out, s))?
        .narrow(3, 0, 1)?
        .narrow(5, 0, 1)?
        .reshape((b, c, h_out, w_out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn subsample_keeps_every_other_pixel_of_even_and_odd_sides() {
        let xs = Tensor::arange(0f32, 2.0 * 5.0 * 4.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 2, 5, 4))
            .unwrap();
        let ys = subsample(&xs, 2).unwrap();
        assert_eq!(ys.dims(), &[1, 2, 3, 2]);
        let v = ys.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Channel 0 is 0..20 as 5 rows of 4: rows 0, 2, 4, columns 0, 2.
        assert_eq!(&v[..6], &[0.0, 2.0, 8.0, 10.0, 16.0, 18.0]);
        assert_eq!(&v[6..], &[20.0, 22.0, 28.0, 30.0, 36.0, 38.0]);
    }

    #[test]
    fn option_a_adds_zeros_in_the_padded_channels_only() {
        let vb = candle_nn::VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu);
        let sc = shortcut(ShortcutOption::A, 4, 8, 2, vb).unwrap();
        let xs = (Tensor::rand(0f32, 1.0, (3, 4, 6, 6), &Device::Cpu).unwrap() + 1.0).unwrap();
        let ys = sc.forward_t(&xs, true).unwrap();
        assert_eq!(ys.dims(), &[3, 8, 3, 3]);
        let sums = ys
            .abs()
            .unwrap()
            .sum((0, 2, 3))
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        // Channels 0, 1 and 6, 7 are the zero padding; 2..6 carry the input (all > 0).
        for (c, s) in sums.iter().enumerate() {
            assert_eq!(*s == 0.0, !(2..6).contains(&c), "channel {c}: {s}");
        }
        let kept = ys.narrow(1, 2, 4).unwrap();
        let expected = subsample(&xs, 2).unwrap();
        assert_eq!(kernels::testing::max_abs_diff(&kept, &expected), 0.0);
    }

    #[test]
    fn unchanged_shapes_get_the_identity_under_both_options() {
        for option in [ShortcutOption::A, ShortcutOption::B] {
            let vb = candle_nn::VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu);
            assert!(matches!(
                shortcut(option, 16, 16, 1, vb).unwrap(),
                Shortcut::Identity
            ));
        }
    }
}
