//! The Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE` lines, samples
//! with escaped label values, and histograms as cumulative `_bucket` series plus `_sum` and
//! `_count`.
//!
//! Only writing lives here; what is measured is [`super::registry`]'s job.

use std::fmt::Write as _;

/// The `Content-Type` of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A monotonically increasing count.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Bucketed observations.
    Histogram,
}

/// A document being written.
#[derive(Debug, Default)]
pub struct Document {
    text: String,
}

impl Document {
    /// Starts the family `name` with its help text and type.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(self.text, "# HELP {name} {}", escape(help, false));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample of `name` with `labels` (written in the order given).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", number(value));
    }

    /// One histogram series: `bounds` are the buckets' upper bounds, `counts` the observations
    /// per bucket (not cumulative; one more than `bounds`, the last for `+Inf`).
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], bounds: &[f64], counts: &[u64], sum: f64) {
        let mut cumulative = 0;
        let bucket = format!("{name}_bucket");
        for (i, count) in counts.iter().enumerate() {
            cumulative += count;
            let le = bounds.get(i).map_or_else(|| "+Inf".to_string(), |b| number(*b));
            self.text.push_str(&bucket);
            write_labels(&mut self.text, labels, Some(&le));
            let _ = writeln!(self.text, " {cumulative}");
        }
        self.text.push_str(name);
        self.text.push_str("_sum");
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", number(sum));
        self.text.push_str(name);
        self.text.push_str("_count");
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {cumulative}");
    }

    /// The document's text.
    pub fn finish(self) -> String {
        self.text
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (name, value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{name}=\"{}\"", escape(value, true));
    }
    out.push('}');
}

/// Escapes a label value (`\`, `"`, newline) or help text (`\`, newline).
fn escape(s: &str, quotes: bool) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\\', '\n', '"']) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.into()
}

/// A sample value: integers without a fraction, `+Inf`/`-Inf`/`NaN` spelled as the format wants.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escaping() {
        let mut doc = Document::default();
        doc.family("x_total", "Counts x.\nTwo lines \\ here.", Kind::Counter);
        doc.sample("x_total", &[("a", "q\"uote"), ("b", "back\\slash\nnl")], 3.0);
        doc.sample("y", &[], 0.25);
        assert_eq!(
            doc.finish(),
            "# HELP x_total Counts x.\\nTwo lines \\\\ here.\n# TYPE x_total counter\n\
             x_total{a=\"q\\\"uote\",b=\"back\\\\slash\\nnl\"} 3\ny 0.25\n"
        );
    }

    #[test]
    fn histograms_are_cumulative() {
        let mut doc = Document::default();
        doc.histogram("d_seconds", &[("verb", "GET")], &[0.005, 1.0], &[2, 1, 1], 2.5);
        assert_eq!(
            doc.finish(),
            "d_seconds_bucket{verb=\"GET\",le=\"0.005\"} 2\nd_seconds_bucket{verb=\"GET\",le=\"1\"} 3\n\
             d_seconds_bucket{verb=\"GET\",le=\"+Inf\"} 4\nd_seconds_sum{verb=\"GET\"} 2.5\n\
             d_seconds_count{verb=\"GET\"} 4\n"
        );
    }

    #[test]
    fn special_numbers() {
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(1e21), "1000000000000000000000");
    }
}
