//! `Test-ReplicationHealth` (Exchange 2007 SP1): each check of the replication pipeline as one
//! node sees it, and what fails. A node judges from what it knows — its own state and its
//! peer's heartbeats — so asking both nodes can differ, as it does on a real cluster.

use serde::{Deserialize, Serialize};

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// The check's name, as Exchange's cmdlet prints it.
    pub check: String,
    pub passed: bool,
    /// What was found (why it failed, or what passed).
    pub detail: String,
}

/// Every check, in the order the cmdlet runs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationHealth {
    pub server: String,
    pub checks: Vec<HealthCheck>,
}

impl ReplicationHealth {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The names of the checks that failed.
    pub fn failed(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.check.as_str())
            .collect()
    }
}

impl std::fmt::Display for ReplicationHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{:<12} {:<20} {:<8} Error", "Server", "Check", "Result")?;
        writeln!(f, "{:<12} {:<20} {:<8} -----", "------", "-----", "------")?;
        for c in &self.checks {
            let (result, error) = if c.passed {
                ("Passed", String::new())
            } else {
                ("*FAILED*", c.detail.clone())
            };
            writeln!(
                f,
                "{:<12} {:<20} {:<8} {error}",
                self.server, c.check, result
            )?;
        }
        Ok(())
    }
}
