//! Reading carrier date and time text and turning a local wall time into an
//! instant.
//!
//! Carriers disagree on every part of this: UPS splits the local date and
//! time into `YYYYMMDD` and `HHMMSS` fields and sends the GMT time as either
//! `09:41:00` or `74700`; USPS sends a local time with no offset and an
//! offset that may read `-05:00` or `-7:00`; FedEx and DHL send ISO text with
//! or without an offset. The parsers here are hand-written for those exact
//! shapes (they are on the webhook hot path and much cheaper than a format
//! string interpreter), and every one returns `None` rather than panicking.

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike,
};
use chrono_tz::Tz;

/// The widest offset any zone uses west of UTC, in minutes (UTC-12:00).
pub(crate) const OFFSET_MINUTES_MIN: i32 = -12 * 60;
/// The widest offset any zone uses east of UTC, in minutes (UTC+14:00).
pub(crate) const OFFSET_MINUTES_MAX: i32 = 14 * 60;

const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_DAY: i64 = 24 * 60 * MS_PER_MINUTE;

/// When a scan happened, as far as the payload lets us know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ScanTime {
    /// The instant, epoch milliseconds UTC.
    pub(crate) occurred_at_ms: i64,
    /// The local wall time the carrier meant.
    pub(crate) local: NaiveDateTime,
    /// Offset of `local` from UTC in minutes, if known or inferred.
    pub(crate) utc_offset_minutes: Option<i16>,
}

impl ScanTime {
    /// A local time with a known offset.
    pub(crate) fn with_offset(local: NaiveDateTime, offset_minutes: i32) -> ScanTime {
        let utc_ms = local.and_utc().timestamp_millis() - i64::from(offset_minutes) * MS_PER_MINUTE;
        ScanTime {
            occurred_at_ms: utc_ms,
            local,
            utc_offset_minutes: i16::try_from(offset_minutes).ok(),
        }
    }

    /// A local time whose offset nobody told us: read it as UTC and say the
    /// offset is unknown. The last resort, documented in docs/CARRIERS.md.
    pub(crate) fn offset_unknown(local: NaiveDateTime) -> ScanTime {
        ScanTime {
            occurred_at_ms: local.and_utc().timestamp_millis(),
            local,
            utc_offset_minutes: None,
        }
    }

    /// A local time in a known zone. A time inside a spring-forward gap
    /// (02:30 on a US changeover day never happens) is read with the offset
    /// in force before the gap, which is what a scanner whose clock has not
    /// yet jumped would have meant. A time in the repeated fall-back hour
    /// takes `prefer_utc_ms` when one of the two readings matches it (a
    /// carrier GMT field), else the earlier reading.
    pub(crate) fn in_zone(local: NaiveDateTime, zone: Tz, prefer_utc_ms: Option<i64>) -> ScanTime {
        match zone.from_local_datetime(&local) {
            LocalResult::Single(t) => Self::from_zoned(local, &t),
            LocalResult::Ambiguous(early, late) => {
                let pick_late = prefer_utc_ms == Some(late.timestamp_millis());
                Self::from_zoned(local, if pick_late { &late } else { &early })
            }
            LocalResult::None => {
                // Offset in force just before the gap: the offset at the
                // same wall time a day earlier, in UTC terms.
                let before = local.and_utc() - chrono::Duration::days(1);
                let offset = zone.offset_from_utc_datetime(&before.naive_utc());
                Self::with_offset(local, offset.fix().local_minus_utc() / 60)
            }
        }
    }

    fn from_zoned(local: NaiveDateTime, t: &DateTime<Tz>) -> ScanTime {
        let offset_minutes = t.offset().fix().local_minus_utc() / 60;
        ScanTime {
            occurred_at_ms: t.timestamp_millis(),
            local,
            utc_offset_minutes: i16::try_from(offset_minutes).ok(),
        }
    }

    /// A local time and a UTC instant from separate fields: the offset is
    /// their difference, rounded to the quarter hour. A GMT field that puts
    /// the offset outside what any zone uses is off by whole days (USPS
    /// evening scans carry the local date); it is moved by 24 h until the
    /// offset is plausible. Returns `None` if no shift makes it plausible.
    pub(crate) fn from_local_and_utc(local: NaiveDateTime, utc_ms: i64) -> Option<ScanTime> {
        let local_ms = local.and_utc().timestamp_millis();
        let mut utc = utc_ms;
        for _ in 0..2 {
            let diff = local_ms - utc;
            if diff > i64::from(OFFSET_MINUTES_MAX) * MS_PER_MINUTE {
                utc += MS_PER_DAY;
            } else if diff < i64::from(OFFSET_MINUTES_MIN) * MS_PER_MINUTE {
                utc -= MS_PER_DAY;
            }
        }
        let diff_minutes = (local_ms - utc) / MS_PER_MINUTE;
        let quarter = 15;
        let rounded = (diff_minutes + diff_minutes.signum() * (quarter / 2)) / quarter * quarter;
        let offset = i32::try_from(rounded).ok()?;
        if !(OFFSET_MINUTES_MIN..=OFFSET_MINUTES_MAX).contains(&offset) {
            return None;
        }
        Some(Self::with_offset(local, offset))
    }

