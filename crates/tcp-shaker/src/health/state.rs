//! The health of one target as HAProxy keeps it: a counter from 0 to `rise + fall - 1`, up at
//! or above `rise`, moved one step by each result and sent to an end when the state changes.

use std::fmt;

use super::policy::{InitialState, Policy};

/// Up or down, with the transitional states between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Up, with no failure since it last settled.
    Up,
    /// Still up, after failures that may bring it down.
    GoingDown,
    /// Down, with no success since it last settled.
    Down,
    /// Still down, after successes that may bring it up.
    GoingUp,
}

impl State {
    /// Whether a target in this state counts as up (a target going down still is).
    pub fn is_up(self) -> bool {
        matches!(self, State::Up | State::GoingDown)
    }

    /// `up`, `going_down`, `down` or `going_up`: stable names for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::GoingDown => "going_down",
            State::Down => "down",
            State::GoingUp => "going_up",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A target's health counter, with its rise and fall.
///
/// ```
/// use tcp_shaker::health::{Health, Policy, State};
///
/// let mut health = Health::new(&Policy::default()); // rise 2, fall 3, starting up
/// assert_eq!(health.record(false), Some(State::Down)); // the first failure marks it down
/// assert_eq!(health.record(true), None);
/// assert_eq!(health.to_string(), "DOWN 1/2");
/// assert_eq!(health.record(true), Some(State::Up));
/// assert_eq!(health.to_string(), "UP");
/// assert_eq!(health.record(false), None);
/// assert_eq!(health.to_string(), "UP 2/3");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Health {
    counter: u32,
    up: bool,
    /// Before the first result of a target that started [`InitialState::Up`] or
    /// [`InitialState::Down`]: that result alone decides.
    unconfirmed: bool,
    rise: u32,
    fall: u32,
}

impl Health {
    /// The health before any check, as `policy` starts it.
    pub fn new(policy: &Policy) -> Health {
        let rise = policy.rise.max(1);
        let fall = policy.fall.max(1);
        let top = rise + fall - 1;
        let (counter, up, unconfirmed) = match policy.initial_state {
            InitialState::FullyUp => (top, true, false),
            InitialState::Up => (top, true, true),
            InitialState::Down => (0, false, true),
            InitialState::FullyDown => (0, false, false),
        };
        Health {
            counter,
            up,
            unconfirmed,
            rise,
            fall,
        }
    }

    fn top(&self) -> u32 {
        self.rise + self.fall - 1
    }

    /// Records one result (`true`: the port answered); the new state if it changed between
    /// up and down.
    pub fn record(&mut self, success: bool) -> Option<State> {
        if std::mem::take(&mut self.unconfirmed) && self.up != success {
            // The first result of an unconfirmed state: it decides at once.
            self.up = success;
            self.counter = if success { self.top() } else { 0 };
            return Some(if success { State::Up } else { State::Down });
        }
        match (self.up, success) {
            (false, true) => {
                self.counter += 1;
                if self.counter >= self.rise {
                    self.up = true;
                    self.counter = self.top();
                    return Some(State::Up);
                }
            }
            (true, true) => self.counter = (self.counter + 1).min(self.top()),
            (true, false) => {
                if self.counter > self.rise {
                    self.counter -= 1;
                } else {
                    self.up = false;
                    self.counter = 0;
                    return Some(State::Down);
                }
            }
            (false, false) => self.counter = self.counter.saturating_sub(1),
        }
        None
    }

    /// The state, transitional ones included.
    pub fn state(&self) -> State {
        match (self.up, self.counter) {
            (true, counter) if counter >= self.top() => State::Up,
            (true, _) => State::GoingDown,
            (false, 0) => State::Down,
            (false, _) => State::GoingUp,
        }
    }

    /// Whether the target counts as up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// How far along the current state is, as HAProxy shows it: while up, the failures it can
    /// still take before going down, out of `fall`; while down, the successes it has had, out
    /// of `rise`.
    pub fn progress(&self) -> (u32, u32) {
        if self.up {
            (self.counter + 1 - self.rise, self.fall)
        } else {
            (self.counter, self.rise)
        }
    }
}

/// `UP`, `UP 2/3`, `DOWN`, `DOWN 1/2`: HAProxy's words.
impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (done, of) = self.progress();
        match self.state() {
            State::Up => f.write_str("UP"),
            State::Down => f.write_str("DOWN"),
            State::GoingDown => write!(f, "UP {done}/{of}"),
            State::GoingUp => write!(f, "DOWN {done}/{of}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(rise: u32, fall: u32, initial_state: InitialState) -> Health {
        Health::new(&Policy {
            rise,
            fall,
            initial_state,
            ..Policy::default()
        })
    }

    /// Feeds `results` ('+' success, '-' failure) and writes the state after each.
    fn run(mut health: Health, results: &str) -> Vec<String> {
        results
            .chars()
            .map(|result| {
                health.record(result == '+');
                health.to_string()
            })
            .collect()
    }

    #[test]
    fn fall_failures_in_a_row_bring_a_settled_target_down() {
        let states = run(health(2, 3, InitialState::FullyUp), "---");
        assert_eq!(states, ["UP 2/3", "UP 1/3", "DOWN"]);
    }

    #[test]
    fn a_success_between_failures_restarts_the_count_one_step_at_a_time() {
        let states = run(health(2, 3, InitialState::FullyUp), "--+--");
        assert_eq!(states, ["UP 2/3", "UP 1/3", "UP 2/3", "UP 1/3", "DOWN"]);
    }

    #[test]
    fn rise_successes_in_a_row_bring_a_down_target_up() {
        let states = run(health(3, 2, InitialState::FullyDown), "+-++++");
        assert_eq!(
            states,
            ["DOWN 1/3", "DOWN", "DOWN 1/3", "DOWN 2/3", "UP", "UP"]
        );
    }

    #[test]
    fn each_initial_state_starts_as_haproxys_init_state() {
        let states = |initial, results| run(health(2, 3, initial), results);
        assert_eq!(Health::new(&Policy::default()).to_string(), "UP");
        assert_eq!(states(InitialState::FullyUp, "-"), ["UP 2/3"]);
        assert_eq!(states(InitialState::Up, "-"), ["DOWN"]);
        // A success confirms the state: later, fall failures bring it down.
        assert_eq!(states(InitialState::Up, "+--"), ["UP", "UP 2/3", "UP 1/3"]);
        assert_eq!(states(InitialState::Down, "+"), ["UP"]);
        assert_eq!(
            states(InitialState::Down, "-++"),
            ["DOWN", "DOWN 1/2", "UP"]
        );
        assert_eq!(states(InitialState::FullyDown, "+"), ["DOWN 1/2"]);
    }

    #[test]
    fn rise_and_fall_of_one_change_state_on_every_result() {
        let states = run(health(1, 1, InitialState::Up), "-+-+");
        assert_eq!(states, ["DOWN", "UP", "DOWN", "UP"]);
    }

    #[test]
    fn record_names_only_changes_between_up_and_down() {
        let mut health = health(2, 2, InitialState::FullyUp);
        assert_eq!(health.record(false), None);
        assert_eq!(health.state(), State::GoingDown);
        assert_eq!(health.record(false), Some(State::Down));
        assert_eq!(health.record(true), None);
        assert_eq!(health.state(), State::GoingUp);
        assert_eq!(health.record(true), Some(State::Up));
    }
}
