//! A webhook receiver on 127.0.0.1:0: a minimal HTTP/1.1 server (with keep-alive) that reports
//! every request it reads and answers each the way the test asks.

use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// One request as the receiver saw it.
#[derive(Debug)]
pub struct Captured {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub content_type: Option<String>,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
}

/// How the receiver answers.
#[derive(Clone, Copy)]
pub enum Reply {
    /// 200 with Tencent's success body.
    Ok,
    /// This status, empty body.
    Status(u16),
    /// Never answer.
    Hang,
}

pub struct WebhookReceiver {
    base: String,
    requests: mpsc::Receiver<Captured>,
}

impl WebhookReceiver {
    pub async fn start(reply: Reply) -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        // Far more room than any test sends; a full channel would only slow the receiver down.
        let (tx, requests) = mpsc::channel(4096);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(connection(stream, tx.clone(), reply));
            }
        });
        WebhookReceiver { base, requests }
    }

    /// The URL of `path` (with any query) on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The next request, within 10 s.
    pub async fn next(&mut self) -> Captured {
        tokio::time::timeout(Duration::from_secs(10), self.requests.recv())
            .await
            .expect("a request within 10 s")
            .expect("receiver running")
    }

    /// The next request, however long it takes; `None` once the receiver has stopped.
    pub async fn recv(&mut self) -> Option<Captured> {
        self.requests.recv().await
    }

    /// A request that has already arrived, if any.
    pub fn try_next(&mut self) -> Option<Captured> {
        self.requests.try_recv().ok()
    }
}

async fn connection(mut stream: TcpStream, tx: mpsc::Sender<Captured>, reply: Reply) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !read_more(&mut stream, &mut buf).await {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_owned();
        let target = request_line.next().unwrap_or_default().to_owned();
        let mut content_length = 0;
        let mut content_type = None;
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.parse().expect("content-length");
                } else if name.eq_ignore_ascii_case("content-type") {
                    content_type = Some(value.to_owned());
                }
            }
        }
        while buf.len() < head_end + content_length {
            if !read_more(&mut stream, &mut buf).await {
                return;
            }
        }
        let body = serde_json::from_slice(&buf[head_end..head_end + content_length])
            .unwrap_or(Value::Null);
        buf.drain(..head_end + content_length);
        let _ = tx
            .send(Captured {
                method,
                target,
                content_type,
                body,
            })
            .await;

        let response = match reply {
            Reply::Ok => {
                let body = r#"{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}"#;
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
            }
            Reply::Status(code) => format!("HTTP/1.1 {code} Oops\r\ncontent-length: 0\r\n\r\n"),
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
        };
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads what the peer sent next onto `buf`; false when the connection ended.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}
