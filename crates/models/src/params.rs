//! Which variables of a model are trained. BatchNorm's running statistics live in the
//! same `VarMap` as the weights but are never optimised (no gradient, no weight decay).

use candle_core::Var;
use candle_nn::VarMap;

pub fn is_running_stat(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// Trainable variables, sorted by name (a `VarMap` iterates in hash order).
pub fn trainable(varmap: &VarMap) -> Vec<(String, Var)> {
    let vars = varmap.data().lock().expect("varmap lock poisoned");
    let mut out: Vec<(String, Var)> = vars
        .iter()
        .filter(|(name, _)| !is_running_stat(name))
        .map(|(name, var)| (name.clone(), var.clone()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Number of trainable scalars.
pub fn count(varmap: &VarMap) -> usize {
    trainable(varmap).iter().map(|(_, v)| v.elem_count()).sum()
}
