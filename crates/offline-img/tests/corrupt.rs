//! Damaged images: every header byte flipped, every byte of a small image flipped, truncation
//! at every section boundary, CRC mismatches, and each header check with its seeds' message.
//! Loading never panics.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use ipukit_offline_img::{compile, decode, CompileOptions, ImgError, LoadOptions, OfflineModel};

fn small_image() -> Vec<u8> {
    let (g, meta) = common::small_fixed();
    compile(&g, &meta, &CompileOptions::default())
        .unwrap()
        .bytes
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn header_len(b: &[u8]) -> usize {
    u32_at(b, 12) as usize
}

/// Recomputes the header CRC so that a field edit reaches its own check.
fn reseal(b: &mut [u8]) {
    let hl = header_len(b);
    let crc = crc32fast::hash(&b[..hl - 4]);
    b[hl - 4..hl].copy_from_slice(&crc.to_le_bytes());
}

/// Offsets of the descriptor fields of descriptor `k` (inputs first).
struct Desc {
    dtype: usize,
    rank: usize,
    dims: usize,
    wa: usize,
    ha: usize,
    scale: usize,
    zp: usize,
    aligned: usize,
    ext: usize,
}

fn desc(b: &[u8], k: usize) -> Desc {
    let mut at = 120;
    for _ in 0..k {
        let n = u16::from_le_bytes([b[at], b[at + 1]]) as usize;
        at += 2 + n + 54;
    }
    let n = u16::from_le_bytes([b[at], b[at + 1]]) as usize;
    let base = at + 2 + n;
    Desc {
        dtype: base,
        rank: base + 1,
        dims: base + 2,
        wa: base + 26,
        ha: base + 28,
        scale: base + 30,
        zp: base + 34,
        aligned: base + 38,
        ext: base + 46,
    }
}

fn err(bytes: &[u8]) -> String {
    let e = decode(bytes).expect_err("a damaged image must be refused");
    // The full loader refuses it too, without panicking.
    assert!(OfflineModel::from_bytes(bytes, &LoadOptions { threads: Some(1) }).is_err());
    e.to_string()
}

fn edited(orig: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut b = orig.to_vec();
    f(&mut b);
    reseal(&mut b);
    err(&b)
}

#[test]
fn every_byte_of_a_small_image_matters() {
    let img = small_image();
    assert!(decode(&img).is_ok());
    for i in 0..img.len() {
        for mask in [0x01u8, 0x80] {
            let mut b = img.clone();
            b[i] ^= mask;
            let _ = err(&b);
        }
    }
}

#[test]
fn truncation_at_every_section_boundary_and_more() {
    let img = small_image();
    let hl = header_len(&img);
    let mut cuts = vec![0, 4, 8, 16, 119, 120, hl - 4, hl - 1, hl, img.len() - 1];
    // Section starts and ends from the table (4 entries of 32 bytes before the CRC).
    let table = hl - 4 - 4 * 32;
    for s in 0..4 {
        let e = table + s * 32;
        let off = u64::from_le_bytes(img[e + 8..e + 16].try_into().unwrap()) as usize;
        let len = u64::from_le_bytes(img[e + 16..e + 24].try_into().unwrap()) as usize;
        cuts.extend([off, off + 1, off + len / 2, off + len - 1]);
    }
    for cut in cuts {
        let _ = err(&img[..cut.min(img.len() - 1)]);
    }
    // Appended bytes are refused too.
    let mut long = img.clone();
    long.push(0);
    assert!(err(&long).contains("after the last section"));
}

#[test]
fn a_damaged_section_is_a_crc_mismatch_naming_it() {
    let img = small_image();
    let hl = header_len(&img);
    let table = hl - 4 - 4 * 32;
    for (s, name) in ["program", "memory plan", "weights", "metadata"]
        .iter()
        .enumerate()
    {
        let e = table + s * 32;
        let off = u64::from_le_bytes(img[e + 8..e + 16].try_into().unwrap()) as usize;
        let mut b = img.clone();
        b[off] ^= 0x40;
        let m = err(&b);
        assert!(m.contains(&format!("Section {name} CRC mismatch")), "{m}");
    }
    let mut b = img.clone();
    b[hl - 2] ^= 1;
    assert!(err(&b).contains("Section header CRC mismatch"));
}

#[test]
fn header_checks_use_the_seeds_messages() {
    let (g, meta, _) = common::default_fixed();
    let img = compile(&g, &meta, &CompileOptions::default())
        .unwrap()
        .bytes;
    let i0 = desc(&img, 0);
    let o0 = desc(&img, 1);
    type Edit = Box<dyn FnOnce(&mut Vec<u8>)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "Image Header Input 0 Width alignment check failed",
            Box::new(move |b: &mut Vec<u8>| b[i0.wa] = 0),
        ),
        (
            "Image Header Input 0 Height alignment check failed",
            Box::new(move |b: &mut Vec<u8>| b[i0.ha + 1] = 0x7f),
        ),
        (
            "Image Header Input 0 Aligned Buffer Size check failed",
            Box::new(move |b: &mut Vec<u8>| b[i0.aligned] ^= 1),
        ),
        (
            "Image Header Input 0 Element format check failed",
            Box::new(move |b: &mut Vec<u8>| b[i0.dtype] = 99),
        ),
        (
            "Image Header Input 0 dim check failed",
            Box::new(move |b: &mut Vec<u8>| b[i0.rank] = 9),
        ),
        (
            "Image Header Input 0 ExtFlag check failed",
            Box::new(move |b: &mut Vec<u8>| b[i0.ext] |= 0x80),
        ),
        (
            "Image Header output 0 Scalar check failed",
            Box::new(move |b: &mut Vec<u8>| b[o0.scale + 3] = 0x3f),
        ),
        (
            "Image Header output 0 ZPoint check failed",
            Box::new(move |b: &mut Vec<u8>| b[o0.zp] = 3),
        ),
        (
            "Image Header output 0 ExtFlag check failed",
            Box::new(move |b: &mut Vec<u8>| b[o0.ext] = 1),
        ),
        (
            "Image Header Batch mode check failed",
            Box::new(|b: &mut Vec<u8>| b[48] = 7),
        ),
        (
            "Image Header Batch mode check failed",
            Box::new(|b: &mut Vec<u8>| b[49] = 0),
        ),
        (
            "Image Header Batch mode check failed",
            Box::new(|b: &mut Vec<u8>| b[56] = 3),
        ),
        (
            "Image Header BufferSize Check Failed",
            Box::new(|b: &mut Vec<u8>| b[97] ^= 1),
        ),
        (
            "Image Header BufferSize1 Check Failed",
            Box::new(|b: &mut Vec<u8>| b[104] ^= 2),
        ),
        (
            "Image Header SoC check failed",
            Box::new(|b: &mut Vec<u8>| b[16] = b'x'),
        ),
        (
            "Image Header Version check failed",
            Box::new(|b: &mut Vec<u8>| b[8] = 1),
        ),
    ];
    for (want, f) in cases {
        let m = edited(&img, f);
        assert!(m.contains(want), "expected '{want}', got: {m}");
    }
    // A consistent-looking descriptor that disagrees with the program: the Shape check.
    let m = edited(&img, |b| {
        // Width 192 -> 96 with the aligned size to match.
        let w = u32_at(b, i0.dims + 8);
        b[i0.dims + 8..i0.dims + 12].copy_from_slice(&(w / 2).to_le_bytes());
        let a = u64::from_le_bytes(b[i0.aligned..i0.aligned + 8].try_into().unwrap());
        b[i0.aligned..i0.aligned + 8].copy_from_slice(&(a / 2).to_le_bytes());
    });
    assert!(m.contains("Image Header Input 0 Shape check failed"), "{m}");
    // Not an image at all.
    let e = decode(b"TFL3 something else entirely").unwrap_err();
    assert!(matches!(e, ImgError::NotRecognized(_)), "{e}");
}

#[test]
fn every_header_byte_of_the_default_image_matters() {
    let (g, meta, _) = common::default_fixed();
    let img = compile(&g, &meta, &CompileOptions::default())
        .unwrap()
        .bytes;
    for i in 0..header_len(&img) {
        let mut b = img.clone();
        b[i] ^= 0x5a;
        assert!(
            decode(&b).is_err(),
            "flipping header byte {i} went unnoticed"
        );
    }
}
