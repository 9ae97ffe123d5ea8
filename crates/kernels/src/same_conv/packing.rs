//! The kernel rearranged for the forward and input-gradient microkernels.

use super::NR;

/// The kernel (o, c, k, k) rearranged for the microkernel: per panel of output
/// channels, for each tap (c, ky, kx) in order, the panel's weights side by side. Panels
/// are `CHANNEL_TILE` wide where that divides o (the channel tiles), otherwise up to NR
/// (the position tiles).
pub struct PackedKernel {
    pub(super) values: Vec<f32>,
    pub(super) out_channels: usize,
    pub(super) taps: usize,
}

impl PackedKernel {
    pub fn new(w: &[f32], out_channels: usize, taps: usize) -> Self {
        assert_eq!(w.len(), out_channels * taps, "kernel of the wrong size");
        let panel = if channel_tiles_apply(out_channels) {
            CHANNEL_TILE
        } else {
            NR
        };
        let mut values = Vec::with_capacity(w.len());
        for o0 in (0..out_channels).step_by(panel) {
            let nr = panel.min(out_channels - o0);
            for t in 0..taps {
                values.extend((o0..o0 + nr).map(|oi| w[oi * taps + t]));
            }
        }
        PackedKernel {
            values,
            out_channels,
            taps,
        }
    }
}

/// Output channels per channel tile: two AVX2 registers.
pub(super) const CHANNEL_TILE: usize = 16;

/// Whether `o` output channels go in channel tiles (see `channel_tiles`).
pub(super) fn channel_tiles_apply(o: usize) -> bool {
    o.is_multiple_of(CHANNEL_TILE)
}
