//! Notifications as keepalived sends them (docs/internals/vrrp.md#notifications): the state names, the four
//! arguments appended for the generic `notify` script, and the notify-FIFO line.

use std::fmt;

/// What a notification reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyState {
    /// Entered MASTER (`notify_master`).
    Master,
    /// Entered BACKUP (`notify_backup`).
    Backup,
    /// Entered FAULT (`notify_fault`).
    Fault,
    /// Stopped at shutdown (`notify_stop`).
    Stop,
    /// Removed by a reload (`notify_deleted`).
    Deleted,
    /// A MASTER received a lower-priority advert (`notify_master_rx_lower_pri`, FIFO only otherwise).
    MasterRxLowerPri,
    /// Effective priority changed while MASTER (FIFO, with `notify_priority_changes`).
    MasterPriority,
    /// Effective priority changed while BACKUP (FIFO, with `notify_priority_changes`).
    BackupPriority,
}

impl NotifyState {
    /// The word keepalived uses in script arguments and FIFO lines.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyState::Master => "MASTER",
            NotifyState::Backup => "BACKUP",
            NotifyState::Fault => "FAULT",
            NotifyState::Stop => "STOP",
            NotifyState::Deleted => "DELETED",
            NotifyState::MasterRxLowerPri => "MASTER_RX_LOWER_PRI",
            NotifyState::MasterPriority => "MASTER_PRIORITY",
            NotifyState::BackupPriority => "BACKUP_PRIORITY",
        }
    }

    /// Whether the generic `notify` script runs for it (state changes only; the others go to the
    /// FIFO and their dedicated script).
    pub fn runs_generic_script(self) -> bool {
        matches!(
            self,
            NotifyState::Master
                | NotifyState::Backup
                | NotifyState::Fault
                | NotifyState::Stop
                | NotifyState::Deleted
        )
    }
}

impl fmt::Display for NotifyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a notification is about an instance or a sync group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// `INSTANCE`.
    Instance,
    /// `GROUP` (priority reported as 0).
    Group,
}

impl Subject {
    /// `INSTANCE` / `GROUP`.
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::Instance => "INSTANCE",
            Subject::Group => "GROUP",
        }
    }
}

/// One notification to deliver (scripts and FIFO are the driver's job).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notify {
    /// The state reported.
    pub state: NotifyState,
    /// Effective priority at the time (0 for groups).
    pub priority: u8,
}

impl Notify {
    /// The four arguments keepalived appends to the generic `notify` script:
    /// `INSTANCE|GROUP`, name, state, priority.
    pub fn script_args(&self, subject: Subject, name: &str) -> [String; 4] {
        [
            subject.as_str().to_string(),
            name.to_string(),
            self.state.as_str().to_string(),
            self.priority.to_string(),
        ]
    }

    /// The notify-FIFO line: `INSTANCE "<name>" <STATE> <priority>\n`.
    pub fn fifo_line(&self, subject: Subject, name: &str) -> String {
        format!(
            "{} \"{}\" {} {}\n",
            subject.as_str(),
            name,
            self.state.as_str(),
            self.priority
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_args_match_keepalived() {
        let n = Notify {
            state: NotifyState::Master,
            priority: 150,
        };
        assert_eq!(
            n.fifo_line(Subject::Instance, "VI_1"),
            "INSTANCE \"VI_1\" MASTER 150\n"
        );
        assert_eq!(
            n.script_args(Subject::Group, "G1"),
            ["GROUP", "G1", "MASTER", "150"].map(String::from)
        );
        assert!(!NotifyState::MasterRxLowerPri.runs_generic_script());
        assert_eq!(
            NotifyState::MasterRxLowerPri.to_string(),
            "MASTER_RX_LOWER_PRI"
        );
    }
}
