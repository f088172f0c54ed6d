//! Batches: which sizes an executor runs, and stacking items along dimension 0 and back.

use crate::error::{Result, SimError};
use ipukit_ir::TensorData;
use ipukit_runtime::Value;

/// The batch sizes an executor runs (dimension 0 of every input and output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchSizes {
    /// Any size from 1 to this maximum: `.sim` models (1) and `n_buf` offline images.
    UpTo(usize),
    /// Only these sizes, ascending: `one_buf` offline images.
    Exactly(Vec<usize>),
}

impl BatchSizes {
    /// The sizes an offline image runs: up to its maximum for `n_buf`, its list for `one_buf`.
    pub fn of_image(model: &ipukit_offline_img::OfflineModel) -> BatchSizes {
        let sizes = model.batch_sizes();
        match model.batch_mode() {
            ipukit_offline_img::BatchMode::NBuf => {
                BatchSizes::UpTo(sizes.first().copied().unwrap_or(1))
            }
            ipukit_offline_img::BatchMode::OneBuf => {
                let mut s = sizes.to_vec();
                s.sort_unstable();
                BatchSizes::Exactly(s)
            }
        }
    }

    /// How many items a run takes at most.
    pub fn group(&self) -> usize {
        match self {
            BatchSizes::UpTo(m) => (*m).max(1),
            BatchSizes::Exactly(s) => s.iter().copied().max().unwrap_or(1),
        }
    }

    /// The size a run of `n` items uses: `n` itself, or for `one_buf` the smallest listed size
    /// that holds them (the rest of the batch is padding whose results are dropped).
    pub fn run_size(&self, n: usize) -> Option<usize> {
        match self {
            BatchSizes::UpTo(m) => (1..=*m.max(&1)).contains(&n).then_some(n),
            BatchSizes::Exactly(s) => s.iter().copied().filter(|&b| b >= n).min(),
        }
    }
}

/// Stacks single items (`[1, …]` each) into one `[size, …]` value, repeating the last item to
/// fill the batch.
pub fn stack(items: &[&Value], size: usize) -> Result<Value> {
    let (Some(first), Some(last)) = (items.first(), items.last()) else {
        return Err(SimError::Usage("an empty batch".into()));
    };
    let dtype = first.dtype();
    let mut bytes = Vec::new();
    for v in items
        .iter()
        .chain(std::iter::repeat_n(last, size.saturating_sub(items.len())))
    {
        if v.dtype() != dtype || v.shape != first.shape || v.shape.first() != Some(&1) {
            return Err(SimError::Usage(format!(
                "cannot batch inputs of shapes {:?} and {:?}",
                first.shape, v.shape
            )));
        }
        bytes.extend(v.data.to_le_bytes());
    }
    let mut shape = first.shape.clone();
    shape[0] = size;
    let data = TensorData::from_le_bytes(dtype, &bytes)
        .ok_or_else(|| SimError::Usage("cannot batch the inputs".into()))?;
    Ok(Value::new(shape, data)?)
}

/// Splits a `[size, …]` value into its first `n` items (`[1, …]` each).
pub fn split(value: &Value, n: usize) -> Result<Vec<Value>> {
    let size = value.shape.first().copied().unwrap_or(0);
    if size < n || size == 0 {
        return Err(SimError::Usage(format!(
            "an output of shape {:?} does not hold {n} batch items",
            value.shape
        )));
    }
    let bytes = value.data.to_le_bytes();
    let per = bytes.len() / size;
    let mut shape = value.shape.clone();
    shape[0] = 1;
    bytes
        .chunks(per.max(1))
        .take(n)
        .map(|b| {
            let data = TensorData::from_le_bytes(value.dtype(), b)
                .ok_or_else(|| SimError::Usage("cannot split the batch".into()))?;
            Ok(Value::new(shape.clone(), data)?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: &[i16]) -> Value {
        Value::new(vec![1, x.len()], x.to_vec()).unwrap()
    }

    #[test]
    fn sizes() {
        assert_eq!(BatchSizes::UpTo(4).run_size(3), Some(3));
        assert_eq!(BatchSizes::UpTo(4).run_size(5), None);
        assert_eq!(BatchSizes::Exactly(vec![1, 4]).run_size(2), Some(4));
        assert_eq!(BatchSizes::Exactly(vec![2, 4]).run_size(1), Some(2));
        assert_eq!(BatchSizes::Exactly(vec![2, 4]).group(), 4);
    }

    #[test]
    fn stack_pads_and_split_inverts() {
        let s = stack(&[&v(&[1, 2]), &v(&[3, 4])], 3).unwrap();
        assert_eq!(s.shape, vec![3, 2]);
        assert_eq!(s.data.to_i64_vec(), vec![1, 2, 3, 4, 3, 4]);
        let parts = split(&s, 2).unwrap();
        assert_eq!(parts, vec![v(&[1, 2]), v(&[3, 4])]);
        assert!(stack(&[&v(&[1, 2]), &v(&[3])], 2).is_err());
        assert!(split(&s, 4).is_err());
    }
}
