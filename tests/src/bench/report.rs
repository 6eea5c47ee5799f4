//! The results: a table printed to the terminal, the same table as Markdown for
//! `BENCHMARKS.md`, and an SVG plot of stall lateness and CPU against agent count.

use super::stats::{fmt_num, Stat};
use std::fmt::Write as _;

/// Which direction is good for a metric.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Better {
    /// Costs: time, instructions, memory, drops.
    Lower,
    /// Rates: beats per CPU-second.
    Higher,
}

/// One measured figure for both observers.
#[derive(Clone, Debug)]
pub struct Row {
    /// Group heading (the numbering).
    pub section: &'static str,
    /// What was measured.
    pub metric: String,
    /// Unit of the figures.
    pub unit: &'static str,
    /// Which direction is good.
    pub better: Better,
    /// This project's observer.
    pub ours: Option<Stat>,
    /// The published varta-watch 0.2.0.
    pub theirs: Option<Stat>,
    /// Why a figure is missing, or how to read it.
    pub note: String,
}

impl Row {
    /// How many times better ours is (>1: ours is better), when both exist and are non-zero.
    pub fn ratio(&self) -> Option<f64> {
        let (o, t) = (self.ours?.median, self.theirs?.median);
        let r = match self.better {
            Better::Lower => t / o,
            Better::Higher => o / t,
        };
        r.is_finite().then_some(r)
    }

    fn note_suffix(&self) -> String {
        if self.note.is_empty() {
            String::new()
        } else {
            format!("  ({})", self.note)
        }
    }

    fn ratio_text(&self) -> String {
        match self.ratio() {
            Some(r) => format!("×{}", fmt_num(r)),
            None => match (self.ours, self.theirs) {
                (Some(o), Some(t)) if o.median == 0.0 && t.median > 0.0 => "∞ (ours 0)".into(),
                (Some(o), Some(t)) if o.median == 0.0 && t.median == 0.0 => "=".into(),
                _ => "–".into(),
            },
        }
    }
}

/// One point of the plot.
#[derive(Clone, Debug)]
pub struct PlotPoint {
    /// Agents beating.
    pub agents: u32,
    /// true: ours; false: published.
    pub ours: bool,
    /// Median stall lateness, ms.
    pub lateness_ms: Option<f64>,
    /// Observer CPU, % of one core.
    pub cpu_pct: Option<f64>,
}

/// Everything a run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Figures.
    pub rows: Vec<Row>,
    /// Plot data.
    pub plot: Vec<PlotPoint>,
    /// Facts about the run (machine, versions, settings).
    pub context: Vec<String>,
}

fn cell(s: Option<Stat>) -> String {
    s.map(|s| s.show()).unwrap_or_else(|| "n/a".into())
}

/// The number a section heading starts with ("4. Idle…" → 4); headings without one sort last.
fn section_number(section: &str) -> u64 {
    let digits: String = section
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(u64::MAX)
}

/// Where a report's hand-written part starts: `--write` regenerates everything above this
/// line and keeps what follows it.
pub const NOTES_MARKER: &str = "<!-- notes: kept by varta-bench --write -->";

/// The hand-written part of an earlier report (from the marker on), if it has one.
pub fn kept_notes(old: &str) -> Option<&str> {
    old.find(NOTES_MARKER).map(|at| &old[at..])
}

impl Report {
    /// The rows by section: each section once, sorted by its leading number (sections with
    /// the same number, or none, in the order they first appeared), rows within a section
    /// in the order they were added. Scenarios may add to several sections in turn (the
    /// fleet adds to 4 and 6 once per fleet size).
    pub fn sections(&self) -> Vec<(&'static str, Vec<&Row>)> {
        let mut out: Vec<(&'static str, Vec<&Row>)> = Vec::new();
        for r in &self.rows {
            match out.iter_mut().find(|(s, _)| *s == r.section) {
                Some((_, rows)) => rows.push(r),
                None => out.push((r.section, vec![r])),
            }
        }
        // Stable: ties keep their order of first appearance.
        out.sort_by_key(|(s, _)| section_number(s));
        out
    }

    /// Add a row.
    pub fn push(&mut self, row: Row) {
        print_row(&row);
        self.rows.push(row);
    }

    /// Plain-text table.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let w0 = self
            .rows
            .iter()
            .map(|r| r.metric.chars().count() + r.unit.len() + 3)
            .max()
            .unwrap_or(10);
        for (section, rows) in self.sections() {
            let _ = writeln!(out, "\n{section}");
            for r in rows {
                let m = format!("{} [{}]", r.metric, r.unit);
                let _ = writeln!(
                    out,
                    "  {m:<w0$}  varta {:<28} published {:<28} {}{}",
                    cell(r.ours),
                    cell(r.theirs),
                    r.ratio_text(),
                    r.note_suffix()
                );
            }
        }
        out
    }

