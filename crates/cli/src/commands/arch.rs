//! `degrade arch`: a network's layers and parameter count, without training it.

use super::print_lines;
use crate::args::ArchFlags;
use anyhow::{bail, Result};
use experiment::memory::{describe_bytes, host_memory_bytes, largest_fitting, NetShape};
use vocab::{ModelArch, NetSpec, ShortcutOption, CLASSES};

pub fn arch(flags: &ArchFlags) -> Result<()> {
    if flags.shortcut.is_some() && flags.arch != ModelArch::Cifar {
        bail!("--shortcut: only CIFAR-style nets (--arch cifar) change shape between blocks; an MLP's shortcuts are always the identity");
    }
    let spec = NetSpec {
        arch: flags.arch,
        family: flags.family,
        depth: flags.depth,
        width: flags.width,
        input: flags.dataset.image_shape(),
        classes: CLASSES,
        shortcut: ShortcutOption::for_net(flags.arch, flags.family, flags.shortcut),
        zero_init_residual: false,
    };
    if let Err(why) = spec.units() {
        bail!(
            "{} {} --width {}: {why}",
            spec.family,
            spec.depth,
            spec.width
        );
    }
    fits_in_memory(&spec)?;
    print_lines(&models::summary(&spec)?.to_string())
}

/// A net whose parameters alone exceed this machine's memory has a layer table whose
/// counts would overflow: the same limit as an experiment's.
fn fits_in_memory(spec: &NetSpec) -> Result<()> {
    let Some(memory) = host_memory_bytes() else {
        return Ok(());
    };
    let shape = |width| NetShape {
        arch: spec.arch,
        depth: spec.depth,
        width,
        batch_size: 0,
        image: spec.input,
    };
    if shape(spec.width).fits(memory) {
        return Ok(());
    }
    bail!(
        "--width {} at depth {}: its parameters, their gradients and momentum need about {}, and this machine has {}: the widest that fits at this depth is {}",
        spec.width,
        spec.depth,
        describe_bytes(shape(spec.width).training_bytes()),
        describe_bytes(memory),
        largest_fitting(spec.width, |w| shape(w).fits(memory)).map_or("none".into(), |w| w.to_string())
    )
}
