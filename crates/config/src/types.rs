//! The typed model of `input_config.ini`.

use serde::{Deserialize, Serialize};

/// Defines a fieldless enum spelled in the ini as the given strings, with `as_str`, `ALL`,
/// `Display`, `FromStr` (case-insensitive) and serde as the ini spelling.
macro_rules! ini_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in the order the seeds list them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling used in `input_config.ini`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            /// Parses the ini spelling, ignoring ASCII case; the error is the list of allowed
            /// values.
            fn from_str(s: &str) -> Result<Self, String> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
                    .ok_or_else(|| {
                        $name::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
                    })
            }
        }
    };
}

ini_enum! {
    /// A value of `training_input_formats` / `input_formats`.
    InputFormat {
        /// 8-bit RGB image.
        Rgb = "RGB",
        /// 8-bit BGR image.
        Bgr = "BGR",
        /// 8-bit RGBA image (board input only).
        Rgba = "RGBA",
        /// 8-bit BGRA image (board input only).
        Bgra = "BGRA",
        /// YUV 4:2:0 semi-planar image (board input only).
        YuvNv12 = "YUV_NV12",
        /// 8-bit single-channel image.
        Gray = "GRAY",
        /// Raw uint8 tensor.
        RawdataU8Nhwc = "RAWDATA_U8_NHWC",
        /// Raw int16 tensor.
        RawdataS16Nhwc = "RAWDATA_S16_NHWC",
        /// Raw uint16 tensor (embedding indices).
        RawdataU16Nhwc = "RAWDATA_U16_NHWC",
        /// Raw float32 tensor.
        RawdataF32Nhwc = "RAWDATA_F32_NHWC",
    }
}

impl InputFormat {
    /// True for the `RAWDATA_*` formats (tensors, not images).
    pub fn is_rawdata(self) -> bool {
        matches!(
            self,
            InputFormat::RawdataU8Nhwc
                | InputFormat::RawdataS16Nhwc
                | InputFormat::RawdataU16Nhwc
                | InputFormat::RawdataF32Nhwc
        )
    }

    /// True for the formats allowed in `training_input_formats` (RGB, BGR, GRAY, RAWDATA_*).
    pub fn is_training_format(self) -> bool {
        matches!(
            self,
            InputFormat::Rgb | InputFormat::Bgr | InputFormat::Gray
        ) || self.is_rawdata()
    }

    /// Channels of one pixel as the model sees it: 3 for RGB/BGR (and YUV_NV12, which the
    /// simulator converts to the training format), 4 for RGBA/BGRA, 1 for GRAY, `None` for raw
    /// data.
    pub fn channels(self) -> Option<usize> {
        match self {
            InputFormat::Rgb | InputFormat::Bgr | InputFormat::YuvNv12 => Some(3),
            InputFormat::Rgba | InputFormat::Bgra => Some(4),
            InputFormat::Gray => Some(1),
            _ => None,
        }
    }

    /// The training formats that this board input format accepts (the seeds' pairing table).
    pub fn allowed_training_formats(self) -> &'static [InputFormat] {
        use InputFormat::*;
        match self {
            Rgb | Bgr | Rgba | Bgra => &[Rgb, Bgr],
            YuvNv12 => &[Rgb, Bgr, Gray],
            Gray => &[Gray],
            RawdataU8Nhwc => &[RawdataU8Nhwc],
            RawdataS16Nhwc => &[RawdataS16Nhwc],
            RawdataU16Nhwc => &[RawdataU16Nhwc],
            RawdataF32Nhwc => &[RawdataF32Nhwc],
        }
    }
}

ini_enum! {
    /// A value of `input_layouts` / `output_layouts`.
    Layout {
        /// Channels last (the IPU's layout, the default).
        Nhwc = "NHWC",
        /// Channels first (4-D tensors only).
        Nchw = "NCHW",
    }
}

