//! Two segments with custom code between them, as the seeds' `SIM_Calibrator` example: the
//! real MTCNN P-Net proposes face windows, Rust code picks and crops them, the real R-Net
//! scores the crops. Both networks are calibrated together and written as two fixed models;
//! then a held-out image runs through the float and the fixed cascades.
//!
//! ```text
//! cargo xtask fetch     # the MTCNN models and the photos
//! cargo run --release -p ipukit-calibrator --example mtcnn_cascade -- .cache/images target/mtcnn
//! ```

use ipukit_calibrator::segments::{Forward, SegmentRunner, SimCalibrator};
use ipukit_calibrator::Result;
use ipukit_convert::{convert, parse_input_shapes, ConvertOptions, Platform};
use ipukit_quant::calibrate::QuantLevel;
use ipukit_runtime::{Session, SessionOptions, Value};
use std::path::{Path, PathBuf};

/// P-Net input: (N, W, H, C) = transposed 160×120 RGB image.
const PNET_W: u32 = 160;
const PNET_H: u32 = 120;
/// Windows per image passed to R-Net.
const WINDOWS: usize = 4;

/// `(pixel − 127.5) / 128` in the networks' transposed (N, W, H, C) layout, or the raw bytes
/// (what the fixed models take).
fn tensor(img: &image::RgbImage, norm: bool) -> Result<Value> {
    let (w, h) = img.dimensions();
    let mut f = Vec::with_capacity((w * h * 3) as usize);
    let mut b = Vec::with_capacity((w * h * 3) as usize);
    for x in 0..w {
        for y in 0..h {
            for &p in &img.get_pixel(x, y).0 {
                f.push((p as f32 - 127.5) / 128.0);
                b.push(p);
            }
        }
    }
    let shape = vec![1, w as usize, h as usize, 3];
    Ok(if norm {
        Value::new(shape, f)?
    } else {
        Value::new(shape, b)?
    })
}

/// The custom step: the `WINDOWS` most face-like 12×12 cells of the P-Net map (stride 2),
/// cropped from the original image and resized to R-Net's 24×24.
fn crops(img: &image::RgbImage, prob: &Value) -> Vec<image::RgbImage> {
    let p = prob.data.to_f32_vec();
    let (mw, mh) = (prob.shape[1], prob.shape[2]);
    let mut cells: Vec<(f32, usize, usize)> = (0..mw)
        .flat_map(|i| (0..mh).map(move |j| (i, j)))
        .map(|(i, j)| (p[(i * mh + j) * 2 + 1], i, j))
        .collect();
    cells.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let (sx, sy) = (
        img.width() as f32 / PNET_W as f32,
        img.height() as f32 / PNET_H as f32,
    );
    cells
        .iter()
        .take(WINDOWS)
        .map(|&(_, i, j)| {
            let x = ((i * 2) as f32 * sx) as u32;
            let y = ((j * 2) as f32 * sy) as u32;
            let w = ((12.0 * sx) as u32).clamp(1, img.width() - x);
            let h = ((12.0 * sy) as u32).clamp(1, img.height() - y);
            let c = image::imageops::crop_imm(img, x, y, w, h).to_image();
            image::imageops::resize(&c, 24, 24, image::imageops::FilterType::Triangle)
        })
        .collect()
}

/// The cascade during calibration: each sample is one photo.
struct Cascade {
    photos: Vec<image::RgbImage>,
}

impl Forward for Cascade {
    fn forward(&mut self, net: &mut SegmentRunner<'_>, sample: &[Value]) -> Result<()> {
        // The sample carries the photo's index (a scalar), the photo itself is kept here.
        let idx = sample[0].data.to_f32_vec()[0] as usize;
        let img = &self.photos[idx];
        let small =
            image::imageops::resize(img, PNET_W, PNET_H, image::imageops::FilterType::Triangle);
        let out = net.run(0, vec![tensor(&small, true)?])?;
        for c in crops(img, &out[1]) {
            net.run(1, vec![tensor(&c, true)?])?;
        }
        Ok(())
    }
}

