//! How long `TarImage::new` takes to index an archive, and what a hostile
//! GNU long-name header costs before it is refused.
//!
//! ```sh
//! cargo run --release -p sandbox --example tar_index            # synthetic archives
//! cargo run --release -p sandbox --example tar_index -- FILE.tar # and a real one
//! ```
//!
//! Prints the best and median of several runs for each archive: one member
//! of 54 MB (the shape of the Python image's `stdlib.tar`), 100,000 small
//! files in 1,000 folders, and one GNU `L` header declaring 64 MiB of name
//! (refused; the time shows whether its bytes were read first).

use std::time::{Duration, Instant};

use sandbox::tar::{pack, PackMember, TarImage, BLOCK};

fn time(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut all: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    all.sort();
    (all[0], all[all.len() / 2])
}

fn report(name: &str, bytes: &[u8], runs: usize) {
    let mut outcome = String::new();
    let (best, median) = time(runs, || {
        outcome = match TarImage::new(bytes) {
            Ok(img) => format!("{} paths", img.len()),
            Err(e) => format!("refused: {e}"),
        };
    });
    let shown: String = outcome.chars().take(90).collect();
    println!(
        "{name:<28} {:>7.1} MB  best {:>9.3} ms  median {:>9.3} ms  ({shown})",
        bytes.len() as f64 / 1e6,
        best.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
    );
}

/// A ustar header block with a valid checksum.
fn header(name: &str, flag: u8, size: u64) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = flag;
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn main() {
    let stdlib: Vec<u8> = (0..54_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut one = Vec::new();
    pack(
        &mut one,
        [PackMember::File("usr/local/lib/python315.zip", &stdlib)],
    )
    .expect("pack");
    drop(stdlib);
    report("one 54 MB member", &one, 50);
    drop(one);

    let names: Vec<(String, String)> = (0..1000)
        .map(|d| (format!("lib/d{d:04}"), String::new()))
        .collect();
    let files: Vec<String> = (0..100_000)
        .map(|i| format!("{}/file-{i:06}.py", names[i % 1000].0))
        .collect();
    let body = [b'x'; 100];
    let mut many = Vec::new();
    pack(
        &mut many,
        names
            .iter()
            .map(|(d, _)| PackMember::Dir(d))
            .chain(files.iter().map(|f| PackMember::File(f, &body))),
    )
    .expect("pack");
    report("100,000 files", &many, 7);
    drop(many);

    let declared: u64 = 64 << 20;
    let mut long = header("././@LongLink", b'L', declared).to_vec();
    long.resize(long.len() + declared as usize, b'a');
    long.extend_from_slice(&header("x", b'0', 0));
    long.extend_from_slice(&[0u8; 2 * BLOCK]);
    report("GNU long name of 64 MiB", &long, 9);
    drop(long);

    if let Some(path) = std::env::args().nth(1) {
        let bytes = std::fs::read(&path).expect("read the archive");
        report(&path, &bytes, 20);
    }
}
