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

#[test]
fn schema_check_prints_each_messages_samples_or_refusal_and_fails_on_a_refusal() {
    let dir = std::env::temp_dir().join(format!("qadf-schema-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let messages = dir.join("messages.jsonl");
    std::fs::write(
        &messages,
        concat!(
            r#"{"sensor_id": "sensor_0", "temperature": 1024.8, "x": 15.6, "y": 15.5, "z": 0.58, "timestamp": "2026-01-30T17:31:18.343884"}"#,
            "\n",
            r#"{"material": "Ti64", "temperature": 1}"#,
            "\n"
        ),
    )
    .unwrap();
    let run = |extra: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_qadf-stream"))
            .args(["schema", "check"])
            .arg(&messages)
            .envs(extra.iter().copied())
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "a refused line fails the check: {text}");
    assert!(text.contains(r#""source_id":"sensor_0""#) && text.contains("2026-01-30T17:31:18.343884000Z"), "{text}");
    assert!(text.contains("line 2: refused: sample 0: field `material`"), "{text}");
    let declared = run(&[("QADF_SCHEMA_TAG_FIELDS", "material")]);
    let text = String::from_utf8_lossy(&declared.stdout);
    assert!(declared.status.success(), "{text}");
    assert!(text.contains(r#""tags":{"material":"Ti64"}"#), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rules_check_lists_a_good_files_rules_and_names_every_bad_field() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rules");
    let check = |file: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_qadf-stream")).args(["rules", "check"]).arg(file).output().unwrap()
    };
    let out = check(&examples.join("template.toml"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("9 rules, all valid") && text.contains("ok  photodiode_cusum: Spc"), "{text}");
    // The demo's file takes the monitors' rate from its caller.
    let out = check(&examples.join("demo.toml"));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("`rule[1].max_gap_periods`: needs `sample_rate_hz`"));
    let out = Command::new(env!("CARGO_BIN_EXE_qadf-stream"))
        .args(["rules", "check", "--sample-rate-hz", "100000"])
        .arg(examples.join("demo.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    let dir = std::env::temp_dir().join(format!("qadf-rules-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[rule]]\nname = \"t\"\nkind = \"range\"\nsignal = \"t\"\n[[rule]]\nname = \"s\"\nkind = \"spc\"\nchart = \"pareto\"\nsignal = \"t\"\n").unwrap();
    let out = check(&bad);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("bad `rule[0].critical`") && text.contains("bad `rule[1].chart`: `pareto`"), "{text}");
    assert!(text.contains("2 bad fields") && !text.contains("panicked"), "{text}");
    std::fs::write(&bad, "[[rule]\n").unwrap();
    let out = check(&bad);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("is not valid"), "{}", String::from_utf8_lossy(&out.stdout));
    std::fs::remove_dir_all(&dir).unwrap();
}
