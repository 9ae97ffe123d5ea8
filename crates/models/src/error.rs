#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("impossible architecture: {0}")]
    Architecture(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
