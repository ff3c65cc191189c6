//! Webhook silence detection for one carrier.
//!
//! Why: carriers' webhook systems fail silently (a disabled subscription,
//! an outage on their side); the only symptom is that nothing arrives.
//! When a carrier that pushes webhooks has active shipments and no valid
//! webhook has arrived for `threshold_ms`, its shipments are promoted to
//! polling at their state's cadence; the first valid webhook demotes them
//! back to backstop polling. The threshold must exceed the longest normal
//! quiet spell of the carrier's webhooks at this adapter's volume.

/// Silence state of one carrier.
#[derive(Debug, Clone)]
pub(crate) struct Silence {
    last_webhook_ms: i64,
    silent: bool,
}

impl Silence {
    /// Starts as if a webhook had just arrived at `now_ms`.
    pub(crate) fn new(now_ms: i64) -> Silence {
        Silence {
            last_webhook_ms: now_ms,
            silent: false,
        }
    }

    pub(crate) fn is_silent(&self) -> bool {
        self.silent
    }

    /// A valid webhook arrived; true if it ended a silence.
    pub(crate) fn on_webhook(&mut self, now_ms: i64) -> bool {
        self.last_webhook_ms = self.last_webhook_ms.max(now_ms);
        std::mem::replace(&mut self.silent, false)
    }

    /// When the silence would begin (None while silent).
    pub(crate) fn deadline(&self, threshold_ms: u64) -> Option<i64> {
        (!self.silent).then(|| self.last_webhook_ms.saturating_add(threshold_ms as i64))
    }

    /// True if the carrier just became silent (`active`: it has shipments
    /// that should be producing webhooks). With no active shipment the
    /// clock restarts: quiet is then expected.
    pub(crate) fn check(&mut self, now_ms: i64, threshold_ms: u64, active: bool) -> bool {
        if self.silent || now_ms < self.last_webhook_ms.saturating_add(threshold_ms as i64) {
            return false;
        }
        if !active {
            self.last_webhook_ms = now_ms;
            return false;
        }
        self.silent = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_begins_after_the_threshold_and_ends_with_a_webhook() {
        let mut s = Silence::new(0);
        assert_eq!(s.deadline(100), Some(100));
        assert!(!s.check(99, 100, true));
        assert!(!s.check(100, 100, false), "nothing active: no silence");
        assert_eq!(s.deadline(100), Some(200));
        assert!(s.check(200, 100, true));
        assert!(s.is_silent());
        assert!(!s.check(300, 100, true), "reported once");
        assert_eq!(s.deadline(100), None);
        assert!(s.on_webhook(310));
        assert!(!s.is_silent());
        assert!(!s.on_webhook(320));
    }
}
