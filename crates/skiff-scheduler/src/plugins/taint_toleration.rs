//! TaintToleration: Filter rejects nodes with a `NoSchedule`/`NoExecute` taint the pod does not
//! tolerate (naming the first such taint, as upstream); Score counts the `PreferNoSchedule`
//! taints the pod's tolerations (those with an empty or `PreferNoSchedule` effect) do not
//! tolerate, normalized in reverse (fewer is better).

use crate::cache::NodeInfo;
use crate::framework::{Code, PluginId, Status};
use crate::model::PodInfo;
use crate::model::taints::{Taint, Toleration, first_untolerated, tolerated};

/// Filter.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    let spec = node.spec.as_ref()?;
    let taint = first_untolerated(&spec.taints, &pod.tolerations, Taint::blocks_scheduling)?;
    Some(
        Status::new(
            Code::UnschedulableAndUnresolvable,
            format!("node(s) had untolerated taint {{{}: {}}}", taint.key, taint.value),
        )
        .with_plugin(PluginId::TaintToleration),
    )
}

/// The tolerations that count for scoring (upstream `getAllTolerationPreferNoSchedule`).
pub fn prefer_no_schedule_tolerations(pod: &PodInfo) -> Vec<Toleration> {
    pod.tolerations.iter().filter(|t| t.effect.is_empty() || t.effect == "PreferNoSchedule").cloned().collect()
}

/// Score: the number of intolerable `PreferNoSchedule` taints.
pub fn score(tolerations: &[Toleration], node: &NodeInfo) -> i64 {
    let Some(spec) = node.spec.as_ref() else { return 0 };
    spec.taints.iter().filter(|t| t.effect == "PreferNoSchedule" && !tolerated(tolerations, t)).count() as i64
}
