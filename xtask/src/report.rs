//! `cargo xtask bench` with no target: every service benchmark in one run, written as one report
//! into docs/PERFORMANCE.md (between the `bench-report` markers), each figure next to the ceiling
//! measured in the same run and the seed targets.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

const BEGIN: &str = "<!-- bench-report:begin (written by `cargo xtask bench`) -->";
const END: &str = "<!-- bench-report:end -->";

/// Runs `command`, echoing its stdout, and returns the lines it printed.
pub fn run_capture(command: &mut Command) -> Result<Vec<String>> {
    let mut child = command.stdout(Stdio::piped()).spawn().with_context(|| format!("cannot run {command:?}"))?;
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().context("no stdout")?).lines() {
        let line = line?;
        println!("{line}");
        lines.push(line);
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(lines)
}

/// One line describing this machine: CPU model, cores, memory, kernel.
fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|m| m.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let kernel = read("/proc/sys/kernel/osrelease");
    format!(
        "{}, {cores} cores, {:.0} GiB, Linux {}",
        model.unwrap_or("unknown CPU"),
        mem_kib as f64 / 1024.0 / 1024.0,
        kernel.trim()
    )
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The commit measured, marked when the working tree had changes.
fn commit() -> String {
    let head = command_output("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = !command_output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    if dirty { format!("{head} (with uncommitted changes)") } else { head }
}

/// The report in Markdown from each bench's printed lines: its tables and `##` headings, then
/// every `TARGET | ...` line gathered into the seed-target table.
pub fn render(sections: &[(&str, Vec<String>)]) -> String {
    let mut out = vec![
        BEGIN.to_owned(),
        "## Report of one run — `cargo xtask bench`".to_owned(),
        String::new(),
        format!(
            "Run {} at commit {} on {}.",
            command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            commit(),
            machine()
        ),
        "Every ceiling below was measured in the same run against the same servers.".to_owned(),
        String::new(),
        "| seed target | measured | target | verdict |".to_owned(),
        "|---|---|---|---|".to_owned(),
    ];
    for (_, lines) in sections {
        out.extend(lines.iter().filter_map(|l| l.strip_prefix("TARGET ")).map(str::to_owned));
    }
    for (title, lines) in sections {
        out.push(String::new());
        out.push(format!("### {title}"));
        out.push(String::new());
        for line in lines {
            if let Some(heading) = line.strip_prefix("## ") {
                out.push(format!("{heading}:"));
                out.push(String::new());
            } else if line.starts_with('|') {
                out.push(line.clone());
            } else if !line.starts_with("TARGET") && looks_like_result(line) {
                out.push(format!("- {line}"));
                out.push(String::new());
            }
        }
    }
    out.push(END.to_owned());
    out.join("\n")
}

/// Result lines of the e2e bench (prose with figures), as opposed to cargo's and criterion's chatter.
fn looks_like_result(line: &str) -> bool {
    line.contains("p99") || line.contains("samples/s")
}

/// Replaces the report between the markers in `doc` (or inserts it before the first `## ` section).
pub fn write_into(doc: &Path, report: &str) -> Result<()> {
    let text = std::fs::read_to_string(doc).with_context(|| format!("reading {}", doc.display()))?;
    let updated = match (text.find(BEGIN), text.find(END)) {
        (Some(b), Some(e)) if e > b => format!("{}{report}{}", &text[..b], &text[e + END.len()..]),
        _ => {
            let at = text.find("\n## ").map_or(text.len(), |i| i + 1);
            format!("{}{report}\n\n{}", &text[..at], &text[at..])
        }
    };
    std::fs::write(doc, updated).with_context(|| format!("writing {}", doc.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_gathered_tables_kept_and_chatter_dropped() {
        let kafka = vec![
            "   Compiling qadf-kafka-io".to_owned(),
            "| Kafka | result |".to_owned(),
            "|---|---|".to_owned(),
            "| raw fetch (ceiling) | 100 records/s |".to_owned(),
            "TARGET | msg/s | 5000 msg/s | > 1000 msg/s | met |".to_owned(),
        ];
        let e2e = vec!["## live view".to_owned(), "3000 batches: p50 1 ms, p99 2 ms".to_owned()];
        let report = render(&[("Kafka", kafka), ("End to end", e2e)]);
        assert!(report.contains("| msg/s | 5000 msg/s | > 1000 msg/s | met |"), "{report}");
        assert!(report.contains("| raw fetch (ceiling) | 100 records/s |"));
        assert!(report.contains("live view:\n\n- 3000 batches: p50 1 ms, p99 2 ms"), "{report}");
        assert!(!report.contains("Compiling") && !report.contains("TARGET"));
    }

    #[test]
    fn the_report_replaces_the_previous_one_and_keeps_the_rest() {
        let dir = std::env::temp_dir().join(format!("xtask-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let doc = dir.join("PERFORMANCE.md");
        std::fs::write(&doc, "# Performance\n\nintro\n\n## voxel\n\nrows\n").unwrap();
        write_into(&doc, &format!("{BEGIN}\nfirst\n{END}")).unwrap();
        write_into(&doc, &format!("{BEGIN}\nsecond\n{END}")).unwrap();
        let text = std::fs::read_to_string(&doc).unwrap();
        assert_eq!(text, format!("# Performance\n\nintro\n\n{BEGIN}\nsecond\n{END}\n\n## voxel\n\nrows\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
