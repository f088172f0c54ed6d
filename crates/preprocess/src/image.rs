//! 8-bit images and the operations the built-in pipeline needs, each written to give the same
//! integers as OpenCV (`cv2`) or Pillow (`PIL`).
//!
//! * [`cv_resize`]: `cv2.resize` with `INTER_LINEAR` (OpenCV's 11-bit fixed-point coefficients,
//!   the `>> 4` / `mulhi` / `(x + 2) >> 2` vertical pass of its SIMD path, and the 2×2 area
//!   average it switches to for an exact halving) and `INTER_NEAREST` (`floor(x * src / dst)`).
//! * [`pil_resize`]: `Image.resize` with `BILINEAR` (Pillow's separable resampler: triangle
//!   filter widened by the scale when shrinking, i.e. antialiased, 22-bit fixed-point
//!   coefficients, horizontal pass first, rounded to 8 bits between passes) and `NEAREST`
//!   (Pillow's affine scaling with its double-precision source positions).
//! * [`to_gray`]: `cv2.cvtColor(BGR2GRAY)` (OpenCV 4's 15-bit coefficients) or `convert('L')`
//!   (16-bit); both checked equal on all 2^24 colours.
//! * [`letterbox`], [`center_crop`], [`shorter_side_size`]: the seeds' onnx_yolov8s
//!   `letterbox` and torchvision's `Resize(int)` / `CenterCrop`, with Python's `round` (ties to
//!   even) where the scripts use it.

use std::path::Path;

/// An 8-bit image, rows of interleaved channels (HWC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Channels per pixel (1 or 3).
    pub channels: usize,
    /// `height * width * channels` bytes.
    pub data: Vec<u8>,
}

/// Which library's conventions to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lib {
    /// OpenCV (`cv2.imread`, `cv2.resize`, `cv2.cvtColor`): the default.
    #[default]
    OpenCv,
    /// Pillow (`Image.open`, `Image.resize`, `Image.convert`), as torchvision uses it.
    Pil,
}

/// Resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interp {
    /// `INTER_LINEAR` / `BILINEAR`.
    #[default]
    Linear,
    /// `INTER_NEAREST` / `NEAREST`.
    Nearest,
}

impl Image {
    /// A `width × height × channels` image filled with `value` per channel.
    pub fn filled(width: usize, height: usize, value: &[u8]) -> Image {
        let mut data = Vec::with_capacity(width * height * value.len());
        for _ in 0..width * height {
            data.extend_from_slice(value);
        }
        Image {
            width,
            height,
            channels: value.len(),
            data,
        }
    }

    /// Reverses the channel order (RGB ↔ BGR).
    pub fn reverse_channels(&mut self) {
        let c = self.channels;
        if c > 1 {
            for px in self.data.chunks_exact_mut(c) {
                px.reverse();
            }
        }
    }

    /// The sub-image at (`left`, `top`) of the given size; the caller keeps it inside.
    fn sub(&self, left: usize, top: usize, width: usize, height: usize) -> Image {
        let c = self.channels;
        let mut data = Vec::with_capacity(width * height * c);
        for y in top..top + height {
            let row = (y * self.width + left) * c;
            data.extend_from_slice(&self.data[row..row + width * c]);
        }
        Image {
            width,
            height,
            channels: c,
            data,
        }
    }

    /// Pastes `src` at (`left`, `top`) (it must fit).
    fn paste(&mut self, src: &Image, left: usize, top: usize) {
        let c = self.channels;
        for y in 0..src.height {
            let d = ((top + y) * self.width + left) * c;
            let s = y * src.width * c;
            self.data[d..d + src.width * c].copy_from_slice(&src.data[s..s + src.width * c]);
        }
    }
}

