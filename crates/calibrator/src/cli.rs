//! A terminal progress display for the calibrator binaries (feature `cli`).

use crate::{calibrate, CalibrateOptions, Calibration, Phase, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex;

/// Calibrates with a progress bar over the statistics pass.
pub fn calibrate_with_progress(opts: &CalibrateOptions) -> Result<Calibration> {
    let bar = Mutex::new(None::<ProgressBar>);
    let progress = |phase: Phase| {
        let Ok(mut bar) = bar.lock() else { return };
        match phase {
            Phase::Statistics(p) => {
                let b = bar.get_or_insert_with(|| {
                    let b = ProgressBar::new(p.total.unwrap_or(0) as u64);
                    b.set_style(
                        ProgressStyle::with_template(
                            "calibrating {bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}]",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    b
                });
                b.set_position(p.done as u64);
            }
            other => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                if other == Phase::Sensitivity {
                    eprintln!("measuring the 8-bit noise of every layer ...");
                }
                if let Phase::Checked(round, n16, a) = other {
                    eprintln!(
                        "check {round}: {n16} layer(s) in 16 bits: output cosine min {:.6}, mean {:.6}, largest probability error {:.4}",
                        a.min_cosine, a.mean_cosine, a.max_error
                    );
                }
            }
        }
    };
    let result = calibrate(opts, &progress);
    if let Ok(mut b) = bar.lock() {
        if let Some(b) = b.take() {
            b.finish_and_clear();
        }
    }
    result
}
