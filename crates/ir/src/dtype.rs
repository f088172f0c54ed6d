//! Element types.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    /// 32-bit IEEE float.
    F32,
    /// 64-bit signed integer (shape arithmetic, indices).
    I64,
    /// 32-bit signed integer (biases, accumulators, indices).
    I32,
    /// 16-bit signed integer (default IPU activation type).
    I16,
    /// 16-bit unsigned integer (RAWDATA_U16 inputs).
    U16,
    /// 8-bit signed integer (8-bit weights).
    I8,
    /// 8-bit unsigned integer (images, 8-bit activations).
    U8,
    /// Boolean, one byte per element.
    Bool,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::I64 => 8,
            DType::I16 | DType::U16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// True for the floating-point types.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32)
    }

    /// Name as the seeds print it in tensor details (`FLOAT32`, `INT16`, …).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "FLOAT32",
            DType::I64 => "INT64",
            DType::I32 => "INT32",
            DType::I16 => "INT16",
            DType::U16 => "UINT16",
            DType::I8 => "INT8",
            DType::U8 => "UINT8",
            DType::Bool => "BOOL",
        }
    }

    /// Inverse of [`DType::name`].
    pub fn from_name(name: &str) -> Option<DType> {
        Some(match name {
            "FLOAT32" => DType::F32,
            "INT64" => DType::I64,
            "INT32" => DType::I32,
            "INT16" => DType::I16,
            "UINT16" => DType::U16,
            "INT8" => DType::I8,
            "UINT8" => DType::U8,
            "BOOL" => DType::Bool,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
