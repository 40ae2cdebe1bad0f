//! `skiff images import|ls|rm`: the node's image store from the command line. The store itself
//! (formats, digests, locking against a running agent) is `skiff_runtime::images`.

use std::collections::HashSet;
use std::io::IsTerminal as _;
use std::path::Path;

use anyhow::Context as _;
use skiff_runtime::images::{ImageStore, Reference};

use crate::config::{ImagesArgs, ImagesCommand};

/// The image store directory of a data dir.
pub fn store_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("agent").join("images")
}

/// Runs `skiff images …`, writing its report to `out`.
pub fn run(args: ImagesArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let dir = store_dir(&args.data_dir);
    let store = ImageStore::open(&dir).with_context(|| format!("cannot open the image store in {}", dir.display()))?;
    match args.command {
        ImagesCommand::Import { files } => {
            for file in files {
                let images = import_one(&store, &file).with_context(|| format!("cannot import {}", file.display()))?;
                for image in images {
                    let names = if image.references.is_empty() { "<none>".into() } else { image.references.join(", ") };
                    writeln!(out, "imported {names} ({})", image.manifest)?;
                }
            }
        }
        ImagesCommand::Ls => {
            let images = store.list()?;
            writeln!(out, "{:<50} {:<20} {:<15} {:>10}", "IMAGE", "TAG", "IMAGE ID", "SIZE")?;
            for image in images {
                let id = image.config.trim_start_matches("sha256:").get(..12).unwrap_or("").to_string();
                let size = human_size(image.size);
                if image.references.is_empty() {
                    writeln!(out, "{:<50} {:<20} {:<15} {:>10}", "<none>", "<none>", id, size)?;
                }
                for r in image.references.iter().filter_map(|r| Reference::parse(r).ok()) {
                    let tag = r.tag.clone().unwrap_or_else(|| "<none>".into());
                    writeln!(out, "{:<50} {:<20} {:<15} {:>10}", r.name(), tag, id, size)?;
                }
            }
        }
        ImagesCommand::Rm { images } => {
            // Images used by running containers are protected by the agent's own GC; from the
            // CLI, removal of an image a pod still uses only drops it for future pulls.
            for image in images {
                for removed in store.remove(&image, &HashSet::new())? {
                    writeln!(out, "deleted {removed}")?;
                }
            }
        }
    }
    Ok(())
}

fn import_one(store: &ImageStore, file: &Path) -> anyhow::Result<Vec<skiff_runtime::images::ImageRecord>> {
    let total = std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?.len();
    if !std::io::stderr().is_terminal() {
        return Ok(store.import_file(file, &mut |_| {})?);
    }
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .progress_chars("=> "),
    );
    bar.set_message(file.display().to_string());
    let result = store.import_file(file, &mut |read| bar.set_position(read));
    bar.finish_and_clear();
    Ok(result?)
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes}B") } else { format!("{value:.1}{}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_like_crictl() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_500), "1.5kB");
        assert_eq!(human_size(4_200_000), "4.2MB");
    }
}
