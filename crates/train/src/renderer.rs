//! The plain (non-dashboard) renderer: silent per batch; the per-epoch line comes from
//! [`CsvMetricLogger`](crate::metric_logger::CsvMetricLogger) as each epoch's row is written. Both
//! speak through a [`Progress`].

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::MetricDefinition;
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};
use fashion_mixer_run::Progress;

/// Says where training starts, and nothing per batch.
#[derive(Debug, Default)]
pub struct PlainRenderer {
    progress: Progress,
}

impl PlainRenderer {
    /// Speaks through `progress`.
    pub fn new(progress: Progress) -> Self {
        Self { progress }
    }
}

impl MetricsRendererTraining for PlainRenderer {
    fn update_train(&mut self, _state: MetricState) {}
    fn update_valid(&mut self, _state: MetricState) {}
}

impl MetricsRendererEvaluation for PlainRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
}

impl TrainingProgressLogger for PlainRenderer {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        total_items: Option<usize>,
        _label: Option<&str>,
    ) {
        let items = total_items
            .map(|n| format!(", {n} training items"))
            .unwrap_or_default();
        self.progress.emit(&format!(
            "training epochs {}..={total_epochs}{items}",
            starting_epoch.max(1)
        ));
    }
    fn update_epoch(&mut self, _epoch: usize) {}
    fn start_split(&mut self, _split: &str, _total_items: usize) {}
    fn update_split(&mut self, _items_processed: usize) {}
    fn end_split(&mut self) {}
    fn end(&mut self) {}
    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for PlainRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}
    fn start_test(&mut self, _name: &str, _total_items: usize) {}
    fn update_test_progress(&mut self, _items_processed: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRenderer for PlainRenderer {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, _definition: MetricDefinition) {}
}
