//! How a watched target is checked and judged: the intervals, the timeout, rise and fall, and
//! the state it starts in.

use std::time::Duration;

use crate::error::{CheckError, ErrorKind};
use crate::options::{CheckOptions, Family};

/// The state a target starts in, before its first check (HAProxy's `init-state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum InitialState {
    /// Up, and `fall` failures away from down.
    FullyUp,
    /// Up, until the first check decides: a failure marks it down at once, a success confirms
    /// it (fully up). HAProxy's default, and this one's: a service that restarts does not
    /// report its targets down while their first checks are on the way.
    #[default]
    Up,
    /// Down, until the first check decides: a success marks it up at once, a failure confirms
    /// it (fully down).
    Down,
    /// Down, and `rise` successes away from up.
    FullyDown,
}

impl InitialState {
    /// `fully-up`, `up`, `down` or `fully-down`: HAProxy's names, which
    /// [`from_str`](std::str::FromStr::from_str) reads back.
    pub fn as_str(self) -> &'static str {
        match self {
            InitialState::FullyUp => "fully-up",
            InitialState::Up => "up",
            InitialState::Down => "down",
            InitialState::FullyDown => "fully-down",
        }
    }
}

impl std::str::FromStr for InitialState {
    type Err = String;

    /// ```
    /// use tcp_shaker::health::InitialState;
    ///
    /// assert_eq!("fully-down".parse(), Ok(InitialState::FullyDown));
    /// assert!("sideways".parse::<InitialState>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<InitialState, String> {
        [
            InitialState::FullyUp,
            InitialState::Up,
            InitialState::Down,
            InitialState::FullyDown,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
        .ok_or_else(|| format!("{text:?} is not a state: write fully-up, up, down or fully-down"))
    }
}

/// How often a target is checked and how many results in a row change its state.
///
/// The defaults are HAProxy's: checks every 2 s (`inter`), up after 2 successes in a row
/// (`rise`), down after 3 failures in a row (`fall`). While a state is changing (some results
/// in a row, not yet enough) checks come every `fast_interval` (`fastinter`); while a target is
/// fully down, every `down_interval` (`downinter`). Both default to the interval.
///
/// ```
/// use std::time::Duration;
/// use tcp_shaker::health::Policy;
///
/// let policy = Policy {
///     interval: Duration::from_secs(5),
///     fast_interval: Some(Duration::from_secs(1)),
///     rise: 3,
///     ..Policy::default()
/// };
/// assert_eq!(policy.fall, 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Policy {
    /// The time between checks of a target whose state is settled (HAProxy's `inter`).
    pub interval: Duration,
    /// The time between checks while a state is changing (`fastinter`); the interval if `None`.
    pub fast_interval: Option<Duration>,
    /// The time between checks while a target is fully down (`downinter`); the interval if
    /// `None`.
    pub down_interval: Option<Duration>,
    /// The timeout of each check, name resolution included (1 s by default).
    pub timeout: Duration,
    /// Successes in a row that bring a down target up (2 by default).
    pub rise: u32,
    /// Failures in a row that bring an up target down (3 by default).
    pub fall: u32,
    /// The state before the first check.
    pub initial_state: InitialState,
    /// Which addresses of a host name to check.
    pub family: Family,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            interval: Duration::from_secs(2),
            fast_interval: None,
            down_interval: None,
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
            initial_state: InitialState::Up,
            family: Family::Any,
        }
    }
}

impl Policy {
    /// The options each check is made with.
    pub(crate) fn check_options(&self) -> CheckOptions {
        CheckOptions::new(self.timeout).family(self.family)
    }

    /// Refuses a policy that cannot work: a zero interval or timeout, a zero rise or fall.
    pub(crate) fn validate(&self, target: &str) -> Result<(), CheckError> {
        let intervals = [Some(self.interval), self.fast_interval, self.down_interval];
        let problem = if intervals.into_iter().flatten().any(|i| i.is_zero()) {
            Some("a health check interval must be above zero")
        } else if self.timeout.is_zero() {
            Some("a health check timeout must be above zero")
        } else if self.rise == 0 || self.fall == 0 {
            Some("rise and fall must be at least 1")
        } else {
            None
        };
        match problem {
            Some(detail) => {
                Err(CheckError::new(ErrorKind::InvalidOptions, target).with_detail(detail))
            }
            None => Ok(()),
        }
    }
}
