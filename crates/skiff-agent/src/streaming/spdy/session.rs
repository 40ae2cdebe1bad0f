//! A server-side SPDY connection: the client opens streams (`SYN_STREAM`), each is accepted at
//! once (`SYN_REPLY`) and handed out as a [`Stream`] with the client's headers, a receiver of
//! the data the client sends (closed by its `FLAG_FIN` or a reset) and a [`StreamWriter`]. Pings
//! are answered. The connection ends when the client goes away, or once every writer and the
//! [`Session`] are dropped (then it is shut down after the last queued frame).

use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::frame::{Codec, FLAG_FIN, Frame, Headers};

/// Largest data frame written (bigger writes are split).
const CHUNK: usize = 32 * 1024;

/// A stream the client opened.
#[derive(Debug)]
pub struct Stream {
    /// Its id.
    pub id: u32,
    /// The client's headers (`streamtype`, `port`, `requestid`, …).
    pub headers: Headers,
    /// What the client sends; ends when it half-closes or resets the stream.
    pub data: mpsc::Receiver<Bytes>,
    /// Sends to the client.
    pub writer: StreamWriter,
}

impl Stream {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        super::frame::header(&self.headers, name)
    }
}

/// Writes to one stream.
#[derive(Debug, Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Frame>,
}

impl StreamWriter {
    /// Sends `data`; false once the connection is gone.
    pub async fn write(&self, data: Bytes) -> bool {
        let mut data = data;
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(CHUNK));
            if self.out.send(Frame::Data { stream_id: self.id, flags: 0, data: chunk }).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Half-closes the stream (the client reads its end).
    pub async fn close(&self) {
        let _ = self.out.send(Frame::Data { stream_id: self.id, flags: FLAG_FIN, data: Bytes::new() }).await;
    }
}

/// The connection; dropping it (and every writer) ends it.
#[derive(Debug)]
pub struct Session {
    out: mpsc::Sender<Frame>,
    /// Streams as the client opens them; ends with the connection.
    pub streams: mpsc::Receiver<Stream>,
}

impl Session {
    /// Runs a session over `io` (an upgraded connection).
    pub fn start<IO>(io: IO) -> Session
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel::<Frame>(64);
        let (streams_tx, streams_rx) = mpsc::channel(16);
        let weak = out_tx.downgrade();
        let reader = tokio::spawn(read_loop(read, weak, streams_tx));
        tokio::spawn(async move {
            write_loop(write, out_rx).await;
            // Everyone is done writing: the client sees the end and closes; stop reading.
            reader.abort();
        });
        Session { out: out_tx, streams: streams_rx }
    }

    /// Tells the client no further streams will be accepted.
    pub async fn go_away(&self) {
        let _ = self.out.send(Frame::GoAway { last_good_stream_id: 0, status: 0 }).await;
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(mut write: W, mut frames: mpsc::Receiver<Frame>) {
    let mut codec = Codec::new();
    let mut buf = BytesMut::new();
    while let Some(frame) = frames.recv().await {
        if let Err(e) = codec.encode(&frame, &mut buf) {
            tracing::warn!(error = %e, "encoding a SPDY frame");
            break;
        }
        // Batch what is already queued into one write.
        while buf.len() < 256 * 1024 {
            match frames.try_recv() {
                Ok(frame) => {
                    if let Err(e) = codec.encode(&frame, &mut buf) {
                        tracing::warn!(error = %e, "encoding a SPDY frame");
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        if write.write_all(&buf).await.is_err() || write.flush().await.is_err() {
            return;
        }
        buf.clear();
    }
    let _ = write.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(mut read: R, out: mpsc::WeakSender<Frame>, streams: mpsc::Sender<Stream>) {
    let mut codec = Codec::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut open: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    loop {
        let frame = match codec.decode(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => match read.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            },
            Err(e) => {
                tracing::debug!(error = %e, "SPDY connection failed");
                return;
            }
        };
        let send = |frame: Frame| {
            let out = out.upgrade();
            async move {
                if let Some(out) = out {
                    let _ = out.send(frame).await;
                }
            }
        };
        match frame {
            Frame::SynStream { stream_id, flags, headers, .. } => {
                let Some(writer_out) = out.upgrade() else { return };
                send(Frame::SynReply { stream_id, flags: 0, headers: Vec::new() }).await;
                let (tx, rx) = mpsc::channel(256);
                if flags & FLAG_FIN == 0 {
                    open.insert(stream_id, tx);
                }
                let stream = Stream {
                    id: stream_id,
                    headers,
                    data: rx,
                    writer: StreamWriter { id: stream_id, out: writer_out },
                };
                if streams.send(stream).await.is_err() {
                    tracing::debug!(stream_id, "nobody takes SPDY streams any more");
                }
            }
            Frame::Data { stream_id, flags, data } => {
                if let Some(tx) = open.get(&stream_id)
                    && !data.is_empty()
                    && tx.send(data).await.is_err()
                {
                    open.remove(&stream_id);
                }
                if flags & FLAG_FIN != 0 {
                    open.remove(&stream_id);
                }
            }
            Frame::RstStream { stream_id, .. } => {
                open.remove(&stream_id);
            }
            Frame::Ping { id } => send(Frame::Ping { id }).await,
            Frame::GoAway { .. } => return,
            Frame::SynReply { .. }
            | Frame::Settings { .. }
            | Frame::Headers { .. }
            | Frame::WindowUpdate { .. }
            | Frame::Unknown { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepts_streams_delivers_data_and_answers_pings() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut session = Session::start(server);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let mut codec = Codec::new();
        let mut wire = BytesMut::new();
        let headers = vec![("streamtype".to_string(), "stdin".to_string())];
        codec
            .encode(&Frame::SynStream { stream_id: 1, associated_id: 0, priority: 0, flags: 0, headers }, &mut wire)
            .expect("encode");
        codec
            .encode(&Frame::Data { stream_id: 1, flags: 0, data: Bytes::from_static(b"hello") }, &mut wire)
            .expect("encode");
        codec.encode(&Frame::Data { stream_id: 1, flags: FLAG_FIN, data: Bytes::new() }, &mut wire).expect("encode");
        codec.encode(&Frame::Ping { id: 9 }, &mut wire).expect("encode");
        client_write.write_all(&wire).await.expect("write");

        let mut stream = session.streams.recv().await.expect("stream");
        assert_eq!((stream.id, stream.header("streamtype")), (1, Some("stdin")));
        assert_eq!(stream.data.recv().await.as_deref(), Some(&b"hello"[..]));
        assert_eq!(stream.data.recv().await, None, "FIN ends the data");
        assert!(stream.writer.write(Bytes::from_static(b"out")).await);
        stream.writer.close().await;
        drop(stream);
        drop(session);

        // The client sees the reply, the pong, the data, the FIN, then the end of the connection.
        let mut decoder = Codec::new();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        loop {
            while let Some(f) = decoder.decode(&mut buf).expect("decode") {
                frames.push(f);
            }
            if client_read.read_buf(&mut buf).await.expect("read") == 0 {
                break;
            }
        }
        // The pong may come before or after the data (the reader and the test race).
        let pong = frames.iter().position(|f| *f == Frame::Ping { id: 9 }).expect("pong");
        frames.remove(pong);
        assert_eq!(
            frames,
            vec![
                Frame::SynReply { stream_id: 1, flags: 0, headers: vec![] },
                Frame::Data { stream_id: 1, flags: 0, data: Bytes::from_static(b"out") },
                Frame::Data { stream_id: 1, flags: FLAG_FIN, data: Bytes::new() },
            ]
        );
    }
}
