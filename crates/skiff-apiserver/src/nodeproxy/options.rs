//! The options object of a CONNECT to a pod (`pods/exec`, `pods/attach`, `pods/portforward`):
//! upstream's `PodExecOptions`, `PodAttachOptions` and `PodPortForwardOptions`. They are read
//! from the request's query as upstream's parameter codec reads them, handed to admission as
//! JSON, taken back after mutating webhooks patched them (decoded as upstream decodes a patched
//! object: unknown fields dropped, a value of the wrong type an error), and turned into the
//! agent's path, so the connection uses what admission let through.
//!
//! Not here: admission itself (`admission::webhook`), the pod and container checks, proxying.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use skiff_api::StatusError;

/// Go's decoding of `null` (and of an absent member): the zero value.
fn null_as_zero<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !b
}

/// The streams and container of an exec or attach (upstream's `PodAttachOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Streams {
    /// Whether the client sends standard input.
    #[serde(default, deserialize_with = "null_as_zero", skip_serializing_if = "is_false")]
    pub stdin: bool,
    /// Whether the client reads standard output.
    #[serde(default, deserialize_with = "null_as_zero", skip_serializing_if = "is_false")]
    pub stdout: bool,
    /// Whether the client reads standard error.
    #[serde(default, deserialize_with = "null_as_zero", skip_serializing_if = "is_false")]
    pub stderr: bool,
    /// Whether the process gets a terminal.
    #[serde(default, deserialize_with = "null_as_zero", skip_serializing_if = "is_false")]
    pub tty: bool,
    /// The container; empty means the pod's only container.
    #[serde(default, deserialize_with = "null_as_zero", skip_serializing_if = "String::is_empty")]
    pub container: String,
}

/// Upstream's `PodExecOptions`: the streams and the command to run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOptions {
    /// Streams and container.
    #[serde(flatten)]
    pub streams: Streams,
    /// The command and its arguments.
    #[serde(default, deserialize_with = "null_as_zero")]
    pub command: Vec<String>,
}

/// Upstream's `PodPortForwardOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortForwardOptions {
    /// The pod's ports to forward (WebSocket clients name them here; SPDY clients per stream).
    #[serde(default, deserialize_with = "null_as_zero", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<i32>,
}

/// The options of one CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectOptions {
    /// `pods/exec`.
    Exec(ExecOptions),
    /// `pods/attach`.
    Attach(Streams),
    /// `pods/portforward`.
    PortForward(PortForwardOptions),
}

/// The query's parameters in order.
fn pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

fn values<'a>(pairs: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
    pairs.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Upstream's query conversion of a boolean: absent, `0` or `false` (any case) is false,
