//! The bucket columns are readable by others: an independent reader in Python (the `pcodec`
//! package, installed by `cargo xtask services up kafka` with the other black-box clients) parses
//! the version-1 layout from its description in `storage/src/bucket.rs` and gets back exactly the
//! values of every column.

use qadf_integration_tests::{monitor_run, run_python};
use qadf_storage::bucket::Bucket;

const READER: &str = r#"
import json, struct, sys
from pcodec import standalone
blob = open(sys.argv[1], "rb").read()
assert blob[0] == 1, "format version"
count, = struct.unpack_from("<I", blob, 1)
at, columns = 5, []
while at < len(blob):
    n, = struct.unpack_from("<I", blob, at)
    values = standalone.simple_decompress(blob[at + 4:at + 4 + n])
    assert len(values) == count
    columns.append([int(v) for v in values] if values.dtype.kind == "i" else [float(v).hex() for v in values])
    at += 4 + n
print(json.dumps({"count": count, "columns": columns}))
"#;

#[test]
fn python_with_pcodec_reads_every_column_exactly() {
    let samples = monitor_run(2_000, 4);
    let bucket = Bucket::encode(&samples).unwrap();
    let file = std::env::temp_dir().join(format!("qadf-bucket-{}.bin", std::process::id()));
    std::fs::write(&file, &bucket.columns).unwrap();
    let out = run_python(READER, &[file.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();
    let read: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(read["count"], 2_000);
    let columns = read["columns"].as_array().unwrap();
    assert_eq!(columns.len(), 1 + 3 + 2, "time, x, y, z and two signals");
    let times: Vec<i64> = columns[0].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(times, samples.iter().map(|s| s.timestamp.as_nanos()).collect::<Vec<_>>());
    let hex = |c: usize| -> Vec<String> {
        columns[c].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    };
    let want = |f: &dyn Fn(&qadf_core_types::Sample) -> f64| -> Vec<String> {
        samples.iter().map(|s| python_hex(f(s))).collect()
    };
    assert_eq!(hex(1), want(&|s| s.position.unwrap().x));
    assert_eq!(hex(2), want(&|s| s.position.unwrap().y));
    assert_eq!(hex(3), want(&|s| s.position.unwrap().z));
    assert_eq!(hex(4), want(&|s| s.signals.get("temperature").unwrap()));
    assert_eq!(hex(5), want(&|s| s.signals.get("melt_pool_intensity").unwrap()));
}

/// Python's `float.hex()` of a finite, positive, normal `f64`: the exact bits as text.
fn python_hex(v: f64) -> String {
    assert!(v.is_normal() && v > 0.0, "{v}");
    let bits = v.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mantissa = format!("{:013x}", bits & ((1 << 52) - 1));
    format!("0x1.{mantissa}p{exponent:+}")
}
