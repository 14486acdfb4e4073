use qadf_core_types::{Point3, Sample, SampleBatch, Timestamp};

use super::*;

#[test]
fn western_electric_rules_on_standardized_sequences() {
    let cases: &[(&[f64], &[&str])] = &[
        (&[0.0, 0.5, 3.2], &["WE1"]),
        (&[0.0, 0.5, -3.01], &["WE1"]),
        (&[2.5, 0.3, 2.1], &["WE2"]),
        (&[-2.5, -2.1], &[]), // fewer than 3 points: rule 2 cannot be judged
        (&[0.0, -2.5, -2.1], &["WE2"]),
        (&[2.5, -2.2, 0.1], &[]),
        (&[1.5, 1.2, 0.5, 1.1, 1.3], &["WE3"]),
        (&[1.5, -1.2, 0.5, 1.1, 1.3], &[]),
        (&[0.1, 0.2, 0.1, 0.3, 0.2, 0.1, 0.4, 0.2], &["WE4"]),
        (&[0.1, 0.2, 0.1, 0.3, -0.2, 0.1, 0.4, 0.2], &[]),
        (&[1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 2.5, 3.5], &["WE1", "WE2", "WE3", "WE4"]),
        (&[2.5, 2.5, 0.0], &[]), // the newest point must take part
    ];
    for (z, expected) in cases {
        let got: Vec<&str> = western_electric(z).iter().map(|r| &r[..3]).collect();
        assert_eq!(&got, expected, "z = {z:?}");
    }
}

#[test]
fn nelson_rules_on_standardized_sequences() {
    let rising: Vec<f64> = (0..6).map(|i| -1.0 + 0.3 * f64::from(i)).collect();
    let alternating: Vec<f64> = (0..14).map(|i| if i % 2 == 0 { 0.5 } else { -0.5 }).collect();
    let quiet = vec![0.3; 15];
    let mixture = [1.5, -1.5, 1.2, -2.0, 1.1, -1.3, 1.4, -1.6];
    let cases: Vec<(Vec<f64>, Vec<&str>)> = vec![
        (vec![0.5; 9], vec!["N2"]),
        (vec![0.5; 8], vec![]),
        (rising.clone(), vec!["N3"]),
        (rising[..5].to_vec(), vec![]),
        ([rising.clone(), vec![0.5]].concat(), vec![]), // the newest breaks the trend
        (alternating.clone(), vec!["N4"]),
        (alternating[..13].to_vec(), vec![]),
        ([quiet.clone(), vec![]].concat(), vec!["N2", "N7"]),
        ((0..15).map(|i| if i % 4 < 2 { 0.3 } else { -0.3 }).collect(), vec!["N7"]),
        ((0..15).map(|i| if i % 4 < 2 { 0.3 } else { -1.3 }).collect(), vec![]),
        (mixture.to_vec(), vec!["N8"]),
        ([1.5; 8].to_vec(), vec![]), // all on one side: WE4's and N2's, not N8's
    ];
    for (z, expected) in cases {
        let got: Vec<&str> = nelson(&z).iter().map(|r| r.split(':').next().unwrap()).collect();
        assert_eq!(got, expected, "z = {z:?}");
    }
}

fn batch(values: &[f64]) -> SampleBatch {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let mut s =
                Sample::new(Timestamp::from_nanos(i as i64), Point3::origin(), [("t", v)].into_iter().collect());
            s.build_id = "b".into();
            s
        })
        .collect::<Vec<_>>()
        .into()
}

/// Warm-up of 5 subgroups [9, 10, 10, 11]: centre 10, R̄ = 2, σ(X̄) = 2 / (2.059 · 2), UCL ≈ 11.457.
#[test]
fn xbar_chart_learns_limits_and_flags_known_points() {
    let stage = SpcStage::new("t", ChartKind::XBarR { subgroup_size: 4 }, 5).unwrap();
    let mut result = StreamingResult::default();
    let warmup: Vec<f64> = (0..5).flat_map(|_| [9.0, 10.0, 10.0, 11.0]).collect();
    stage.process(&mut batch(&warmup), &mut result).unwrap();
    assert!(result.spc_results.is_empty(), "no verdict during warm-up");

    // Subgroup means: 10 (in control), 12 (beyond UCL), 10 (on the centre line: breaks any run),
    // then eight at 10.1 (WE4 on the eighth; 12 alone would have completed the run one earlier).
    let mut values = vec![10.0; 4];
    values.extend([12.0; 4]);
    values.extend([10.0; 4]);
    values.extend([10.1; 32]);
    let mut result = StreamingResult::default();
    stage.process(&mut batch(&values), &mut result).unwrap();
    let out: Vec<&SpcResult> = result.spc_results.iter().filter(|r| !r.in_control).collect();
    assert_eq!(out.len(), 2, "{out:#?}");
    assert!((out[0].value - 12.0).abs() < 1e-12 && out[0].violated_rules[0].starts_with("WE1"));
    let sigma = 2.0 / (2.059 * 2.0);
    assert!((out[0].upper_control_limit - (10.0 + 3.0 * sigma)).abs() < 1e-9);
    assert!(out[1].violated_rules.iter().any(|r| r.starts_with("WE4")), "{:?}", out[1].violated_rules);
    assert_eq!(result.alerts.len(), 2);
    assert_eq!(result.alerts[0].checkpoint, "spc:xbar:t");
}

/// Warm-up alternating 9, 11: μ₀ = 10, MR̄ = 2, σ = 2 / 1.128. A step to 12 is caught at the first
/// point where 2 (1 − 0.8^k) exceeds the limit half-width (λ = 0.2, L = 3).
#[test]
fn ewma_catches_a_step_shift_where_theory_says() {
    let (lambda, l) = (0.2, 3.0);
    let stage = SpcStage::new("t", ChartKind::Ewma { lambda, l }, 20).unwrap();
    let warmup: Vec<f64> = (0..20).map(|i| if i % 2 == 0 { 9.0 } else { 11.0 }).collect();
    let mut values = vec![10.0; 10];
    values.extend([12.0; 20]);
    let mut result = StreamingResult::default();
    stage.process(&mut batch(&warmup), &mut result).unwrap();
    stage.process(&mut batch(&values), &mut result).unwrap();
    let sigma = 2.0 / 1.128;
    let expected = (1..=20u32)
        .find(|&k| {
            let t = 10 + k;
            let width = l * sigma * (lambda / (2.0 - lambda) * (1.0 - (1.0f64 - lambda).powi(2 * t as i32))).sqrt();
            2.0 * (1.0 - (1.0f64 - lambda).powi(k as i32)) > width
        })
        .unwrap();
    let first_alarm = result.alerts.first().expect("the shift is detected");
    assert_eq!(
        first_alarm.timestamp,
        Timestamp::from_nanos(10 + expected as i64 - 1),
        "expected the {expected}th shifted point"
    );
}

#[test]
fn invalid_chart_parameters_are_refused() {
    assert!(SpcStage::new("t", ChartKind::XBarR { subgroup_size: 1 }, 5).is_err());
    assert!(SpcStage::new("t", ChartKind::Ewma { lambda: 0.0, l: 3.0 }, 5).is_err());
    assert!(SpcStage::new("t", ChartKind::Ewma { lambda: 0.2, l: 3.0 }, 1).is_err());
}
