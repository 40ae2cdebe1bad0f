//! Plugin results and the diagnosis of a failed scheduling attempt: [`Status`] (upstream
//! `framework.Status` codes and reasons), [`Diagnosis`] (per-node statuses, the plugins that
//! rejected the pod, PreFilter and PostFilter messages) and the user-visible summary message
//! upstream's `FitError.Error()` builds ("0/3 nodes are available: 1 Insufficient cpu, 2 node(s)
//! had untolerated taint {…}. preemption: …").

use std::collections::BTreeMap;

use super::PluginId;

/// Upstream's message when the cluster has no nodes.
pub const NO_NODES_AVAILABLE: &str = "no nodes available to schedule pods";

/// A status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The plugin accepts.
    Success,
    /// An internal error.
    Error,
    /// Rejected; preemption might help.
    Unschedulable,
    /// Rejected; preemption cannot help.
    UnschedulableAndUnresolvable,
    /// The plugin has nothing to do for this pod.
    Skip,
}

/// A plugin's verdict with its reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The code.
    pub code: Code,
    /// Reasons, shown to users.
    pub reasons: Vec<String>,
    /// The plugin that produced it.
    pub plugin: Option<PluginId>,
}

impl Status {
    /// Success.
    pub fn success() -> Self {
        Self { code: Code::Success, reasons: Vec::new(), plugin: None }
    }

    /// A status with one reason.
    pub fn new(code: Code, reason: impl Into<String>) -> Self {
        Self { code, reasons: vec![reason.into()], plugin: None }
    }

    /// Unschedulable with these reasons.
    pub fn unschedulable(reasons: Vec<String>) -> Self {
        Self { code: Code::Unschedulable, reasons, plugin: None }
    }

    /// Marks the plugin that produced the status.
    pub fn with_plugin(mut self, plugin: PluginId) -> Self {
        self.plugin = Some(plugin);
        self
    }

    /// Whether the status accepts.
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// Whether the status rejects the pod (either unschedulable code).
    pub fn is_rejected(&self) -> bool {
        matches!(self.code, Code::Unschedulable | Code::UnschedulableAndUnresolvable)
    }

    /// The reasons joined as upstream's `Status.Message()` does.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

/// Why a pod could not be placed (upstream `framework.Diagnosis` plus the node count).
#[derive(Debug, Clone, Default)]
pub struct Diagnosis {
    /// The status of each node that was evaluated and rejected, by node name.
    pub node_statuses: BTreeMap<String, Status>,
    /// The status of the nodes not in `node_statuses` (PreFilter rejections and nodes a
    /// PreFilter result excluded), with how many such nodes there are.
    pub absent: Option<Status>,
    /// Plugins that rejected the pod.
    pub unschedulable_plugins: Vec<PluginId>,
    /// The PreFilter rejection message.
    pub pre_filter_msg: String,
    /// The PostFilter (preemption) message.
    pub post_filter_msg: String,
}

impl Diagnosis {
    /// Records a rejecting plugin.
    pub fn add_plugin(&mut self, status: &Status) {
        if status.is_rejected()
            && let Some(p) = status.plugin
            && !self.unschedulable_plugins.contains(&p)
        {
            self.unschedulable_plugins.push(p);
        }
    }

