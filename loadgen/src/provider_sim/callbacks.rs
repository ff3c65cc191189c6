//! Posting back to the node: delivery receipts to each message's
//! `StatusCallback`, and inbound messages (STOP replies) to the configured
//! inbound URL, form-encoded as the SMS provider does.
//!
//! Receipts go through a bounded queue drained by one task, so a slow node
//! cannot make the send endpoint slow; a full queue drops and counts.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::routes::InboundSms;
use super::state::SimState;

/// One form post to make.
#[derive(Debug)]
pub(crate) struct Callback {
    pub(crate) url: String,
    pub(crate) form: Vec<(String, String)>,
}

/// Why an inbound message could not be posted.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// No inbound URL is configured.
    #[error("no inbound URL is configured")]
    NoInboundUrl,
    /// The post failed.
    #[error("posting the inbound message to {url} failed: {source}")]
    Post {
        /// The URL posted to.
        url: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
}

#[derive(Clone)]
pub(crate) struct CallbackQueue {
    tx: mpsc::Sender<Callback>,
    client: reqwest::Client,
}

impl CallbackQueue {
    /// Starts the posting task.
    pub(crate) fn start(sim: Arc<SimState>) -> CallbackQueue {
        let (tx, mut rx) = mpsc::channel::<Callback>(sim.config.callback_queue_max.max(1));
        let client = reqwest::Client::new();
        let poster = client.clone();
        tokio::spawn(async move {
            while let Some(cb) = rx.recv().await {
                let ok = poster
                    .post(&cb.url)
                    .form(&cb.form)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                let mut g = sim.lock();
                if ok {
                    g.stats.receipts_posted += 1;
                } else {
                    g.stats.receipts_failed += 1;
                }
            }
        });
        CallbackQueue { tx, client }
    }

    /// Queues a receipt; drops (and counts) it when the queue is full.
    pub(crate) fn push(&self, sim: &SimState, cb: Callback) {
        if self.tx.try_send(cb).is_err() {
            sim.lock().stats.receipts_failed += 1;
        }
    }

    /// Records and posts an inbound message now; returns the node's status.
    pub(crate) async fn post_inbound(
        &self,
        sim: &SimState,
        msg: &InboundSms,
    ) -> Result<u16, InboundError> {
        sim.record_inbound(&msg.from, &msg.to, &msg.body);
        let url = sim
            .config
            .inbound_url
            .clone()
            .ok_or(InboundError::NoInboundUrl)?;
        let n = sim.lock().stats.inbound_posted;
        let form = [
            ("MessageSid", format!("SMin{n:030}")),
            ("AccountSid", sim.config.sms_account_sid.clone()),
            ("From", msg.from.clone()),
            ("To", msg.to.clone()),
            ("Body", msg.body.clone()),
        ];
        let resp = self
            .client
            .post(&url)
            .form(&form)
            .send()
            .await
            .map_err(|source| InboundError::Post {
                url: url.clone(),
                source,
            })?;
        sim.lock().stats.inbound_posted += 1;
        Ok(resp.status().as_u16())
    }
}
