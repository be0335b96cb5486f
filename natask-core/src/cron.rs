//! The cron grammar of nats-server's repeating message schedules
//! (`Nats-Schedule`), checked by `#[task(cron = "..")]` at compile time and
//! by `Recurring::set` (recurring schedules made at run time).

use std::fmt;

/// An expression nats-server would refuse as a repeating `Nats-Schedule`;
/// its message says why and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSyntaxError {
    message: String,
}

impl fmt::Display for CronSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CronSyntaxError {}

const CRON_FORMS: &str = "write six fields `sec min hour day-of-month month day-of-week` \
     (e.g. `0 */5 * * * *`), `@every <duration>` (e.g. `@every 30s`) or one of \
     `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`";

/// Checks `text` against the `Nats-Schedule` grammar of nats-server 2.14+
/// for repeating schedules
/// (its `server/scheduler.go`; checked against nats-server 2.15.1 in
/// `natask-runtime/tests/it/cron.rs`), so that a typo fails the build (in
/// `#[task(cron = "..")]`) or the call (`Recurring::set`) rather than
/// later, on the server.
pub fn check(text: &str) -> Result<(), CronSyntaxError> {
    check_str(text).map_err(|message| CronSyntaxError { message })
}

/// Checks a time zone for the repeating schedule `cron` (already
/// [`check`]ed): an IANA name such as `Europe/Berlin` or `UTC`
/// (`Nats-Schedule-Time-Zone`, nats-server 2.14+), for six-field and
/// predefined (`@daily`) schedules; nats-server refuses a zone on `@every`.
/// Only the form is checked here: whether the name exists is the server's
/// time-zone database's to say.
pub fn check_time_zone(cron: &str, zone: &str) -> Result<(), CronSyntaxError> {
    let error = |message: String| Err(CronSyntaxError { message });
    if cron.starts_with("@every ") {
        return error(format!(
            "`{cron}` runs at a fixed interval, which no time zone changes, and nats-server refuses a \
             time zone on it; remove the time zone, or write a six-field schedule"
        ));
    }
    let well_formed = !zone.is_empty()
        && zone.len() <= 64
        && zone.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c))
        });
    if !well_formed {
        return error(format!(
            "`{zone}` is not a time zone name; write an IANA name such as `Europe/Berlin`, \
             `America/New_York` or `UTC`"
        ));
    }
    Ok(())
}

fn check_str(text: &str) -> Result<(), String> {
    let t = text.trim();
    if t != text || t.is_empty() {
        return Err(format!("`{text}` is not a cron schedule; {CRON_FORMS}"));
    }
    if let Some(rest) = t.strip_prefix("@every ") {
        return match go_duration_ns(rest) {
            Some(ns) if ns >= 1_000_000_000 => Ok(()),
            Some(_) => Err(format!(
                "`@every {rest}` repeats more often than once a second, the shortest interval nats-server accepts; write e.g. `@every 1s`"
            )),
            None => Err(format!(
                "`{rest}` in `{text}` is not a duration; write a number and a unit `s`, `m` or `h`, e.g. `@every 90s` or `@every 1h30m`"
            )),
        };
    }
    if t.starts_with('@') {
        return match t {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight"
            | "@hourly" => Ok(()),
            "@at" => Err(format!(
                "`{text}` is a one-off time; `cron` takes a repeating schedule (enqueue with `enqueue_at` for one run); {CRON_FORMS}"
            )),
            _ if t.starts_with("@at ") => Err(format!(
                "`{text}` is a one-off time; `cron` takes a repeating schedule (enqueue with `enqueue_at` for one run); {CRON_FORMS}"
            )),
            _ => Err(format!("`{text}` is not a cron schedule; {CRON_FORMS}")),
        };
    }
    let fields: Vec<&str> = t.split_whitespace().collect();
    if fields.len() != 6 {
        let hint = if fields.len() == 5 {
            format!(
                " (nats-server cron has a seconds field first: write `0 {}`)",
                fields.join(" ")
            )
        } else {
            String::new()
        };
        return Err(format!(
            "`{text}` has {} fields, but a cron schedule has 6{hint}; {CRON_FORMS}",
            fields.len()
        ));
    }
    const MONTHS: &[&str] = &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    let specs: [(&str, u32, u32, &[&str], bool); 6] = [
        ("second", 0, 59, &[], false),
        ("minute", 0, 59, &[], false),
        ("hour", 0, 23, &[], false),
        ("day-of-month", 1, 31, &[], true),
        ("month", 1, 12, MONTHS, false),
        ("day-of-week", 0, 6, DAYS, true),
    ];
    for (field, (what, min, max, names, question)) in fields.iter().zip(specs) {
        check_cron_field(field, min, max, names, question)
            .map_err(|why| format!("the {what} field `{field}` of `{text}` {why}; {CRON_FORMS}"))?;
    }
    Ok(())
}

