//! Parsing API request subjects: `{prefix}.{lattice}.model.{operation}[.{name}]`, and the
//! lattice view's `{prefix}.{lattice}.lattice.hosts` and `{prefix}.lattices`. Pure.

use wadm_store::manifest::keys::is_valid_app_name;

/// An API operation, with the application it names when it names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `model.put`: store a new version of the manifest in the body.
    Put,
    /// `model.get` without a name: every application.
    List,
    /// `model.list`: deprecated, answers a bare array.
    LegacyList,
    /// `model.get.{name}`: one application's manifest (a version named in the body, else the
    /// current one).
    Get(String),
    /// `model.versions.{name}`: the application's stored versions.
    Versions(String),
    /// `model.del.{name}`: delete a version named in the body, or the whole application.
    Delete(String),
    /// `model.deploy.{name}`: deploy a stored version (named in the body, else the current one).
    Deploy(String),
    /// `model.undeploy.{name}`: stop running the application, keeping its versions.
    Undeploy(String),
    /// `model.status.{name}`: the application's current status.
    Status(String),
    /// `model.history.{name}`: what was done to the application, by whom, when.
    History(String),
    /// `model.promote.{name}`: past the canary stage of its rollouts; our extension.
    Promote(String),
    /// `model.rollback.{name}`: deploy the last stable version again; our extension.
    Rollback(String),
    /// `model.plan[.{name}]`: what deploying would do (see [`crate::plan`]); our extension.
    Plan(Option<String>),
    /// `{lattice}.lattice.hosts`: the hosts wadm observes (see [`crate::view`]).
    Hosts,
    /// `lattices` (no lattice token): the lattices this wadm observes.
    Lattices,
}

/// A parsed request subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The lattice, `{account}.{lattice}` for another account's (empty for [`Operation::Lattices`]).
    pub lattice: String,
    /// What is asked.
    pub operation: Operation,
    /// The account that asked, in account-scoped mode.
    pub account: Option<String>,
}

/// Parse `subject` served under `prefix`; with `account_scoped`, the subject starts with the
/// asking account's token (`{account}.{prefix}.…`, as the account's import maps it) and the
/// lattice is that account's (see [`wadm_protocol::subject::split_account`]).
pub fn parse_request(
    prefix: &str,
    subject: &str,
    account_scoped: bool,
) -> Result<Request, SubjectError> {
    if !account_scoped {
        return parse(prefix, subject);
    }
    if subject.strip_prefix(prefix) == Some(".lattices") {
        // wadm's own account (the operator) asks for every account's lattices.
        return parse(prefix, subject);
    }
    let invalid = |reason: String| SubjectError::Invalid { subject: subject.to_string(), reason };
    let Some((account, rest)) = subject.split_once('.') else {
        return Err(invalid(format!("expected it to start with {{account}}.{prefix}.")));
    };
    if let Some(reason) = wadm_protocol::names::account_error(account) {
        return Err(invalid(reason));
    }
    let mut request = parse(prefix, rest).map_err(|e| match e {
        SubjectError::Invalid { reason, .. } => invalid(reason),
        SubjectError::Unsupported { reason, .. } => {
            SubjectError::Unsupported { subject: subject.to_string(), reason }
        }
    })?;
    if request.operation != Operation::Lattices {
        request.lattice = wadm_protocol::subject::qualify(Some(account), &request.lattice);
        if let Some(reason) = wadm_protocol::names::scoped_lattice_error(&request.lattice) {
            return Err(invalid(reason));
        }
    }
    request.account = Some(account.to_string());
    Ok(request)
}

/// Why a subject is not a request we serve. The display text is the error message returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// The subject is malformed: wrong shape, bad name or missing/extra tokens.
    #[error("Invalid subject {subject}: {reason}")]
    Invalid {
        /// The subject as received.
        subject: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The subject is well-formed but names an operation or category we do not serve.
    #[error("Unsupported subject {subject}: {reason}")]
    Unsupported {
        /// The subject as received.
        subject: String,
        /// What is not supported.
        reason: String,
    },
}