/// Decodes JPEG data with libjpeg-turbo's decoder (the mozjpeg build of it): the decoder both
/// OpenCV and Pillow use, so the pixels are identical to theirs (islow IDCT, fancy
/// upsampling). A truncated file decodes with its missing rows gray, as theirs does.
fn decode_jpeg(bytes: &[u8]) -> Result<image::RgbImage, String> {
    // libjpeg reports fatal errors by unwinding (without the panic hook); catch them here.
    let run = || -> std::io::Result<(usize, usize, Vec<u8>)> {
        let d = mozjpeg::Decompress::new_mem(bytes)?;
        let mut img = d.rgb()?;
        let (w, h) = (img.width(), img.height());
        let px: Vec<u8> = img.read_scanlines()?;
        img.finish()?;
        Ok((w, h, px))
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(Ok((w, h, px))) => image::RgbImage::from_raw(w as u32, h as u32, px)
            .ok_or_else(|| format!("the JPEG decoder returned an inconsistent {w}x{h} image")),
        Ok(Err(e)) => Err(format!("corrupt JPEG: {e}")),
        Err(payload) => Err(payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "corrupt JPEG".to_string())),
    }
}

/// Decodes a JPEG, PNG, BMP (or any format the `image` crate was built with) file into 8-bit
/// RGB, as `cv2.imread` (then BGR→RGB) or `Image.open(...).convert('RGB')` would: alpha is
/// dropped without compositing, gray is replicated, 16-bit samples keep their high byte. With
/// [`Lib::OpenCv`] the EXIF orientation is applied (as `cv2.imread` does); Pillow ignores it.
pub fn decode(path: &Path, lib: Lib) -> Result<Image, String> {
    use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
    let reader = ImageReader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let format = reader.format();
    if format.is_none() {
        return Err("not an image in a supported format (JPEG, PNG, BMP)".to_string());
    }
    let mut img;
    let orientation;
    if format == Some(ImageFormat::Jpeg) {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        orientation = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(&bytes))
            .ok()
            .and_then(|mut d| d.orientation().ok());
        img = DynamicImage::ImageRgb8(decode_jpeg(&bytes)?);
    } else {
        let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
        orientation = decoder.orientation().ok();
        img = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    }
    if lib == Lib::OpenCv {
        if let Some(o) = orientation {
            img.apply_orientation(o);
        }
    }
    let (width, height) = (img.width() as usize, img.height() as usize);
    let data = match img {
        DynamicImage::ImageRgb8(b) => b.into_raw(),
        DynamicImage::ImageRgba8(b) => b
            .into_raw()
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        DynamicImage::ImageLuma8(b) => b.into_raw().iter().flat_map(|&g| [g, g, g]).collect(),
        DynamicImage::ImageLumaA8(b) => b
            .into_raw()
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        DynamicImage::ImageRgb16(b) => b.into_raw().iter().map(|&v| (v >> 8) as u8).collect(),
        DynamicImage::ImageRgba16(b) => b
            .into_raw()
            .chunks_exact(4)
            .flat_map(|p| [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8])
            .collect(),
        DynamicImage::ImageLuma16(b) => b
            .into_raw()
            .iter()
            .flat_map(|&g| [(g >> 8) as u8; 3])
            .collect(),
        DynamicImage::ImageLumaA16(b) => b
            .into_raw()
            .chunks_exact(2)
            .flat_map(|p| [(p[0] >> 8) as u8; 3])
            .collect(),
        other => other.to_rgb8().into_raw(),
    };
    if data.len() != width * height * 3 || width == 0 || height == 0 {
        return Err(format!(
            "decoded an empty or inconsistent {width}x{height} image"
        ));
    }
    Ok(Image {
        width,
        height,
        channels: 3,
        data,
    })
}

/// RGB → single-channel gray with the library's integer formula.
pub fn to_gray(rgb: &Image, lib: Lib) -> Image {
    let data = rgb
        .data
        .chunks_exact(3)
        .map(|p| {
            let (r, g, b) = (u32::from(p[0]), u32::from(p[1]), u32::from(p[2]));
            match lib {
                Lib::OpenCv => ((r * 9798 + g * 19235 + b * 3735 + (1 << 14)) >> 15) as u8,
                Lib::Pil => ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as u8,
            }
        })
        .collect();
    Image {
        width: rgb.width,
        height: rgb.height,
        channels: 1,
        data,
    }
}

