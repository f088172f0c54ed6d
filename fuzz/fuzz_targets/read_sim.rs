//! `read_sim` must return `Ok` or `Err` on any input: never panic, never allocate wildly.
//! Whatever it accepts must also write back and read again to the same graph.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ipukit_simfmt::sniff(data);
    if let Ok((graph, meta)) = ipukit_simfmt::read_sim(data) {
        if let Ok(bytes) = ipukit_simfmt::write_sim(&graph, &meta) {
            let (again, meta_again) =
                ipukit_simfmt::read_sim(&bytes).expect("a written .sim must read back");
            assert!(again == graph || format!("{again:?}") == format!("{graph:?}"));
            assert_eq!(meta_again, meta);
        }
    }
});
