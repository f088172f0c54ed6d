//! Builds small ONNX models in code for the importer's tests.

#![allow(dead_code, missing_docs)]

use ipukit_onnx::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension,
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use prost::Message;

pub enum Attr {
    I(i64),
    F(f32),
    Is(Vec<i64>),
    S(&'static str),
}

pub struct Model {
    pub graph: GraphProto,
    pub opset: i64,
}

fn value_info(name: &str, elem: DataType, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(if d > 0 {
                dimension::Value::DimValue(d)
            } else {
                dimension::Value::DimParam("N".into())
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

use ipukit_onnx::proto::tensor_shape_proto;

impl Model {
    pub fn new(opset: i64) -> Model {
        Model {
            graph: GraphProto {
                name: Some("g".into()),
                ..Default::default()
            },
            opset,
        }
    }

    pub fn input(&mut self, name: &str, dims: &[i64]) -> &mut Self {
        self.graph
            .input
            .push(value_info(name, DataType::Float, dims));
        self
    }

    pub fn output(&mut self, name: &str) -> &mut Self {
        self.graph
            .output
            .push(value_info(name, DataType::Float, &[]));
        self
    }

    pub fn init_f32(&mut self, name: &str, dims: &[i64], data: Vec<f32>) -> &mut Self {
        self.graph.initializer.push(TensorProto {
            name: Some(name.into()),
            dims: dims.to_vec(),
            data_type: Some(DataType::Float as i32),
            float_data: data,
            ..Default::default()
        });
        self
    }

    pub fn init_i64(&mut self, name: &str, data: Vec<i64>) -> &mut Self {
        self.graph.initializer.push(TensorProto {
            name: Some(name.into()),
            dims: vec![data.len() as i64],
            data_type: Some(DataType::Int64 as i32),
            int64_data: data,
            ..Default::default()
        });
        self
    }

    pub fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) -> &mut Self {
        let attribute = attrs
            .into_iter()
            .map(|(n, a)| {
                let mut p = AttributeProto {
                    name: Some(n.into()),
                    ..Default::default()
                };
                match a {
                    Attr::I(v) => {
                        p.i = Some(v);
                        p.r#type = Some(AttributeType::Int as i32);
                    }
                    Attr::F(v) => {
                        p.f = Some(v);
                        p.r#type = Some(AttributeType::Float as i32);
                    }
                    Attr::Is(v) => {
                        p.ints = v;
                        p.r#type = Some(AttributeType::Ints as i32);
                    }
                    Attr::S(v) => {
                        p.s = Some(v.as_bytes().to_vec());
                        p.r#type = Some(AttributeType::String as i32);
                    }
                }
                p
            })
            .collect();
        let name = format!("{op}_{}", self.graph.node.len());
        self.graph.node.push(NodeProto {
            name: Some(name),
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute,
            ..Default::default()
        });
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        ModelProto {
            ir_version: Some(8),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(self.opset),
            }],
            graph: Some(self.graph.clone()),
            ..Default::default()
        }
        .encode_to_vec()
    }
}
