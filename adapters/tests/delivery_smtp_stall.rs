//! An SMTP server that stops answering in the middle of a transaction does
//! not hold an email send forever: the send ends as retryable when its
//! deadline passes, the stalled connection is closed rather than pooled,
//! and the retry goes out on a fresh connection. A connection that
//! completed a transaction is reused.
//!
//! The server is scripted here (a few lines of SMTP) so that it can stall
//! exactly after the message body, where a reply is owed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dropline_adapters::delivery::channel::{EmailConfig, EmailSender};
use dropline_adapters::delivery::notification::{Member, ResolvedContact, SourcePos};
use dropline_adapters::delivery::scheduler::SendOutcome;
use dropline_adapters::delivery::{Message, MessageKind, seed};
use dropline_operators::model::{Channel, Priority, Status};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Seconds after which a send still waiting counts as hung.
const HANG_GUARD_S: u64 = 60;

/// What the scripted server saw.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// A connection was accepted (its number, from 1).
    Connection(usize),
    /// A message body ended on that connection and was answered.
    Accepted(usize),
    /// A message body ended on that connection and was left unanswered.
    Stalled(usize),
    /// That connection was closed by the client.
    Closed(usize),
}

/// Answers SMTP like a relay, except that on connection 1 it never
/// answers the end of the message body.
async fn scripted_server() -> (u16, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    let connections = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let n = connections.fetch_add(1, Ordering::SeqCst) + 1;
            let tx = tx.clone();
            let _ = tx.send(Seen::Connection(n));
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 scripted ESMTP\r\n").await.unwrap();
                let mut in_body = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_body {
                        if line == "." {
                            in_body = false;
                            if n == 1 {
                                let _ = tx.send(Seen::Stalled(n));
                                continue;
                            }
                            let _ = tx.send(Seen::Accepted(n));
                            write.write_all(b"250 queued\r\n").await.unwrap();
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250 scripted\r\n",
                        "DATA" => {
                            in_body = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => b"221 bye\r\n",
                        _ => b"250 ok\r\n",
                    };
                    if write.write_all(reply).await.is_err() {
                        break;
                    }
                }
                let _ = tx.send(Seen::Closed(n));
            });
        }
    });
    (port, rx)
}

fn message(i: u128) -> Message {
    let n = seed::notification(
        i,
        "1Z0000001",
        "ORD-1",
        "buyer-1",
        Channel::Email,
        Priority::Critical,
        Status::OutForDelivery,
    );
    Message::new(
        Channel::Email,
        MessageKind::Single,
        vec![Member {
            notification: n,
            source: SourcePos {
                channel: Channel::Email,
                priority: Priority::Critical,
                partition: 0,
                offset: 0,
                log_time_ms: 0,
            },
            contact: ResolvedContact {
                address: "buyer1@example.test".into(),
                time_zone: "UTC".into(),
                locale: "en-US".into(),
            },
            raw: Vec::new(),
        }],
    )
}

#[tokio::test]
async fn a_stalled_smtp_server_does_not_hold_a_send_and_its_connection_is_not_reused() {
    let (port, mut seen) = scripted_server().await;
    let sender = EmailSender::new(EmailConfig {
        host: "127.0.0.1".into(),
        port,
        from: "Dropline <notify@dropline.test>".into(),
        unsubscribe_base_url: "http://127.0.0.1:9".into(),
        pool_connections_max: 2,
        // The deadline the stalled send runs into (the behaviour under
        // test, not a performance bound).
        timeout_ms: 300,
    });

    let first = message(1);
    // A guard that turns a hang (the defect this test is about) into a
    // failure; not a performance bound.
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(HANG_GUARD_S),
        sender.send(&first, "token"),
    )
    .await
    .expect("the send waited on the stalled server past its deadline");
    match &outcome {
        SendOutcome::Retryable { error, .. } => {
            assert!(error.contains("no complete answer"), "{error}");
        }
        other => panic!("a stalled send must end as retryable, got {other:?}"),
    }
    assert_eq!(seen.recv().await, Some(Seen::Connection(1)));
    assert_eq!(seen.recv().await, Some(Seen::Stalled(1)));
    // The stalled connection was dropped, not pooled.
    assert_eq!(seen.recv().await, Some(Seen::Closed(1)));

    // The retry of the same message goes out on a new connection.
    assert_eq!(sender.send(&first, "token").await, SendOutcome::Accepted);
    assert_eq!(seen.recv().await, Some(Seen::Connection(2)));
    assert_eq!(seen.recv().await, Some(Seen::Accepted(2)));

    // A healthy connection is reused for the next message.
    assert_eq!(
        sender.send(&message(2), "token").await,
        SendOutcome::Accepted
    );
    assert_eq!(seen.recv().await, Some(Seen::Accepted(2)));
    assert!(seen.try_recv().is_err(), "no new connection was needed");
}
