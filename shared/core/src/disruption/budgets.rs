//! NodePool disruption budgets: how many of a pool's nodes may be disrupting at once, for a
//! reason, at a moment. A budget with a `schedule` (cron, UTC) applies for `duration` after each
//! time the schedule fires; several budgets that apply give the smallest allowance. Nodes
//! already disrupting (being replaced, drained or deleted) count against it.

use crate::api::{BudgetNodes, NodePool, parse_budget_nodes, parse_duration};
use crate::pod::Millis;

/// Why a node is disrupted, as budgets name reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Empty,
    Underutilized,
    Drifted,
    Expired,
}

impl Reason {
    /// Karpenter's name, used in budgets' `reasons`.
    pub fn budget_name(self) -> &'static str {
        match self {
            Reason::Empty => "Empty",
            Reason::Underutilized => "Underutilized",
            Reason::Drifted => "Drifted",
            Reason::Expired => "Expired",
        }
    }

    /// The name in events, audit records and the simulator's timeline.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Empty => "empty",
            Reason::Underutilized => "underutilized",
            Reason::Drifted => "drifted",
            Reason::Expired => "expired",
        }
    }
}

/// How many more of the pool's `total` nodes may start disrupting for `reason` at `now`, with
/// `disrupting` of them disrupting already. Percentages round up, as Karpenter's do. A budget
/// that cannot be read allows nothing (validation refuses such pools before this).
pub fn allowed(pool: &NodePool, reason: Reason, total: usize, disrupting: usize, now: Millis) -> usize {
    let mut allowance = usize::MAX;
    for budget in &pool.spec.disruption.budgets {
        if !budget.reasons.is_empty() && !budget.reasons.iter().any(|r| r == reason.budget_name()) {
            continue;
        }
        let active = match (&budget.schedule, &budget.duration) {
            (None, _) => true,
            (Some(schedule), Some(duration)) => match (Cron::parse(schedule), parse_duration(duration)) {
                (Ok(cron), Ok(Some(d))) => cron.fired_within(now, d),
                _ => return 0,
            },
            (Some(_), None) => return 0,
        };
        if !active {
            continue;
        }
        let nodes = match parse_budget_nodes(&budget.nodes) {
            Ok(BudgetNodes::Count(n)) => n as usize,
            Ok(BudgetNodes::Percent(p)) => (total * p as usize).div_ceil(100),
            Err(_) => return 0,
        };
        allowance = allowance.min(nodes);
    }
    allowance.saturating_sub(disrupting)
}

/// A five-field cron schedule (`minute hour day-of-month month day-of-week`, UTC) or one of the
/// macros `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    /// Both day fields restricted: either may match (cron's rule).
    day_or_weekday: bool,
}

impl Cron {
    pub fn parse(text: &str) -> Result<Cron, String> {
        let expanded = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields.as_slice() else {
            return Err(format!("{text:?} is not a five-field cron schedule"));
        };
        let weekdays = field(weekday, 0, 7, text)?;
        // 7 is Sunday too.
        let mut sunday_folded = weekdays[..7].to_vec();
        sunday_folded[0] |= weekdays[7];
        Ok(Cron {
            minutes: field(minute, 0, 59, text)?,
            hours: field(hour, 0, 23, text)?,
            days: field(day, 1, 31, text)?,
            months: field(month, 1, 12, text)?,
            weekdays: sunday_folded,
            day_or_weekday: !day.starts_with('*') && !weekday.starts_with('*'),
        })
    }

    /// Whether the schedule fired at a minute in `(now - duration, now]`.
    pub fn fired_within(&self, now: Millis, duration: Millis) -> bool {
        const MINUTE: Millis = 60_000;
        let last = now.div_euclid(MINUTE);
        // At most a week is looked back at: a longer window is open whenever it fired this week.
        let span = (duration / MINUTE).clamp(0, 7 * 24 * 60);
        (0..=span).any(|back| {
            let minute = last - back;
            minute * MINUTE > now - duration && self.fires_at(minute)
        })
    }

    fn fires_at(&self, epoch_minute: i64) -> bool {
        let (year_day, hour, minute) = (
            epoch_minute.div_euclid(1440),
            epoch_minute.rem_euclid(1440) / 60,
            epoch_minute.rem_euclid(60),
        );
        let (_, month, day) = civil_from_days(year_day);
        // 1970-01-01 was a Thursday (4).
        let weekday = (year_day + 4).rem_euclid(7) as usize;
        let day_ok = if self.day_or_weekday {
            self.days[day as usize - 1] || self.weekdays[weekday]
        } else {
            self.days[day as usize - 1] && self.weekdays[weekday]
        };
        self.minutes[minute as usize]
            && self.hours[hour as usize]
            && self.months[month as usize - 1]
            && day_ok
    }
}

