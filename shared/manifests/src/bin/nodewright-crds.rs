//! Writes the CustomResourceDefinitions of NodePool and EC2NodeClass, generated from the
//! core's types, to `infra/crds/` (or to the directory given as the only argument).

use std::path::PathBuf;
use std::process::ExitCode;

use nodewright_manifests::crd;

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../infra/crds"));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("nodewright-crds: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    for c in crd::crds() {
        let path = dir.join(c.file_name);
        if let Err(e) = std::fs::write(&path, c.to_yaml()) {
            eprintln!("nodewright-crds: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
