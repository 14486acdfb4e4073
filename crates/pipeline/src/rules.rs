//! A rules file's rules (`qadf_core_types::rules`) as the pipeline's quality checkpoints: each
//! rule's check, narrowed to its scope, its alerts stamped with its severity and unit.

use std::sync::Arc;

use qadf_core_types::rules::{Limits, Rule, RuleSpec};
use qadf_core_types::{SampleBatch, StageError};

use crate::checkpoint::{CheckOutcome, GapCheck, HotSpotCheck, QualityCheck, RangeCheck, RateCheck, ZScoreCheck};
use crate::pipeline::PipelineBuilder;
use crate::stages::{SpcStage, VoxelStage};
use crate::window_check::WindowCheck;

/// One rule as a checkpoint.
pub struct RuleCheck {
    rule: Rule,
    check: Arc<dyn QualityCheck>,
}

impl RuleCheck {
    /// The check a rule describes; hot-spot rules read the voxel grids of `voxels`.
    pub fn new(rule: Rule, voxels: &Arc<VoxelStage>) -> Result<RuleCheck, StageError> {
        let name = rule.name.clone();
        let signal = rule.signal.clone().unwrap_or_default();
        let check: Arc<dyn QualityCheck> = match rule.spec.clone() {
            RuleSpec::Range { warning, critical } => Arc::new(RangeCheck::bands(name, signal, warning, critical)),
            RuleSpec::Rate { min_hz } => Arc::new(RateCheck::new(name, min_hz)),
            RuleSpec::Gap { max_gap } => Arc::new(GapCheck::new(name, max_gap)),
            RuleSpec::ZScore { window, k } => Arc::new(ZScoreCheck::new(name, signal, window, k)),
            RuleSpec::Window { span, buffer, statistic, warning, critical } => {
                Arc::new(WindowCheck::new(name, signal, (span, buffer, statistic), warning, critical))
            }
            RuleSpec::HotSpot { k, min_count } => {
                Arc::new(HotSpotCheck::new(name, signal, k, min_count, voxels.clone()))
            }
            RuleSpec::Spc { chart, limits, run_rules } => {
                let warmup = match limits {
                    Limits::WarmUp(n) => n,
                    Limits::Fixed { .. } => 2,
                };
                let mut stage = SpcStage::new(signal, chart, warmup)?.with_name(name).with_run_rules(&run_rules);
                if let Limits::Fixed { center, sigma } = limits {
                    stage = stage.with_fixed_limits(center, sigma);
                }
                Arc::new(stage.with_severity(rule.severity))
            }
        };
        Ok(RuleCheck { rule, check })
    }

    /// The rule.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }
}

impl QualityCheck for RuleCheck {
    fn name(&self) -> &str {
        &self.rule.name
    }

    fn check(&self, batch: &SampleBatch) -> CheckOutcome {
        let scope = &self.rule.scope;
        let mut outcome = if scope.is_all() || batch.samples.iter().all(|s| scope.admits(s)) {
            self.check.check(batch)
        } else {
            let within: Vec<_> = batch.samples.iter().filter(|s| scope.admits(s)).cloned().collect();
            if within.is_empty() {
                return CheckOutcome::default();
            }
            self.check.check(&SampleBatch::new(within))
        };
        let own_severity = !matches!(self.rule.spec, RuleSpec::Range { .. } | RuleSpec::Window { .. });
        for alert in &mut outcome.alerts {
            alert.unit.clone_from(&self.rule.unit);
            if own_severity {
                alert.severity = self.rule.severity;
            }
        }
        outcome
    }

    fn forget(&self, build: &str) {
        self.check.forget(build);
    }
}

/// Appends the rules' checkpoints (in file order) to `builder`, each with its action and, when it
/// sets one, its de-duplication interval.
pub fn add_rules(mut builder: PipelineBuilder, rules: &[Arc<RuleCheck>]) -> PipelineBuilder {
    for check in rules {
        let rule = check.rule();
        if let Some(interval) = rule.dedup_interval {
            builder = builder.dedup_interval_for(&rule.name, interval);
        }
        builder = builder.add_checkpoint(check.clone(), rule.action);
    }
    builder
}

/// The checks of `rules`, in order.
pub fn compile(rules: Vec<Rule>, voxels: &Arc<VoxelStage>) -> Result<Vec<Arc<RuleCheck>>, StageError> {
    rules.into_iter().map(|r| RuleCheck::new(r, voxels).map(Arc::new)).collect()
}
