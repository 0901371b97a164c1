//! Undo on a failed ADD, and DEL/GC that keep going past failures (STYLE.md "Teardown").

use rcni_types::{Error, Result};

/// Undo steps registered while ADD creates things; run in reverse on drop unless
/// [`Rollback::commit`] was called. Failures while undoing are collected in the
/// original error by the caller's choice of [`Rollback::fail`], or dropped silently when
/// the guard is merely dropped (the first error is what the runtime needs to see).
#[derive(Default)]
pub struct Rollback<'a> {
    steps: Vec<Box<dyn FnOnce() -> Result<()> + 'a>>,
}

impl<'a> Rollback<'a> {
    #[must_use]
    pub fn new() -> Rollback<'a> {
        Rollback { steps: Vec::new() }
    }

    /// Registers `undo` for something just created.
    pub fn push(&mut self, undo: impl FnOnce() -> Result<()> + 'a) {
        self.steps.push(Box::new(undo));
    }

    /// ADD succeeded: keep everything.
    pub fn commit(mut self) {
        self.steps.clear();
    }

    /// ADD failed with `err`: undo now and return `err`, with undo failures as details.
    pub fn fail(mut self, err: Error) -> Error {
        let failures = self.run();
        if failures.is_empty() {
            err
        } else {
            let details = if err.details.is_empty() {
                format!("cleanup also failed: {failures}")
            } else {
                format!("{}; cleanup also failed: {failures}", err.details)
            };
            err.with_details(details)
        }
    }

    fn run(&mut self) -> Errors {
        let mut errors = Errors::default();
        while let Some(step) = self.steps.pop() {
            errors.note(step());
        }
        errors
    }
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        let _ = self.run();
    }
}

/// Failures collected by a teardown that must try every step (DEL, GC, rollback).
#[derive(Debug, Default)]
pub struct Errors {
    errors: Vec<Error>,
}

impl Errors {
    /// Records the error of a step, if any.
    pub fn note<T>(&mut self, step: Result<T>) {
        if let Err(e) = step {
            self.errors.push(e);
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok` when every step worked; otherwise one error carrying every message, with the
    /// code of the first.
    ///
    /// # Errors
    /// When any step failed.
    pub fn into_result(self) -> Result<()> {
        let mut iter = self.errors.into_iter();
        let Some(first) = iter.next() else {
            return Ok(());
        };
        let rest: Vec<String> = iter.map(|e| e.to_string()).collect();
        if rest.is_empty() {
            Err(first)
        } else {
            let msg = format!("{}; {}", first.msg, rest.join("; "));
            Err(Error { msg, ..first })
        }
    }
}

impl std::fmt::Display for Errors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let all: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        write!(f, "{}", all.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    #[test]
    fn rollback_undoes_in_reverse_unless_committed() {
        let log = RefCell::new(Vec::new());
        {
            let mut rb = Rollback::new();
            rb.push(|| {
                log.borrow_mut().push("veth");
                Ok(())
            });
            rb.push(|| {
                log.borrow_mut().push("ipam");
                Ok(())
            });
        }
        assert_eq!(*log.borrow(), ["ipam", "veth"]);

        log.borrow_mut().clear();
        let mut rb = Rollback::new();
        rb.push(|| {
            log.borrow_mut().push("veth");
            Ok(())
        });
        rb.commit();
        assert!(log.borrow().is_empty());
    }

    #[test]
    fn fail_reports_cleanup_failures_and_keeps_code() {
        let mut rb = Rollback::new();
        rb.push(|| Err(Error::internal("deleting veth1: busy")));
        rb.push(|| Ok(()));
        let e = rb.fail(Error::invalid_config("bad mtu"));
        assert_eq!(e.code.number(), 7);
        assert!(e.details.contains("deleting veth1: busy"), "{e}");
    }

    #[test]
    fn errors_keep_every_message() {
        let mut errs = Errors::default();
        errs.note::<()>(Ok(()));
        assert!(errs.is_empty());
        errs.note::<()>(Err(Error::internal("a")));
        errs.note::<()>(Err(Error::invalid_config("b")));
        let e = errs.into_result().expect_err("two failures");
        assert_eq!(e.code.number(), 999);
        assert_eq!(e.msg, "a; b");
    }
}
