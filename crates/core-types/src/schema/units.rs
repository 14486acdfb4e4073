//! Declared signal units and their conversion to the canonical unit of their kind, with the
//! factors taken from `uom` (the SI system and its unit tables), not written by hand.

use std::str::FromStr;

use uom::si::f64::{
    Area, ElectricCurrent, ElectricPotential, Energy, Frequency, Length, Power, ThermodynamicTemperature, Time,
    Velocity,
};
use uom::si::{
    area, electric_current, electric_potential, energy, frequency, length, power, thermodynamic_temperature, time,
    velocity,
};

/// `canonical = value * scale + offset`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conversion {
    /// Multiplier.
    pub scale: f64,
    /// Added after scaling (°C → K: 273.15).
    pub offset: f64,
}

impl Conversion {
    /// No change.
    pub const IDENTITY: Conversion = Conversion { scale: 1.0, offset: 0.0 };

    /// The canonical value of `v`.
    #[inline]
    pub fn apply(self, v: f64) -> f64 {
        if self == Conversion::IDENTITY { v } else { v.mul_add(self.scale, self.offset) }
    }
}

/// A declared unit resolved: what it converts to and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    /// The canonical unit values are stored in (`K`, `mm`, `V`, ...), or the declared label for a
    /// dimensionless unit.
    pub canonical: String,
    /// From the declared unit to the canonical one.
    pub conversion: Conversion,
}

/// The kinds of quantity with a canonical unit, as (kind, canonical label, parser to canonical).
type Reader = fn(&str) -> Option<f64>;
const KINDS: [(&str, &str, Reader); 10] = [
    ("temperature", "K", |t| {
        ThermodynamicTemperature::from_str(t).ok().map(|q| q.get::<thermodynamic_temperature::kelvin>())
    }),
    ("length", "mm", |t| Length::from_str(t).ok().map(|q| q.get::<length::millimeter>())),
    ("area", "mm²", |t| Area::from_str(t).ok().map(|q| q.get::<area::square_millimeter>())),
    ("velocity", "mm/s", |t| Velocity::from_str(t).ok().map(|q| q.get::<velocity::millimeter_per_second>())),
    ("power", "W", |t| Power::from_str(t).ok().map(|q| q.get::<power::watt>())),
    ("voltage", "V", |t| ElectricPotential::from_str(t).ok().map(|q| q.get::<electric_potential::volt>())),
    ("current", "A", |t| ElectricCurrent::from_str(t).ok().map(|q| q.get::<electric_current::ampere>())),
    ("time", "s", |t| Time::from_str(t).ok().map(|q| q.get::<time::second>())),
    ("frequency", "Hz", |t| Frequency::from_str(t).ok().map(|q| q.get::<frequency::hertz>())),
    ("energy", "J", |t| Energy::from_str(t).ok().map(|q| q.get::<energy::joule>())),
];

/// Units without a kind: stored as given.
const DIMENSIONLESS: [&str; 5] = ["1", "counts", "count", "%", "a.u."];

/// ASCII spellings of units whose `uom` abbreviation is not ASCII.
fn uom_abbreviation(unit: &str) -> &str {
    match unit {
        "degC" | "deg_C" | "celsius" | "Celsius" | "C" | "oC" => "°C",
        "degF" | "deg_F" | "fahrenheit" | "Fahrenheit" | "F" => "°F",
        "kelvin" => "K",
        "um" | "micron" => "µm",
        "mm2" | "mm^2" => "mm²",
        "um2" | "um^2" | "µm2" => "µm²",
        "m2" | "m^2" => "m²",
        "cm2" | "cm^2" => "cm²",
        "us" => "µs",
        "uV" => "µV",
        "uA" => "µA",
        other => other,
    }
}

/// Resolves a declared unit: `degC`, `°C`, `mV`, `um`, `m/s`, `kW`, `counts`, ...
pub fn resolve(unit: &str) -> Result<Unit, String> {
    let unit = unit.trim();
    if DIMENSIONLESS.contains(&unit) {
        return Ok(Unit { canonical: unit.to_owned(), conversion: Conversion::IDENTITY });
    }
    let abbreviation = uom_abbreviation(unit);
    for (_, canonical, read) in KINDS {
        let (Some(zero), Some(one)) = (read(&format!("0 {abbreviation}")), read(&format!("1 {abbreviation}"))) else {
            continue;
        };
        let conversion = Conversion { scale: one - zero, offset: zero };
        return Ok(Unit { canonical: canonical.to_owned(), conversion });
    }
    let kinds: Vec<String> = KINDS.iter().map(|(kind, canonical, _)| format!("{kind} ({canonical})")).collect();
    Err(format!(
        "unknown unit `{unit}`: give an SI abbreviation (°C or degC, K, mm, um, mm², mm/s, W, mV, A, ms, kHz, J) of {}, or one of {} for a value stored as given",
        kinds.join(", "),
        DIMENSIONLESS.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_resolve_to_their_canonical_kind_with_uom_factors() {
        let c = resolve("degC").unwrap();
        assert_eq!((c.canonical.as_str(), c.conversion.apply(1000.0)), ("K", 1273.15));
        assert_eq!(resolve("°C").unwrap(), c);
        let f = resolve("degF").unwrap();
        assert!((f.conversion.apply(32.0) - 273.15).abs() < 1e-9 && (f.conversion.apply(212.0) - 373.15).abs() < 1e-9);
        assert_eq!(resolve("K").unwrap().conversion, Conversion::IDENTITY);
        assert_eq!(resolve("mm").unwrap().conversion, Conversion::IDENTITY);
        let mv = resolve("mV").unwrap();
        assert_eq!(mv.canonical, "V");
        assert!((mv.conversion.apply(1500.0) - 1.5).abs() < 1e-12);
        let um = resolve("um").unwrap();
        assert_eq!(um.canonical, "mm");
        assert!((um.conversion.apply(30.0) - 0.03).abs() < 1e-15);
        assert!((resolve("m/s").unwrap().conversion.apply(1.0) - 1000.0).abs() < 1e-9);
        assert!((resolve("kW").unwrap().conversion.apply(0.2) - 200.0).abs() < 1e-9);
        assert_eq!(resolve("counts").unwrap(), Unit { canonical: "counts".into(), conversion: Conversion::IDENTITY });
        let e = resolve("furlongs").unwrap_err();
        assert!(e.contains("unknown unit `furlongs`") && e.contains("temperature (K)"), "{e}");
    }
}