    /// Markdown for BENCHMARKS.md; `plot` names the SVG beside it.
    pub fn markdown(&self, plot: Option<&str>) -> String {
        let mut out =
            String::from("# Benchmarks: varta-watch against the published varta-watch 0.2.0\n\n");
        out.push_str(
            "Generated by `ci/bench.sh --write` (the `varta-bench` harness in `tests/src/bench`). \
             Both observers ran in the same run, with the same load, repetitions interleaved. \
             Figures are medians with (min–max) over the repetitions; the ratio says how many \
             times better this project's observer is (published ÷ ours for costs, ours ÷ \
             published for rates). Instruction counts come from callgrind and repeat exactly; \
             everything timed depends on the machine.\n\n",
        );
        if !self.context.is_empty() {
            out.push_str("## This run\n\n");
            for c in &self.context {
                let _ = writeln!(out, "- {c}");
            }
            out.push('\n');
        }
        for (section, rows) in self.sections() {
            let _ = writeln!(out, "\n## {section}\n");
            out.push_str("| metric | varta-watch (this) | published 0.2.0 | ratio | note |\n");
            out.push_str("|---|---|---|---|---|\n");
            for r in rows {
                let _ = writeln!(
                    out,
                    "| {} [{}] | {} | {} | {} | {} |",
                    r.metric,
                    r.unit,
                    cell(r.ours),
                    cell(r.theirs),
                    r.ratio_text(),
                    r.note
                );
            }
        }
        if let Some(p) = plot {
            let _ = writeln!(
                out,
                "\n## Lateness and CPU against agent count\n\n![plot]({p})"
            );
        }
        out
    }

    /// SVG with two panels: stall lateness and CPU against agent count (None: no points).
    pub fn svg(&self) -> Option<String> {
        if self.plot.is_empty() {
            return None;
        }
        let mut xs: Vec<u32> = self.plot.iter().map(|p| p.agents).collect();
        xs.sort_unstable();
        xs.dedup();
        let mut s = String::from(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"860\" height=\"320\" \
             font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"860\" height=\"320\" fill=\"white\"/>\n",
        );
        type Get = fn(&PlotPoint) -> Option<f64>;
        let panels: [(&str, Get); 2] = [
            ("stall lateness, ms (median)", |p| p.lateness_ms),
            ("observer CPU, % of a core", |p| p.cpu_pct),
        ];
        for (i, (title, get)) in panels.iter().enumerate() {
            let ox = 60.0 + i as f64 * 430.0;
            let (w, h, top) = (340.0, 220.0, 40.0);
            let ymax = self
                .plot
                .iter()
                .filter_map(get)
                .fold(0.0f64, f64::max)
                .max(1e-9)
                * 1.15;
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"22\" font-weight=\"bold\">{title}</text>",
                ox
            );
            let _ = writeln!(
                s,
                "<line x1=\"{ox}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\
                 <line x1=\"{ox}\" y1=\"{top}\" x2=\"{ox}\" y2=\"{}\" stroke=\"black\"/>",
                top + h,
                ox + w,
                top + h,
                top + h
            );
            for k in 0..=4 {
                let v = ymax * k as f64 / 4.0;
                let y = top + h - h * k as f64 / 4.0;
                let _ = writeln!(
                    s,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
                     <line x1=\"{ox}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/>",
                    ox - 4.0,
                    y + 4.0,
                    fmt_num(v),
                    ox + w
                );
            }
            let xpos = |a: u32| {
                let idx = xs.iter().position(|&x| x == a).unwrap_or(0) as f64;
                ox + 20.0 + idx * (w - 40.0) / (xs.len().max(2) - 1) as f64
            };
            for &a in &xs {
                let _ = writeln!(
                    s,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{a}</text>",
                    xpos(a),
                    top + h + 16.0
                );
            }
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">agents</text>",
                ox + w / 2.0,
                top + h + 32.0
            );
            for (ours, colour, name) in [
                (true, "#1f77b4", "varta-watch (this)"),
                (false, "#d62728", "published 0.2.0"),
            ] {
                let mut pts: Vec<(f64, f64)> = self
                    .plot
                    .iter()
                    .filter(|p| p.ours == ours)
                    .filter_map(|p| get(p).map(|v| (xpos(p.agents), top + h - h * v / ymax)))
                    .collect();
                pts.sort_by(|a, b| a.0.partial_cmp(&b.0).expect("finite"));
                if pts.is_empty() {
                    continue;
                }
                let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = writeln!(
                    s,
                    "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                    path.join(" ")
                );
                for (x, y) in &pts {
                    let _ = writeln!(
                        s,
                        "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{colour}\"/>"
                    );
                }
                let ly = if ours { top + 8.0 } else { top + 24.0 };
                let _ = writeln!(
                    s,
                    "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{colour}\"/>\
                     <text x=\"{}\" y=\"{}\">{name}</text>",
                    ox + 12.0,
                    ly - 9.0,
                    ox + 26.0,
                    ly
                );
            }
        }
        s.push_str("</svg>\n");
        Some(s)
    }
}

