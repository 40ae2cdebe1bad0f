//! Tests of the `/metrics` document built from tracked requests.

use http::Method;
use http_body_util::BodyExt as _;

use super::*;
use crate::reqinfo;

fn track(t: &Arc<Telemetry>, method: Method, path: &str, query: &str) -> Tracked {
    t.begin(RequestLabels::of(&method, &reqinfo::parse(&method, path, query), query, None))
}

fn ok() -> Response<Body> {
    crate::response::text(200, "ok".into())
}

fn lines(doc: &str, prefix: &str) -> Vec<String> {
    doc.lines().filter(|l| l.starts_with(prefix)).map(str::to_string).collect()
}

#[test]
fn requests_are_counted_by_labels_and_code() {
    let t = Telemetry::new();
    for _ in 0..2 {
        track(&t, Method::GET, "/api/v1/namespaces/default/pods", "").finish(ok());
    }
    track(&t, Method::POST, "/api/v1/namespaces/default/pods", "dryRun=All")
        .finish(crate::response::text(409, String::new()));
    let doc = t.render(&Sources::default());
    assert!(
        doc.contains(
            "apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",\
             scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 2\n"
        ),
        "{doc}"
    );
    assert!(
        doc.contains(
            "apiserver_request_total{code=\"409\",component=\"apiserver\",dry_run=\"All\",group=\"\",resource=\"pods\",\
             scope=\"resource\",subresource=\"\",verb=\"POST\",version=\"v1\"} 1\n"
        ),
        "{doc}"
    );
    let counts = lines(&doc, "apiserver_request_duration_seconds_count");
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(counts[0].contains("verb=\"LIST\"") && counts[0].ends_with(" 2"), "{counts:?}");
    let buckets = lines(&doc, "apiserver_request_duration_seconds_bucket");
    assert_eq!(buckets.len(), 2 * (DURATION_BUCKETS.len() + 1));
    assert!(doc.contains("# TYPE apiserver_request_duration_seconds histogram\n"));
}

#[test]
fn in_flight_requests_are_gauged_until_finished() {
    let t = Telemetry::new();
    let read = track(&t, Method::GET, "/api/v1/pods", "");
    let write = track(&t, Method::DELETE, "/api/v1/namespaces/d/pods/p", "");
    let _watch = track(&t, Method::GET, "/api/v1/pods", "watch=1");
    let doc = t.render(&Sources::default());
    assert!(doc.contains("apiserver_current_inflight_requests{request_kind=\"readOnly\"} 1\n"), "{doc}");
    assert!(doc.contains("apiserver_current_inflight_requests{request_kind=\"mutating\"} 1\n"), "{doc}");
    read.finish(ok());
    drop(write);
    let doc = t.render(&Sources::default());
    assert!(doc.contains("apiserver_current_inflight_requests{request_kind=\"readOnly\"} 0\n"), "{doc}");
    assert!(doc.contains("apiserver_current_inflight_requests{request_kind=\"mutating\"} 0\n"), "{doc}");
}

#[tokio::test]
async fn watches_are_long_running_until_their_body_ends() {
    let t = Telemetry::new();
    let resp = track(&t, Method::GET, "/api/v1/namespaces/d/pods", "watch=true").finish(ok());
    let gauge = "apiserver_longrunning_requests{component=\"apiserver\",group=\"\",resource=\"pods\",\
                 scope=\"namespace\",subresource=\"\",verb=\"WATCH\",version=\"v1\"}";
    let doc = t.render(&Sources::default());
    assert!(doc.contains(&format!("{gauge} 1\n")), "{doc}");
    assert!(doc.contains("verb=\"WATCH\",version=\"v1\"} 1\n"), "the watch is counted: {doc}");
    assert!(lines(&doc, "apiserver_request_duration_seconds_count").is_empty(), "watches are not observed: {doc}");
    resp.into_body().collect().await.expect("body");
    let doc = t.render(&Sources::default());
    assert!(doc.contains(&format!("{gauge} 0\n")), "{doc}");
}

#[test]
fn audit_storage_and_process_series() {
    let t = Telemetry::new();
    let sources = Sources {
        audit: Some(AuditCounts { events: 7, dropped: 2, write_failures: 0 }),
        objects: vec![("/registry/core/pods/".into(), 3), ("/registry/apps/deployments/".into(), 1)],
    };
    let doc = t.render(&sources);
    assert!(doc.contains("apiserver_audit_event_total 7\n"), "{doc}");
    assert!(doc.contains("apiserver_audit_error_total{plugin=\"buffered\"} 2\n"), "{doc}");
    assert!(doc.contains("apiserver_audit_error_total{plugin=\"log\"} 0\n"), "{doc}");
    assert!(doc.contains("apiserver_storage_objects{resource=\"deployments.apps\"} 1\n"), "{doc}");
    assert!(doc.contains("apiserver_storage_objects{resource=\"pods\"} 3\n"), "{doc}");
    assert!(doc.contains("\nprocess_start_time_seconds "), "{doc}");
    assert!(doc.contains("\nprocess_resident_memory_bytes "), "{doc}");
}
