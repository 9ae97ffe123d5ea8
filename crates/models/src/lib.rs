//! Plain and residual networks in Candle, built the way `candle-nn` builds layers: one
//! small type per layer or block, a free constructor that names its parameters through
//! a `VarBuilder` path, and a `ModuleT` forward (BatchNorm behaves differently in
//! training and evaluation).
//!
//! A plain net and its residual twin are built by the same code with the same parameter
//! names and shapes; the only difference is whether a block adds its input back.
//! Two architectures: an MLP on flattened images (`mlp`), and the paper's CIFAR-10
//! conv nets of depth 6n + 2 (`cifar_net`). What to build comes as a `vocab::NetSpec`;
//! `build` builds it and `summary` gives its layer table.

mod basic_block;
mod batch_norm;
mod cifar_net;
mod classifier;
mod conv_layer;
mod dense_layer;
mod error;
mod mlp;
mod network;
pub mod params;
mod probe;
pub mod rng;
mod seeded_init;
mod shortcut;
mod summary;

pub use basic_block::{basic_block, BasicBlock, BlockShape};
pub use batch_norm::{batch_norm, BatchNorm};
pub use cifar_net::{cifar_net, cifar_summary, CifarNet};
pub use classifier::{classifier, Classifier};
pub use conv_layer::{conv_layer, ConvLayer, ConvShape};
pub use dense_layer::{dense_layer, DenseLayer};
pub use error::ModelError;
pub use mlp::{mlp, mlp_summary, Mlp};
pub use network::{build, summary, Network};
pub use probe::{response_stds, Probe};
pub use seeded_init::{seeded_var_builder, seeded_var_builder_with_dtype};
pub use shortcut::Shortcut;
pub use summary::{ArchSummary, LayerSummary};
