//! DefaultPreemption (PostFilter), as upstream's evaluator: when no node fits, find nodes where
//! evicting lower-priority pods would make room (only nodes whose rejection was `Unschedulable`),
//! choose on each the minimal set of victims (all lower-priority pods removed, then reprieved
//! from the most important down, PodDisruptionBudget-violating ones first), pick the best
//! candidate (fewest PDB violations, lowest highest victim priority, smallest priority sum,
//! fewest victims, latest start), and report the plan. The scheduling thread then nominates the
//! preemptor, marks and deletes the victims gracefully, and clears lower-priority nominations.
//!
//! Messages are upstream's: "preemption: 0/3 nodes are available: 1 No preemption victims found
//! for incoming pod, 2 Preemption is not helpful for scheduling." and the eligibility reasons.

use std::sync::Arc;

use crate::cache::{Cache, NodeInfo, Slot};
use crate::framework::status::fit_error_message;
use crate::framework::{Code, Diagnosis, Profile, Status};
use crate::model::PodInfo;
use crate::nominator::Nominator;
use crate::objects::{Objects, Pdb};
use crate::schedule::{CycleState, FilterCtx};

/// Upstream `MinCandidateNodesPercentage` default.
const MIN_CANDIDATE_NODES_PERCENTAGE: usize = 10;
/// Upstream `MinCandidateNodesAbsolute` default.
const MIN_CANDIDATE_NODES_ABSOLUTE: usize = 100;

/// What to do to make room.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The node the preemptor is nominated to.
    pub node: String,
    /// Pods to evict, most important first.
    pub victims: Vec<Arc<PodInfo>>,
    /// Lower-priority pods nominated to the node that lose their nomination.
    pub clear_nominations: Vec<Arc<PodInfo>>,
}

/// The outcome of a preemption attempt.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The PostFilter message ("" on success).
    pub message: String,
    /// The preemptor's nominated node: `Some("")` clears it, `None` keeps it.
    pub nominated_node: Option<String>,
    /// The evictions, when a candidate was found.
    pub plan: Option<Plan>,
}

#[derive(Debug)]
struct Candidate {
    slot: Slot,
    victims: Vec<Arc<PodInfo>>,
    pdb_violations: usize,
}

/// Upstream `MoreImportantPod`: higher priority, then earlier start (no start time = now).
fn more_important(a: &PodInfo, b: &PodInfo, now: i128) -> std::cmp::Ordering {
    b.priority.cmp(&a.priority).then_with(|| a.start_time.unwrap_or(now).cmp(&b.start_time.unwrap_or(now)))
}

fn now_nanos() -> i128 {
    jiff::Timestamp::now().as_nanosecond()
}

/// Upstream `filterPodsWithPDBViolation` (stable).
fn split_by_pdb(pods: &[Arc<PodInfo>], pdbs: &[Pdb]) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i64> = pdbs.iter().map(|p| i64::from(p.disruptions_allowed)).collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for pod in pods {
        let mut violated = false;
        if !pod.labels.is_empty() {
            for (i, pdb) in pdbs.iter().enumerate() {
                if pdb.namespace != pod.namespace
                    || pdb.selector.requirements.is_empty()
                    || !pdb.selector.matches(&pod.labels)
                {
                    continue;
                }
                if pdb.disrupted_pods.contains(&pod.name) {
                    continue;
                }
                allowed[i] -= 1;
                if allowed[i] < 0 {
                    violated = true;
                }
            }
        }
        if violated { violating.push(pod.clone()) } else { fine.push(pod.clone()) }
    }
    (violating, fine)
}

