//! Server roles (`proxy`, `app`, `monitor`) and the `+`-joined sets `--role` accepts.

use std::fmt;
use std::str::FromStr;

/// One part of the original three-VM system that this binary can play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Proxy,
    App,
    Monitor,
}

impl Role {
    /// Lists every role, in start-up order.
    pub const ALL: [Role; 3] = [Role::App, Role::Proxy, Role::Monitor];

    /// Returns the name used on the command line and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Proxy => "proxy",
            Role::App => "app",
            Role::Monitor => "monitor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "proxy" => Ok(Role::Proxy),
            "app" => Ok(Role::App),
            "monitor" => Ok(Role::Monitor),
            other => Err(format!(
                "unknown role '{other}' (expected proxy, app, monitor, a '+'-joined set, or all)"
            )),
        }
    }
}

/// A non-empty set of roles run by one process, e.g. `proxy+app`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSet(Vec<Role>);

impl RoleSet {
    /// Tells whether the set contains `role`.
    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    /// Iterates the roles in start-up order.
    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        self.0.iter().copied()
    }
}

impl fmt::Display for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Role::as_str).collect();
        f.write_str(&names.join("+"))
    }
}

impl FromStr for RoleSet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "all" {
            return Ok(RoleSet(Role::ALL.to_vec()));
        }
        let mut roles = Vec::new();
        for part in s.split(['+', ',']) {
            let role: Role = part.parse()?;
            if roles.contains(&role) {
                return Err(format!("role '{role}' is named twice"));
            }
            roles.push(role);
        }
        roles.sort_by_key(|r| Role::ALL.iter().position(|x| x == r));
        Ok(RoleSet(roles))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_joined_sets_in_start_order() {
        let set: RoleSet = "proxy+app".parse().unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![Role::App, Role::Proxy]);
        assert_eq!(set.to_string(), "app+proxy");
        let all: RoleSet = "all".parse().unwrap();
        assert_eq!(all.iter().count(), 3);
        assert!("app".parse::<RoleSet>().unwrap().contains(Role::App));
    }

    #[test]
    fn rejects_unknown_empty_and_repeated_roles() {
        for bad in ["", "db", "app+", "app+app", "proxy+nginx"] {
            assert!(
                bad.parse::<RoleSet>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
