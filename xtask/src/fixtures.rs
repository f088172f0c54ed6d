//! `cargo xtask fixtures`: checks and lists the model fixtures (no inference).

use anyhow::{bail, Result};

use crate::models;

/// Checks every fixture's model.toml and input_config.ini and prints one line per fixture.
pub fn run(only: &[String]) -> Result<()> {
    let fixtures = models::load_all(only)?;
    let mut bad = 0;
    for f in &fixtures {
        let shapes = f.input_shapes();
        let cfg = f.input_config();
        let status = match (&shapes, &cfg) {
            (Ok(_), Ok(_)) => "ok".to_string(),
            (Err(e), _) | (_, Err(e)) => {
                bad += 1;
                format!("INVALID: {e:#}")
            }
        };
        let inputs: Vec<String> = match &cfg {
            Ok(c) => c
                .inputs
                .iter()
                .map(|i| {
                    format!(
                        "{} {:?}->{:?} mean {:?} std {:?}",
                        i.name, i.training_format, i.input_format, i.mean, i.std
                    )
                })
                .collect(),
            Err(_) => vec![],
        };
        println!(
            "{:<16} {:<60} --input_shapes {:<14} {} {}{}",
            f.toml.name,
            format!(".cache/{}", f.toml.onnx),
            f.toml.input_shapes,
            inputs.join("; "),
            status,
            if f.onnx_path().is_ok() {
                ""
            } else {
                " (not fetched yet)"
            }
        );
    }
    if bad > 0 {
        bail!("{bad} fixture(s) are invalid");
    }
    Ok(())
}
