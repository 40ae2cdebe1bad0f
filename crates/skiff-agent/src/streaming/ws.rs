//! WebSocket on the streaming server: the upgrade handshake with subprotocol choice, the
//! channel framing of the Kubernetes `*.channel.k8s.io` protocols (first byte of a binary
//! message = channel; `[255, ch]` closes channel `ch` in v5), and a byte tunnel over binary
//! messages (`SPDY/3.1+portforward.k8s.io`, where the messages carry a SPDY connection).

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, Response, StatusCode, header};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Message, Role};

use super::server::{Body, full};

/// The channel that, in `v5.channel.k8s.io`, announces a closed channel.
pub const CLOSE_CHANNEL: u8 = 255;

/// A WebSocket over an upgraded connection.
pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// Whether the request asks for a WebSocket.
pub fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")))
}

/// The subprotocols the client offers, in its order.
pub fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The `101 Switching Protocols` answer accepting the WebSocket with `protocol`.
pub fn accept(headers: &HeaderMap, protocol: Option<&str>) -> Response<Body> {
    let key = headers.get(header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes()).unwrap_or_default();
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, http::HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, http::HeaderValue::from_static("Upgrade"));
    if let Ok(v) = http::HeaderValue::from_str(&tokio_tungstenite::tungstenite::handshake::derive_accept_key(key)) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = protocol.and_then(|p| http::HeaderValue::from_str(p).ok()) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    resp
}

/// The WebSocket once the upgrade went through.
pub async fn socket(upgraded: Upgraded) -> Socket {
    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await
}

/// A message from the client on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Data for channel `0`.
    Data(u8, Bytes),
    /// The client closed channel `0` (v5).
    Close(u8),
}

/// Splits a binary message into its channel and payload.
pub fn parse_message(data: &[u8], v5: bool) -> Option<Incoming> {
    let (&channel, rest) = data.split_first()?;
    if v5 && channel == CLOSE_CHANNEL {
        return rest.first().map(|ch| Incoming::Close(*ch));
    }
    Some(Incoming::Data(channel, Bytes::copy_from_slice(rest)))
}

/// A binary message carrying `data` on `channel`.
pub fn channel_message(channel: u8, data: &[u8]) -> Message {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(channel);
    out.extend_from_slice(data);
    Message::binary(out)
}

/// Runs a socket as channels: returns the client's messages, and a sender of messages to it.
/// The socket closes (normally) once every sender is dropped.
pub fn channels(socket: Socket, v5: bool) -> (mpsc::Receiver<Incoming>, mpsc::Sender<Message>) {
    let (mut sink, mut stream) = socket.split();
    let (in_tx, in_rx) = mpsc::channel(64);
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let incoming = match message {
                Message::Binary(data) => parse_message(&data, v5),
                // The Python client sends text frames for text input; the bytes are the same.
                Message::Text(text) => parse_message(text.as_bytes(), v5),
                Message::Close(_) => break,
                _ => None,
            };
            if let Some(incoming) = incoming
                && in_tx.send(incoming).await.is_err()
            {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
        let _ = sink.send(normal_close()).await;
        let _ = sink.close().await;
        reader.abort();
    });
    (in_rx, out_tx)
}

/// A byte stream carried by the socket's binary messages (each write one message).
pub fn tunnel(socket: Socket) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut read, mut write) = tokio::io::split(theirs);
    let (mut sink, mut stream) = socket.split();
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let data = match message {
                Message::Binary(data) => data,
                Message::Close(_) => break,
                _ => continue,
            };
            if write.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sink.send(normal_close()).await;
        let _ = sink.close().await;
    });
    ours
}

/// A normal closure (1000): clients treat anything else, even a close without a code, as an
/// error on every stream still open.
fn normal_close() -> Message {
    Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))
}

/// A refusal of the upgrade, as the kubelet answers when no offered protocol is supported.
pub fn unsupported(offered: &[String], supported: &[&str]) -> Response<Body> {
    let mut resp = Response::new(full(format!(
        "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {supported:?}"
    )));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_messages_parse() {
        assert_eq!(parse_message(&[0, b'h', b'i'], false), Some(Incoming::Data(0, Bytes::from_static(b"hi"))));
        assert_eq!(parse_message(&[255, 0], true), Some(Incoming::Close(0)));
        assert_eq!(parse_message(&[255, 0], false), Some(Incoming::Data(255, Bytes::from_static(&[0]))));
        assert_eq!(parse_message(&[], true), None);
        assert_eq!(channel_message(3, b"{}"), Message::binary(vec![3, b'{', b'}']));
    }

    #[test]
    fn offered_protocols_are_split_and_trimmed() {
        let mut h = HeaderMap::new();
        h.append(header::SEC_WEBSOCKET_PROTOCOL, "v5.channel.k8s.io, v4.channel.k8s.io".parse().expect("header"));
        h.append(header::SEC_WEBSOCKET_PROTOCOL, "channel.k8s.io".parse().expect("header"));
        h.insert(header::UPGRADE, "WebSocket".parse().expect("header"));
        assert_eq!(offered_protocols(&h), ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"]);
        assert!(is_websocket(&h));
    }
}
