//! The tensor a preprocessing method produces for one input.

use ipukit_ir::{DType, TensorData};

/// One preprocessed model input: a shape and its elements in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Dimensions, batch first (`[1, H, W, C]` for an NHWC image).
    pub shape: Vec<usize>,
    /// The elements, `shape.iter().product()` of them.
    pub data: TensorData,
}

impl Sample {
    /// Builds a sample, checking that the element count matches the shape.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Sample, String> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(format!(
                "shape {shape:?} needs {n} elements but the data has {}",
                data.len()
            ));
        }
        Ok(Sample { shape, data })
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Splits into shape and data.
    pub fn into_parts(self) -> (Vec<usize>, TensorData) {
        (self.shape, self.data)
    }

    /// The largest absolute elementwise difference to `other`, as f64; `None` when the shapes
    /// differ. Used to compare pipelines with scripts.
    pub fn max_abs_diff(&self, other: &Sample) -> Option<f64> {
        if self.shape != other.shape {
            return None;
        }
        let a = self.data.to_f32_vec();
        let b = other.data.to_f32_vec();
        Some(
            a.iter()
                .zip(&b)
                .map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs())
                .fold(0.0, f64::max),
        )
    }

    /// The sample as `.npy` bytes.
    pub fn to_npy(&self) -> Vec<u8> {
        crate::npy::write_npy(self)
    }

    /// Reads `.npy` bytes.
    pub fn from_npy(bytes: &[u8]) -> Result<Sample, String> {
        crate::npy::read_npy(bytes)
    }
}

impl From<Sample> for (Vec<usize>, TensorData) {
    fn from(s: Sample) -> Self {
        s.into_parts()
    }
}
