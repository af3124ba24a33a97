//! Load shedding: when the delivery queue is past its thresholds, the least urgent classes wait
//! (marketing first, then social, then transactional) so that the rest keeps flowing. Critical
//! is never shed. Shedding is a deferral with a reason, never a loss.

use jiff::Timestamp;

use crate::Class;

/// Queue depths at which each class starts to be shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Depth from which marketing waits.
    pub marketing: usize,
    /// Depth from which social waits too.
    pub social: usize,
    /// Depth from which transactional waits too.
    pub transactional: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { marketing: 5_000, social: 10_000, transactional: 20_000 }
    }
}

/// How far shedding reaches at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Marketing waits.
    Marketing,
    /// Marketing and social wait.
    Social,
    /// Everything but critical waits.
    Transactional,
}

impl Thresholds {
    /// The shedding level at queue depth `depth`, if any.
    pub fn level(&self, depth: usize) -> Option<Level> {
        if depth >= self.transactional {
            Some(Level::Transactional)
        } else if depth >= self.social {
            Some(Level::Social)
        } else if depth >= self.marketing {
            Some(Level::Marketing)
        } else {
            None
        }
    }
}

/// Shedding in force while one recipient is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shedding {
    /// Which classes wait.
    pub level: Level,
    /// When the shed ones are decided again.
    pub until: Timestamp,
}

impl Shedding {
    /// Whether a notification of `class` waits.
    pub fn sheds(&self, class: Class) -> bool {
        match class {
            Class::Critical => false,
            Class::Transactional => self.level >= Level::Transactional,
            Class::Social => self.level >= Level::Social,
            Class::Marketing => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_shed_in_order_and_critical_never() {
        let t = Thresholds { marketing: 10, social: 20, transactional: 30 };
        let at = |depth| t.level(depth).map(|level| Shedding { level, until: Timestamp::UNIX_EPOCH });
        let shed = |depth, class| at(depth).is_some_and(|s| s.sheds(class));
        assert_eq!(t.level(9), None);
        assert!(shed(10, Class::Marketing) && !shed(10, Class::Social));
        assert!(shed(20, Class::Social) && !shed(20, Class::Transactional));
        assert!(shed(30, Class::Transactional));
        assert!(!shed(usize::MAX, Class::Critical));
    }
}