/// Resizes with the given library's algorithm.
pub fn resize(src: &Image, width: usize, height: usize, lib: Lib, interp: Interp) -> Image {
    match lib {
        Lib::OpenCv => cv_resize(src, width, height, interp),
        Lib::Pil => pil_resize(src, width, height, interp),
    }
}

/// `cv2.resize(src, (width, height), interpolation=INTER_LINEAR | INTER_NEAREST)` on 8-bit data.
pub fn cv_resize(src: &Image, width: usize, height: usize, interp: Interp) -> Image {
    if (src.width, src.height) == (width, height) || width == 0 || height == 0 {
        return if width == 0 || height == 0 {
            Image::filled(width, height, &vec![0; src.channels])
        } else {
            src.clone()
        };
    }
    let inv_x = width as f64 / src.width as f64;
    let inv_y = height as f64 / src.height as f64;
    let (scale_x, scale_y) = (1.0 / inv_x, 1.0 / inv_y);
    match interp {
        Interp::Nearest => cv_nearest(src, width, height, scale_x, scale_y),
        Interp::Linear => {
            let (ix, iy) = (scale_x.round(), scale_y.round());
            let area_fast =
                (scale_x - ix).abs() < f64::EPSILON && (scale_y - iy).abs() < f64::EPSILON;
            if area_fast && ix == 2.0 && iy == 2.0 {
                cv_area_half(src, width, height)
            } else {
                cv_linear(src, width, height, scale_x, scale_y)
            }
        }
    }
}

fn cv_nearest(src: &Image, width: usize, height: usize, ifx: f64, ify: f64) -> Image {
    let c = src.channels;
    let xs: Vec<usize> = (0..width)
        .map(|x| ((x as f64 * ifx).floor() as usize).min(src.width - 1))
        .collect();
    let mut data = Vec::with_capacity(width * height * c);
    for y in 0..height {
        let sy = ((y as f64 * ify).floor() as usize).min(src.height - 1);
        let row = &src.data[sy * src.width * c..(sy + 1) * src.width * c];
        for &sx in &xs {
            data.extend_from_slice(&row[sx * c..sx * c + c]);
        }
    }
    Image {
        width,
        height,
        channels: c,
        data,
    }
}

/// OpenCV's INTER_AREA fast path for an exact 2× reduction: the rounded mean of 2×2 pixels.
fn cv_area_half(src: &Image, width: usize, height: usize) -> Image {
    let c = src.channels;
    let sw = src.width * c;
    let mut data = Vec::with_capacity(width * height * c);
    for y in 0..height {
        let r0 = &src.data[2 * y * sw..];
        let r1 = &src.data[(2 * y + 1) * sw..];
        for x in 0..width {
            for k in 0..c {
                let i = 2 * x * c + k;
                let sum = u32::from(r0[i])
                    + u32::from(r0[i + c])
                    + u32::from(r1[i])
                    + u32::from(r1[i + c]);
                data.push(((sum + 2) >> 2) as u8);
            }
        }
    }
    Image {
        width,
        height,
        channels: c,
        data,
    }
}

/// One axis of OpenCV's linear interpolation: source index and the two 11-bit weights.
fn cv_linear_coeffs(
    dst: usize,
    src: usize,
    scale: f64,
    clamp_weights: bool,
) -> Vec<(usize, usize, i32, i32)> {
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            let mut f = f - s as f32;
            if clamp_weights {
                if s < 0 {
                    f = 0.0;
                    s = 0;
                }
                if s + 1 >= src as i64 && s >= src as i64 - 1 {
                    f = 0.0;
                    s = src as i64 - 1;
                }
            }
            let w0 = ((1.0 - f) * 2048.0).round_ties_even() as i32;
            let w1 = (f * 2048.0).round_ties_even() as i32;
            let s0 = s.clamp(0, src as i64 - 1) as usize;
            let s1 = (s + 1).clamp(0, src as i64 - 1) as usize;
            (s0, s1, w0, w1)
        })
        .collect()
}

