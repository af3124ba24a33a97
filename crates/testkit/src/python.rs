//! Cross-checks against independent reference implementations written in Python (the Standard
//! Webhooks library, `http_ece`): a probe that says whether one is installed, and a runner that
//! feeds a script JSON on stdin.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Whether the Python package `module` can be imported. When it cannot and the environment
/// variable `require` is set (CI sets it), this panics: there the cross-check may not be skipped.
pub fn available(module: &str, require: &str) -> bool {
    let probe = Command::new("python3").args(["-c", &format!("import {module}")]).output();
    if probe.is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert!(std::env::var_os(require).is_none(), "{require} is set but the {module} Python package is missing");
    eprintln!("{module} (Python) is not installed; `pip install {module}` enables the reference cross-check");
    false
}

/// Runs `script` with `input` as JSON on its standard input; what it wrote and how it ended.
pub fn run(script: &str, input: &serde_json::Value) -> Output {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    child.stdin.take().expect("piped").write_all(input.to_string().as_bytes()).expect("python3 reads its input");
    child.wait_with_output().expect("python3 finishes")
}
