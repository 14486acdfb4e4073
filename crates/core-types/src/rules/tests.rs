use super::*;

fn compile(text: &str) -> Result<Vec<Rule>, Vec<String>> {
    let mut config = RulesConfig::from_toml_str(text, "test").map_err(|e| vec![e.to_string()])?;
    if text == DEMO_RULES {
        config.sample_rate_hz = Some(10_000.0); // the demo's file takes the monitors' rate from its caller
    }
    config.compile(100, 1000).map_err(|e| match e {
        ConfigError::Invalid(errors) => errors.iter().map(ToString::to_string).collect(),
        other => vec![other.to_string()],
    })
}

#[test]
fn the_demo_and_template_files_compile() {
    let demo = compile(DEMO_RULES).unwrap();
    assert_eq!(demo.len(), 2);
    assert_eq!(demo[0].spec, RuleSpec::Range { warning: None, critical: Some((1700.0, 2150.0)) });
    assert_eq!(demo[1].spec, RuleSpec::Gap { max_gap: Duration::from_micros(300) });
    let template = compile(include_str!("../../../../examples/rules/template.toml")).unwrap();
    let kinds: Vec<&str> = template
        .iter()
        .map(|r| match &r.spec {
            RuleSpec::Range { .. } => "range",
            RuleSpec::Rate { .. } => "rate",
            RuleSpec::Gap { .. } => "gap",
            RuleSpec::ZScore { .. } => "zscore",
            RuleSpec::Window { .. } => "window",
            RuleSpec::HotSpot { .. } => "hotspot",
            RuleSpec::Spc { .. } => "spc",
        })
        .collect();
    assert_eq!(kinds, ["range", "rate", "gap", "zscore", "window", "hotspot", "spc", "spc", "spc"]);
    assert_eq!(
        template[4].spec,
        RuleSpec::Window {
            span: Span::Time(Duration::from_millis(10)),
            buffer: 2000,
            statistic: Statistic::Mean,
            warning: Some((420.0, 580.0)),
            critical: None
        }
    );
    assert!(matches!(&template[6].spec, RuleSpec::Spc { run_rules, .. } if run_rules.contains(&RunRule::N3)));
    assert_eq!(template[0].scope.tags.get("material").map(String::as_str), Some("Ti64"));
    assert_eq!(template[0].dedup_interval, Some(Duration::from_millis(500)));
    assert_eq!(
        template[7].spec,
        RuleSpec::Spc {
            chart: Chart::Ewma { lambda: 0.2, l: 3.0 },
            limits: Limits::Fixed { center: 500.0, sigma: 40.0 },
            run_rules: vec![RunRule::We1, RunRule::We2, RunRule::We3, RunRule::We4]
        }
    );
}

#[test]
fn every_bad_field_is_named() {
    let text = r#"
sample_rate_hz = -1.0
[[rule]]
name = "a"
kind = "range"
signal = "t"
warning = [10.0, 1.0]
window = 5
[[rule]]
name = "a"
kind = "spc"
chart = "xbar_r"
signal = "t"
subgroup_size = 40
run_rules = ["we9"]
[[rule]]
name = "c"
kind = "zscore"
[[rule]]
name = "d"
kind = "gap"
max_gap_periods = 3.0
[[rule]]
name = "e"
kind = "bogus"
[[rule]]
name = "f"
kind = "window"
signal = "t"
window = 5
window_ms = 2.0
statistic = "median"
critical = [0.0, 1.0]
"#;
    let errors = compile(text).unwrap_err();
    for expected in [
        "`sample_rate_hz`",
        "`rule[0].warning`: [10, 1] is not a band",
        "`rule[0].window`: is not read by a `range` rule",
        "`rule[1].name`: `a` names an earlier rule",
        "`rule[1].subgroup_size`: 40",
        "`rule[1].run_rules`: `we9`",
        "`rule[2].signal`",
        "`rule[2].k`",
        "`rule[3].max_gap_ms`: a gap of -3000 ms",
        "`rule[4].kind`: `bogus` is not a rule kind",
        "`rule[5].window_ms`: give `window` (samples) or `window_ms`, not both",
        "`rule[5].statistic`: `median`",
    ] {
        assert!(errors.iter().any(|e| e.starts_with(expected)), "missing {expected}: {errors:#?}");
    }
    assert_eq!(errors.len(), 12, "{errors:#?}");
    let typo = compile("[[rule]]\nname = \"a\"\nkind = \"range\"\nsignal = \"t\"\ncritcal = [1.0, 2.0]\n").unwrap_err();
    assert!(typo[0].contains("critcal"), "{typo:?}");
}

#[test]
fn scopes_admit_by_build_source_tag_and_region() {
    let mut s = Sample::new(
        crate::Timestamp::EPOCH,
        nalgebra::Point3::new(10.0, 20.0, 0.0),
        [("t", 1.0)].into_iter().collect(),
    );
    s.build_id = "b1".into();
    s.tags.insert("material", "Ti64");
    let scope = |text: &str| toml::from_str::<Scope>(text).unwrap();
    assert!(scope("").is_all() && scope("").admits(&s));
    assert!(scope("builds = [\"b1\"]\ntags = { material = \"Ti64\" }").admits(&s));
    assert!(!scope("builds = [\"b2\"]").admits(&s));
    assert!(!scope("sources = [\"other\"]").admits(&s));
    assert!(!scope("tags = { material = \"In718\" }").admits(&s));
    assert!(scope("region = [0.0, 0.0, 10.0, 20.0]").admits(&s));
    assert!(!scope("region = [0.0, 0.0, 9.9, 20.0]").admits(&s));
    s.position = None;
    assert!(!scope("region = [0.0, 0.0, 10.0, 20.0]").admits(&s));
}

#[test]
fn oversized_files_and_too_many_rules_are_refused() {
    let many: String =
        (0..=MAX_RULES).map(|i| format!("[[rule]]\nname = \"r{i}\"\nkind = \"rate\"\nmin_hz = 1.0\n")).collect();
    let errors = compile(&many).unwrap_err();
    assert!(errors[0].starts_with("`rule`: 1001 rules: a file holds at most 1000"), "{errors:?}");
    let path = std::env::temp_dir().join(format!("qadf-rules-big-{}.toml", std::process::id()));
    std::fs::write(&path, "#".repeat(MAX_RULES_FILE_BYTES as usize + 1)).unwrap();
    let e = RulesConfig::from_file(&path).unwrap_err().to_string();
    std::fs::remove_file(&path).unwrap();
    assert!(e.contains("a rules file is at most 1048576 bytes"), "{e}");
}
