//! The error type of this crate.

/// Everything that can go wrong reading or checking an `input_config.ini`.
///
/// Every variant's message is one line that names the file (and line, where there is one), the
/// key concerned and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the input config: {source}")]
    Io {
        /// The ini path as given.
        path: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not UTF-8 text.
    #[error("{path}: the input config is not UTF-8 text (invalid byte at offset {offset}); save it as UTF-8")]
    NotUtf8 {
        /// The ini path as given.
        path: String,
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The text is not valid ini syntax (no section header, a line that is not `key=value;`,
    /// duplicate sections or keys, unknown sections or keys).
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The ini path as given.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The syntax is fine but a value breaks one of the rules of the seeds.
    #[error("{}: {message}", location(path, *line))]
    Invalid {
        /// The ini path as given.
        path: String,
        /// 1-based line of the key concerned, when there is one.
        line: Option<usize>,
        /// The key concerned (`inputs`, `mean`, …) or the section (`[INPUT_CONFIG]`).
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The config does not fit the model it is applied to (names, counts, ranks).
    #[error("{message}")]
    Model {
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The JSON form of the config (as stored in a model file) could not be read.
    #[error("input config JSON: {0}")]
    Json(#[from] serde_json::Error),
}

fn location(path: &str, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{path}:{l}"),
        None => path.to_string(),
    }
}

/// `Result` with [`ConfigError`].
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;