type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn convert_model(
    root: &Path,
    fixture: &str,
    onnx: &str,
    shapes: &str,
    out: &Path,
) -> AnyResult<PathBuf> {
    let dir = root.join("fixtures/models").join(fixture);
    let opts = ConvertOptions {
        platform: Platform::Onnx,
        model_file: root.join(".cache/models/mtcnn").join(onnx),
        weight_file: None,
        input_config: dir.join("input_config.ini"),
        soc_version: "generic".into(),
        input_shapes: Some(parse_input_shapes(shapes)?),
        skip_simplify: false,
    };
    let path = out.join(format!("{fixture}_float.sim"));
    convert(&opts)
        .and_then(|m| m.write(&path))
        .map_err(|e| format!("converting {onnx}: {e} (run `cargo xtask fetch`)"))?;
    Ok(path)
}

fn cosine(a: &Value, b: &Value) -> f64 {
    let (a, b) = (a.data.to_f32_vec(), b.data.to_f32_vec());
    let dot: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(f64::MIN_POSITIVE)
}

fn main() -> AnyResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let images = PathBuf::from(args.get(1).map(String::as_str).unwrap_or(".cache/images"));
    let out = PathBuf::from(args.get(2).map(String::as_str).unwrap_or("target/mtcnn"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::create_dir_all(&out)?;
    let pnet = convert_model(&root, "mtcnn_pnet", "pnet.onnx", "1,160,120,3", &out)?;
    let rnet = convert_model(&root, "mtcnn_rnet", "rnet.onnx", "1,24,24,3", &out)?;

    let mut files: Vec<PathBuf> = std::fs::read_dir(&images)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg"))
        .collect();
    files.sort();
    let photos: Vec<image::RgbImage> = files
        .iter()
        .filter_map(|p| image::open(p).ok().map(|i| i.to_rgb8()))
        .collect();
    assert!(
        photos.len() >= 2,
        "need at least two photos in {}",
        images.display()
    );
    // The last photo is held out for the comparison.
    let (calib, held_out) = photos.split_at(photos.len() - 1);

    let cal = SimCalibrator::open(&[pnet.clone(), rnet.clone()])?;
    let fixed = [
        out.join("mtcnn_pnet_fixed.sim"),
        out.join("mtcnn_rnet_fixed.sim"),
    ];
    let mut net = Cascade {
        photos: calib.to_vec(),
    };
    let samples = (0..calib.len())
        .map(|i| Value::new(vec![1], vec![i as f32]).map(|v| vec![v]))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    for s in cal.convert(&mut net, samples, &fixed, QuantLevel::L5)? {
        println!(
            "{}: {} inputs, {} of {} layers in 16 bits",
            s.output.display(),
            s.samples,
            s.plan.int16_count(),
            s.plan.layers.len()
        );
    }

    // The held-out photo through both cascades.
    let open = |p: &Path| -> Result<Session> {
        let (g, _) = ipukit_simfmt::read_sim_file(p)?;
        Ok(Session::new(g, SessionOptions::default())?)
    };
    let (mut fp, mut fr) = (open(&pnet)?, open(&rnet)?);
    let (mut qp, mut qr) = (open(&fixed[0])?, open(&fixed[1])?);
    let img = &held_out[0];
    let small = image::imageops::resize(img, PNET_W, PNET_H, image::imageops::FilterType::Triangle);
    let f = fp.run(vec![tensor(&small, true)?])?;
    let q = qp.run(vec![tensor(&small, false)?])?;
    println!(
        "P-Net fixed vs float: cosine {:.6} (regression), {:.6} (probability)",
        cosine(&f[0], &q[0]),
        cosine(&f[1], &q[1])
    );
    for c in crops(img, &f[1]) {
        let f = fr.run(vec![tensor(&c, true)?])?;
        let q = qr.run(vec![tensor(&c, false)?])?;
        println!(
            "R-Net fixed vs float: cosine {:.6} (regression), {:.6} (probability)",
            cosine(&f[0], &q[0]),
            cosine(&f[1], &q[1])
        );
    }
    Ok(())
}
