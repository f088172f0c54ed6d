//! Typed access to a node's attributes, with unknown attributes rejected.

use crate::error::{OnnxError, Result};
use crate::proto::{attribute_proto::AttributeType, AttributeProto, NodeProto, TensorProto};

/// The attributes of one node.
pub(crate) struct Attrs<'a> {
    attrs: &'a [AttributeProto],
}

fn kind(a: &AttributeProto) -> AttributeType {
    a.r#type
        .and_then(|t| AttributeType::try_from(t).ok())
        .unwrap_or(AttributeType::Undefined)
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(node: &'a NodeProto) -> Attrs<'a> {
        Attrs {
            attrs: &node.attribute,
        }
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.attrs.iter().find(|a| a.name.as_deref() == Some(name))
    }

    /// Fails on any attribute not in `known`: an attribute ipukit ignores could change the
    /// result, so it must be reported rather than dropped.
    pub(crate) fn check_known(&self, op_type: &str, known: &[&str]) -> Result<()> {
        for a in self.attrs {
            let n = a.name.as_deref().unwrap_or("");
            if !known.contains(&n) {
                return Err(OnnxError::Unsupported(format!(
                    "ONNX {op_type} attribute '{n}' is not supported"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if kind(a) == AttributeType::Int || a.i.is_some() => Ok(Some(a.i.unwrap_or(0))),
            Some(_) => Err(wrong(name, "an integer")),
        }
    }

    pub(crate) fn int_or(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    pub(crate) fn float(&self, name: &str) -> Result<Option<f32>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if kind(a) == AttributeType::Float || a.f.is_some() => {
                Ok(Some(a.f.unwrap_or(0.0)))
            }
            Some(_) => Err(wrong(name, "a float")),
        }
    }

    pub(crate) fn float_or(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    pub(crate) fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if matches!(kind(a), AttributeType::Ints | AttributeType::Undefined) => {
                Ok(Some(a.ints.clone()))
            }
            Some(_) => Err(wrong(name, "a list of integers")),
        }
    }

    pub(crate) fn floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if matches!(kind(a), AttributeType::Floats | AttributeType::Undefined) => {
                Ok(Some(a.floats.clone()))
            }
            Some(_) => Err(wrong(name, "a list of floats")),
        }
    }

    pub(crate) fn string(&self, name: &str) -> Result<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) => match &a.s {
                Some(s) => Ok(Some(String::from_utf8_lossy(s).into_owned())),
                None => Err(wrong(name, "a string")),
            },
        }
    }

    pub(crate) fn string_or(&self, name: &str, default: &str) -> Result<String> {
        Ok(self.string(name)?.unwrap_or_else(|| default.to_string()))
    }

    pub(crate) fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) => {
                a.t.as_ref()
                    .map(Some)
                    .ok_or_else(|| wrong(name, "a tensor"))
            }
        }
    }
}

fn wrong(name: &str, what: &str) -> OnnxError {
    OnnxError::Invalid(format!("attribute '{name}' must be {what}"))
}
