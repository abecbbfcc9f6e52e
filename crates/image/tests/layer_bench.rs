//! Unpack timing on a real layer: `BERTH_BENCH_LAYER=/path/layer.tar.gz cargo test --release -p
//! berth-image --test layer_bench -- --nocapture` (e.g. a debootstrap minbase tarball), compared
//! with GNU tar in the same run. Rounds alternate which tool goes first (ext4 inode allocation
//! is slower right after big deletions, which penalises whoever runs first), trees are kept until
//! the end, and dirty pages are synced before each timed run. Without the variable the test only
//! says SKIP.
use std::path::Path;
use std::time::{Duration, Instant};

use berth_image::layer::{unpack, Compression, UnpackOptions};

fn listing(root: &Path) -> String {
    let out = std::process::Command::new("find")
        .arg(root)
        .args([
            "-mindepth",
            "1",
            "-printf",
            "%P %y %m %U %G %s %T@ %l %D:%i\\n",
        ])
        .output()
        .expect("find");
    // Inode numbers differ between trees: keep only whether an entry shares its inode.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut counts = std::collections::HashMap::new();
    for l in text.lines() {
        *counts
            .entry(l.rsplit(' ').next().unwrap_or("").to_owned())
            .or_insert(0) += 1;
    }
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            let (head, ino) = l.rsplit_once(' ').unwrap_or((l, ""));
            format!("{head} links={}", counts.get(ino).copied().unwrap_or(0))
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

/// (user, system) CPU seconds of this process so far (all threads), from /proc/self/stat.
fn cpu() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/stat").expect("stat");
    let rest = &s[s.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let tick = 100.0;
    (
        f[11].parse::<f64>().expect("utime") / tick,
        f[12].parse::<f64>().expect("stime") / tick,
    )
}

fn sync() {
    let _ = std::process::Command::new("sync").status();
}

fn run_berth(layer: &str, dest: &Path) -> Duration {
    sync();
    let c0 = cpu();
    let t = Instant::now();
    let f = std::fs::File::open(layer).expect("open layer");
    let stats = unpack(f, Compression::Detect, dest, &UnpackOptions::default()).expect("unpack");
    let wall = t.elapsed();
    let c1 = cpu();
    println!(
        "berth: wall {:.2}s cpu user {:.2}s sys {:.2}s ({} entries, {} bytes)",
        wall.as_secs_f64(),
        c1.0 - c0.0,
        c1.1 - c0.1,
        stats.entries,
        stats.uncompressed_size
    );
    wall
}

fn run_tar(layer: &str, dest: &Path) -> Duration {
    sync();
    let t = Instant::now();
    let st = std::process::Command::new("/usr/bin/time")
        .args([
            "-f",
            "gnu tar: cpu user %Us sys %Ss",
            "tar",
            "--numeric-owner",
            "-xpf",
            layer,
            "-C",
        ])
        .arg(dest)
        .status()
        .expect("tar");
    assert!(st.success());
    let wall = t.elapsed();
    println!("gnu tar: wall {:.2}s", wall.as_secs_f64());
    wall
}

#[test]
fn unpack_timing_against_gnu_tar() {
    let Ok(layer) = std::env::var("BERTH_BENCH_LAYER") else {
        println!("SKIP: BERTH_BENCH_LAYER not set");
        return;
    };
    let base = std::env::var("BERTH_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into());
    let dir = tempfile::tempdir_in(&base).expect("tmp");
    let (mut ours_total, mut tar_total) = (Duration::ZERO, Duration::ZERO);
    for round in 0..4 {
        let ours = dir.path().join(format!("berth{round}"));
        let theirs = dir.path().join(format!("tar{round}"));
        std::fs::create_dir(&ours).expect("mkdir");
        std::fs::create_dir(&theirs).expect("mkdir");
        if round % 2 == 0 {
            ours_total += run_berth(&layer, &ours);
            tar_total += run_tar(&layer, &theirs);
        } else {
            tar_total += run_tar(&layer, &theirs);
            ours_total += run_berth(&layer, &ours);
        }
        if round == 0 {
            // Same tree: metadata listings equal, contents equal.
            assert_eq!(listing(&ours), listing(&theirs), "metadata differs");
            let st = std::process::Command::new("diff")
                .args(["-r", "--no-dereference", "-x", "dev"])
                .arg(&ours)
                .arg(&theirs)
                .status()
                .expect("diff");
            assert!(st.success(), "contents differ");
        }
    }
    println!(
        "total over 4 rounds: berth {:.2}s, gnu tar {:.2}s (ratio {:.2})",
        ours_total.as_secs_f64(),
        tar_total.as_secs_f64(),
        ours_total.as_secs_f64() / tar_total.as_secs_f64()
    );
}
