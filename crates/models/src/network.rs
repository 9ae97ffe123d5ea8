//! One type for "a network the tool can train", whichever family of architecture it is.

use crate::cifar_net::{cifar_net, CifarConfig, CifarNet};
use crate::error::ModelError;
use crate::mlp::{mlp, Mlp, MlpConfig};
use crate::summary::ArchSummary;
use candle_core::{Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};

#[derive(Debug, Clone, PartialEq)]
pub enum Architecture {
    Mlp(MlpConfig),
    Cifar(CifarConfig),
}

#[derive(Debug, Clone)]
pub enum Network {
    Mlp(Mlp),
    Cifar(CifarNet),
}

impl Architecture {
    pub fn build(&self, vb: VarBuilder) -> std::result::Result<Network, ModelError> {
        Ok(match self {
            Architecture::Mlp(cfg) => Network::Mlp(mlp(cfg, vb)?),
            Architecture::Cifar(cfg) => Network::Cifar(cifar_net(cfg, vb)?),
        })
    }

    /// The layer table for square `side` x `side` inputs.
    pub fn summary(&self, side: usize) -> std::result::Result<ArchSummary, ModelError> {
        match self {
            Architecture::Mlp(cfg) => cfg.summary(),
            Architecture::Cifar(cfg) => cfg.summary(side),
        }
    }
}

impl ModuleT for Network {
    /// `xs`: (batch, channels, rows, cols) -> logits (batch, classes).
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Network::Mlp(net) => net.forward_t(xs, train),
            Network::Cifar(net) => net.forward_t(xs, train),
        }
    }
}
