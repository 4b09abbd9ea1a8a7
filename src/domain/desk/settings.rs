//! What operators may change at run time, and the one validation of it that both the config
//! loader and `UpdateConfig` use.
//!
//! Methods of `Desk` here: `change_settings`, `set_settings`.

use serde::{Deserialize, Serialize};

use super::timers::Timer;
use super::Desk;
use crate::domain::error::{DomainError, Violation};
use crate::domain::limits::{MAX_REVIEW_REASSIGNMENTS, TIMEOUT_MS};
use crate::domain::mesh::RoutingStrategy;

/// What operators may change at run time (`UpdateConfig`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub routing: RoutingStrategy,
    pub escalation_timeout_ms: i64,
    /// How many times an expired review moves to another reviewer before it expires.
    pub max_review_reassignments: u32,
    pub queue_timeout_ms: i64,
    /// How long a remote agent has to answer an assignment before the ticket is handed on.
    #[serde(default = "default_assignment_timeout_ms")]
    pub assignment_timeout_ms: i64,
}

fn default_assignment_timeout_ms() -> i64 {
    60 * 1000
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            routing: RoutingStrategy::LeastLoaded,
            escalation_timeout_ms: 15 * 60 * 1000,
            max_review_reassignments: 1,
            queue_timeout_ms: 5 * 60 * 1000,
            assignment_timeout_ms: default_assignment_timeout_ms(),
        }
    }
}

/// A setting's name, as `UpdateConfig` and its update mask spell it.
pub type SettingName = &'static str;

impl Settings {
    /// Every setting out of its bounds, by name with the reason; empty when all are valid.
    pub fn violations(&self) -> Vec<(SettingName, String)> {
        let mut out = Vec::new();
        let timeouts = [
            ("escalation_timeout", self.escalation_timeout_ms),
            ("queue_timeout", self.queue_timeout_ms),
            ("assignment_timeout", self.assignment_timeout_ms),
        ];
        for (name, ms) in timeouts {
            if !TIMEOUT_MS.contains(&ms) {
                out.push((name, "must be within 1 s..30 days".to_string()));
            }
        }
        if self.max_review_reassignments > MAX_REVIEW_REASSIGNMENTS {
            out.push((
                "max_review_reassignments",
                format!("must be within 0..{MAX_REVIEW_REASSIGNMENTS}"),
            ));
        }
        out
    }
}

/// A change to the settings; `None` keeps a setting.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SettingsChange {
    pub routing: Option<RoutingStrategy>,
    pub escalation_timeout_ms: Option<i64>,
    pub max_review_reassignments: Option<u32>,
    pub queue_timeout_ms: Option<i64>,
    pub assignment_timeout_ms: Option<i64>,
}

impl SettingsChange {
    /// The settings after the change, or every setting it would put out of bounds.
    pub fn applied_to(&self, settings: &Settings) -> Result<Settings, DomainError> {
        let mut s = settings.clone();
        s.routing = self.routing.unwrap_or(s.routing);
        s.escalation_timeout_ms = self
            .escalation_timeout_ms
            .unwrap_or(s.escalation_timeout_ms);
        s.max_review_reassignments = self
            .max_review_reassignments
            .unwrap_or(s.max_review_reassignments);
        s.queue_timeout_ms = self.queue_timeout_ms.unwrap_or(s.queue_timeout_ms);
        s.assignment_timeout_ms = self
            .assignment_timeout_ms
            .unwrap_or(s.assignment_timeout_ms);
        let violations: Vec<Violation> = s
            .violations()
            .into_iter()
            .map(|(name, reason)| Violation {
                field: format!("config.{name}"),
                reason,
            })
            .collect();
        if violations.is_empty() {
            Ok(s)
        } else {
            Err(DomainError::Invalid(violations))
        }
    }
}

impl Desk {
    /// Applies a change to the settings (validated: nothing changes when a setting would be
    /// out of bounds) and returns the settings now in force.
    pub fn change_settings(&mut self, change: &SettingsChange) -> Result<Settings, DomainError> {
        let settings = change.applied_to(&self.settings)?;
        self.set_settings(settings.clone());
        Ok(settings)
    }

    /// Applies new settings. A changed queue timeout moves the deadlines of the tickets already
    /// waiting, so each waits exactly the new timeout from when it was queued.
    pub fn set_settings(&mut self, settings: Settings) {
        let old_timeout = self.settings.queue_timeout_ms;
        self.settings = settings;
        if old_timeout == self.settings.queue_timeout_ms {
            return;
        }
        self.timers
            .retain(|(_, timer)| !matches!(timer, Timer::Queue(_)));
        let timeout = self.settings.queue_timeout_ms;
        let waiting: Vec<(i64, String)> = self
            .queue
            .waiting()
            .map(|(queued_ms, id)| (queued_ms + timeout, id.to_string()))
            .collect();
        for (due, id) in waiting {
            self.timers.insert((due, Timer::Queue(id)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_out_of_bounds_names_the_setting_and_changes_nothing() {
        let s = Settings::default();
        let too_short = SettingsChange {
            queue_timeout_ms: Some(10),
            ..SettingsChange::default()
        };
        let err = too_short.applied_to(&s).unwrap_err();
        assert_eq!(
            err,
            DomainError::invalid("config.queue_timeout", "must be within 1 s..30 days")
        );
        let many = SettingsChange {
            max_review_reassignments: Some(11),
            ..SettingsChange::default()
        };
        assert!(many.applied_to(&s).is_err());
        let fine = SettingsChange {
            routing: Some(RoutingStrategy::RoundRobin),
            escalation_timeout_ms: Some(1000),
            ..SettingsChange::default()
        };
        let changed = fine.applied_to(&s).unwrap();
        assert_eq!(changed.routing, RoutingStrategy::RoundRobin);
        assert_eq!(changed.escalation_timeout_ms, 1000);
        assert_eq!(changed.queue_timeout_ms, s.queue_timeout_ms);
        assert!(Settings::default().violations().is_empty());
    }
}