fn cv_linear(src: &Image, width: usize, height: usize, scale_x: f64, scale_y: f64) -> Image {
    let c = src.channels;
    let xc = cv_linear_coeffs(width, src.width, scale_x, true);
    let yc = cv_linear_coeffs(height, src.height, scale_y, false);
    // Horizontal pass of every source row (values scaled by 2048).
    let hrow = |sy: usize| -> Vec<i32> {
        let row = &src.data[sy * src.width * c..(sy + 1) * src.width * c];
        let mut out = Vec::with_capacity(width * c);
        for &(s0, s1, w0, w1) in &xc {
            for k in 0..c {
                out.push(i32::from(row[s0 * c + k]) * w0 + i32::from(row[s1 * c + k]) * w1);
            }
        }
        out
    };
    let rows: Vec<Option<Vec<i32>>> = {
        let mut used = vec![false; src.height];
        for &(s0, s1, _, _) in &yc {
            used[s0] = true;
            used[s1] = true;
        }
        used.iter()
            .enumerate()
            .map(|(y, &u)| u.then(|| hrow(y)))
            .collect()
    };
    let mut data = Vec::with_capacity(width * height * c);
    for &(s0, s1, b0, b1) in &yc {
        let (Some(r0), Some(r1)) = (&rows[s0], &rows[s1]) else {
            continue;
        };
        for (a, b) in r0.iter().zip(r1) {
            let v = ((b0 * (a >> 4)) >> 16) + ((b1 * (b >> 4)) >> 16) + 2;
            data.push((v >> 2).clamp(0, 255) as u8);
        }
    }
    Image {
        width,
        height,
        channels: c,
        data,
    }
}

/// `Image.resize((width, height), BILINEAR | NEAREST)` on an 8-bit image.
pub fn pil_resize(src: &Image, width: usize, height: usize, interp: Interp) -> Image {
    if (src.width, src.height) == (width, height) || width == 0 || height == 0 {
        return if width == 0 || height == 0 {
            Image::filled(width, height, &vec![0; src.channels])
        } else {
            src.clone()
        };
    }
    match interp {
        Interp::Nearest => pil_nearest(src, width, height),
        Interp::Linear => {
            let tmp = if width != src.width {
                pil_pass(src, width, true)
            } else {
                src.clone()
            };
            if height != src.height {
                pil_pass(&tmp, height, false)
            } else {
                tmp
            }
        }
    }
}

fn pil_nearest(src: &Image, width: usize, height: usize) -> Image {
    let c = src.channels;
    let a0 = src.width as f64 / width as f64;
    let a4 = src.height as f64 / height as f64;
    // COORD(v): -1 for negatives, else truncation; positions accumulate in double as Pillow's
    // ImagingScaleAffine does.
    let coord = |v: f64| if v < 0.0 { -1 } else { v as i64 };
    let mut xo = a0 * 0.5;
    let mut xs = Vec::with_capacity(width);
    for _ in 0..width {
        xs.push(coord(xo).clamp(0, src.width as i64 - 1) as usize);
        xo += a0;
    }
    let mut yo = a4 * 0.5;
    let mut data = Vec::with_capacity(width * height * c);
    for _ in 0..height {
        let sy = coord(yo).clamp(0, src.height as i64 - 1) as usize;
        yo += a4;
        let row = &src.data[sy * src.width * c..(sy + 1) * src.width * c];
        for &sx in &xs {
            data.extend_from_slice(&row[sx * c..sx * c + c]);
        }
    }
    Image {
        width,
        height,
        channels: c,
        data,
    }
}

