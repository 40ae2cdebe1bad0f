//! The file source: which static pods the pod-manifest path holds, and when to look again.
//!
//! [`read`] reads a directory as the kubelet does (every regular file whose name does not start
//! with a dot, in name order, without recursing; a file that yields no pod is logged and
//! skipped) or a single manifest file. [`FileSource`] turns what was read into the current static
//! pods: first-seen times, the source annotations, and duplicate names dropped (the first file
//! wins, as upstream). [`watch`] wakes the reader on inotify events and every 20 s.
//!
//! What does not live here: parsing and identity (`manifest`, `identity`), running the pods.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::sync::mpsc;

use super::manifest::{self, ManifestError};
use super::{CONFIG_SEEN, CONFIG_SOURCE, FILE_SOURCE, full_name, identity};

/// How often the path is read again without an inotify event (the kubelet's file check period).
pub const RESYNC: Duration = Duration::from_secs(20);

/// One static pod as read from its file.
#[derive(Debug, Clone)]
pub struct StaticPod {
    /// The pod, with its identity and the source annotations.
    pub pod: Pod,
    /// The manifest file.
    pub path: PathBuf,
    /// When this agent first saw it.
    pub seen: jiff::Timestamp,
}

impl StaticPod {
    /// The pod's UID (its hash).
    pub fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or("")
    }
}

/// A pod left out because an earlier file already has its name (upstream's `FailedValidation`).
#[derive(Debug, Clone)]
pub struct Duplicate {
    /// The pod left out.
    pub pod: Pod,
    /// The event message, in upstream's words.
    pub message: String,
}

/// Reads the manifests at `path` (a directory or one file) for node `node`: each file with its
/// pod or why it has none. Blocking. A missing path holds no pods.
pub fn read(path: &Path, node: &str) -> Vec<(PathBuf, Result<Pod, ManifestError>)> {
    let files = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => match manifest_files(path) {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the pod manifest directory");
                return Vec::new();
            }
        },
        Ok(m) if m.is_file() => vec![path.to_path_buf()],
        Ok(_) => {
            tracing::warn!(path = %path.display(), "the pod manifest path is not a directory or file");
            return Vec::new();
        }
        Err(_) => return Vec::new(),
    };
    files
        .into_iter()
        .map(|file| {
            let pod = std::fs::read(&file)
                .map_err(|e| ManifestError::Syntax(e.to_string()))
                .and_then(|bytes| manifest::parse(&bytes))
                .and_then(|pod| identity::apply(pod, &file, node));
            (file, pod)
        })
        .collect()
}

/// The regular files of `dir` whose names do not start with a dot, sorted; directories and
/// other entries are logged and skipped.
fn manifest_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.')) {
            continue;
        }
        // Following symlinks, as `os.Stat` does.
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => files.push(path),
            Ok(m) if m.is_dir() => tracing::debug!(path = %path.display(), "not recursing into manifest path"),
            Ok(_) => tracing::warn!(path = %path.display(), "manifest path is not a directory or file"),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot get metadata of a manifest"),
        }
    }
    files.sort();
    Ok(files)
}

/// The static pods of one node over time: remembers when each was first seen and which
/// failures were already logged.
#[derive(Debug)]
pub struct FileSource {
    /// First-seen time by pod UID.
    seen: HashMap<String, jiff::Timestamp>,
    /// Failures already logged, by file (logged again when they change).
    failures: HashMap<PathBuf, String>,
    /// UIDs of duplicates already reported.
    duplicates: Vec<String>,
}

impl Default for FileSource {
    fn default() -> Self {
        Self::new()
    }
}

impl FileSource {
    /// A source that has seen nothing yet.
    pub fn new() -> Self {
        Self { seen: HashMap::new(), failures: HashMap::new(), duplicates: Vec::new() }
    }

    /// Turns what [`read`] found into the current static pods by UID, plus the duplicates not
    /// reported before.
    pub fn update(
        &mut self,
        read: Vec<(PathBuf, Result<Pod, ManifestError>)>,
    ) -> (BTreeMap<String, StaticPod>, Vec<Duplicate>) {
        let now = jiff::Timestamp::now();
        let mut pods = BTreeMap::new();
        let mut names = Vec::new();
        let mut duplicates = Vec::new();
        let mut failures = HashMap::new();
        for (path, result) in read {
            let mut pod = match result {
                Ok(pod) => pod,
                Err(e) => {
                    let message = e.to_string();
                    if self.failures.get(&path) != Some(&message) {
                        tracing::error!(path = %path.display(), error = %message, "could not process manifest file");
                    }
                    failures.insert(path, message);
                    continue;
                }
            };
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let seen = *self.seen.entry(uid.clone()).or_insert(now);
            let annotations = pod.metadata.annotations.get_or_insert_default();
            annotations.insert(CONFIG_SEEN.into(), seen_string(seen));
            annotations.insert(CONFIG_SOURCE.into(), FILE_SOURCE.into());
            let name = full_name(&pod);
            if names.contains(&name) {
                if !self.duplicates.contains(&uid) {
                    let short = pod.metadata.name.clone().unwrap_or_default();
                    let message = format!(
                        "Error validating pod {name}({uid}) from {FILE_SOURCE} due to duplicate pod name {short:?}, ignoring"
                    );
                    tracing::warn!(path = %path.display(), pod = %name, "duplicate static pod name; ignoring the file");
                    self.duplicates.push(uid);
                    duplicates.push(Duplicate { pod, message });
                }
                continue;
            }
            names.push(name);
            pods.insert(uid, StaticPod { pod, path, seen });
        }
        self.failures = failures;
        self.seen.retain(|uid, _| pods.contains_key(uid));
        self.duplicates.retain(|uid| !pods.contains_key(uid));
        (pods, duplicates)
    }
}

