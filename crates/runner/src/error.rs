#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Model(#[from] models::ModelError),
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error(transparent)]
    Results(#[from] results::ResultsError),
    #[error("{0}")]
    Config(String),
    #[error("{run}: worker process: {detail}")]
    Worker { run: String, detail: String },
}
