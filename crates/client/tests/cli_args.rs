//! `qadf-stream run` refuses bad arguments with a clear error and a non-zero exit, never a panic
//! (before: `--exit-when-idle=-1`, `--instances 0` and a tiny `--sample-rate-hz` panicked, and
//! `--instance 5 --instances 2` was accepted and consumed nothing).

use std::process::Command;

fn refused(args: &[&str], words: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_qadf-stream")).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} was accepted");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(stderr.contains(words), "{args:?}: the error does not say `{words}`: {stderr}");
}

#[test]
fn bad_run_arguments_are_refused_naming_the_flag() {
    refused(&["run", "--exit-when-idle=-1"], "--exit-when-idle");
    refused(&["run", "--exit-when-idle", "NaN"], "--exit-when-idle");
    refused(&["run", "--exit-when-idle", "1e30"], "--exit-when-idle");
    refused(&["run", "--instance", "0", "--instances", "0"], "--instances: must be at least 1");
    refused(&["run", "--instance", "5", "--instances", "2"], "is not below --instances 2");
    refused(&["run", "--sample-rate-hz", "1e-300"], "--sample-rate-hz");
    refused(&["run", "--sample-rate-hz", "0"], "--sample-rate-hz");
    refused(&["run", "--sample-rate-hz", "inf"], "--sample-rate-hz");
}
