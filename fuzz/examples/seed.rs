//! Writes the seed corpora into `fuzz/seeds/<target>/` (files named `seed-*`; other files there,
//! such as kept crash inputs, are left alone). Run with `cargo run --example seed` in `fuzz/`.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for (target, seeds) in ferry_fuzz::seeds::all() {
        let folder = dir.join(target);
        std::fs::create_dir_all(&folder)?;
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
            {
                std::fs::remove_file(path)?;
            }
        }
        let bytes: usize = seeds.iter().map(|(_, s)| s.len()).sum();
        for (name, content) in &seeds {
            std::fs::write(folder.join(format!("seed-{name}")), content)?;
        }
        println!("{target}: {} seeds, {bytes} bytes", seeds.len());
    }
    Ok(())
}