const PIL_PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's `precompute_coeffs` for the bilinear (triangle) filter plus `normalize_coeffs_8bpc`:
/// per output index the first source index and the fixed-point weights.
fn pil_coeffs(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support is 1.0
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let n = (xmax - xmin).max(0) as usize;
            let mut k: Vec<f64> = (0..n)
                .map(|x| {
                    let t = ((x as f64 + xmin as f64 - center + 0.5) * ss).abs();
                    if t < 1.0 {
                        1.0 - t
                    } else {
                        0.0
                    }
                })
                .collect();
            let ww: f64 = k.iter().sum();
            if ww != 0.0 {
                for w in &mut k {
                    *w /= ww;
                }
            }
            let one = f64::from(1u32 << PIL_PRECISION_BITS);
            let ik = k
                .iter()
                .map(|&w| {
                    if w < 0.0 {
                        (-0.5 + w * one) as i32
                    } else {
                        (0.5 + w * one) as i32
                    }
                })
                .collect();
            (xmin as usize, ik)
        })
        .collect()
}

fn pil_clip8(v: i64) -> u8 {
    let v = v >> PIL_PRECISION_BITS;
    v.clamp(0, 255) as u8
}

/// One separable pass of Pillow's resampler, horizontal or vertical.
fn pil_pass(src: &Image, out: usize, horizontal: bool) -> Image {
    let c = src.channels;
    let coeffs = pil_coeffs(if horizontal { src.width } else { src.height }, out);
    let (width, height) = if horizontal {
        (out, src.height)
    } else {
        (src.width, out)
    };
    let half = 1i64 << (PIL_PRECISION_BITS - 1);
    let mut data = Vec::with_capacity(width * height * c);
    for y in 0..height {
        for x in 0..width {
            for ch in 0..c {
                let mut ss = half;
                if horizontal {
                    let (xmin, k) = &coeffs[x];
                    let row = y * src.width;
                    for (i, w) in k.iter().enumerate() {
                        ss += i64::from(src.data[(row + xmin + i) * c + ch]) * i64::from(*w);
                    }
                } else {
                    let (ymin, k) = &coeffs[y];
                    for (i, w) in k.iter().enumerate() {
                        ss += i64::from(src.data[((ymin + i) * src.width + x) * c + ch])
                            * i64::from(*w);
                    }
                }
                data.push(pil_clip8(ss));
            }
        }
    }
    Image {
        width,
        height,
        channels: c,
        data,
    }
}

/// Python's `round(x)` (ties to even), as an integer.
pub fn py_round(x: f64) -> i64 {
    x.round_ties_even() as i64
}

/// Options of [`letterbox`].
#[derive(Debug, Clone, PartialEq)]
pub struct LetterboxOptions {
    /// Target (width, height).
    pub size: (usize, usize),
    /// Border value per channel of the image being padded.
    pub fill: Vec<u8>,
    /// Allow enlarging (the script's `scaleup=True`).
    pub scaleup: bool,
    /// Resize library and filter.
    pub lib: Lib,
    /// Resize filter.
    pub interp: Interp,
}

/// The seeds' onnx_yolov8s `letterbox(im, new_shape, color)` with `auto=False,
/// scaleFill=False`: scale by `r = min(h'/h, w'/w)`, resize to
/// `(int(round(w*r)), int(round(h*r)))` (skipped when unchanged), and pad with
/// `top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))` (likewise left/right).
pub fn letterbox(src: &Image, opts: &LetterboxOptions) -> Image {
    let (new_w, new_h) = opts.size;
    let (w, h) = (src.width as f64, src.height as f64);
    let mut r = (new_h as f64 / h).min(new_w as f64 / w);
    if !opts.scaleup {
        r = r.min(1.0);
    }
    let unpad_w = py_round(w * r).max(0) as usize;
    let unpad_h = py_round(h * r).max(0) as usize;
    let dw = (new_w as f64 - unpad_w as f64) / 2.0;
    let dh = (new_h as f64 - unpad_h as f64) / 2.0;
    let resized = if (src.width, src.height) != (unpad_w, unpad_h) {
        resize(src, unpad_w, unpad_h, opts.lib, opts.interp)
    } else {
        src.clone()
    };
    let top = py_round(dh - 0.1).max(0) as usize;
    let bottom = py_round(dh + 0.1).max(0) as usize;
    let left = py_round(dw - 0.1).max(0) as usize;
    let right = py_round(dw + 0.1).max(0) as usize;
    let mut fill = opts.fill.clone();
    fill.resize(src.channels, fill.last().copied().unwrap_or(0));
    let mut out = Image::filled(
        resized.width + left + right,
        resized.height + top + bottom,
        &fill,
    );
    out.paste(&resized, left, top);
    out
}

