//! The tool's vocabulary, shared by every crate and defined only here: the two families
//! of network, the two architectures, the paper's shortcut options, the datasets, the
//! depth rules, and `NetSpec`, the description of one network that training and
//! `degrade arch` both build from. No tensors: the experiment's parser, the results
//! and the report use it without depending on Candle.
//!
//! The serde spellings are the ones in experiment YAML files, `config.json` (whose hash
//! names a run's directory) and the Parquet `family` column: they never change.

mod depth;
mod names;
mod net;

pub use depth::CIFAR_STAGES;
pub use names::{DatasetName, Family, ModelArch, ShortcutOption, CLASSES};
pub use net::NetSpec;