/// Upstream `SelectVictimsOnNode`.
fn select_victims(
    ctx: &FilterCtx<'_>,
    state: &CycleState,
    slot: Slot,
    node: &NodeInfo,
    pdbs: &[Pdb],
    nominator: &Nominator,
) -> Result<(Vec<Arc<PodInfo>>, usize), Status> {
    let pod = ctx.pod;
    let mut node = node.clone();
    let mut state = state.clone();
    let mut potential: Vec<Arc<PodInfo>> = node.pods.iter().filter(|p| p.priority < pod.priority).cloned().collect();
    for v in &potential {
        node.remove_pod(&v.uid);
        state.update_with_pod(v, pod, &node, slot, -1, ctx.cache);
    }
    if potential.is_empty() {
        return Err(Status::new(Code::UnschedulableAndUnresolvable, "No preemption victims found for incoming pod"));
    }
    if let Some(s) = ctx.run_with_nominated(&state, slot, &node, nominator) {
        return Err(s);
    }
    let now = now_nanos();
    potential.sort_by(|a, b| more_important(a, b, now));
    let (violating, fine) = split_by_pdb(&potential, pdbs);
    let mut victims = Vec::new();
    let mut violations = 0;
    for (group, counts) in [(&violating, true), (&fine, false)] {
        for v in group {
            node.add_pod(v.clone());
            state.update_with_pod(v, pod, &node, slot, 1, ctx.cache);
            if ctx.run_with_nominated(&state, slot, &node, nominator).is_some() {
                node.remove_pod(&v.uid);
                state.update_with_pod(v, pod, &node, slot, -1, ctx.cache);
                victims.push(v.clone());
                if counts {
                    violations += 1;
                }
            }
        }
    }
    if !violating.is_empty() && !fine.is_empty() {
        victims.sort_by(|a, b| more_important(a, b, now));
    }
    Ok((victims, violations))
}

/// Upstream `pickOneNodeForPreemption`.
fn pick(candidates: &[Candidate]) -> usize {
    let now = now_nanos();
    let earliest_of_highest = |c: &Candidate| -> i128 {
        let top = c.victims.first().map(|p| p.priority).unwrap_or(0);
        c.victims.iter().filter(|p| p.priority == top).map(|p| p.start_time.unwrap_or(now)).min().unwrap_or(i128::MIN)
    };
    let scores: [&dyn Fn(&Candidate) -> i128; 5] = [
        &|c| -(c.pdb_violations as i128),
        &|c| -i128::from(c.victims.first().map(|p| p.priority).unwrap_or(0)),
        &|c| -c.victims.iter().map(|p| i128::from(p.priority) + i128::from(i32::MAX) + 1).sum::<i128>(),
        &|c| -(c.victims.len() as i128),
        &earliest_of_highest,
    ];
    let mut remaining: Vec<usize> = (0..candidates.len()).collect();
    for f in scores {
        let best = remaining.iter().map(|&i| f(&candidates[i])).max().unwrap_or(0);
        remaining.retain(|&i| f(&candidates[i]) == best);
        if remaining.len() == 1 {
            break;
        }
    }
    remaining[0]
}

