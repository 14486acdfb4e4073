//! A deterministic simulated laser powder-bed-fusion build: scan paths and melt-pool signals.

use qadf_core_types::{Point3, Sample, Signals, Tags, Timestamp, signal};

/// A kind of process defect the simulator can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefectKind {
    /// Overheating (e.g. a thin feature): melt-pool temperature up by about 450 K.
    HotSpot,
    /// Lack of fusion along a track: temperature down by about 400 K, melt pool half the area.
    ColdTrack,
    /// The sensor emits nothing inside the region.
    Dropout,
    /// The sensor repeats one value inside the region.
    StuckSensor,
}

/// A labelled defect: what, in which layer, where (a disc in x/y, mm).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Defect {
    /// The kind.
    pub kind: DefectKind,
    /// The layer it is in.
    pub layer: u32,
    /// Centre (x, y) in mm.
    pub center: [f64; 2],
    /// Radius in mm.
    pub radius_mm: f64,
}

impl Defect {
    fn contains(&self, layer: u32, x: f64, y: f64) -> bool {
        let (dx, dy) = (x - self.center[0], y - self.center[1]);
        layer == self.layer && dx * dx + dy * dy <= self.radius_mm * self.radius_mm
    }
}

/// The temperature a stuck sensor repeats.
pub const STUCK_VALUE: f64 = 1234.5;

/// Parameters of the simulated build.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Build id written into every sample.
    pub build_id: String,
    /// Number of layers.
    pub layers: u32,
    /// Side of the square part in mm.
    pub part_size_mm: f64,
    /// Distance between hatch tracks in mm.
    pub hatch_spacing_mm: f64,
    /// Distance between samples along a track in mm.
    pub point_spacing_mm: f64,
    /// Layer thickness in mm.
    pub layer_thickness_mm: f64,
    /// Sampling rate of the monitor in Hz.
    pub sample_rate_hz: f64,
    /// Seed of the noise generator.
    pub seed: u64,
    /// Injected, labelled defects (ground truth for detection tests).
    pub defects: Vec<Defect>,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            build_id: "demo-build".to_owned(),
            layers: 10,
            part_size_mm: 10.0,
            hatch_spacing_mm: 0.1,
            point_spacing_mm: 0.1,
            layer_thickness_mm: 0.03,
            sample_rate_hz: 100_000.0,
            seed: 7,
            defects: Vec::new(),
        }
    }
}

/// SplitMix64: a tiny, well-known deterministic generator (Steele et al., 2014).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Approximately standard normal (sum of 12 uniforms minus 6).
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.unit()).sum::<f64>() - 6.0
    }
}

/// Generates one layer at a time; hatch direction alternates between x and y.
pub struct Simulator {
    config: SimConfig,
    rng: SplitMix64,
    clock: Timestamp,
}

impl Simulator {
    /// A simulator starting its clock at `start`.
    pub fn new(config: SimConfig, start: Timestamp) -> Simulator {
        let rng = SplitMix64(config.seed);
        Simulator { config, rng, clock: start }
    }

    /// The samples of layer `layer`, in scan order.
    pub fn layer(&mut self, layer: u32) -> Vec<Sample> {
        let c = &self.config;
        let origin = 125.0 - c.part_size_mm / 2.0;
        let tracks = (c.part_size_mm / c.hatch_spacing_mm) as usize;
        let points = (c.part_size_mm / c.point_spacing_mm) as usize;
        let z = (layer as f64 + 0.5) * c.layer_thickness_mm;
        let step_ns = (1e9 / c.sample_rate_hz) as i64;
        let mut out = Vec::with_capacity(tracks * points);
        for t in 0..tracks {
            for p in 0..points {
                // Samples sit mid-way between grid lines, as a scan is never aligned with the voxels.
                let along = (p as f64 + 0.5) * c.point_spacing_mm;
                let across = (t as f64 + 0.5) * c.hatch_spacing_mm;
                let (x, y) = if layer.is_multiple_of(2) { (along, across) } else { (across, along) };
                let (mut temperature, mut area) = (1900.0 + 15.0 * self.rng.normal(), 0.04 + 0.002 * self.rng.normal());
                let (px, py) = (origin + x, origin + y);
                let mut emit = true;
                for d in c.defects.iter().filter(|d| d.contains(layer, px, py)) {
                    match d.kind {
                        DefectKind::HotSpot => temperature += 450.0,
                        DefectKind::ColdTrack => {
                            temperature -= 400.0;
                            area *= 0.5;
                        }
                        DefectKind::Dropout => emit = false,
                        DefectKind::StuckSensor => temperature = STUCK_VALUE,
                    }
                }
                self.clock = Timestamp::from_nanos(self.clock.as_nanos() + step_ns);
                if !emit {
                    continue;
                }
                let mut signals = Signals::new();
                signals.push(signal::TEMPERATURE, temperature);
                signals.push(signal::MELT_POOL_AREA, area);
                out.push(Sample {
                    build_id: c.build_id.as_str().into(),
                    source_id: "ispm-0".into(),
                    layer,
                    timestamp: self.clock,
                    position: Some(Point3::new(px, py, z)),
                    signals,
                    tags: Tags::new(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_build_and_positions_inside_the_part() {
        let config = SimConfig { layers: 2, part_size_mm: 1.0, ..SimConfig::default() };
        let a = Simulator::new(config.clone(), Timestamp::EPOCH).layer(1);
        let b = Simulator::new(config, Timestamp::EPOCH).layer(1);
        assert_eq!(a, b);
        assert_eq!(a.len(), 100);
        for s in &a {
            let p = s.position.unwrap();
            assert!((124.5..125.5).contains(&p.x) && (124.5..125.5).contains(&p.y), "{p}");
            s.validate().unwrap();
        }
        assert!(a.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
    }
}