/// torchvision's `Resize(size: int)`: the shorter side becomes `size`, the longer
/// `int(size * long / short)`. Returns (width, height).
pub fn shorter_side_size(width: usize, height: usize, size: usize) -> (usize, usize) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let new_long = (size as f64 * long as f64 / short.max(1) as f64) as usize;
    if width <= height {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// torchvision's `CenterCrop((height, width))`: pads with zeros when the crop is larger than
/// the image, then crops at `int(round((h - ch) / 2.0))`, `int(round((w - cw) / 2.0))`.
pub fn center_crop(src: &Image, width: usize, height: usize) -> Image {
    let mut img = src.clone();
    if width > img.width || height > img.height {
        let pw = width.saturating_sub(img.width);
        let ph = height.saturating_sub(img.height);
        let (left, top) = (pw / 2, ph / 2);
        let mut padded = Image::filled(img.width + pw, img.height + ph, &vec![0; img.channels]);
        padded.paste(&img, left, top);
        img = padded;
    }
    let top = py_round((img.height as f64 - height as f64) / 2.0).max(0) as usize;
    let left = py_round((img.width as f64 - width as f64) / 2.0).max(0) as usize;
    img.sub(left, top, width, height)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize, c: usize) -> Image {
        let data = (0..w * h * c).map(|i| (i * 37 % 256) as u8).collect();
        Image {
            width: w,
            height: h,
            channels: c,
            data,
        }
    }

    #[test]
    fn identity_resizes() {
        let img = ramp(7, 5, 3);
        for lib in [Lib::OpenCv, Lib::Pil] {
            for interp in [Interp::Linear, Interp::Nearest] {
                assert_eq!(resize(&img, 7, 5, lib, interp), img);
                let r = resize(&img, 13, 2, lib, interp);
                assert_eq!((r.width, r.height, r.data.len()), (13, 2, 13 * 2 * 3));
                let r = resize(&img, 1, 1, lib, interp);
                assert_eq!(r.data.len(), 3);
            }
        }
    }

    #[test]
    fn python_round_is_banker() {
        assert_eq!(py_round(0.5), 0);
        assert_eq!(py_round(1.5), 2);
        assert_eq!(py_round(2.5), 2);
        assert_eq!(py_round(-0.1), 0);
    }

    #[test]
    fn letterbox_pads_like_the_script() {
        // 80x60 into 72x50: r = 0.8333, unpad (67, 50), dw = 2.5 -> left 2, right 3.
        let img = ramp(80, 60, 3);
        let out = letterbox(
            &img,
            &LetterboxOptions {
                size: (72, 50),
                fill: vec![114],
                scaleup: true,
                lib: Lib::OpenCv,
                interp: Interp::Linear,
            },
        );
        assert_eq!((out.width, out.height), (72, 50));
        assert_eq!(&out.data[..6], &[114; 6]);
        assert_ne!(out.data[2 * 3], 114);
    }

    #[test]
    fn crop_and_shorter_side() {
        assert_eq!(shorter_side_size(500, 375, 256), (341, 256));
        assert_eq!(shorter_side_size(375, 500, 256), (256, 341));
        let img = ramp(10, 6, 1);
        let c = center_crop(&img, 4, 4);
        assert_eq!(c.data[0], img.data[10 + 3]);
        let p = center_crop(&img, 12, 8);
        assert_eq!((p.width, p.height), (12, 8));
        assert_eq!(p.data[0], 0);
    }
}