/// Runs preemption for `pod` after a failed attempt with `diagnosis`.
#[allow(clippy::too_many_arguments)]
pub fn preempt(
    pod: &PodInfo,
    state: &CycleState,
    diagnosis: &Diagnosis,
    num_nodes: usize,
    cache: &mut Cache,
    profile: &Profile,
    objects: &Objects,
    nominator: &Nominator,
) -> Outcome {
    if pod.never_preempts {
        return Outcome {
            message: "preemption: not eligible due to preemptionPolicy=Never.".into(),
            ..Default::default()
        };
    }
    if !pod.nominated_node_name.is_empty() {
        let unresolvable =
            diagnosis.status_of(&pod.nominated_node_name).is_some_and(|s| s.code == Code::UnschedulableAndUnresolvable);
        if !unresolvable
            && let Some(node) = cache.node(&pod.nominated_node_name)
            && node.pods.iter().any(|p| p.priority < pod.priority && p.preemption_terminating)
        {
            return Outcome {
                message: "preemption: not eligible due to a terminating pod on the nominated node.".into(),
                ..Default::default()
            };
        }
    }
    let order: Vec<Slot> = cache.node_order().to_vec();
    let potential: Vec<Slot> = order
        .into_iter()
        .filter(|s| {
            let name = cache.nodes[*s].name();
            diagnosis.status_of(name).is_some_and(|st| st.code == Code::Unschedulable)
        })
        .collect();
    let mut statuses = Diagnosis::default();
    let mut candidates: Vec<Candidate> = Vec::new();
    if !potential.is_empty() {
        let n = potential.len();
        let want = (n * MIN_CANDIDATE_NODES_PERCENTAGE / 100).max(MIN_CANDIDATE_NODES_ABSOLUTE).min(n);
        let offset = (now_nanos().unsigned_abs() as usize) % n;
        let ctx = FilterCtx { pod, profile, objects, cache };
        let mut non_violating = 0;
        for i in 0..n {
            let slot = potential[(offset + i) % n];
            let node = &cache.nodes[slot];
            match select_victims(&ctx, state, slot, node, &objects.pdbs, nominator) {
                Ok((victims, violations)) if !victims.is_empty() => {
                    if violations == 0 {
                        non_violating += 1;
                    }
                    candidates.push(Candidate { slot, victims, pdb_violations: violations });
                    if non_violating > 0 && candidates.len() >= want {
                        break;
                    }
                }
                Ok(_) => {
                    statuses.node_statuses.insert(
                        node.name().to_string(),
                        Status::new(Code::Error, format!("expected at least one victim pod on node {:?}", node.name())),
                    );
                }
                Err(s) => {
                    statuses.node_statuses.insert(node.name().to_string(), s);
                }
            }
        }
    }
    if candidates.is_empty() {
        statuses.absent =
            Some(Status::new(Code::UnschedulableAndUnresolvable, "Preemption is not helpful for scheduling"));
        return Outcome {
            message: format!("preemption: {}", fit_error_message(num_nodes, &statuses)),
            nominated_node: Some(String::new()),
            plan: None,
        };
    }
    // Upstream keeps non-violating candidates before violating ones.
    candidates.sort_by_key(|c| c.pdb_violations > 0);
    let best = &candidates[pick(&candidates)];
    let node = cache.nodes[best.slot].name().to_string();
    let clear_nominations: Vec<Arc<PodInfo>> =
        nominator.on_node(&node).iter().filter(|p| p.priority < pod.priority).cloned().collect();
    Outcome {
        message: String::new(),
        nominated_node: Some(node.clone()),
        plan: Some(Plan { node, victims: best.victims.clone(), clear_nominations }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn p(name: &str, priority: i32, start: i128, labels: &[(&str, &str)]) -> Arc<PodInfo> {
        Arc::new(PodInfo {
            uid: name.into(),
            name: name.into(),
            namespace: "ns".into(),
            priority,
            start_time: Some(start),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            ..Default::default()
        })
    }

    #[test]
    fn pdb_split_counts_allowed_disruptions_in_order() {
        let pods = vec![p("a", 1, 0, &[("app", "x")]), p("b", 1, 0, &[("app", "x")]), p("c", 1, 0, &[])];
        let pdb = Pdb {
            namespace: "ns".into(),
            selector: skiff_api::selector::LabelSelectorExpr::parse("app=x").unwrap_or_default(),
            disruptions_allowed: 1,
            disrupted_pods: Default::default(),
        };
        let (violating, fine) = split_by_pdb(&pods, &[pdb]);
        assert_eq!(violating.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(fine.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["a", "c"]);
    }

    #[test]
    fn candidate_choice_follows_upstream_criteria() {
        let c = |slot, victims: Vec<Arc<PodInfo>>, v| Candidate { slot, victims, pdb_violations: v };
        // Fewer PDB violations first.
        let list = vec![c(0, vec![p("a", 1, 0, &[])], 1), c(1, vec![p("b", 5, 0, &[])], 0)];
        assert_eq!(list[pick(&list)].slot, 1);
        // Then the lowest highest-priority victim.
        let list = vec![c(0, vec![p("a", 5, 0, &[])], 0), c(1, vec![p("b", 3, 0, &[]), p("c", 3, 0, &[])], 0)];
        assert_eq!(list[pick(&list)].slot, 1);
        // Then the smallest sum, then fewer victims, then the latest start.
        let list = vec![c(0, vec![p("a", 3, 0, &[]), p("b", 1, 0, &[])], 0), c(1, vec![p("c", 3, 0, &[])], 0)];
        assert_eq!(list[pick(&list)].slot, 1);
        let list = vec![c(0, vec![p("a", 3, 10, &[])], 0), c(1, vec![p("b", 3, 20, &[])], 0)];
        assert_eq!(list[pick(&list)].slot, 1);
    }

    #[test]
    fn victims_sort_by_priority_then_start() {
        let mut v = [p("new", 1, 20, &[]), p("old", 1, 10, &[]), p("high", 9, 30, &[])];
        v.sort_by(|a, b| more_important(a, b, 0));
        assert_eq!(v.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["high", "old", "new"]);
    }
}