ini_enum! {
    /// A value of `output_formats`.
    OutputFormat {
        /// float32 output (needs `dequantizations=TRUE`).
        RawdataF32Nhwc = "RAWDATA_F32_NHWC",
        /// int16 output, dequantized or not.
        RawdataS16Nhwc = "RAWDATA_S16_NHWC",
        /// uint8 output, dequantized or not.
        RawdataU8Nhwc = "RAWDATA_U8_NHWC",
    }
}

ini_enum! {
    /// A value of `input_format` in `[CONV_CONFIG]`.
    ConvInputFormat {
        /// Every convolution quantized to UINT8.
        AllUint8 = "ALL_UINT8",
        /// Every convolution quantized to INT16.
        AllInt16 = "ALL_INT16",
        /// Normal convolutions INT16, the rest as recommended.
        Conv2dInt16 = "CONV2D_INT16",
        /// Depthwise convolutions INT16, the rest as recommended.
        DepthwiseInt16 = "DEPTHWISE_INT16",
    }
}

/// One model input as `[INPUT_CONFIG]` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Tensor name (`inputs`).
    pub name: String,
    /// Format the model was trained on (`training_input_formats`; defaults to `input_formats`,
    /// with RGBA→RGB and BGRA→BGR).
    pub training_format: InputFormat,
    /// Format the board feeds (`input_formats`).
    pub input_format: InputFormat,
    /// Whether the input is quantized (`quantizations`, default TRUE).
    pub quantize: bool,
    /// Per-channel mean in RGB order (`mean`; a single ini value is repeated for every channel;
    /// GRAY has one value; RAWDATA inputs have none). Defaults to 0.
    pub mean: Vec<f32>,
    /// Per-channel std in RGB order (`std_value`), like `mean`. Defaults to 1.
    pub std: Vec<f32>,
    /// Width alignment in elements (`input_width_alignment`).
    pub width_alignment: usize,
    /// Height alignment in rows (`input_height_alignment`).
    pub height_alignment: usize,
    /// `input_layouts`, when given (`None` means the default, NHWC).
    pub layout: Option<Layout>,
}

impl InputSpec {
    /// True for `RAWDATA_*` inputs.
    pub fn is_rawdata(&self) -> bool {
        self.training_format.is_rawdata()
    }

    /// The mean per model channel, in the channel order of `training_format` (reversed for
    /// BGR); empty for RAWDATA inputs.
    pub fn channel_mean(&self) -> Vec<f32> {
        self.in_channel_order(&self.mean)
    }

    /// The std per model channel, in the channel order of `training_format`; empty for RAWDATA.
    pub fn channel_std(&self) -> Vec<f32> {
        self.in_channel_order(&self.std)
    }

    fn in_channel_order(&self, rgb: &[f32]) -> Vec<f32> {
        let mut v = rgb.to_vec();
        if self.training_format == InputFormat::Bgr {
            v.reverse();
        }
        v
    }

    /// The layout of the input (NHWC when `input_layouts` does not say).
    pub fn layout_or_default(&self) -> Layout {
        self.layout.unwrap_or(Layout::Nhwc)
    }
}

/// One model output as `[OUTPUT_CONFIG]` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// Tensor name (`outputs`).
    pub name: String,
    /// `dequantizations` (default TRUE).
    pub dequantize: bool,
    /// `output_layouts`, when given (`None` means NHWC).
    pub layout: Option<Layout>,
    /// `output_formats`; defaults to RAWDATA_F32_NHWC when dequantized, RAWDATA_S16_NHWC
    /// otherwise.
    pub format: OutputFormat,
}

/// `[CONV_CONFIG]` (optional section).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConvConfig {
    /// `input_format`: quantization of every convolution, when given.
    pub input_format: Option<ConvInputFormat>,
    /// `tensor_arrays`: first-input tensor names of convolutions to quantize in INT16.
    pub tensor_arrays: Vec<String>,
}

/// A parsed and checked `input_config.ini`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputConfig {
    /// The inputs, in the order of `inputs`.
    pub inputs: Vec<InputSpec>,
    /// The outputs, in the order of `outputs`.
    pub outputs: Vec<OutputSpec>,
    /// `[CONV_CONFIG]`.
    #[serde(default)]
    pub conv: ConvConfig,
}
