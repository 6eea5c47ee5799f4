//! Summaries of repeated measurements: median with min and max (these machines are noisy,
//! so no means and no single figures).

/// Median, min and max of a set of samples.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Stat {
    /// Median (the mean of the middle two for an even count).
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Number of samples.
    pub n: usize,
}

impl Stat {
    /// Summarise `samples` (None when empty; NaNs are dropped).
    pub fn of(samples: &[f64]) -> Option<Stat> {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stat {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }
}

/// The `q` quantile of `samples` by nearest rank (`q` in 0..=1; the largest sample for
/// `q` = 1 or fewer than 1 / (1 − q) samples); None when empty.
pub fn quantile(samples: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let rank = (q.clamp(0.0, 1.0) * v.len() as f64).ceil().max(1.0) as usize;
    Some(v[rank - 1])
}

impl Stat {
    /// `median (min–max)`, or the bare value for one sample or a constant.
    pub fn show(&self) -> String {
        if self.n == 1 || self.min == self.max {
            fmt_num(self.median)
        } else {
            format!(
                "{} ({}–{})",
                fmt_num(self.median),
                fmt_num(self.min),
                fmt_num(self.max)
            )
        }
    }
}

/// A number with as many digits as its size deserves.
pub fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 10_000.0 {
        let s = format!("{:.0}", x);
        group_thousands(&s)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn group_thousands(s: &str) -> String {
    let (sign, digits) = match s.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", s),
    };
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(
            quantile(&v[..40], 0.99),
            Some(40.0),
            "few samples: the largest"
        );
        assert_eq!(quantile(&[3.0, f64::NAN, 1.0], 0.0), Some(1.0));
        assert_eq!(quantile(&[], 0.99), None);
    }

    #[test]
    fn median_min_max() {
        let s = Stat::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (3.0, 1.0, 5.0, 3));
        let s = Stat::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert!(Stat::of(&[]).is_none());
        assert!(Stat::of(&[f64::NAN]).is_none());
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(58744.0), "58 744");
        assert_eq!(fmt_num(1413.2), "1413");
        assert_eq!(fmt_num(13.74), "13.7");
        assert_eq!(fmt_num(1.234), "1.23");
        assert_eq!(fmt_num(0.3), "0.300");
        assert_eq!(Stat::of(&[2.0, 2.0]).unwrap().show(), "2.00");
        assert_eq!(
            Stat::of(&[1.0, 2.0, 3.0]).unwrap().show(),
            "2.00 (1.00–3.00)"
        );
    }
}
