//! Times as JetStream and natask's headers write them: Unix milliseconds
//! and RFC 3339.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 before it, `u64::MAX` past it).
pub(crate) fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX))
}

/// The time `ms` milliseconds after the Unix epoch.
pub(crate) fn from_unix_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The time `nanos` nanoseconds after the Unix epoch, as JetStream stamps
/// a stored message (`None` before the epoch or past `u64` nanoseconds).
pub(crate) fn from_unix_nanos(nanos: i128) -> Option<SystemTime> {
    let nanos = u64::try_from(nanos).ok()?;
    Some(UNIX_EPOCH + Duration::from_nanos(nanos))
}

/// `t` in RFC 3339, UTC, with milliseconds (`2026-03-01T12:00:00.250Z`);
/// the server honours the fraction. `None` past the year 9999.
pub(crate) fn rfc3339(t: SystemTime) -> Option<String> {
    let since = t.duration_since(UNIX_EPOCH).ok()?;
    let secs = since.as_secs();
    let (days, time) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    (year <= 9999).then(|| {
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            time / 3600,
            time % 3600 / 60,
            time % 60,
            since.subsec_millis()
        )
    })
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn due_times_are_rfc3339_utc_with_millis() {
        assert_eq!(rfc3339(at(0, 0)).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(at(951_782_400, 7)).unwrap(),
            "2000-02-29T00:00:00.007Z"
        );
        assert_eq!(
            rfc3339(at(1_772_366_400, 250)).unwrap(),
            "2026-03-01T12:00:00.250Z"
        );
        assert_eq!(
            rfc3339(at(253_402_300_799, 999)).unwrap(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(rfc3339(at(253_402_300_800, 0)), None);
    }

    #[test]
    fn every_day_of_eight_centuries_follows_the_previous() {
        let month_len = |y: u64, m: u64| match m {
            2 if y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400)) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut previous = civil_from_days(0);
        assert_eq!(previous, (1970, 1, 1));
        for days in 1..146_097 * 2 {
            let (y, m, d) = civil_from_days(days);
            let last = previous.2 == month_len(previous.0, previous.1);
            let next_day = !last && (y, m, d) == (previous.0, previous.1, previous.2 + 1);
            let next_month =
                last && previous.1 < 12 && (y, m, d) == (previous.0, previous.1 + 1, 1);
            let next_year = last && previous.1 == 12 && (y, m, d) == (previous.0 + 1, 1, 1);
            assert!(
                next_day || next_month || next_year,
                "{previous:?} -> {:?}",
                (y, m, d)
            );
            previous = (y, m, d);
        }
    }
}
