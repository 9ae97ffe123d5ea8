//! Plain and residual networks in Candle, built the way `candle-nn` builds layers: one
//! small type per layer or block, a free constructor that names its parameters through
//! a `VarBuilder` path, and a `ModuleT` forward (BatchNorm behaves differently in
//! training and evaluation).
//!
//! A plain net and its residual twin are built by the same code with the same parameter
//! names and shapes; the only difference is whether a block adds its input back.

mod dense_layer;
mod error;
mod mlp;
pub mod params;
pub mod rng;
mod seeded_init;

pub use dense_layer::{dense_layer, DenseLayer};
pub use error::ModelError;
pub use mlp::{mlp, Mlp, MlpConfig, MlpFamily};
pub use seeded_init::seeded_var_builder;
