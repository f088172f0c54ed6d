//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong collecting inputs or preprocessing them. Each message is one
/// line naming the file (and line) concerned and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `-i` named a directory or list without any usable entry.
    #[error("No images found in {}{hint}", path.display())]
    NoImages {
        /// The directory or list file.
        path: PathBuf,
        /// Extra explanation (may be empty).
        hint: String,
    },
    /// `-i` is unusable (missing path, a directory or single image for a multi-input model,
    /// a list file that is not UTF-8 text).
    #[error("-i {}: {message}", path.display())]
    Inputs {
        /// The `-i` argument.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A line of an `-i` list file is wrong.
    #[error("{}:{line}: {message}", path.display())]
    ListLine {
        /// The list file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// `-n` gives a different number of methods than the model has inputs.
    #[error("Got different num of preprocess_methods and images! -n gives {methods} method(s) but the model has {inputs} input(s); give one per input, separated by `,`")]
    MethodCount {
        /// Methods given.
        methods: usize,
        /// Model inputs.
        inputs: usize,
    },
    /// `-n` names something that is not a preprocessing method.
    #[error("-n {arg}: {message}")]
    Method {
        /// The method argument.
        arg: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A built-in pipeline spec (inline or TOML) is invalid.
    #[error("preprocess pipeline {source_name}: {message}")]
    Spec {
        /// The TOML path or the inline spec.
        source_name: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// An image could not be decoded.
    #[error("{}: cannot decode image: {message}", path.display())]
    Image {
        /// The image.
        path: PathBuf,
        /// The decoder's complaint.
        message: String,
    },
    /// A preprocessing script failed (load error, exception, bad return value, worker death).
    #[error("preprocess script {}: {message}", script.display())]
    Python {
        /// The script.
        script: PathBuf,
        /// What happened (Python's own line where there is one).
        message: String,
    },
    /// A raw `.npy` / `.bin` input is unusable.
    #[error("{}: {message}", path.display())]
    Raw {
        /// The data file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The produced tensor does not fit the model input.
    #[error("{}: {message}", path.display())]
    Shape {
        /// The input file.
        path: PathBuf,
        /// What does not fit.
        message: String,
    },
}

/// `Result` with [`PreprocessError`].
pub type Result<T, E = PreprocessError> = std::result::Result<T, E>;