/// One cron field over `lo..=hi`: `*`, `n`, `a-b`, lists, and `/step`.
fn field(text: &str, lo: u32, hi: u32, whole: &str) -> Result<Vec<bool>, String> {
    let bad = || format!("{whole:?}: {text:?} is not a cron field over {lo}-{hi}");
    let mut out = vec![false; (hi - lo + 1) as usize];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().map_err(|_| bad())?),
            None => (part, 1),
        };
        if step == 0 {
            return Err(bad());
        }
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?)
        } else {
            let n: u32 = range.parse().map_err(|_| bad())?;
            (n, if part.contains('/') { hi } else { n })
        };
        if a < lo || b > hi || a > b {
            return Err(bad());
        }
        for v in (a..=b).step_by(step as usize) {
            out[(v - lo) as usize] = true;
        }
    }
    Ok(out)
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Budget;
    use crate::builders::nodepool;

    const HOUR: Millis = 3_600_000;
    /// 2026-12-01T00:00:00Z, a Tuesday.
    const DEC_1: Millis = 1_796_083_200_000;

    fn pool(budgets: Vec<Budget>) -> NodePool {
        let mut p = nodepool("default").build();
        p.spec.disruption.budgets = budgets;
        p
    }

    #[test]
    fn the_default_budget_allows_ten_percent_of_the_nodes_rounded_up_less_those_disrupting() {
        let p = nodepool("default").build();
        assert_eq!(allowed(&p, Reason::Empty, 19, 0, DEC_1), 2);
        assert_eq!(allowed(&p, Reason::Empty, 19, 1, DEC_1), 1);
        assert_eq!(allowed(&p, Reason::Empty, 19, 3, DEC_1), 0);
        assert_eq!(allowed(&p, Reason::Empty, 3, 0, DEC_1), 1);
    }

    #[test]
    fn a_count_budget_for_some_reasons_leaves_the_others_to_the_rest() {
        let mut drift_only = Budget::nodes("0");
        drift_only.reasons = vec!["Drifted".into()];
        let p = pool(vec![Budget::nodes("5"), drift_only]);
        assert_eq!(allowed(&p, Reason::Drifted, 50, 0, DEC_1), 0);
        assert_eq!(allowed(&p, Reason::Underutilized, 50, 0, DEC_1), 5);
    }

    #[test]
    fn a_scheduled_budget_applies_only_for_its_duration_after_each_firing() {
        // No disruption on weekdays from 09:00 for 8 hours.
        let mut business_hours = Budget::nodes("0");
        business_hours.schedule = Some("0 9 * * mon-fri".replace("mon-fri", "1-5"));
        business_hours.duration = Some("8h".into());
        let p = pool(vec![Budget::nodes("100%"), business_hours]);
        assert_eq!(
            allowed(&p, Reason::Empty, 10, 0, DEC_1 + 8 * HOUR),
            10,
            "before 09:00"
        );
        assert_eq!(allowed(&p, Reason::Empty, 10, 0, DEC_1 + 9 * HOUR), 0, "at 09:00");
        assert_eq!(
            allowed(&p, Reason::Empty, 10, 0, DEC_1 + 16 * HOUR + 59 * 60_000),
            0
        );
        assert_eq!(
            allowed(&p, Reason::Empty, 10, 0, DEC_1 + 17 * HOUR),
            10,
            "after 17:00"
        );
        // 2026-12-05 is a Saturday.
        assert_eq!(
            allowed(&p, Reason::Empty, 10, 0, DEC_1 + 4 * 24 * HOUR + 10 * HOUR),
            10
        );
    }

    #[test]
    fn cron_fields_and_macros_parse_and_bad_ones_are_refused() {
        assert!(Cron::parse("@daily").is_ok());
        assert!(Cron::parse("*/15 0-6,22 1 */2 0,7").is_ok());
        assert!(Cron::parse("0 24 * * *").is_err());
        assert!(Cron::parse("0 9 * *").is_err());
        assert!(Cron::parse("*/0 * * * *").is_err());
        assert_eq!(civil_from_days(DEC_1 / 86_400_000), (2026, 12, 1));
    }
}
