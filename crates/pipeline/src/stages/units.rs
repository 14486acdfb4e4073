//! `UnitConversion`: `value * scale + offset` on one signal, optionally renaming it.

use qadf_core_types::{SampleBatch, Signals, Stage, StageError, StreamingResult};

/// Converts one signal's unit, e.g. Celsius to kelvin: `UnitConversion::new("temp_c", 1.0, 273.15).rename("temperature")`.
#[derive(Clone, Debug)]
pub struct UnitConversion {
    name: String,
    signal: String,
    scale: f64,
    offset: f64,
    rename_to: Option<String>,
}

impl UnitConversion {
    /// Applies `value * scale + offset` to `signal`.
    pub fn new(signal: impl Into<String>, scale: f64, offset: f64) -> UnitConversion {
        let signal = signal.into();
        UnitConversion { name: format!("units:{signal}"), signal, scale, offset, rename_to: None }
    }

    /// Renames the signal after converting it.
    pub fn rename(mut self, to: impl Into<String>) -> UnitConversion {
        self.rename_to = Some(to.into());
        self
    }
}

impl Stage for UnitConversion {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&self, batch: &mut SampleBatch, _result: &mut StreamingResult) -> Result<(), StageError> {
        for s in &mut batch.samples {
            if s.signals.get(&self.signal).is_none() {
                continue;
            }
            let converted: Signals = s
                .signals
                .iter()
                .map(|(n, v)| {
                    if n == self.signal {
                        (self.rename_to.as_deref().unwrap_or(n).to_owned(), v * self.scale + self.offset)
                    } else {
                        (n.to_owned(), v)
                    }
                })
                .collect();
            s.signals = converted;
        }
        Ok(())
    }
}