    /// The status of node `name` (its own, else the absent nodes' one).
    pub fn status_of(&self, name: &str) -> Option<&Status> {
        self.node_statuses.get(name).or(self.absent.as_ref())
    }
}

/// Upstream `FitError.Error()`: the summary users see in events and the pod's condition.
pub fn fit_error_message(num_all_nodes: usize, d: &Diagnosis) -> String {
    let mut msg = format!("0/{num_all_nodes} nodes are available:");
    if !d.pre_filter_msg.is_empty() {
        msg.push_str(&format!(" {}.", d.pre_filter_msg));
    } else {
        let histogram = reason_histogram(num_all_nodes, d);
        if !histogram.is_empty() {
            msg.push_str(&format!(" {}.", histogram.join(", ")));
        }
    }
    if !d.post_filter_msg.is_empty() {
        msg.push_str(&format!(" {}.", d.post_filter_msg));
    }
    msg
}

/// "N reason" entries, sorted as strings (as upstream's `sort.Strings`).
fn reason_histogram(num_all_nodes: usize, d: &Diagnosis) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for status in d.node_statuses.values() {
        for r in &status.reasons {
            *counts.entry(r.as_str()).or_default() += 1;
        }
    }
    let absent_nodes = num_all_nodes.saturating_sub(d.node_statuses.len());
    if absent_nodes > 0
        && let Some(absent) = &d.absent
    {
        for r in &absent.reasons {
            *counts.entry(r.as_str()).or_default() += absent_nodes;
        }
    }
    let mut out: Vec<String> = counts.into_iter().map(|(r, n)| format!("{n} {r}")).collect();
    out.sort();
    out
}

/// Upstream `truncateMessage`: events' notes are at most 1024 bytes.
pub fn truncate_message(msg: &str) -> String {
    const MAX: usize = 1024;
    if msg.len() <= MAX {
        return msg.to_string();
    }
    let mut end = MAX - 4;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} ...", &msg[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(code: Code, reasons: &[&str]) -> Status {
        Status { code, reasons: reasons.iter().map(|r| r.to_string()).collect(), plugin: None }
    }

    /// Upstream appends the PostFilter message with its own period, so a preemption summary
    /// ends in ".." (as every real kube-scheduler message does).
    #[test]
    fn summary_counts_sorts_and_appends_preemption() {
        let mut d = Diagnosis::default();
        d.node_statuses.insert("n1".into(), rejected(Code::Unschedulable, &["Insufficient cpu"]));
        d.node_statuses.insert(
            "n2".into(),
            rejected(Code::UnschedulableAndUnresolvable, &["node(s) had untolerated taint {dedicated: gpu}"]),
        );
        d.node_statuses.insert(
            "n3".into(),
            rejected(Code::UnschedulableAndUnresolvable, &["node(s) had untolerated taint {dedicated: gpu}"]),
        );
        d.post_filter_msg =
            "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
                .into();
        assert_eq!(
            fit_error_message(3, &d),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: gpu}. \
             preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.."
        );
    }

    #[test]
    fn summary_sorts_counts_as_strings_and_counts_absent_nodes() {
        let mut d = Diagnosis::default();
        for i in 0..10 {
            d.node_statuses.insert(format!("a{i}"), rejected(Code::Unschedulable, &["Insufficient memory"]));
        }
        d.node_statuses.insert("b".into(), rejected(Code::Unschedulable, &["Insufficient cpu", "Insufficient memory"]));
        d.absent =
            Some(rejected(Code::UnschedulableAndUnresolvable, &["node(s) didn't satisfy plugin(s) [NodeAffinity]"]));
        assert_eq!(
            fit_error_message(13, &d),
            "0/13 nodes are available: 1 Insufficient cpu, 11 Insufficient memory, 2 node(s) didn't satisfy plugin(s) [NodeAffinity]."
        );
    }

    #[test]
    fn prefilter_message_replaces_the_histogram() {
        let d = Diagnosis {
            pre_filter_msg: "pod has unbound immediate PersistentVolumeClaims".into(),
            absent: Some(rejected(
                Code::UnschedulableAndUnresolvable,
                &["pod has unbound immediate PersistentVolumeClaims"],
            )),
            ..Default::default()
        };
        assert_eq!(
            fit_error_message(2, &d),
            "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims."
        );
    }

    #[test]
    fn long_messages_are_truncated_like_events() {
        let long = "x".repeat(2000);
        let t = truncate_message(&long);
        assert_eq!(t.len(), 1024);
        assert!(t.ends_with(" ..."));
    }
}
