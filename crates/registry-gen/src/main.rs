//! `gridline-registry-gen DIR`: writes the default registry's three files
//! (`county.toml`, `workers.csv`, `grids.geojson`) into DIR, replacing them.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir] = args.as_slice() else {
        eprintln!("usage: gridline-registry-gen DIR   (e.g. config/jidong)");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("gridline-registry-gen: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let files = gridline_registry_gen::generate();
    for (name, text) in files.named() {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("gridline-registry-gen: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {} ({} bytes)", path.display(), text.len());
    }
    ExitCode::SUCCESS
}