/// RFC 3339 with nanoseconds (trailing zeros trimmed), as Go's `time.RFC3339Nano` prints.
fn seen_string(t: jiff::Timestamp) -> String {
    t.to_string()
}

/// Watches `path` for changes and sends `()` on `tx` whenever the manifests may have changed
/// (inotify events, debounced by 100 ms, and every [`RESYNC`]). Runs until `tx` closes.
pub async fn watch(path: PathBuf, tx: mpsc::Sender<()>) {
    let (events_tx, mut events) = mpsc::channel(1);
    // Blocking inotify reads happen on a thread of their own, never on the runtime.
    let thread_path = path.clone();
    let spawned = std::thread::Builder::new()
        .name("skiff-manifests".into())
        .spawn(move || inotify_loop(&thread_path, &events_tx));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no inotify thread for the pod manifest path; reading it every 20 s");
    }
    loop {
        tokio::select! {
            Some(()) = events.recv() => tokio::time::sleep(Duration::from_millis(100)).await,
            _ = tokio::time::sleep(RESYNC) => {}
        }
        while events.try_recv().is_ok() {}
        if tx.send(()).await.is_err() {
            return;
        }
    }
}

/// Sends `()` on `tx` after every batch of inotify events on `path`, setting the watch up again
/// when the path goes away (or before it exists). Ends once `tx` is closed.
fn inotify_loop(path: &Path, tx: &mpsc::Sender<()>) {
    let flags = AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF;
    let gone = AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_IGNORED;
    while !tx.is_closed() {
        let inotify = match Inotify::init(InitFlags::IN_CLOEXEC).and_then(|i| i.add_watch(path, flags).map(|_| i)) {
            Ok(i) => i,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "no inotify watch on the pod manifest path yet");
                std::thread::sleep(RESYNC);
                continue;
            }
        };
        loop {
            let batch = match inotify.read_events() {
                Ok(batch) => batch,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "reading inotify events");
                    std::thread::sleep(RESYNC);
                    break;
                }
            };
            if let Err(mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
                return;
            }
            if batch.iter().any(|e| e.mask.intersects(gone)) {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: NAME}\nspec:\n  containers:\n  - {name: c, image: busybox}\n";

    fn write(dir: &Path, file: &str, name: &str) {
        std::fs::write(dir.join(file), POD.replace("NAME", name)).expect("write");
    }

    #[test]
    fn reads_visible_regular_files_in_name_order_and_skips_bad_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "b.yaml", "b");
        write(dir.path(), "a.json.manifest", "a");
        write(dir.path(), ".hidden.yaml", "hidden");
        std::fs::write(dir.path().join("broken.yaml"), "kind: [").expect("write");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        write(&dir.path().join("sub"), "c.yaml", "c");
        let read = read(dir.path(), "n");
        let names: Vec<String> =
            read.iter().map(|(p, _)| p.file_name().unwrap_or_default().to_string_lossy().into()).collect();
        assert_eq!(names, ["a.json.manifest", "b.yaml", "broken.yaml"]);
        assert!(read[2].1.is_err());
        let (pods, duplicates) = FileSource::new().update(read);
        assert!(duplicates.is_empty());
        let mut names: Vec<&str> = pods.values().filter_map(|p| p.pod.metadata.name.as_deref()).collect();
        names.sort();
        assert_eq!(names, ["a-n", "b-n"]);
        assert!(read_missing_is_empty());
    }

    fn read_missing_is_empty() -> bool {
        read(Path::new("/nonexistent/skiff/manifests"), "n").is_empty()
    }

    #[test]
    fn first_seen_is_kept_and_duplicates_are_reported_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "a.yaml", "web");
        let mut source = FileSource::new();
        let (pods, _) = source.update(read(dir.path(), "n"));
        let first = pods.values().next().cloned().expect("pod");
        let annotations = first.pod.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations.get(CONFIG_SOURCE).map(String::as_str), Some("file"));
        let seen = annotations.get(CONFIG_SEEN).cloned().unwrap_or_default();
        assert!(seen.parse::<jiff::Timestamp>().is_ok(), "{seen}");
        assert!(crate::static_pods::is_static(&first.pod));

        // Another file with the same pod name: the first file (by name) wins.
        std::fs::write(dir.path().join("b.yaml"), POD.replace("NAME", "web").replace("busybox", "other"))
            .expect("write");
        let (pods, duplicates) = source.update(read(dir.path(), "n"));
        assert_eq!(pods.len(), 1);
        let again = pods.values().next().expect("pod");
        assert_eq!(again.uid(), first.uid());
        assert_eq!(again.seen, first.seen, "first seen is kept");
        assert_eq!(duplicates.len(), 1);
        assert!(duplicates[0].message.starts_with("Error validating pod web-n_default("), "{}", duplicates[0].message);
        assert!(duplicates[0].message.ends_with(") from file due to duplicate pod name \"web-n\", ignoring"));
        let (_, duplicates) = source.update(read(dir.path(), "n"));
        assert!(duplicates.is_empty(), "reported once");
    }

    #[tokio::test]
    async fn changes_in_the_directory_wake_the_reader() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tx, mut rx) = mpsc::channel(1);
        let task = tokio::spawn(watch(dir.path().to_path_buf(), tx));
        tokio::time::sleep(Duration::from_millis(200)).await;
        write(dir.path(), "a.yaml", "a");
        let woke = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        task.abort();
        assert_eq!(woke.ok().flatten(), Some(()));
    }
}
