//! Quiet hours in the buyer's time zone: non-critical messages are held
//! until the morning rather than waking someone up.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Local hours during which non-critical messages wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuietHours {
    /// First quiet hour (local, 0..=23), e.g. 21.
    pub start_hour: u32,
    /// First hour sends resume (local, 0..=23), e.g. 8.
    pub end_hour: u32,
}

impl Default for QuietHours {
    fn default() -> Self {
        QuietHours {
            start_hour: 21,
            end_hour: 8,
        }
    }
}

impl QuietHours {
    fn is_quiet_hour(&self, hour: u32) -> bool {
        if self.start_hour == self.end_hour {
            false
        } else if self.start_hour < self.end_hour {
            hour >= self.start_hour && hour < self.end_hour
        } else {
            hour >= self.start_hour || hour < self.end_hour
        }
    }

    /// If `now_ms` falls in quiet hours in `time_zone`, the instant (ms)
    /// they end; `None` when sending is fine now. An unknown zone is
    /// treated as UTC.
    pub fn release_at_ms(&self, now_ms: u64, time_zone: &str) -> Option<u64> {
        let tz: Tz = time_zone.parse().unwrap_or(Tz::UTC);
        let utc = DateTime::<Utc>::from_timestamp_millis(i64::try_from(now_ms).ok()?)?;
        let local = utc.with_timezone(&tz);
        if !self.is_quiet_hour(local.hour()) {
            return None;
        }
        let mut day = local.date_naive();
        if local.hour() >= self.end_hour {
            day += Duration::days(1);
        }
        let end = NaiveTime::from_hms_opt(self.end_hour, 0, 0)?;
        // A DST gap at the end hour: take the earliest valid instant after.
        let release = tz
            .from_local_datetime(&day.and_time(end))
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&day.and_time(end + Duration::hours(1)))
                    .earliest()
            })?;
        u64::try_from(release.timestamp_millis()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> u64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis() as u64
    }

    #[test]
    fn late_evening_in_chicago_waits_for_eight_local() {
        let q = QuietHours::default();
        // 23:30 in Chicago (CDT, UTC-5) on 2025-06-10.
        let now = ms("2025-06-11T04:30:00Z");
        assert_eq!(
            q.release_at_ms(now, "America/Chicago"),
            Some(ms("2025-06-11T13:00:00Z"))
        );
        // Early morning, same night.
        let early = ms("2025-06-11T08:00:00Z");
        assert_eq!(
            q.release_at_ms(early, "America/Chicago"),
            Some(ms("2025-06-11T13:00:00Z"))
        );
        // Noon in Chicago is not quiet; it is 17:00 UTC.
        assert_eq!(
            q.release_at_ms(ms("2025-06-11T17:00:00Z"), "America/Chicago"),
            None
        );
    }
}
