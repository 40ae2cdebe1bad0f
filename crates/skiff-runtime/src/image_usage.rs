//! Which images and layer snapshots the node's containers use, and removing an image together
//! with the snapshots no other image or container needs: the runtime's half of image garbage
//! collection. When to collect and what to pick is decided elsewhere (`images::gc`, the agent).
//!
//! A container instance records the snapshot directories it stacks (`shim.json`); an image is in
//! use when some container's top layer is the image's top layer (two images with identical
//! layers then count as used together, which errs on the side of keeping).

use std::collections::HashSet;
use std::path::PathBuf;

use crate::container::{ContainerError, Runtime};

/// Manifest digests of the images some container instance (running or not) was made from.
pub fn images_in_use(runtime: &Runtime) -> Result<HashSet<String>, ContainerError> {
    let tops: HashSet<PathBuf> = runtime.lowers_in_use()?.into_iter().filter_map(|l| l.into_iter().next()).collect();
    let mut used = HashSet::new();
    for image in runtime.images().list()? {
        let Some(top) = image.layers.last() else { continue };
        if tops.contains(&runtime.snapshots().path(&top.diff_id)?) {
            used.insert(image.manifest);
        }
    }
    Ok(used)
}

/// Removes image `manifest` (refused if it is in `in_use`), then the snapshots nothing needs any
/// more.
pub fn remove_image(runtime: &Runtime, manifest: &str, in_use: &HashSet<String>) -> Result<(), ContainerError> {
    runtime.images().remove(manifest, in_use)?;
    prune_snapshots(runtime)?;
    Ok(())
}

/// Removes the snapshots of layers no image in the store and no container uses; returns how
/// many went.
pub fn prune_snapshots(runtime: &Runtime) -> Result<usize, ContainerError> {
    let mut keep: HashSet<String> =
        runtime.images().list()?.into_iter().flat_map(|i| i.layers.into_iter().map(|l| l.diff_id)).collect();
    for lowers in runtime.lowers_in_use()? {
        for dir in lowers {
            if let Some(name) = dir.file_name() {
                keep.insert(format!("sha256:{}", name.to_string_lossy()));
            }
        }
    }
    Ok(runtime.snapshots().remove_unused(&keep)?)
}