/// anything else (even empty) true; the first value counts.
fn query_bool(pairs: &[(String, String)], name: &str) -> bool {
    values(pairs, name).next().is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

fn query_streams(pairs: &[(String, String)]) -> Streams {
    Streams {
        stdin: query_bool(pairs, "stdin"),
        stdout: query_bool(pairs, "stdout"),
        stderr: query_bool(pairs, "stderr"),
        tty: query_bool(pairs, "tty"),
        container: values(pairs, "container").next().unwrap_or_default().to_string(),
    }
}

/// Upstream's query conversion of `ports`: every value, each a comma-separated list of
/// 16-bit numbers.
fn query_ports(pairs: &[(String, String)]) -> Result<Vec<i32>, StatusError> {
    let mut ports = Vec::new();
    for value in values(pairs, "ports") {
        for p in value.split(',') {
            let port = p
                .parse::<u16>()
                .map_err(|e| StatusError::bad_request(format!("cannot convert to []int32: parsing {p:?}: {e}")))?;
            ports.push(i32::from(port));
        }
    }
    Ok(ports)
}

impl ConnectOptions {
    /// The options of a CONNECT to subresource `sub` from the request's `query` (400 for a port
    /// that is not a number).
    pub fn from_query(sub: &str, query: &str) -> Result<Self, StatusError> {
        let pairs = pairs(query);
        match sub {
            "exec" => Ok(Self::Exec(ExecOptions {
                streams: query_streams(&pairs),
                command: values(&pairs, "command").map(str::to_string).collect(),
            })),
            "attach" => Ok(Self::Attach(query_streams(&pairs))),
            "portforward" => Ok(Self::PortForward(PortForwardOptions { ports: query_ports(&pairs)? })),
            other => Err(StatusError::internal(format!("pods/{other} is not a CONNECT subresource"))),
        }
    }

    /// The kind admission sees the options as.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Exec(_) => "PodExecOptions",
            Self::Attach(_) => "PodAttachOptions",
            Self::PortForward(_) => "PodPortForwardOptions",
        }
    }

    /// The options as the admission object (`v1`, with `kind` and `apiVersion`).
    pub fn to_value(&self) -> Value {
        let body = match self {
            Self::Exec(o) => serde_json::to_value(o),
            Self::Attach(o) => serde_json::to_value(o),
            Self::PortForward(o) => serde_json::to_value(o),
        };
        let mut value = body.unwrap_or_else(|_| json!({}));
        if let Some(map) = value.as_object_mut() {
            map.insert("kind".into(), json!(self.kind()));
            map.insert("apiVersion".into(), json!("v1"));
        }
        value
    }

    /// Options of the same kind decoded from `value` (a webhook's patched object): unknown
    /// members are dropped, a member of the wrong type is an error.
    pub fn decode_same_kind(&self, value: Value) -> Result<Self, serde_json::Error> {
        Ok(match self {
            Self::Exec(_) => Self::Exec(serde_json::from_value(value)?),
            Self::Attach(_) => Self::Attach(serde_json::from_value(value)?),
            Self::PortForward(_) => Self::PortForward(serde_json::from_value(value)?),
        })
    }

    /// A webhook's patched admission object taken back as options of the same kind and
    /// re-encoded (upstream decodes it into the options' type; a failure is an internal error).
    pub fn reread(&self, patched: Value) -> Result<Value, StatusError> {
        self.decode_same_kind(patched).map(|o| o.to_value()).map_err(StatusError::internal)
    }

    /// The container named, if any (port-forwards name none).
    pub fn container(&self) -> Option<&str> {
        match self {
            Self::Exec(ExecOptions { streams, .. }) | Self::Attach(streams) => {
                Some(streams.container.as_str()).filter(|c| !c.is_empty())
            }
            Self::PortForward(_) => None,
        }
    }

    /// The agent's path and query (upstream's `ExecLocation`, `AttachLocation`,
    /// `PortForwardLocation`); `container` is the container the request was resolved to.
    pub fn agent_path(&self, ns: &str, pod: &str, container: &str) -> String {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let mut out = form_urlencoded::Serializer::new(String::new());
        let path = match self {
            Self::Exec(ExecOptions { streams, .. }) | Self::Attach(streams) => {
                let flags = [
                    (streams.stdin, "input"),
                    (streams.stdout, "output"),
                    (streams.stderr, "error"),
                    (streams.tty, "tty"),
                ];
                for (_, name) in flags.iter().filter(|(on, _)| *on) {
                    out.append_pair(name, "1");
                }
                let sub = if let Self::Exec(exec) = self {
                    for c in &exec.command {
                        out.append_pair("command", c);
                    }
                    "exec"
                } else {
                    "attach"
                };
                format!("/{sub}/{}/{}/{}", enc(ns), enc(pod), enc(container))
            }
            Self::PortForward(o) => {
                if !o.ports.is_empty() {
                    let list: Vec<String> = o.ports.iter().map(i32::to_string).collect();
                    out.append_pair("port", &list.join(","));
                }
                format!("/portForward/{}/{}", enc(ns), enc(pod))
            }
        };
        let query = out.finish();
        if query.is_empty() { path } else { format!("{path}?{query}") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_booleans_follow_upstreams_conversion() {
        let ConnectOptions::Attach(s) =
            ConnectOptions::from_query("attach", "stdin=&stdout=1&stderr=FALSE&tty=0&container=c").expect("query")
        else {
            panic!("not an attach")
        };
        assert_eq!(s, Streams { stdin: true, stdout: true, stderr: false, tty: false, container: "c".into() });
    }

    #[test]
    fn exec_options_round_trip_through_admission_json() {
        let opts =
            ConnectOptions::from_query("exec", "command=sh&command=-c&command=echo%20hi&stdout=true&container=c")
                .expect("query");
        let value = opts.to_value();
        assert_eq!(
            value,
            json!({"kind": "PodExecOptions", "apiVersion": "v1", "stdout": true, "container": "c",
                "command": ["sh", "-c", "echo hi"]})
        );
        assert_eq!(opts.decode_same_kind(value).expect("decodes"), opts);
    }

    #[test]
    fn patched_options_drop_unknown_members_and_refuse_wrong_types() {
        let opts = ConnectOptions::from_query("exec", "command=true").expect("query");
        let patched = json!({"kind": "PodExecOptions", "command": ["echo", "rewritten"], "container": "side",
            "stdin": null, "bogus": 1});
        let decoded = opts.decode_same_kind(patched).expect("decodes");
        assert_eq!(decoded.container(), Some("side"));
        assert_eq!(decoded.agent_path("ns", "p", "side"), "/exec/ns/p/side?command=echo&command=rewritten");
        assert!(opts.decode_same_kind(json!({"command": "not-a-list"})).is_err());
    }

    #[test]
    fn agent_paths_use_the_kubelet_parameters() {
        let q = "command=sh&command=-c&command=echo%20hi&stdin=true&stdout=true&stderr=false&tty=true&container=c";
        let exec = ConnectOptions::from_query("exec", q).expect("query");
        assert_eq!(
            exec.agent_path("ns", "p", "c"),
            "/exec/ns/p/c?input=1&output=1&tty=1&command=sh&command=-c&command=echo+hi"
        );
        let forward = ConnectOptions::from_query("portforward", "ports=80,8080&ports=9090").expect("ports");
        assert_eq!(forward.agent_path("ns", "p", ""), "/portForward/ns/p?port=80%2C8080%2C9090");
        assert_eq!(
            ConnectOptions::from_query("portforward", "").expect("none").agent_path("ns", "p", ""),
            "/portForward/ns/p"
        );
        let err = ConnectOptions::from_query("portforward", "ports=http").expect_err("not a number");
        assert_eq!(err.code, 400);
        assert!(err.message.starts_with("cannot convert to []int32: parsing \"http\""), "{}", err.message);
    }
}