/// One field: a comma-separated list of `*`, `?` (day fields), `n`, `a-b`,
/// each optionally `/step`; names (`JAN`, `MON`) count from `min`.
fn check_cron_field(
    field: &str,
    min: u32,
    max: u32,
    names: &[&str],
    question: bool,
) -> Result<(), String> {
    let value = |v: &str| -> Result<u32, String> {
        let n = match names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            Some(i) => u32::try_from(i).expect("a dozen names") + min,
            None => v
                .parse::<u32>()
                .map_err(|_| format!("has `{v}`, which is not a number"))?,
        };
        if n < min || n > max {
            return Err(format!("has `{v}`, outside {min}-{max}"));
        }
        Ok(n)
    };
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let (low, high) = match range {
            "*" => (min, max),
            "?" if question => (min, max),
            _ => match range.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None => {
                    let n = value(range)?;
                    // `n/step` runs from n to the end of the field
                    (n, if step.is_some() { max } else { n })
                }
            },
        };
        if low > high {
            return Err(format!("has the range `{range}`, which runs backwards"));
        }
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(s) if s > 0 => {}
                _ => {
                    return Err(format!(
                        "has the step `/{step}`, which is not a positive number"
                    ))
                }
            }
        }
    }
    Ok(())
}

/// Go's `time.ParseDuration` (what the server reads after `@every`), in
/// nanoseconds; `None` if it is not one. Signs are refused.
fn go_duration_ns(text: &str) -> Option<u128> {
    let mut rest = text;
    let mut total: f64 = 0.0;
    if rest.is_empty() || rest == "0" {
        return (rest == "0").then_some(0);
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let number: f64 = number.parse().ok().filter(|_| !number.is_empty())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let ns = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += number * ns;
        rest = tail;
    }
    (total.is_finite() && total < 9.3e18).then_some(total as u128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_go_with_calendar_schedules_only() {
        assert!(check_time_zone("0 0 6 * * *", "Europe/Berlin").is_ok());
        assert!(check_time_zone("@daily", "UTC").is_ok());
        assert!(check_time_zone("0 0 6 * * *", "America/Argentina/Buenos_Aires").is_ok());
        assert!(check_time_zone("0 0 6 * * *", "Etc/GMT+5").is_ok());
        let every = check_time_zone("@every 1h", "UTC").unwrap_err().to_string();
        assert!(every.contains("fixed interval"), "{every}");
        for bad in ["", "Europe/", "/UTC", "Europe Berlin", "Europe//Berlin"] {
            let e = check_time_zone("0 0 6 * * *", bad).unwrap_err().to_string();
            assert!(e.contains("not a time zone name"), "{bad}: {e}");
        }
    }

    /// Every expression here was published to nats-server 2.15.1 as a
    /// `Nats-Schedule`: the server took the first list and refused the
    /// second with error 10189 ("message schedules pattern is invalid").
    #[test]
    fn cron_grammar_follows_the_server() {
        for ok in [
            "@every 1s",
            "@every 1m30s",
            "@every 1h",
            "@every 1.5s",
            "@every 1500ms",
            "* * * * * *",
            "*/2 * * * * *",
            "0  0 0 * * *",
            "@hourly",
            "@daily",
            "@midnight",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
            "0 0 0 ? * MON",
            "0 0 0 * * mon-fri",
            "0 0 0 1 JAN *",
            "0 0 0 29 2 *",
            "0 0 0 * * SUN,SAT",
            "0 0 0 * * 0-6/2",
            "0 5/15 * * * *",
            "0 0 0 1-31/2 * ?",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "@every 500ms",
            "@every 999ms",
            "@every 0s",
            "@every -1s",
            "@every 1d",
            "@every",
            "* * * * *",
            "0 0 * * * * *",
            "0 0 0 L * *",
            "bogus",
            "0 0 25 * * *",
            "0 60 * * * *",
            "0 0 0 * * 7",
            "@reboot",
            "@HOURLY",
            "@at 2020-01-01T00:00:00Z",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check("*/5 * * * *").unwrap_err().to_string(),
            "`*/5 * * * *` has 5 fields, but a cron schedule has 6 (nats-server cron has a seconds field first: \
             write `0 */5 * * * *`); write six fields `sec min hour day-of-month month day-of-week` (e.g. `0 */5 * * * *`), \
             `@every <duration>` (e.g. `@every 30s`) or one of `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, \
             `@midnight`, `@hourly`"
        );
    }
}
