//! The two kinds of network the tool compares.

/// A plain net stacks its blocks; a residual net adds each block's input to its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Plain,
    Residual,
}
