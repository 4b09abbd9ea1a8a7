//! The access lines' settings: `[log] access` and `access_sample` in the file, the command
//! line's `--access-log` over them, checked into [`Access`].

use serde::Deserialize;

use super::ConfigError;

/// `[log]`: lines the server writes besides those its code always writes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// One line per call (target `servicedesk::access`); the command line and environment win.
    pub access: Option<AccessLog>,
    /// With `access = "all"`: the share of the calls that ended OK that get a line, 0..1.
    pub access_sample: Option<f64>,
}

/// Which calls get an access line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AccessLog {
    /// None (the default).
    #[default]
    Off,
    /// Those that ended with any code but OK: the server's failures and the callers' mistakes.
    Errors,
    /// Every call (health checks never).
    All,
}

/// The access lines, validated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Access {
    pub log: AccessLog,
    /// The share of OK calls logged under [`AccessLog::All`], 0..=1.
    pub sample: f64,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            log: AccessLog::Off,
            sample: 1.0,
        }
    }
}

/// `[log] access` and `access_sample`, checked; `overridden` (the command line or environment)
/// wins over the file's `access`.
pub(super) fn resolve(
    log: &LogSection,
    overridden: Option<AccessLog>,
) -> Result<Access, ConfigError> {
    let sample = log.access_sample.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample) {
        return Err(ConfigError::Invalid(format!(
            "[log] access_sample {sample} is not within 0..1: the share of OK calls logged, \
             e.g. 0.01 for one in a hundred"
        )));
    }
    Ok(Access {
        log: overridden.or(log.access).unwrap_or_default(),
        sample,
    })
}
