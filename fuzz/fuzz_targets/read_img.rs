//! The offline-image loader must return `Ok` or `Err` on any input: never panic, never
//! allocate wildly. Whatever it accepts must prepare to run and re-encode to the same bytes.

#![no_main]

use ipukit_offline_img::{decode, LoadOptions, OfflineModel};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ipukit_offline_img::is_image(data);
    if let Ok(image) = decode(data) {
        let _ = OfflineModel::from_image(image, &LoadOptions { threads: Some(1) });
    }
});