/// Parse `subject` served under `prefix`.
pub fn parse(prefix: &str, subject: &str) -> Result<Request, SubjectError> {
    let invalid = |reason: &str| SubjectError::Invalid {
        subject: subject.to_string(),
        reason: reason.to_string(),
    };
    let unsupported =
        |reason: String| SubjectError::Unsupported { subject: subject.to_string(), reason };
    let rest = subject
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('.'))
        .ok_or_else(|| invalid(&format!("expected it to start with {prefix}.")))?;
    let tokens: Vec<&str> = rest.split('.').collect();
    if tokens == ["lattices"] {
        return Ok(Request {
            lattice: String::new(),
            operation: Operation::Lattices,
            account: None,
        });
    }
    if tokens.len() < 3 {
        return Err(invalid("expected {lattice}.model.{operation}[.{name}]: too few tokens"));
    }
    if tokens.len() > 4 {
        return Err(invalid("expected {lattice}.model.{operation}[.{name}]: too many tokens"));
    }
    if tokens.iter().any(|t| t.is_empty()) {
        return Err(invalid("empty token"));
    }
    let lattice = tokens[0].to_string();
    if let Some(reason) = wadm_protocol::names::lattice_error(&lattice) {
        return Err(invalid(&reason));
    }
    if tokens[1] == "lattice" {
        return match (tokens[2], tokens.len()) {
            ("hosts", 3) => Ok(Request { lattice, operation: Operation::Hosts, account: None }),
            ("hosts", _) => Err(invalid("expected {lattice}.lattice.hosts: too many tokens")),
            (other, _) => {
                Err(unsupported(format!("unknown lattice operation {other:?} (only \"hosts\")")))
            }
        };
    }
    if tokens[1] != "model" {
        return Err(unsupported(format!(
            "unknown category {:?} (\"model\" or \"lattice\")",
            tokens[1]
        )));
    }
    let name = tokens.get(3).map(|n| n.to_string());
    if let Some(n) = &name
        && !is_valid_app_name(n)
    {
        return Err(invalid(&format!(
            "application name {n:?} may only hold letters, digits, '-' and '_'"
        )));
    }
    let needs_name = |build: fn(String) -> Operation| match &name {
        Some(n) => Ok(build(n.clone())),
        None => Err(invalid(&format!(
            "operation {} needs an application name: too few tokens",
            tokens[2]
        ))),
    };
    let no_name = |op: Operation| match name {
        None => Ok(op.clone()),
        Some(_) => Err(invalid(&format!("operation {} takes no name: too many tokens", tokens[2]))),
    };
    let operation = match tokens[2] {
        "put" => no_name(Operation::Put)?,
        "list" => no_name(Operation::LegacyList)?,
        "get" => match &name {
            None => Operation::List,
            Some(n) => Operation::Get(n.clone()),
        },
        "versions" => needs_name(Operation::Versions)?,
        "del" => needs_name(Operation::Delete)?,
        "deploy" => needs_name(Operation::Deploy)?,
        "undeploy" => needs_name(Operation::Undeploy)?,
        "status" => needs_name(Operation::Status)?,
        "history" => needs_name(Operation::History)?,
        "plan" => Operation::Plan(name.clone()),
        "promote" => needs_name(Operation::Promote)?,
        "rollback" => needs_name(Operation::Rollback)?,
        other => return Err(unsupported(format!("unknown operation {other:?}"))),
    };
    Ok(Request { lattice, operation, account: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Request, SubjectError> {
        parse("wadm.api", s)
    }

    #[test]
    fn operations() {
        let r = p("wadm.api.default.model.put").unwrap();
        assert_eq!((r.lattice.as_str(), r.operation), ("default", Operation::Put));
        assert_eq!(p("wadm.api.l.model.get").unwrap().operation, Operation::List);
        assert_eq!(p("wadm.api.l.model.list").unwrap().operation, Operation::LegacyList);
        assert_eq!(p("wadm.api.l.model.get.app").unwrap().operation, Operation::Get("app".into()));
        assert_eq!(
            p("wadm.api.l.model.del.a-b_c").unwrap().operation,
            Operation::Delete("a-b_c".into())
        );
        assert_eq!(
            p("wadm.api.l.model.history.x").unwrap().operation,
            Operation::History("x".into())
        );
        assert_eq!(
            parse("my.pre.fix", "my.pre.fix.l.model.status.x").unwrap().operation,
            Operation::Status("x".into())
        );
    }

    #[test]
    fn lattice_view() {
        assert_eq!(p("wadm.api.l.lattice.hosts").unwrap().operation, Operation::Hosts);
        assert_eq!(p("wadm.api.l.lattice.hosts").unwrap().lattice, "l");
        assert_eq!(p("wadm.api.lattices").unwrap().operation, Operation::Lattices);
        let e = p("wadm.api.l.lattice.hosts.x").unwrap_err().to_string();
        assert!(e.starts_with("Invalid subject"), "{e}");
        let e = p("wadm.api.l.lattice.links").unwrap_err().to_string();
        assert!(e.starts_with("Unsupported subject") && e.contains("links"), "{e}");
        let e = p("wadm.api.l.lattice").unwrap_err().to_string();
        assert!(e.starts_with("Invalid subject"), "{e}");
    }

    #[test]
    fn malformed() {
        for s in [
            "wadm.api.l.model",
            "wadm.api.l.model.deploy",
            "wadm.api.l.model.put.x",
            "wadm.api.l.model.get.a.b",
            "wadm.api.l",
        ] {
            let e = p(s).unwrap_err().to_string();
            assert!(e.starts_with("Invalid subject"), "{s}: {e}");
        }
        let long = format!("wadm.api.{}.model.get", "l".repeat(250));
        let e = p(&long).unwrap_err().to_string();
        assert!(e.contains("a lattice name is at most 64 bytes"), "{e}");
        for s in ["wadm.api.l.model.frobnicate.x", "wadm.api.l.other.get"] {
            let e = p(s).unwrap_err().to_string();
            assert!(e.starts_with("Unsupported subject"), "{s}: {e}");
        }
    }

    #[test]
    fn account_scoped() {
        let scoped = |s: &str| parse_request("wadm.api", s, true);
        let r = scoped("ACC.wadm.api.l.model.deploy.app").unwrap();
        assert_eq!(r.lattice, "ACC.l");
        assert_eq!(r.account.as_deref(), Some("ACC"));
        assert_eq!(r.operation, Operation::Deploy("app".into()));
        let r = scoped("ACC.wadm.api.lattices").unwrap();
        assert_eq!((r.lattice.as_str(), r.account.as_deref()), ("", Some("ACC")));
        let r = scoped("wadm.api.lattices").unwrap();
        assert_eq!((r.operation, r.account), (Operation::Lattices, None));
        assert_eq!(scoped("ACC.wadm.api.l.lattice.hosts").unwrap().lattice, "ACC.l");
        let e = scoped("wadm.api.l.model.get").unwrap_err().to_string();
        assert!(e.starts_with("Invalid subject") && e.contains("cannot be an account"), "{e}");
        let e = scoped("ACC.wadm.api.l.model").unwrap_err().to_string();
        assert!(e.starts_with("Invalid subject ACC.wadm.api.l.model"), "{e}");
        let e = scoped("ACC.wadm.api.l.other.get").unwrap_err().to_string();
        assert!(e.starts_with("Unsupported subject ACC."), "{e}");
        let e = scoped(&format!("{}.wadm.api.l.model.get", "A".repeat(70))).unwrap_err();
        assert!(e.to_string().contains("at most 64"), "{e}");
        // Unscoped parsing never takes an account.
        assert_eq!(parse_request("wadm.api", "wadm.api.l.model.get", false).unwrap().account, None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "[a-zA-Z.*>]{0,40}", scoped: bool) {
            let _ = parse_request("wadm.api", &s, scoped);
        }
    }
}
