//! The echo upstream.
//!
//! Pingora 0.9.1 (gatehouse and bare-proxy alike) closes an upgraded connection right after
//! the `101` when the upstream's answer is read before the handshake's empty request body has
//! been passed on: its upstream half takes that end of body for the end of the upgraded
//! stream (README, WebSocket, "Known issue"). A fast upstream on loopback hits it; so, as the
//! echo server of `gateway/tests/websocket.rs`, this one waits for a connection's first bytes
//! and then `handshake_delay` before answering the handshake. The delay is paid once per
//! connection, before the client starts its clock; the client still checks every connection
//! with one echo before the measured run and reopens one closed at once (`client`).

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};

/// Accepts connections on `listen` until the process is stopped, each served by `connection`.
pub async fn serve(listen: SocketAddr, handshake_delay: Duration) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    eprintln!("ws-bench echo: listening on {listen}, handshake delay {handshake_delay:?}");
    loop {
        let (stream, _) = listener.accept().await?;
        // Messages are small and answered one by one: no batching to wait for.
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, handshake_delay));
    }
}

/// One connection: the handshake (after the delay), then every data message echoed until the
/// peer closes. A health check's bare connect-and-close ends at the peek.
async fn connection(stream: TcpStream, handshake_delay: Duration) {
    let mut probe = [0u8; 1];
    if !matches!(stream.peek(&mut probe).await, Ok(n) if n > 0) {
        return;
    }
    tokio::time::sleep(handshake_delay).await;
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    // A Close is answered by tungstenite itself; the stream then ends.
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_binary() || msg.is_text()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::{Bytes, Message};

    #[tokio::test]
    async fn echoes_binary_and_text_messages_after_the_handshake_delay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            connection(s, Duration::from_millis(30)).await;
        });
        let started = std::time::Instant::now();
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(30));
        for msg in [
            Message::Binary(Bytes::from_static(b"\x00\x01")),
            Message::text("hi"),
        ] {
            ws.send(msg.clone()).await.unwrap();
            assert_eq!(ws.next().await.unwrap().unwrap(), msg);
        }
        ws.close(None).await.unwrap();
    }
}
