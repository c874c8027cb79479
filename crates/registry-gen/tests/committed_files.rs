//! The committed config/jidong files are exactly what the generator writes,
//! so they can never drift from it. If this fails after a change to the
//! generator, regenerate: `cargo run -p gridline-registry-gen -- config/jidong`.

use std::path::Path;
use std::process::Command;

#[test]
fn committed_files_match_the_generator() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let status = Command::new(env!("CARGO_BIN_EXE_gridline-registry-gen"))
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("the generator runs");
    assert!(status.success());
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/jidong");
    for name in ["county.toml", "workers.csv", "grids.geojson"] {
        let generated = std::fs::read(dir.path().join(name)).unwrap();
        let on_disk = std::fs::read(committed.join(name)).unwrap();
        assert!(
            generated == on_disk,
            "config/jidong/{name} differs from the generator's output; \
             run `cargo run -p gridline-registry-gen -- config/jidong`"
        );
    }
}

#[test]
fn two_runs_write_the_same_bytes() {
    let a = gridline_registry_gen::generate();
    let b = gridline_registry_gen::generate();
    for ((name, x), (_, y)) in a.named().into_iter().zip(b.named()) {
        assert!(x == y, "{name}");
    }
}

#[test]
fn usage_without_a_directory() {
    let out = Command::new(env!("CARGO_BIN_EXE_gridline-registry-gen")).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("usage: gridline-registry-gen DIR"));
}