fn print_row(r: &Row) {
    println!(
        "  {} [{}]: varta {} | published {} | {}{}",
        r.metric,
        r.unit,
        cell(r.ours),
        cell(r.theirs),
        r.ratio_text(),
        r.note_suffix()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_below_the_marker_are_kept() {
        let old = format!("# old tables\n| a |\n{NOTES_MARKER}\n## Targets\ntext\n");
        assert_eq!(
            kept_notes(&old),
            Some(format!("{NOTES_MARKER}\n## Targets\ntext\n").as_str())
        );
        assert_eq!(kept_notes("# no notes\n"), None);
    }

    fn row(better: Better, o: f64, t: f64) -> Row {
        Row {
            section: "s",
            metric: "m".into(),
            unit: "u",
            better,
            ours: Stat::of(&[o]),
            theirs: Stat::of(&[t]),
            note: String::new(),
        }
    }

    #[test]
    fn ratio_says_how_many_times_better_ours_is() {
        assert_eq!(row(Better::Lower, 2.0, 10.0).ratio(), Some(5.0));
        assert_eq!(row(Better::Higher, 10.0, 2.0).ratio(), Some(5.0));
        assert_eq!(row(Better::Lower, 0.0, 10.0).ratio(), None);
        assert_eq!(row(Better::Lower, 0.0, 10.0).ratio_text(), "∞ (ours 0)");
    }

    fn in_section(section: &'static str, metric: &str) -> Row {
        Row {
            section,
            metric: metric.into(),
            ..row(Better::Lower, 1.0, 2.0)
        }
    }

    #[test]
    fn sections_appear_once_in_number_order_rows_in_insertion_order() {
        let mut r = Report::default();
        // As the scenarios add them: idle (4), lateness (5), then the fleet alternating
        // between 4 and 6 once per size, then memory (7), with 1 last.
        for (s, m) in [
            ("4. Idle and steady load", "idle"),
            ("5. Stall lateness", "late"),
            ("4. Idle and steady load", "cpu 1000"),
            ("6. Real agent processes", "lost 1000"),
            ("4. Idle and steady load", "cpu 4096"),
            ("6. Real agent processes", "lost 4096"),
            ("7. Memory", "rss"),
            ("10. Later", "ten"),
            ("1. Instructions", "instr"),
        ] {
            r.rows.push(in_section(s, m));
        }
        let got: Vec<(&str, Vec<&str>)> = r
            .sections()
            .into_iter()
            .map(|(s, rows)| (s, rows.iter().map(|r| r.metric.as_str()).collect()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("1. Instructions", vec!["instr"]),
                (
                    "4. Idle and steady load",
                    vec!["idle", "cpu 1000", "cpu 4096"]
                ),
                ("5. Stall lateness", vec!["late"]),
                ("6. Real agent processes", vec!["lost 1000", "lost 4096"]),
                ("7. Memory", vec!["rss"]),
                ("10. Later", vec!["ten"]),
            ]
        );
        // Both renderings: one heading per section, in that order, rows in insertion order.
        let md = r.markdown(None);
        assert_eq!(md.matches("## 4. Idle and steady load").count(), 1, "{md}");
        assert_eq!(md.matches("## 6. Real agent processes").count(), 1, "{md}");
        assert_eq!(md.matches("| metric |").count(), 6, "{md}");
        let order = |text: &str, needles: &[&str]| {
            let pos: Vec<usize> = needles.iter().map(|n| text.find(n).expect(n)).collect();
            assert!(pos.windows(2).all(|w| w[0] < w[1]), "{needles:?} in {text}");
        };
        let headings = [
            "1. Instructions",
            "4. Idle",
            "| idle [u]",
            "| cpu 1000 [u]",
            "| cpu 4096 [u]",
            "5. Stall",
            "6. Real",
            "| lost 1000 [u]",
            "| lost 4096 [u]",
            "7. Memory",
            "10. Later",
        ];
        order(&md, &headings);
        let text = r.text();
        assert_eq!(
            text.matches("\n4. Idle and steady load\n").count(),
            1,
            "{text}"
        );
        assert_eq!(
            text.matches("\n6. Real agent processes\n").count(),
            1,
            "{text}"
        );
        let plain: Vec<&str> = headings
            .iter()
            .map(|h| h.trim_start_matches("| "))
            .collect();
        order(&text, &plain);
    }

    #[test]
    fn section_numbers() {
        assert_eq!(section_number("4. Idle"), 4);
        assert_eq!(section_number("12. x"), 12);
        assert_eq!(section_number("Other"), u64::MAX);
    }

    #[test]
    fn markdown_and_svg_hold_the_figures() {
        let mut r = Report::default();
        r.rows.push(row(Better::Lower, 2.0, 10.0));
        r.plot.push(PlotPoint {
            agents: 1000,
            ours: true,
            lateness_ms: Some(1.0),
            cpu_pct: Some(0.5),
        });
        r.plot.push(PlotPoint {
            agents: 1000,
            ours: false,
            lateness_ms: Some(9.0),
            cpu_pct: Some(5.0),
        });
        let md = r.markdown(Some("bench.svg"));
        assert!(md.contains("| m [u] | 2.00 | 10.0 | ×5.00 |"), "{md}");
        let svg = r.svg().unwrap();
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert!(Report::default().svg().is_none());
    }
}