    /// `YYYY-MM-DDTHH:MM:SS`, the model's `local_time` form.
    pub(crate) fn local_text(&self) -> String {
        // Plain integer formatting: chrono's strftime interpreter costs more
        // than the rest of an event's normalization.
        let (d, t) = (self.local.date(), self.local.time());
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            d.year(),
            d.month(),
            d.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

fn digits(text: &[u8]) -> Option<u32> {
    if text.is_empty() || text.len() > 9 {
        return None;
    }
    let mut n: u32 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(b - b'0');
    }
    Some(n)
}

/// `YYYYMMDD` (UPS `date`, `gmtDate`).
pub(crate) fn parse_compact_date(text: &str) -> Option<NaiveDate> {
    let b = text.trim().as_bytes();
    if b.len() != 8 {
        return None;
    }
    let year = i32::try_from(digits(&b[0..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(&b[4..6])?, digits(&b[6..8])?)
}

/// A UPS time: `HHMMSS`, `HHMM`, `HH:MM:SS`, `HH:MM`, or the OpenAPI
/// example's `74700` (six digits with the leading zero dropped).
pub(crate) fn parse_clock(text: &str) -> Option<NaiveTime> {
    let t = text.trim();
    if t.contains(':') {
        let mut parts = t.split(':');
        let h = digits(parts.next()?.as_bytes())?;
        let m = digits(parts.next()?.as_bytes())?;
        let s = match parts.next() {
            Some(s) => digits(s.as_bytes())?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        return NaiveTime::from_hms_opt(h, m, s);
    }
    let b = t.as_bytes();
    let n = digits(b)?;
    match b.len() {
        // HHMMSS, or HMMSS with the leading zero dropped.
        5 | 6 => NaiveTime::from_hms_opt(n / 10_000, n / 100 % 100, n % 100),
        // HHMM, or HMM.
        3 | 4 => NaiveTime::from_hms_opt(n / 100, n % 100, 0),
        _ => None,
    }
}

/// An ISO date-time, with or without an offset:
/// `2024-11-22T13:58:00`, `2024-11-22T13:58:00.000`, `2024-08-20T12:41:57-04:00`,
/// `2024-11-22T18:58:00Z`, `2024-11-22 13:58:00`. Returns the wall time as
/// written and the offset in minutes if one is present.
pub(crate) fn parse_iso(text: &str) -> Option<(NaiveDateTime, Option<i32>)> {
    let t = text.trim();
    let b = t.as_bytes();
    if b.len() < 16 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    let year = i32::try_from(digits(&b[0..4])?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, digits(&b[5..7])?, digits(&b[8..10])?)?;
    if b[13] != b':' {
        return None;
    }
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let mut i = 16;
    let mut second = 0;
    if b.get(i) == Some(&b':') {
        second = digits(b.get(i + 1..i + 3)?)?;
        i += 3;
    }
    let mut nanos = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let frac = b.get(start..end.min(start + 9))?;
        let value = digits(frac)?;
        nanos = value * 10u32.pow(9 - u32::try_from(frac.len()).ok()?);
        i = end;
    }
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let offset = match t.get(i..) {
        None | Some("") => None,
        Some(rest) => Some(parse_offset(rest)?),
    };
    Some((date.and_time(time), offset))
}

/// An offset: `Z`, `-05:00`, `-7:00`, `+0530`, `-05`, `-5`. Minutes east of
/// UTC; `None` if unreadable or outside what any zone uses.
pub(crate) fn parse_offset(text: &str) -> Option<i32> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let (sign, rest) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (digits(h.as_bytes())?, digits(m.as_bytes())?),
        None if rest.len() == 4 => (
            digits(&rest.as_bytes()[..2])?,
            digits(&rest.as_bytes()[2..])?,
        ),
        None if rest.len() <= 2 => (digits(rest.as_bytes())?, 0),
        None => return None,
    };
    if h > 14 || m > 59 {
        return None;
    }
    let minutes = sign * i32::try_from(h * 60 + m).ok()?;
    (OFFSET_MINUTES_MIN..=OFFSET_MINUTES_MAX)
        .contains(&minutes)
        .then_some(minutes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(text: &str) -> NaiveDateTime {
        parse_iso(text).unwrap().0
    }

    #[test]
    fn ups_clock_shapes() {
        let t = |h, m, s| NaiveTime::from_hms_opt(h, m, s);
        assert_eq!(parse_clock("071356"), t(7, 13, 56));
        assert_eq!(parse_clock("09:41:00"), t(9, 41, 0));
        assert_eq!(parse_clock("74700"), t(7, 47, 0));
        assert_eq!(parse_clock("1545"), t(15, 45, 0));
        assert_eq!(parse_clock("9:05"), t(9, 5, 0));
        assert_eq!(parse_clock("250000"), None);
        assert_eq!(parse_clock("ab:cd"), None);
        assert_eq!(parse_clock(""), None);
        assert_eq!(parse_clock("1"), None);
    }

    #[test]
    fn compact_dates() {
        assert_eq!(
            parse_compact_date("20210210"),
            NaiveDate::from_ymd_opt(2021, 2, 10)
        );
        assert_eq!(parse_compact_date("20210230"), None);
        assert_eq!(parse_compact_date("2021021"), None);
    }

    #[test]
    fn offsets_in_every_shape() {
        assert_eq!(parse_offset("-05:00"), Some(-300));
        assert_eq!(parse_offset("-7:00"), Some(-420));
        assert_eq!(parse_offset("+05:30"), Some(330));
        assert_eq!(parse_offset("+0545"), Some(345));
        assert_eq!(parse_offset("-5"), Some(-300));
        assert_eq!(parse_offset("Z"), Some(0));
        assert_eq!(parse_offset("-15:00"), None);
        assert_eq!(parse_offset("05:00"), None);
        assert_eq!(parse_offset("-0x:00"), None);
    }

    #[test]
    fn iso_with_and_without_offset() {
        let (local, off) = parse_iso("2024-08-20T12:41:57-04:00").unwrap();
        assert_eq!(local.to_string(), "2024-08-20 12:41:57");
        assert_eq!(off, Some(-240));
        assert_eq!(parse_iso("2024-08-15T00:00:00").unwrap().1, None);
        assert_eq!(parse_iso("2024-11-22T18:58:00Z").unwrap().1, Some(0));
        let (frac, _) = parse_iso("2024-11-22T13:58:00.250").unwrap();
        assert_eq!(frac.and_utc().timestamp_subsec_millis(), 250);
        assert_eq!(
            parse_iso("2024-11-22T13:58").unwrap().0.to_string(),
            "2024-11-22 13:58:00"
        );
        assert!(parse_iso("2024-13-22T13:58:00").is_none());
        assert!(parse_iso("2024-11-22T13:58:00+99:00").is_none());
        assert!(parse_iso("yesterday").is_none());
        assert!(parse_iso("2024-11-22T13:58:00.").is_none());
    }

    #[test]
    fn zone_resolution_around_us_dst_changes() {
        let ny = chrono_tz::America::New_York;
        let before = ScanTime::in_zone(dt("2024-03-10T01:30:00"), ny, None);
        assert_eq!(before.utc_offset_minutes, Some(-300));
        let after = ScanTime::in_zone(dt("2024-03-10T03:30:00"), ny, None);
        assert_eq!(after.utc_offset_minutes, Some(-240));
        assert_eq!(after.occurred_at_ms - before.occurred_at_ms, 3_600_000);
        // 02:30 does not exist that day: read with the pre-gap offset.
        let gap = ScanTime::in_zone(dt("2024-03-10T02:30:00"), ny, None);
        assert_eq!(gap.utc_offset_minutes, Some(-300));
        assert_eq!(
            gap.occurred_at_ms,
            dt("2024-03-10T07:30:00").and_utc().timestamp_millis()
        );
        // 01:30 happens twice on 2024-11-03: earlier unless told otherwise.
        let amb = dt("2024-11-03T01:30:00");
        let early = ScanTime::in_zone(amb, ny, None);
        assert_eq!(early.utc_offset_minutes, Some(-240));
        let late_ms = dt("2024-11-03T06:30:00").and_utc().timestamp_millis();
        let late = ScanTime::in_zone(amb, ny, Some(late_ms));
        assert_eq!(late.utc_offset_minutes, Some(-300));
        assert_eq!(late.occurred_at_ms, late_ms);
    }

    #[test]
    fn gmt_a_day_early_is_corrected() {
        // 20:15 in New York on Nov 22 is 01:15Z on Nov 23; the carrier's GMT
        // field says Nov 22 01:15Z (the local date).
        let local = dt("2024-11-22T20:15:00");
        let wrong = dt("2024-11-22T01:15:00").and_utc().timestamp_millis();
        let t = ScanTime::from_local_and_utc(local, wrong).unwrap();
        assert_eq!(t.utc_offset_minutes, Some(-300));
        assert_eq!(
            t.occurred_at_ms,
            dt("2024-11-23T01:15:00").and_utc().timestamp_millis()
        );
        let right = dt("2024-11-22T18:58:00").and_utc().timestamp_millis();
        let t = ScanTime::from_local_and_utc(dt("2024-11-22T13:58:00"), right).unwrap();
        assert_eq!(t.utc_offset_minutes, Some(-300));
        assert_eq!(t.local_text(), "2024-11-22T13:58:00");
    }
}
